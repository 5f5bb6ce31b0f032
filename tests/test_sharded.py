"""Sharded training (ModelParallelStrategy, FSDP2's ``fully_shard``) on CPU with 2 gloo processes.

``ddp_scripts/sharded_ema_run.py`` trains the same model on the same data under ``ddp`` and under
``ModelParallelStrategy``, in a subprocess with a deadline each; the tests compare what each rank
recorded. See the script's docstring.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from lightning_hooks.sharded_checkpoint import consolidate_sharded_checkpoint, read_sharded_checkpoint

SCRIPT = Path(__file__).parent / "ddp_scripts" / "sharded_ema_run.py"
DEADLINE_S = 240
STRATEGIES = ("ddp", "fsdp2")
PHASES = ("first", "resumed", "straight")
_LAUNCHER_VARS = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "GLOBAL_RANK", "MASTER_ADDR", "MASTER_PORT")
ATOL = 1e-5

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(2 * DEADLINE_S + 60),
    pytest.mark.skipif(sys.platform == "win32", reason="gloo multi-process runs need POSIX"),
]


def _run(out: Path, strategy: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_VARS}
    env["PYTHONWARNINGS"] = "ignore"
    try:
        proc = subprocess.run(
            [sys.executable, str(SCRIPT), str(out), strategy],
            env=env,
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the 2-process {strategy} run did not finish within {DEADLINE_S} s:\n{exc.stdout}")
    assert proc.returncode == 0, f"{strategy} run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("sharded")
    for strategy in STRATEGIES:
        _run(out, strategy)
    records = {
        (strategy, phase, rank): torch.load(out / f"{strategy}_{phase}_rank{rank}.pt", weights_only=True)
        for strategy in STRATEGIES
        for phase in PHASES
        for rank in (0, 1)
    }
    return {"out": out, "records": records}


def assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], what: str, skip: str = "\0") -> None:
    assert sorted(a) == sorted(b), what
    for key in a:
        if skip in key:
            continue
        assert torch.allclose(a[key].double(), b[key].double(), atol=ATOL), f"{what}: {key} differs"


@pytest.mark.parametrize("phase", PHASES)
def test_sharded_ema_gives_the_unsharded_numbers(runs, phase):
    """Validation on the EMA weights, the gathered average and all three averaging types match DDP's."""
    for rank in (0, 1):
        ddp, fsdp2 = runs["records"]["ddp", phase, rank], runs["records"]["fsdp2", phase, rank]
        assert (ddp["sharded"], fsdp2["sharded"]) == (False, True)
        assert ddp["steps"] == fsdp2["steps"] == (4 if phase == "first" else 6)
        assert fsdp2["val"] == pytest.approx(ddp["val"], abs=ATOL)
        assert_close(ddp["average"], fsdp2["average"], f"{phase} rank {rank} average")
        assert_close(ddp["raw"], fsdp2["raw"], f"{phase} rank {rank} raw weights")
        for kind in ddp["others"]:
            assert_close(ddp["others"][kind], fsdp2["others"][kind], f"{phase} rank {rank} {kind}")
        assert not torch.allclose(fsdp2["average"]["net.0.weight"], fsdp2["raw"]["net.0.weight"])
    assert set(runs["records"]["fsdp2", "first", 0]["others"]) == {"ema", "swa"}


def test_each_rank_holds_one_shard_of_the_average(runs):
    full = runs["records"]["ddp", "first", 0]["local_numel"]
    shards = [runs["records"]["fsdp2", "first", rank]["local_numel"] for rank in (0, 1)]
    assert sum(shards) == full and all(0 < n < full for n in shards)


def test_swap_for_validation_and_averaged_state_dict_during_it(runs):
    """During the last validation the gathered average (partly sitting in the model) equals the one after it."""
    for strategy in STRATEGIES:
        record = runs["records"][strategy, "first", 0]
        assert record["during_val"] is not None
        assert_close(record["during_val"], record["average"], f"{strategy} average during validation")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_resume_from_the_sharded_checkpoint_continues_the_average(runs, strategy):
    for rank in (0, 1):
        resumed, straight = runs["records"][strategy, "resumed", rank], runs["records"][strategy, "straight", rank]
        assert resumed["val"] == pytest.approx(straight["val"][-1:], abs=ATOL)
        assert_close(resumed["average"], straight["average"], f"{strategy} rank {rank} resumed average")
        assert_close(resumed["raw"], straight["raw"], f"{strategy} rank {rank} resumed weights")


