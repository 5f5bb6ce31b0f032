"""IterTimerHook: iteration times, data times and the ETA, with MMEngine's formulas."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Optional, Union

from ..registry import HOOKS
from .hook import DATA_BATCH, Hook

if TYPE_CHECKING:
    from ..runner import RunnerView

__all__ = ["IterTimerHook"]


@HOOKS.register_module()
class IterTimerHook(Hook):
    """Records ``<mode>/data_time`` and ``<mode>/time`` per iteration and the ``eta`` info.

    ``time`` is the wall time since the previous iteration ended, so it includes
    ``data_time``. The training ETA is ``mean time * (max_iters - iter - 1)``;
    validation and test write their own ETA under the same ``eta`` key.
    """

    priority = "NORMAL"

    def __init__(self) -> None:
        self.time_sec_tot = 0.0
        self.time_sec_test_val = 0.0
        self.start_iter = 0
        self.t = time.time()

    def before_train(self, runner: RunnerView) -> None:
        self.start_iter = runner.iter

    def _before_epoch(self, runner: RunnerView, mode: str = "train") -> None:
        self.t = time.time()

    def _after_epoch(self, runner: RunnerView, mode: str = "train") -> None:
        self.time_sec_test_val = 0.0

    def _before_iter(
        self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None, mode: str = "train"
    ) -> None:
        runner.message_hub.update_scalar(f"{mode}/data_time", time.time() - self.t)

    def _after_iter(
        self,
        runner: RunnerView,
        batch_idx: int,
        data_batch: DATA_BATCH = None,
        outputs: Optional[Union[dict, Any]] = None,
        mode: str = "train",
    ) -> None:
        hub = runner.message_hub
        now = time.time()
        iter_time = now - self.t
        hub.update_scalar(f"{mode}/time", iter_time)
        self.t = now
        if mode == "train":
            self.time_sec_tot += iter_time
            avg = self.time_sec_tot / (runner.iter - self.start_iter + 1)
            hub.update_info("eta", avg * (runner.max_iters - runner.iter - 1))
        else:
            loader = runner.val_dataloader if mode == "val" else runner.test_dataloader
            self.time_sec_test_val += iter_time
            avg = self.time_sec_test_val / (batch_idx + 1)
            hub.update_info("eta", avg * (len(loader) - batch_idx - 1))  # type: ignore[arg-type]
