"""IterTimerHook: iteration times, data times and the ETA, with MMEngine's formulas."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Optional, Union

from ..logging.log_processor import batches_in
from ..message_hub import IterationRecorder
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
    validation and test write their own ETA under the same ``eta`` key. Where the
    remaining length is unknown (a loader that cannot tell its length, and no
    ``max_steps``), there is no ``eta`` rather than a wrong one.
    """

    priority = "NORMAL"

    def __init__(self) -> None:
        self.time_sec_tot = 0.0
        self.time_sec_test_val = 0.0
        self.start_iter = 0
        self.t = time.time()
        self._recorder: Optional[IterationRecorder] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # The training methods below bypass the generic _before_iter/_after_iter for speed; a
        # subclass that customises the generic ones gets them called for training too, as in MMEngine.
        super().__init_subclass__(**kwargs)
        if (
            cls._before_iter is not IterTimerHook._before_iter
            and cls.before_train_iter is IterTimerHook.before_train_iter
        ):
            cls.before_train_iter = Hook.before_train_iter  # type: ignore[method-assign]
        if cls._after_iter is not IterTimerHook._after_iter and cls.after_train_iter is IterTimerHook.after_train_iter:
            cls.after_train_iter = Hook.after_train_iter  # type: ignore[method-assign]

    def before_train(self, runner: RunnerView) -> None:
        self.start_iter = runner.iter

    def _before_epoch(self, runner: RunnerView, mode: str = "train") -> None:
        self.t = time.time()

    def _after_epoch(self, runner: RunnerView, mode: str = "train") -> None:
        self.time_sec_test_val = 0.0

    def before_train_iter(self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        """``train/data_time``: the time since the previous iteration ended (the train case of ``_before_iter``)."""
        hub = runner.message_hub
        recorder = self._recorder
        if recorder is None or recorder.hub is not hub or not runner.iter & 4095:
            recorder = self._recorder = IterationRecorder(hub)  # anew now and then: see IterationRecorder
        append = recorder.appenders.get("data_time")
        if append is None:
            append = recorder.appenders["data_time"] = hub.scalar_appender("train/data_time")
        append(time.time() - self.t)

    def after_train_iter(
        self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Optional[dict] = None
    ) -> None:
        """``train/time`` and the ETA (the train case of ``_after_iter``, without its generic dispatch)."""
        now = time.time()
        iter_time = now - self.t
        hub = runner.message_hub
        recorder = self._recorder
        if recorder is None or recorder.hub is not hub:
            recorder = self._recorder = IterationRecorder(hub)
        append = recorder.appenders.get("time")
        if append is None:
            append = recorder.appenders["time"] = hub.scalar_appender("train/time")
        append(iter_time)
        self.t = now
        self.time_sec_tot += iter_time
        iteration = runner.iter
        remaining = runner.max_iters - iteration - 1
        info = recorder.info
        if remaining < 0:  # the length of training is unknown
            info.pop("eta", None)
            return
        eta = self.time_sec_tot / (iteration - self.start_iter + 1) * remaining
        if "eta" in info:
            info["eta"] = eta
        else:
            recorder.set_info("eta", eta)  # the first write records the key's resumed flag

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
            remaining = runner.max_iters - runner.iter - 1
        else:
            loader = runner.val_dataloader if mode == "val" else runner.test_dataloader
            self.time_sec_test_val += iter_time
            avg = self.time_sec_test_val / (batch_idx + 1)
            remaining = batches_in(loader) - batch_idx - 1
        if remaining < 0:  # a loader that cannot tell its length
            hub.pop_info("eta")
        else:
            hub.update_info("eta", avg * remaining)
