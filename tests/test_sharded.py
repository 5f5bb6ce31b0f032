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