def test_full_state_files_carry_the_gathered_average_and_resume(runs):
    """ModelParallelStrategy(save_distributed_checkpoint=False): one MMEngine-layout file, resumed exactly."""
    work = runs["out"] / "work_fsdp2full"
    # The resumed run saved epoch 3 and rotated epoch 2 away (max_keep_ckpts=1).
    assert sorted(p.name for p in work.iterdir() if p.name.endswith(".pth")) == ["epoch_3.pth"]
    saved = torch.load(work / "epoch_3.pth", weights_only=True)
    straight = runs["records"]["fsdp2", "straight", 0]
    assert_close(saved["state_dict"], straight["average"], "full file state_dict vs gathered average")
    raw = {k[len("module.") :]: v for k, v in saved["ema_state_dict"].items() if k != "steps"}
    assert_close(raw, straight["raw"], "full file ema_state_dict vs gathered weights")
    assert int(saved["ema_state_dict"]["steps"]) == 6
    for rank in (0, 1):
        first = torch.load(runs["out"] / f"fsdp2full_first_rank{rank}.pt", weights_only=True)
        resumed = torch.load(runs["out"] / f"fsdp2full_resumed_rank{rank}.pt", weights_only=True)
        straight = runs["records"]["fsdp2", "straight", rank]
        assert_close(first["average"], runs["records"]["fsdp2", "first", rank]["average"], "fsdp2full first")
        # epoch_2.pth was saved before epoch 2's validation: the resumed run validates epoch 2, then 3.
        assert resumed["val"] == pytest.approx(straight["val"][1:], abs=ATOL)
        assert_close(resumed["average"], straight["average"], f"fsdp2full rank {rank} resumed average")
        assert_close(resumed["raw"], straight["raw"], f"fsdp2full rank {rank} resumed weights")


def test_sharded_directory_consolidates_to_mmengine_layout(runs, tmp_path):
    """The directory reads back as one checkpoint equal to DDP's file; the published file is weights_only."""
    out = runs["out"]
    assert (out / "fsdp2.ckpt").is_dir()
    sharded = read_sharded_checkpoint(out / "fsdp2.ckpt")
    plain = torch.load(out / "ddp.ckpt", weights_only=False)
    assert set(plain) == set(sharded)
    # Averaged buffers are per-rank copies (each rank's data); the files hold one rank's: compare parameters.
    assert_close(plain["state_dict"], sharded["state_dict"], "state_dict (averaged)", skip="running_")
    assert_close(plain["ema_state_dict"], sharded["ema_state_dict"], "ema_state_dict (raw + steps)")
    assert sharded["optimizer_states"][0]["param_groups"][0]["params"][0] == "net.0.weight"
    target = tmp_path / "published.pth"
    written = consolidate_sharded_checkpoint(out / "fsdp2.ckpt", target, keys=["meta", "state_dict"])
    loaded = torch.load(target, weights_only=True)
    assert list(loaded) == ["meta", "state_dict"] == list(written)
    assert_close(loaded["state_dict"], sharded["state_dict"], "published state_dict")


def test_save_averaged_writes_the_full_average_once(runs):
    out = runs["out"]
    sharded = torch.load(out / "fsdp2_averaged.pth", weights_only=True)
    plain = torch.load(out / "ddp_averaged.pth", weights_only=True)
    assert sharded["meta"] == plain["meta"] == {"ema_steps": 4}
    assert_close(plain["state_dict"], sharded["state_dict"], "save_averaged", skip="running_")
    assert_close(sharded["state_dict"], runs["records"]["fsdp2", "first", 0]["average"], "file vs gathered")


# ------------------------------------------------------------------ checkpoints, early stopping, auto-resume, crash
CKPT_SCRIPT = Path(__file__).parent / "ddp_scripts" / "sharded_ckpt_run.py"
CKPT_PHASES = ("straight", "resumed")


