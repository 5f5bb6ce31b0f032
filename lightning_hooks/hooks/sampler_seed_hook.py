"""DistSamplerSeedHook: give the training sampler the epoch number, for a new shuffle each epoch.

MMEngine's hook calls ``set_epoch(runner.epoch)`` before each training epoch on
the dataloader's ``sampler``, or, when that has no ``set_epoch``, on
``batch_sampler.sampler``. Under Lightning the fit loop already does this for
both of those objects (and forwards it through its DistributedSamplerWrapper to
a custom sampler), just before ``before_train_epoch``. Calling ``set_epoch``
again would not change a DistributedSampler's shuffle, but it is a second call
that a custom sampler with side effects (an internal RNG, a curriculum step,
a counter) would see twice.

So this hook seeds exactly what the Trainer does not:

* every candidate MMEngine would seed that the runner reports as not seeded by
  the Trainer (``train_dataloader.samplers_seeded_by_trainer``);
* a batch sampler that has its own ``set_epoch`` (a bucketing or
  length-grouping batch sampler), which neither MMEngine nor Lightning reach.

Each object receives ``set_epoch(epoch)`` exactly once per epoch. In
iteration-based training it fires once, with epoch 0, as in MMEngine.
Differences from MMEngine: see ``docs/hooks/dist_sampler_seed_hook.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..registry import HOOKS
from .hook import Hook

if TYPE_CHECKING:
    from ..runner import RunnerView

__all__ = ["DistSamplerSeedHook", "epoch_seed_targets"]


def _has_set_epoch(obj: Any) -> bool:
    return obj is not None and callable(getattr(obj, "set_epoch", None))


def epoch_seed_targets(loader: Any) -> list[Any]:
    """Objects of ``loader`` that should receive ``set_epoch`` each epoch, each object once.

    MMEngine's choice (``sampler``, else ``batch_sampler.sampler``) followed by
    the batch sampler itself when it has ``set_epoch``.
    """
    sampler = getattr(loader, "sampler", None)
    batch_sampler = getattr(loader, "batch_sampler", None)
    inner = getattr(batch_sampler, "sampler", None)
    candidates = []
    if _has_set_epoch(sampler):
        candidates.append(sampler)
    elif _has_set_epoch(inner):
        candidates.append(inner)
    if _has_set_epoch(batch_sampler):
        candidates.append(batch_sampler)
    unique: list[Any] = []
    for obj in candidates:
        if not any(obj is seen for seen in unique):
            unique.append(obj)
    return unique


@HOOKS.register_module()
class DistSamplerSeedHook(Hook):
    """Calls ``set_epoch(runner.epoch)`` on the training samplers the Trainer does not already seed."""

    priority = "NORMAL"

    def before_train_epoch(self, runner: RunnerView) -> None:
        """Seed the samplers of ``runner.train_loop.dataloader`` (MMEngine's path to the loader)."""
        train_loop = runner.train_loop
        loader = train_loop.dataloader if train_loop is not None else None
        if loader is None:
            return
        seeded = tuple(getattr(loader, "samplers_seeded_by_trainer", ()))
        epoch = runner.epoch
        for target in epoch_seed_targets(loader):
            if not any(target is done for done in seeded):
                target.set_epoch(epoch)
