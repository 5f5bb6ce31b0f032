"""``async_save=True`` copies in the background what training would change, and the snapshot stays exact.

The optimizer's parameters and state are copied by the writer thread while the next
forward and backward run; the optimizer's step waits, through a step pre-hook, only
while that copy is unfinished. Here the copy is held back on purpose so that training
certainly runs during it: the file must still equal a synchronous save bit for bit.
Errors of the background write surface at the next save and at the end of ``fit``.
"""

from __future__ import annotations

import collections
import io
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


Point = collections.namedtuple("Point", "x y")


class Tags(list):
    """A list subclass in a checkpoint (kept as such by pickle)."""


def test_the_snapshot_is_what_torch_save_writes_from_the_originals(tmp_path: Path):
    """Shared storages (tied weights, views), one tensor met twice, and containers of other types
    (Counter, defaultdict, deque, namedtuple): the async file has the sync file's bytes, and later
    changes to a container do not reach it."""
    weight = torch.arange(12.0).view(3, 4)
    score = torch.tensor(0.5)
    history: collections.deque = collections.deque([1, 2], maxlen=3)
    point = Point(torch.ones(2), 3)
    state = {
        "tied": {"enc": weight, "dec": weight.detach(), "row": weight[1]},
        "scores": {"best": score, "current": score},
        "counts": collections.Counter(a=2),
        "by_key": collections.defaultdict(list, b=[1]),
        "history": history,
        "point": point,
        "tags": Tags(["a", torch.zeros(1)]),
    }
    snapshot = _Snapshot().take(state, frozenset())
    sync, written = io.BytesIO(), io.BytesIO()  # file objects: the archive is named alike
    torch.save(state, sync)
    history.append(3)
    state["counts"]["a"] += 1
    torch.save(snapshot, written)
    assert written.getvalue() == sync.getvalue()
    loaded = torch.load(io.BytesIO(written.getvalue()), weights_only=False)
    assert type(loaded["by_key"]) is collections.defaultdict and list(loaded["history"]) == [1, 2]
    assert type(loaded["tags"]) is Tags


def test_manual_optimization_waits_for_the_copy_before_each_batch(tmp_path: Path, monkeypatch):
    """Under manual optimization the module may change parameters before its optimizer step: each
    training batch starts once the background copy is done, so the file holds the saved weights."""
    import lightning.pytorch as pl
    from toy import ToyModule, loaders, make_trainer

    from lightning_hooks import HookBridge

    class ManualZeroing(ToyModule):
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False

        def training_step(self, batch, batch_idx):
            optimizer = self.optimizers()
            with torch.no_grad():
                self.linear.weight.mul_(0)  # in place, before the optimizer step
            loss = super().training_step(batch, batch_idx)
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
            return loss

    saved: dict[str, torch.Tensor] = {}

    class Remember(pl.Callback):
        def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
            saved.setdefault("weight", pl_module.linear.weight.detach().clone())

    gate = _held_back_copy(monkeypatch)
    threading.Timer(0.5, gate.set).start()
    bridge = HookBridge(
        default_hooks=dict(
            logger=None, checkpoint=dict(type="CheckpointHook", interval=2, by_epoch=False, async_save=True)
        ),
        print_hooks_table=False,
    )
    trainer = make_trainer(tmp_path, bridge, max_steps=3, max_epochs=-1, callbacks=[bridge, Remember()])
    trainer.fit(ManualZeroing(), loaders()[0])
    written = torch.load(tmp_path / "iter_2.pth", weights_only=True)["state_dict"]["linear.weight"]
    assert torch.equal(written, saved["weight"])
