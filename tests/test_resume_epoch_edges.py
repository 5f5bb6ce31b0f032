"""Resumes at the edges of a training epoch end like the uninterrupted run.

Every training batch holds the same samples, so data order cannot matter. A run is interrupted by a
hook that raises at a chosen mount point (the files on disk are those a kill there leaves), resumed
through ``HookBridge(resume=True)`` or ``fit(ckpt_path=...)``, and compared with the uninterrupted
run: the mount points after the resume point, the files written and their resume markers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Optional

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from toy import make_trainer

from lightning_hooks import Hook, HookBridge

ROUTES = ["resume", "ckpt_path"]
QUIET = dict(runtime_info=None, timer=None, sampler_seed=None, logger=None)


class SameBatches(Dataset):
    def __init__(self, size: int) -> None:
        self.x = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i % 3], "y": self.x[i % 3].sum()}


class Module(pl.LightningModule):
    """A regression whose validation score grows with the step (every validation is a new best)."""

    def __init__(self, epoch_scheduler: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(2, 1)
        self.epoch_scheduler = epoch_scheduler

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return ((self.layer(batch["x"]).squeeze(-1) - batch["y"]) ** 2).mean()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        pass

    def on_validation_epoch_end(self) -> None:
        self.log("acc", float(self.trainer.global_step))

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
        if not self.epoch_scheduler:
            return optimizer
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1, 0.5)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


class Trace(Hook):
    priority = "HIGHEST"

    def __init__(self, log: list) -> None:
        self.log = log

    def before_train_epoch(self, runner: Any) -> None:
        self.log.append(("before_train_epoch", runner.epoch, runner.iter))

    def after_train_epoch(self, runner: Any) -> None:
        self.log.append(("after_train_epoch", runner.epoch, runner.iter))

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        self.log.append(("before_save_checkpoint", runner.epoch, runner.iter))


class Interrupted(Exception):
    pass


def interrupt_at(stage: str, when: Callable[[Any], bool]) -> Hook:
    """A hook raising :class:`Interrupted` at ``stage`` when ``when(runner)``."""

    def method(self: Any, runner: Any, *args: Any, **kwargs: Any) -> None:
        if when(runner):
            raise Interrupted

    return type("Interrupt", (Hook,), {"priority": "HIGHEST", stage: method})()


def fit(
    work_dir: Any,
    checkpoint: dict,
    trainer_kwargs: dict,
    route: Optional[str] = None,
    extra: tuple = (),
    epoch_scheduler: bool = False,
) -> tuple[list, pl.Trainer]:
    log: list = []
    hooks = dict(QUIET, checkpoint=dict(type="CheckpointHook", **checkpoint))
    if epoch_scheduler:
        hooks["param_scheduler"] = dict(type="ParamSchedulerHook")
    bridge = HookBridge(
        default_hooks=hooks,
        custom_hooks=[*extra, Trace(log)],
        work_dir=str(work_dir),
        resume=route == "resume",
        print_hooks_table=False,
        log_level="ERROR",
    )
    trainer = make_trainer(work_dir, bridge, num_sanity_val_steps=0, **trainer_kwargs)
    ckpt_path = None
    if route == "ckpt_path":
        with open(os.path.join(work_dir, "last_checkpoint")) as f:
            ckpt_path = f.read()
    trainer.fit(
        Module(epoch_scheduler),
        DataLoader(SameBatches(12), batch_size=3),
        DataLoader(SameBatches(6), batch_size=6),
        ckpt_path=ckpt_path,
    )
    return log, trainer


def interrupted_and_resumed(tmp_path: Any, route: str, interrupt: Hook, **kwargs: Any) -> tuple[list, list]:
    """(the uninterrupted run's log from the resumed run's first entry on, the resumed run's log)."""
    full, _ = fit(tmp_path / "full", **kwargs)
    with pytest.raises(Interrupted):
        fit(tmp_path / "part", extra=(interrupt,), **kwargs)
    resumed, _ = fit(tmp_path / "part", route=route, **kwargs)
    return full[full.index(resumed[0]) :], resumed


def checkpoint_steps(directory: Any) -> dict[str, tuple]:
    found = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".pth"):
            ckpt = torch.load(os.path.join(directory, name), weights_only=True)
            found[name] = (ckpt["global_step"], ckpt["meta"]["iter"], ckpt.get("lightning_hooks"))
    return found


@pytest.mark.parametrize("route", ROUTES)
def test_a_new_best_inside_the_epoch_after_the_resume_rewrites_no_earlier_epoch_file(tmp_path, route):
    """Resumed from ``epoch_1.pth``, a new best at the validation halfway through epoch 2 is inside an
    epoch: ``epoch_1.pth`` keeps the end of epoch 1, as in the uninterrupted run."""
    kwargs: dict = dict(
        checkpoint=dict(interval=1, save_best="acc", max_keep_ckpts=5),
        trainer_kwargs=dict(max_epochs=3, val_check_interval=0.5),
    )
    interrupt = interrupt_at("before_train_epoch", lambda runner: runner.epoch == 1)
    full, resumed = interrupted_and_resumed(tmp_path, route, interrupt, **kwargs)
    assert resumed[0] == ("before_train_epoch", 1, 4) and resumed == full
    assert checkpoint_steps(tmp_path / "part") == checkpoint_steps(tmp_path / "full")


@pytest.mark.parametrize("route", ROUTES)
def test_an_iteration_checkpoint_at_an_epoch_end_without_validation_closes_that_epoch(tmp_path, route):
    """``iter_4.pth`` is written in epoch 0's last batch, before its after_train_epoch, and no validation
    follows epoch 0: the resume runs that after_train_epoch (the epoch scheduler steps) and starts epoch 1."""
    kwargs: dict = dict(
        checkpoint=dict(interval=4, by_epoch=False),
        trainer_kwargs=dict(max_epochs=3, check_val_every_n_epoch=2),
        epoch_scheduler=True,
    )
    interrupt = interrupt_at("after_train_epoch", lambda runner: runner.epoch == 0)
    full, resumed = interrupted_and_resumed(tmp_path, route, interrupt, **kwargs)
    assert resumed[0] == ("after_train_epoch", 0, 4) and resumed == full
    assert checkpoint_steps(tmp_path / "part") == checkpoint_steps(tmp_path / "full")


@pytest.mark.parametrize("route", ROUTES)
def test_checkpoints_after_a_resume_inside_an_epoch_record_that_the_epoch_is_open(tmp_path, route):
    """Resumed from ``iter_6.pth`` (inside epoch 1), ``iter_8.pth`` is written in that epoch's last batch:
    its marker says the epoch's after_train_epoch is still to come, as the uninterrupted run's does."""
    kwargs: dict = dict(
        checkpoint=dict(interval=2, by_epoch=False),
        trainer_kwargs=dict(max_epochs=2),
        epoch_scheduler=True,
    )
    interrupt = interrupt_at("before_train_iter", lambda runner: runner.iter == 6)
    full, resumed = interrupted_and_resumed(tmp_path, route, interrupt, **kwargs)
    assert resumed[0][2] >= 6 and resumed == full
    assert checkpoint_steps(tmp_path / "part") == checkpoint_steps(tmp_path / "full")