def _run_ckpt(out: Path, strategy: str, phase: str) -> int:
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_VARS}
    env["PYTHONWARNINGS"] = "ignore"
    try:
        proc = subprocess.run(
            [sys.executable, str(CKPT_SCRIPT), str(out), strategy, phase],
            env=env,
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the 2-process {strategy} {phase} run did not finish within {DEADLINE_S} s:\n{exc.stdout}")
    if phase != "killed":
        assert proc.returncode == 0, f"{strategy} {phase} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.returncode


@pytest.fixture(scope="module")
def ckpt_runs(tmp_path_factory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("sharded_ckpt")
    after_kill: dict[str, Any] = {}
    for strategy in STRATEGIES:
        _run_ckpt(out, strategy, "straight")
        returncode = _run_ckpt(out, strategy, "killed")
        crash_dir = out / f"{strategy}_crash"
        after_kill[strategy] = {
            "returncode": returncode,
            "entries": sorted(p.name for p in crash_dir.iterdir() if p.name.endswith((".pth", ".tmp"))),
            "last_checkpoint": (crash_dir / "last_checkpoint").read_text().strip(),
        }
        _run_ckpt(out, strategy, "resumed")
    records = {
        (strategy, phase, rank): torch.load(out / f"{strategy}_{phase}_rank{rank}.pt", weights_only=True)
        for strategy in STRATEGIES
        for phase in CKPT_PHASES
        for rank in (0, 1)
    }
    return {"out": out, "records": records, "after_kill": after_kill}


def _names(record: dict[str, Any]) -> list[str]:
    """Checkpoint entries, with the hash of published files cut off (it hashes storage addresses too)."""
    names = []
    for name, _ in record["entries"]:
        if name.startswith("."):
            continue
        stem = name[: -len(".pth")]
        names.append(stem.rsplit("-", 1)[0] + "-<sha>.pth" if "-" in stem else name)
    return names


def _scores(record: dict[str, Any]) -> list[float]:
    """``val_loss`` and ``score`` of every validation, flat."""
    return [value for entry in record["val"] for value in entry[1:]]


def test_sigkill_during_a_sharded_save_leaves_a_resumable_set(ckpt_runs):
    from lightning_hooks.sharded_checkpoint import is_sharded_checkpoint

    out = ckpt_runs["out"]
    for strategy in STRATEGIES:
        seen = ckpt_runs["after_kill"][strategy]
        assert seen["returncode"] == -9, strategy
        assert seen["last_checkpoint"].endswith("epoch_2.pth"), strategy
        assert [n for n in seen["entries"] if not n.startswith(".")] == [
            "best_score_epoch_2.pth",
            "best_val_loss_epoch_2.pth",
            "epoch_1.pth",
            "epoch_2.pth",
        ], strategy
        assert any(n.startswith(".epoch_3.pth") and n.endswith(".tmp") for n in seen["entries"]), strategy
    # The sharded run's complete directories are the named ones; its half-written save is not.
    assert ckpt_runs["after_kill"]["fsdp2"]["entries"][0] == ".epoch_3.pth.tmp"
    crash = out / "fsdp2_crash"
    for record in (ckpt_runs["records"]["fsdp2", "resumed", 0],):
        assert all(is_sharded_checkpoint(crash / name) for name, is_dir in record["entries"] if is_dir)
    assert not (crash / ".epoch_3.pth.tmp").exists()  # the resumed run's save of epoch 3 replaced it


@pytest.mark.parametrize("phase", CKPT_PHASES)
def test_same_checkpoints_scores_and_stop_under_ddp_and_model_parallel(ckpt_runs, phase):
    records = ckpt_runs["records"]
    for rank in (0, 1):
        ddp, fsdp2 = records["ddp", phase, rank], records["fsdp2", phase, rank]
        assert _names(ddp) == _names(fsdp2)
        assert os.path.basename(ddp["last_checkpoint"]) == os.path.basename(fsdp2["last_checkpoint"]) == "epoch_5.pth"
        assert [v[0] for v in ddp["val"]] == [v[0] for v in fsdp2["val"]]
        assert _scores(fsdp2) == pytest.approx(_scores(ddp), abs=ATOL)
        assert fsdp2["lr"] == ddp["lr"]
        assert fsdp2["stopped_at"] == ddp["stopped_at"] == 5  # early stopping, both ranks together
        assert fsdp2["early_stopping"] == ddp["early_stopping"]
        assert_close(ddp["average"], fsdp2["average"], f"{phase} rank {rank} average")
    fsdp2 = records["fsdp2", phase, 0]
    kinds = {name: is_dir for name, is_dir in fsdp2["entries"]}
    assert kinds["epoch_5.pth"] and kinds["epoch_4.pth"] and kinds["best_score_epoch_5.pth"]
    assert _names(fsdp2) == [
        "best_score_epoch_5-<sha>.pth",
        "best_score_epoch_5.pth",
        "best_val_loss_epoch_5-<sha>.pth",
        "best_val_loss_epoch_5.pth",
        "epoch_4.pth",
        "epoch_5-<sha>.pth",
        "epoch_5.pth",
    ]


def test_auto_resume_after_the_crash_gives_the_uninterrupted_run(ckpt_runs):
    records = ckpt_runs["records"]
    for strategy in STRATEGIES:
        for rank in (0, 1):
            resumed, straight = records[strategy, "resumed", rank], records[strategy, "straight", rank]
            assert _names(resumed) == _names(straight)
            assert [v[0] for v in resumed["val"]] == [3, 4, 5]
            assert _scores(resumed) == pytest.approx(_scores(straight)[4:], abs=ATOL)
            assert resumed["lr"] == straight["lr"][2:]
            assert resumed["early_stopping"] == straight["early_stopping"]
            assert_close(resumed["average"], straight["average"], f"{strategy} rank {rank} resumed average")


@pytest.mark.parametrize("phase", CKPT_PHASES)
def test_every_rank_fires_the_same_mount_points(ckpt_runs, phase):
    records = ckpt_runs["records"]
    traces = [records[strategy, phase, rank]["trace"] for strategy in STRATEGIES for rank in (0, 1)]
    assert all(trace == traces[0] for trace in traces)
    saves = [entry for entry in traces[0] if entry.startswith("before_save_checkpoint:")]
    assert len(saves) >= 3 * (5 if phase == "straight" else 3)  # regular + two best keys, each fired on every rank


def test_sync_buffers_averages_the_unsharded_buffers_over_the_ranks(ckpt_runs):
    """Each rank's BatchNorm statistics follow its own data; after SyncBuffersHook they are equal, as under DDP."""
    records = ckpt_runs["records"]
    for phase in CKPT_PHASES:
        fsdp2 = [records["fsdp2", phase, rank]["buffers"] for rank in (0, 1)]
        assert sorted(fsdp2[0]) == ["net.1.running_mean", "net.1.running_var"]
        assert_close(fsdp2[0], fsdp2[1], f"{phase}: buffers of rank 0 and rank 1")
        assert_close(records["ddp", phase, 0]["buffers"], fsdp2[0], f"{phase}: buffers under ddp and fsdp2")


def test_only_rank_zero_renames_and_deletes(ckpt_runs):
    for phase in CKPT_PHASES:
        writes = ckpt_runs["records"]["fsdp2", phase, 1]["writes"]
        assert not [w for w in writes if w[0] in ("os.rename", "os.replace", "os.remove", "os.rmdir")], phase
        files = {os.path.basename(path) for event, path in writes if event == "open"}
        assert files <= {"__1_0.distcp", "trace_rank1.json"}, files
        rank0 = ckpt_runs["records"]["fsdp2", phase, 0]["writes"]
        assert any(event == "os.rmdir" and path.endswith("epoch_3.pth") for event, path in rank0)  # rotation


def test_published_files_are_weights_only_and_hold_the_gathered_average(ckpt_runs):
    out = ckpt_runs["out"]
    record = ckpt_runs["records"]["fsdp2", "straight", 0]
    published = [name for name, _ in record["entries"] if name.startswith("epoch_5-")]
    assert len(published) == 1
    loaded = torch.load(out / "fsdp2_straight" / published[0], weights_only=True)
    assert list(loaded) == ["meta", "state_dict"]
    assert loaded["meta"]["epoch"] == 5
    assert_close(loaded["state_dict"], record["average"], "published vs gathered average", skip="running_")
    ddp_record = ckpt_runs["records"]["ddp", "straight", 0]
    ddp_name = next(name for name, _ in ddp_record["entries"] if name.startswith("epoch_5-"))
    ddp_loaded = torch.load(out / "ddp_straight" / ddp_name, weights_only=True)
    assert_close(ddp_loaded["state_dict"], loaded["state_dict"], "published: ddp vs fsdp2", skip="running_")


def test_sharded_directories_resume_with_or_without_optimizer_state(tmp_path):
    """One process under ModelParallelStrategy: a directory without optimizer state (``save_optimizer=False``,
    or any best checkpoint) resumes with the optimizer as built, and says so; one with it restores it,
    and says nothing."""
    import json

    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_VARS}
    env["PYTHONWARNINGS"] = "ignore"
    script = Path(__file__).parent / "ddp_scripts" / "sharded_resume_run.py"
    try:
        proc = subprocess.run(
            [sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=DEADLINE_S
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the sharded resume run did not finish within {DEADLINE_S} s:\n{exc.stdout}")
    assert proc.returncode == 0, proc.stderr[-5000:]
    result = json.loads((tmp_path / "result.json").read_text())
    restored = result.pop("True/epoch_2.pth")
    assert restored["warnings"] == 0 and restored["moment"] and restored["moment"] == restored["saved_moment"]
    assert sorted(result) == ["False/best", "False/epoch_2.pth", "True/best"]
    for name, resumed in result.items():
        assert (resumed["warnings"], resumed["moment"], resumed["saved_moment"]) == (1, [], []), name
