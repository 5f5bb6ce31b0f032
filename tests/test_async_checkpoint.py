"""``async_save=True`` copies in the background what training would change, and the snapshot stays exact.

The optimizer's parameters and state are copied by the writer thread while the next
forward and backward run; the optimizer's step waits, through a step pre-hook, only
while that copy is unfinished. Here the copy is held back on purpose so that training
certainly runs during it: the file must still equal a synchronous save bit for bit.
Errors of the background write surface at the next save and at the end of ``fit``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from ckpt_helpers import RAMP_SCORES, files_in, run_lightning
from torch import nn

from lightning_hooks import AtomicCheckpointIO, CheckpointWriteError
from lightning_hooks import checkpoint_io as checkpoint_io_module
from lightning_hooks.checkpoint_io import _Snapshot


def _model_and_optimizer(device: str = "cpu") -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 1)).to(device)
    return model, torch.optim.Adam(model.parameters(), lr=0.1)


def _forward_backward(model: nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    device = next(model.parameters()).device
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(seed)).to(device)
    optimizer.zero_grad()
    model(x).pow(2).mean().backward()  # BatchNorm's running statistics change here, before the step


def _checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    return {"state_dict": model.state_dict(), "optimizer_states": [optimizer.state_dict()], "epoch": 1}


def _held_back_copy(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Make the background copy wait for the returned event."""
    gate = threading.Event()
    original = _Snapshot.copy

    def copy_when_released(self: _Snapshot) -> None:
        assert gate.wait(20), "the test never released the copy"
        original(self)

    monkeypatch.setattr(_Snapshot, "copy", copy_when_released)
    return gate


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))],
)
def test_async_file_equals_the_sync_file_although_training_went_on(tmp_path: Path, monkeypatch, device):
    model, optimizer = _model_and_optimizer(device)
    _forward_backward(model, optimizer, 0)
    optimizer.step()  # Adam has state now
    AtomicCheckpointIO().save_checkpoint(_checkpoint(model, optimizer), tmp_path / "sync.pth")

    io = AtomicCheckpointIO(async_save=True)
    io.bind_optimizers([optimizer])
    gate = _held_back_copy(monkeypatch)
    io.save_checkpoint(_checkpoint(model, optimizer), tmp_path / "async.pth")
    _forward_backward(model, optimizer, 1)  # the next forward and backward run during the copy
    assert not io._snapshot.copied.is_set()  # type: ignore[union-attr]
    threading.Timer(0.3, gate.set).start()
    optimizer.step()  # waits for the copy, then changes the parameters and Adam's state
    assert io.step_wait_seconds > 0.1
    for seed in (2, 3):
        _forward_backward(model, optimizer, seed)
        optimizer.step()
    io.teardown()
    assert (tmp_path / "async.pth").read_bytes() == (tmp_path / "sync.pth").read_bytes()
    assert not optimizer._optimizer_step_pre_hooks  # teardown removed the step guard


def test_steps_do_not_wait_once_the_copy_is_done(tmp_path: Path):
    model, optimizer = _model_and_optimizer()
    _forward_backward(model, optimizer, 0)
    optimizer.step()
    io = AtomicCheckpointIO(async_save=True)
    io.bind_optimizers([optimizer])
    io.save_checkpoint(_checkpoint(model, optimizer), tmp_path / "a.pth")
    io._snapshot.copied.wait(20)  # type: ignore[union-attr]
    _forward_backward(model, optimizer, 1)
    optimizer.step()
    assert io.step_wait_seconds == 0.0
    io.teardown()


def _failing_first_write(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    attempts: list[str] = []
    original = checkpoint_io_module.atomic_torch_save

    def fail_once(checkpoint, path, fsync=True):
        attempts.append(str(path))
        if len(attempts) == 1:
            raise OSError(28, "No space left on device")
        return original(checkpoint, path, fsync=fsync)

    monkeypatch.setattr(checkpoint_io_module, "atomic_torch_save", fail_once)
    return attempts


def test_a_failed_background_write_surfaces_at_the_next_save(tmp_path: Path, monkeypatch):
    attempts = _failing_first_write(monkeypatch)
    cfg = dict(type="CheckpointHook", interval=1, async_save=True)
    with pytest.raises(CheckpointWriteError, match=r"epoch_1\.pth.*No space left"):
        run_lightning(tmp_path, cfg, RAMP_SCORES, max_epochs=3)
    assert [Path(a).name for a in attempts] == ["epoch_1.pth"]  # epoch 2's save raised before writing
    assert files_in(tmp_path) == []  # no last_checkpoint names a file that is not there


def test_a_failed_background_write_surfaces_at_the_end_of_fit(tmp_path: Path, monkeypatch):
    attempts = _failing_first_write(monkeypatch)
    cfg = dict(type="CheckpointHook", interval=1, async_save=True)
    with pytest.raises(CheckpointWriteError, match=r"epoch_1\.pth"):
        run_lightning(tmp_path, cfg, RAMP_SCORES, max_epochs=1)
    assert [Path(a).name for a in attempts] == ["epoch_1.pth"]
    assert files_in(tmp_path) == []


def test_ema_copying_its_average_in_waits_for_the_snapshot(tmp_path: Path, monkeypatch):
    """EMAHook's copy-swap (an average of another dtype) changes parameters in place outside any
    optimizer step: it waits for the async save's copy first, so the average does not leak into it."""
    from lightning_hooks.hooks.ema_hook import _SwapState

    model, optimizer = _model_and_optimizer()
    _forward_backward(model, optimizer, 0)
    optimizer.step()
    AtomicCheckpointIO().save_checkpoint(_checkpoint(model, optimizer), tmp_path / "sync.pth")
    io = AtomicCheckpointIO(async_save=True)
    io.bind_optimizers([optimizer])
    gate = _held_back_copy(monkeypatch)
    io.save_checkpoint(_checkpoint(model, optimizer), tmp_path / "async.pth")
    averages = [(name, torch.full_like(p, 7.0, dtype=torch.float64), p) for name, p in model.named_parameters()]
    threading.Timer(0.3, gate.set).start()
    swap = _SwapState()
    with torch.no_grad():
        swap.apply(iter(averages))  # float64 averages of float32 parameters: copied in, in place
    assert swap.kept and all(bool((p == 7.0).all()) for _, _, p in averages)
    io.teardown()
    assert (tmp_path / "async.pth").read_bytes() == (tmp_path / "sync.pth").read_bytes()
