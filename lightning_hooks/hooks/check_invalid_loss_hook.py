"""CheckInvalidLossHook: the example hook of MMEngine's documentation, shipped ready to use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch

from ..registry import HOOKS
from .hook import DATA_BATCH, Hook

if TYPE_CHECKING:
    from ..runner import RunnerView

__all__ = ["CheckInvalidLossHook"]


@HOOKS.register_replaceable
class CheckInvalidLossHook(Hook):
    """Fail fast when the training loss becomes infinite or NaN.

    Registered as a replaceable example: registering your own class named
    ``CheckInvalidLossHook`` (as MMEngine's documentation does) replaces it.

    Args:
        interval: check every ``interval`` training iterations (each check
            synchronises with the device once).
    """

    def __init__(self, interval: int = 50) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"CheckInvalidLossHook: interval must be an int >= 1 (iterations), got {interval!r}")
        self.interval = interval

    def after_train_iter(
        self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Optional[dict] = None
    ) -> None:
        if outputs is None or "loss" not in outputs:
            return
        if self.every_n_train_iters(runner, self.interval):
            if not bool(torch.isfinite(torch.as_tensor(outputs["loss"])).all()):
                runner.logger.info("loss become infinite or NaN!")
                raise AssertionError(f"loss become infinite or NaN at iteration {runner.iter + 1}")
