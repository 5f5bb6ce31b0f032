"""SyncBuffersHook: the averaging (floating and integer buffers) against MMEngine's ``all_reduce_params(op='mean')`` over real gloo processes,
and a no-op on one process. The hook inside a 2-process Trainer is tested in test_ddp.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from toy import ToyModule, loaders, make_trainer

from lightning_hooks import HookBridge, SyncBuffersHook
from lightning_hooks.hooks.sync_buffers_hook import COALESCE_LIMIT, _group_floating

SCRIPT = Path(__file__).parent / "ddp_scripts" / "reduce_buffers.py"


@pytest.fixture(scope="module")
def reduced(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("reduce")
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [torch.load(out / f"reduce_rank{r}.pt", weights_only=True) for r in (0, 1)]


@pytest.mark.slow
def test_float_buffers_become_the_mean_like_mmengine(reduced):
    rank0, rank1 = reduced
    # One per dtype for the small buffers (4 floating, 1 integer), not one per tensor, plus one per large buffer.
    assert rank0["collectives"] == 5 + 2
    assert not rank0["inputs"][-2].is_contiguous() and rank0["inputs"][-2].numel() >= COALESCE_LIMIT
    for i, (a, b) in enumerate(zip(rank0["inputs"], rank1["inputs"], strict=True)):
        ours0, ours1, theirs = rank0["ours"][i], rank1["ours"][i], rank0["theirs"][i]
        if not torch.is_floating_point(a):
            continue
        assert torch.equal(ours0, ours1) and ours0.dtype == a.dtype
        exact = (a.double() + b.double()) / 2
        if a.dtype in (torch.float32, torch.float64):
            assert torch.equal(ours0, theirs), f"tensor {i} ({a.dtype})"
        else:
            # Reduced in float32 and rounded once: at least as close to the exact mean as MMEngine's.
            assert (ours0.double() - exact).abs().max() <= (theirs.double() - exact).abs().max()
        tolerance = {torch.float16: 1e-3, torch.bfloat16: 1e-2}.get(a.dtype, 1e-6)
        assert torch.allclose(ours0.double(), exact, rtol=tolerance)


@pytest.mark.slow
def test_integer_buffers_get_mmengines_truncated_mean(reduced):
    rank0, rank1 = reduced
    ints = [i for i, t in enumerate(rank0["inputs"]) if t.dtype == torch.int64]
    assert ints
    for i in ints:
        mean = (rank0["inputs"][i] + rank1["inputs"][i]).double() / 2
        assert not torch.equal(rank0["inputs"][i], rank1["inputs"][i])
        assert torch.equal(rank0["theirs"][i], mean.trunc().long())  # MMEngine truncates the mean
        assert torch.equal(rank0["ours"][i], rank0["theirs"][i]) and torch.equal(rank1["ours"][i], rank0["theirs"][i])
        assert rank0["ours"][i].dtype == torch.int64


def test_no_op_on_one_process(tmp_path):
    class BNModule(ToyModule):
        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm1d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(self.bn(x)).squeeze(-1)

    def train(hooks):
        bridge = HookBridge(custom_hooks=hooks, default_hooks={"checkpoint": None}, print_hooks_table=False)
        model = BNModule()
        train_loader, val_loader = loaders()
        make_trainer(tmp_path, bridge, max_epochs=2).fit(model, train_loader, val_loader)
        return model

    hook = SyncBuffersHook()
    with_hook, without = train([hook]), train([])
    assert hook.collectives == 0 and not hook.called_in_train
    for (name, a), (_, b) in zip(with_hook.named_buffers(), without.named_buffers(), strict=True):
        assert torch.equal(a, b), name
    assert with_hook.bn.running_mean.abs().sum() > 0  # the stats did move during training


def test_grouping_keeps_integers_skips_bools_and_duplicates():
    shared = torch.zeros(2)
    buffers = [shared, torch.zeros(3, dtype=torch.long), shared, torch.zeros(1, dtype=torch.float64), torch.zeros(0)]
    buffers.append(torch.zeros(2, dtype=torch.bool))
    groups = _group_floating(buffers)
    assert {key[1]: len(group) for key, group in groups.items()} == {torch.float32: 1, torch.int64: 1, torch.float64: 1}


def test_mount_points_and_priority_match_mmengine():
    from mmengine.hooks import SyncBuffersHook as MMSyncBuffersHook

    ours, theirs = SyncBuffersHook(), MMSyncBuffersHook()
    assert ours.priority == theirs.priority
    assert set(ours.get_triggered_stages()) == set(theirs.get_triggered_stages())
