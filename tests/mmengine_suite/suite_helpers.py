"""Shared pieces of the suite: MMEngine's ``RunnerTestCase`` settings as ``Trainer + HookBridge`` runs.

MMEngine's ``RunnerTestCase.epoch_based_cfg`` trains 2 epochs of 12 samples in
batches of 3 (4 iterations per epoch) with validation every epoch;
``iter_based_cfg`` trains 12 iterations and validates every 4. ``toy.py`` holds
the same data and model.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any, Optional

import lightning.pytorch as pl
from torch.utils.data import DataLoader
from toy import BATCH, ToyDataset, ToyModule, make_trainer

from lightning_hooks import HookBridge, MessageHub

QUIET = dict(print_hooks_table=False, log_level="WARNING")
_HUB_IDS = itertools.count()


def epoch_based(tmp_path: Any, custom_hooks: Optional[list] = None, max_epochs: int = 2, **bridge_kwargs: Any) -> dict:
    """Trainer and bridge arguments of MMEngine's ``epoch_based_cfg``."""
    bridge = dict(QUIET, work_dir=str(tmp_path), custom_hooks=custom_hooks or [], **bridge_kwargs)
    return dict(bridge=bridge, trainer=dict(max_epochs=max_epochs, num_sanity_val_steps=0))


def iter_based(
    tmp_path: Any,
    custom_hooks: Optional[list] = None,
    max_iters: int = 12,
    val_interval: int = 1000,
    checkpoint_interval: int = 12,
    **bridge_kwargs: Any,
) -> dict:
    """Trainer and bridge arguments of MMEngine's ``iter_based_cfg``.

    12 iterations, validation every ``val_interval`` (MMEngine's default 1000:
    only at the end), a checkpoint every 12 iterations.
    """
    default_hooks = dict(checkpoint=dict(type="CheckpointHook", interval=checkpoint_interval, by_epoch=False))
    bridge = dict(QUIET, work_dir=str(tmp_path), custom_hooks=custom_hooks or [], default_hooks=default_hooks)
    bridge.update(bridge_kwargs)
    trainer = dict(max_epochs=-1, max_steps=max_iters, val_check_interval=val_interval, check_val_every_n_epoch=None)
    return dict(bridge=bridge, trainer=dict(trainer, num_sanity_val_steps=0))


def run(
    tmp_path: Any,
    cfg: dict,
    mode: str = "fit",
    module: Optional[pl.LightningModule] = None,
    ckpt_path: Optional[str] = None,
) -> tuple[HookBridge, pl.Trainer]:
    """Build the bridge and Trainer from ``cfg`` and run ``mode`` on the toy data.

    Batches of 3 for training, validation and test, as ``RunnerTestCase``: 4 iterations each.
    """
    bridge = HookBridge(**cfg["bridge"])
    trainer = make_trainer(tmp_path, bridge, **cfg["trainer"])
    model = module if module is not None else ToyModule()
    train = DataLoader(ToyDataset(), batch_size=BATCH, shuffle=False)
    val = DataLoader(ToyDataset(), batch_size=BATCH, shuffle=False)
    if mode == "fit":
        trainer.fit(model, train, val, ckpt_path=ckpt_path)
    elif mode == "validate":
        trainer.validate(model, val, ckpt_path=ckpt_path)
    else:
        trainer.test(model, val, ckpt_path=ckpt_path)
    return bridge, trainer


def find_hook(bridge: HookBridge, cls: type) -> Any:
    """The bridge's hook of type ``cls``."""
    return next(h for h in bridge.hooks if isinstance(h, cls))


def runner_like(model: Any = None, **attributes: Any) -> SimpleNamespace:
    """A runner of MMEngine's shape (what ``RunnerTestCase.build_runner`` gives before training)."""
    defaults: dict[str, Any] = dict(
        model=model if model is not None else ToyModule(),
        epoch=0,
        iter=0,
        max_epochs=2,
        max_iters=8,
        resume=False,
        _resume=False,
        rank=0,
        world_size=1,
        distributed=False,
        trainer=None,
        logger=logging.getLogger("lightning_hooks.mmengine_suite"),
        message_hub=MessageHub(f"mmengine_suite_{next(_HUB_IDS)}"),
    )
    defaults.update(attributes)
    return SimpleNamespace(**defaults)


class DocumentedBehaviourBroken(Exception):
    """The package no longer does what docs/comparison.md says; never an expected failure."""


@contextmanager
def documented_behaviour(section: str) -> Iterator[None]:
    """Wrap the first part of an ``xfail`` test: what the doc ``section`` promises.

    Any failure in it becomes :class:`DocumentedBehaviourBroken`, which no
    ``xfail(raises=...)`` lists, so the test fails instead of counting as the
    expected MMEngine difference.
    """
    try:
        yield
    except Exception as error:
        raise DocumentedBehaviourBroken(f"{section}: {type(error).__name__}: {error}") from error


def check_schedulers_leave_optimizer_step_alone() -> None:
    """What docs/comparison.md promises for schedulers and ``optimizer.step``: a scheduler neither wraps ``optimizer.step`` nor warns when it steps first."""
    import warnings

    import torch

    from lightning_hooks.optim import StepLR

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    step = optimizer.step
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scheduler = StepLR(optimizer, step_size=1)
        scheduler.step()  # before any optimizer.step()
        optimizer.step()
    assert optimizer.step == step and not hasattr(optimizer.step, "_with_counter")
