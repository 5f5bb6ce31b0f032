"""DistSamplerSeedHook: gives the training sampler the epoch number, for a new shuffle each epoch."""

from __future__ import annotations

from typing import Any

from ..registry import HOOKS
from .hook import Hook

__all__ = ["DistSamplerSeedHook"]


@HOOKS.register_module()
class DistSamplerSeedHook(Hook):
    """Calls ``set_epoch(runner.epoch)`` on the training sampler (or the batch sampler's sampler).

    Lightning already does this for every sampler it can reach; a sampler whose
    ``epoch`` attribute already holds the value is left alone, so nothing is
    seeded twice.
    """

    priority = "NORMAL"

    def before_train_epoch(self, runner: Any) -> None:
        loader = runner.train_dataloader
        if loader is None:
            return
        epoch = runner.epoch
        sampler = getattr(loader, "sampler", None)
        if not callable(getattr(sampler, "set_epoch", None)):
            sampler = getattr(getattr(loader, "batch_sampler", None), "sampler", None)
        set_epoch = getattr(sampler, "set_epoch", None)
        if callable(set_epoch) and getattr(sampler, "epoch", None) != epoch:
            set_epoch(epoch)
