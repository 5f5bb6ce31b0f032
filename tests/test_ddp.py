"""Real two-process gloo DDP on CPU: HookBridge with every default hook plus SyncBuffersHook,
EarlyStoppingHook, CheckpointHook (rotation and best) and EMAHook.

``ddp_scripts/ddp_hooks_run.py`` runs under ``strategy='ddp'`` (Lightning re-executes the script for
rank 1) in a subprocess with a deadline, so a hang fails the test instead of blocking CI. It trains
two scenarios in the same two processes (epoch-based with early stopping; iteration-based with
DDP's buffer broadcast off) and each rank writes what it observed to JSON. See the script's
docstring for what is recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).parent / "ddp_scripts" / "ddp_hooks_run.py"
SCENARIOS = ("epochs", "iters")
DEADLINE_S = 240
#: Environment of an outer distributed launcher would make the script join it instead of launching.
_LAUNCHER_VARS = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "GLOBAL_RANK", "MASTER_ADDR", "MASTER_PORT")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(DEADLINE_S + 60)]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("ddp")
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_VARS}
    env["PYTHONWARNINGS"] = "ignore"
    try:
        proc = subprocess.run(
            [sys.executable, str(SCRIPT), str(out), "ddp"],
            env=env,
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the 2-process DDP run did not finish within {DEADLINE_S} s (a collective hung?):\n{exc.stdout}")
    assert proc.returncode == 0, f"DDP run failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    records = {}
    for scenario in SCENARIOS:
        records[scenario] = [json.loads((out / f"{scenario}_rank{r}.json").read_text()) for r in (0, 1)]
    return {"out": out, "records": records, "stdout": proc.stdout}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_both_ranks_fire_identical_mount_point_traces(ddp_run, scenario):
    rank0, rank1 = ddp_run["records"][scenario]
    assert (rank0["rank"], rank1["rank"]) == (0, 1)
    assert rank0["world_size"] == rank1["world_size"] == 2
    stages = [entry[0] for entry in rank0["trace"]]
    assert stages[0] == "before_run" and stages[-1] == "after_run"
    assert stages.count("before_save_checkpoint") >= 4  # every save fires on both ranks
    assert rank0["trace"] == rank1["trace"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_sync_buffers_hook_sets_every_float_buffer_to_the_ranks_mean(ddp_run, scenario):
    rank0, rank1 = ddp_run["records"][scenario]
    syncs = list(zip(rank0["buffers"], rank1["buffers"], strict=True))
    expected_points = {"epochs": {"after_train_epoch"}, "iters": {"before_val_epoch", "after_train_epoch"}}[scenario]
    differing = 0
    for a, b in syncs:
        assert (a["stage"], a["epoch"], a["iter"]) == (b["stage"], b["epoch"], b["iter"])
        assert a["after"] == b["after"], f"buffers still differ after {a['stage']} at iter {a['iter']}"
        if a["before"] == b["before"]:
            continue  # nothing to average (e.g. right after an earlier sync)
        assert a["stage"] in expected_points
        differing += 1
        for name, values in a["before"].items():
            mean = [(x + y) / 2 for x, y in zip(values, b["before"][name], strict=True)]
            assert a["after"][name] == pytest.approx(mean, rel=1e-6, abs=1e-7), name
        assert a["before"]["rank_buffer"] != b["before"]["rank_buffer"]
    n_train_epochs = rank0["stopped_at"][0]
    assert differing == {"epochs": n_train_epochs, "iters": 4}[scenario]  # iters: the 4 validations
    if scenario == "epochs":
        # Validation right after a train-epoch sync does not sync again (MMEngine's called_in_train rule).
        val_points = [a for a, _ in syncs if a["stage"] == "before_val_epoch"]
        assert val_points and all(p["before"] == p["after"] for p in val_points)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_only_rank_0_writes_checkpoints_and_logs(ddp_run, scenario):
    rank0, rank1 = ddp_run["records"][scenario]
    assert rank1["writes"] == []
    written = {os.path.basename(path) for _, path in rank0["writes"]}
    unit = "epoch" if scenario == "epochs" else "iter"
    assert any(name.startswith(f"{unit}_") and name.endswith(".pth") for name in written)
    assert "last_checkpoint" in written
    log_name = os.path.basename(rank0["log_dir"]) + ".log"
    assert log_name in written
    assert (Path(rank0["log_dir"]) / log_name).stat().st_size > 0


def test_rotation_and_best_checkpoint_decisions_agree(ddp_run):
    rank0, rank1 = ddp_run["records"]["epochs"]
    work = Path(rank0["work_dir"])
    last_epoch = rank0["stopped_at"][0]
    regular = sorted(p.name for p in work.glob("epoch_*.pth"))
    assert regular == [f"epoch_{last_epoch - 1}.pth", f"epoch_{last_epoch}.pth"]  # max_keep_ckpts=2
    # save_best follows `score`, which is not synced: rank 0's improves until epoch 3, rank 1's until epoch 5.
    # One decision for both ranks (rank 0's); otherwise the collective saves would not match.
    assert [p.name for p in work.glob("best_*.pth")] == ["best_score_epoch_3.pth"]
    removed = [os.path.basename(path) for event, path in rank0["writes"] if event == "os.remove"]
    assert {f"epoch_{k}.pth" for k in range(1, last_epoch - 1)} <= set(removed)
    saves = [e for e in rank0["trace"] if e[0] == "before_save_checkpoint"]
    assert saves == [e for e in rank1["trace"] if e[0] == "before_save_checkpoint"]
    assert (work / "last_checkpoint").read_text().strip().endswith(f"epoch_{last_epoch}.pth")


def test_early_stopping_stops_every_rank_together(ddp_run):
    rank0, rank1 = ddp_run["records"]["epochs"]
    # Rank 0's scores plateau (it decides to stop after epoch 5); rank 1's keep improving. Every rank
    # gets rank 0's validation metrics (MMEngine's evaluator broadcasts them too), so both decide alike.
    assert rank0["early_stopping"] == {"best_score": 3.0, "wait_count": 2}
    assert rank1["early_stopping"] == rank0["early_stopping"]
    assert rank0["stopped_at"] == rank1["stopped_at"] == [5, 20]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_ranks_sampler_is_seeded_once_per_epoch(ddp_run, scenario):
    rank0, rank1 = ddp_run["records"][scenario]
    passes = {"epochs": rank0["stopped_at"][0], "iters": 3}[scenario]  # 12 iterations of 4 batches per rank
    assert rank0["sampler_calls"] == rank1["sampler_calls"] == list(range(passes))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_ema_weights_agree_across_ranks(ddp_run, scenario):
    rank0, rank1 = ddp_run["records"][scenario]
    assert "ema_checksum" in rank0
    assert rank0["ema_checksum"] == rank1["ema_checksum"]


def test_profiler_and_empty_cache_hooks_run_on_every_rank(ddp_run):
    rank0, rank1 = ddp_run["records"]["iters"]
    # before_epoch + after_epoch: 1 train epoch (iteration-based) and 4 validations, on each rank.
    assert len(rank0["releases"]) == len(rank1["releases"]) == 2 * (1 + 4)
    out = ddp_run["out"]
    for name in ("trace.json", "trace_rank1.json"):
        with open(out / name) as f:
            names = {event.get("name", "") for event in json.load(f)["traceEvents"]}
        assert "aten::addmm" in names, name
