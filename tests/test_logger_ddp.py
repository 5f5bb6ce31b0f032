"""Only rank 0 prints and writes: a real 2-process gloo DDP run (ddp_fork on the CPU)."""

from __future__ import annotations

import os
import sys
import time

import lightning.pytorch as pl
import pytest
from log_toy import read_json_lines
from toy import ToyModule, loaders, make_trainer

from lightning_hooks import HookBridge


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ddp_fork needs fork (POSIX)")
@pytest.mark.timeout(120)
def test_only_rank_zero_writes_logs(tmp_path):
    bridge = HookBridge(
        default_hooks=dict(checkpoint=None, logger=dict(type="LoggerHook", interval=1)),
        work_dir=str(tmp_path / "work"),
    )
    trainer = make_trainer(tmp_path, bridge, max_epochs=2, strategy="ddp_fork", devices=2)
    train, val = loaders()
    trainer.fit(ToyModule(), train, val)
    (log_dir,) = [p for p in (tmp_path / "work").iterdir() if p.is_dir()]
    records = read_json_lines(log_dir / "vis_data" / "scalars.json")
    # 12 samples over 2 ranks in batches of 3: 2 iterations per epoch, each logged (interval 1),
    # plus one validation record per epoch. Written by both ranks this would be 12 records.
    assert [r["step"] for r in records] == [1, 2, 1, 3, 4, 2]
    log_text = (log_dir / f"{log_dir.name}.log").read_text()
    assert log_text.count("Epoch(train) [1][1/2]") == 1
    assert log_text.count("Epoch(val) [2][1/1]    acc:") == 1  # the summary (the iteration line has the same header)
    assert sorted(os.listdir(log_dir / "vis_data")) == sorted(["scalars.json", f"{log_dir.name}.json"])


def test_the_bridge_pickles_with_every_default_hook_and_ema():
    """``strategy='ddp_spawn'`` pickles the Trainer's callbacks to start its workers."""
    import pickle

    from lightning_hooks import CheckpointHook

    bridge = HookBridge(
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1, async_save=True)),
        custom_hooks=[dict(type="EMAHook")],
    )
    copy = pickle.loads(pickle.dumps(bridge))
    assert [type(h) for h in copy.hook_list.hooks] == [type(h) for h in bridge.hook_list.hooks]
    (checkpoint,) = copy.hook_list.find(CheckpointHook)
    with checkpoint._lock:  # a lock of its own, working
        pass


def test_the_bridge_pickles_after_a_fit_that_auto_resumed(tmp_path):
    """A second ``ddp_spawn`` fit pickles the bridge again, with what the first fit left in it."""
    import pickle

    bridge = HookBridge(resume=True, custom_hooks=[dict(type="EMAHook")])
    make_trainer(tmp_path, bridge, max_epochs=1).fit(ToyModule(), *loaders())
    copy = pickle.loads(pickle.dumps(bridge))
    assert copy.message_hub.runtime_info.keys() == bridge.message_hub.runtime_info.keys()
    assert copy.runtime.work_dir == bridge.runtime.work_dir


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ddp_spawn_trains_and_only_rank_zero_saves(tmp_path):
    bridge = HookBridge(work_dir=str(tmp_path / "work"), custom_hooks=[dict(type="EMAHook")])
    trainer = make_trainer(tmp_path, bridge, max_epochs=2, strategy="ddp_spawn", devices=2, num_sanity_val_steps=0)
    train, val = loaders()
    trainer.fit(ToyModule(), train, val)  # the workers ran copies of the bridge
    assert sorted(p.name for p in (tmp_path / "work").iterdir() if p.is_file()) == [
        "epoch_1.pth",
        "epoch_2.pth",
        "last_checkpoint",
    ]


class _TeardownClock(pl.Callback):
    """Rank 1 reaches the bridge's ``teardown`` two seconds late; rank 0 notes when it enters and leaves it."""

    def __init__(self, out: str, mark: str) -> None:
        self.out, self.mark = out, mark

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.global_rank == 1 and self.mark == "enter":
            time.sleep(2.0)
        if trainer.global_rank == 0:
            with open(os.path.join(self.out, self.mark), "w") as f:
                f.write(repr(time.monotonic()))


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ddp_fork needs fork (POSIX)")
@pytest.mark.timeout(120)
def test_ranks_meet_before_the_run_closes(tmp_path):
    """The bridge's last collective is a broadcast of the final metrics, and a gloo process
    that exits right after a broadcast can abort; so every rank meets the others in
    ``teardown`` before its run closes."""
    bridge = HookBridge(default_hooks=dict(checkpoint=None, logger=None), work_dir=str(tmp_path / "work"))
    callbacks = [_TeardownClock(str(tmp_path), "enter"), bridge, _TeardownClock(str(tmp_path), "leave")]
    trainer = make_trainer(tmp_path, bridge, callbacks=callbacks, max_epochs=1, strategy="ddp_fork", devices=2)
    train, val = loaders()
    trainer.fit(ToyModule(), train, val)
    enter, leave = (float((tmp_path / mark).read_text()) for mark in ("enter", "leave"))
    assert leave - enter > 1.0  # rank 0 waited in the bridge for rank 1, two seconds late
