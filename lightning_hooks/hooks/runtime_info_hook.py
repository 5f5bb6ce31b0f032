"""RuntimeInfoHook: keeps the message hub's runtime information and scalars up to date."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import torch

from ..message_hub import IterationRecorder
from ..registry import HOOKS
from ..runner import warn_during_run
from .hook import DATA_BATCH, Hook

if TYPE_CHECKING:
    from ..runner import RunnerView

__all__ = ["TAKEN_NAMES", "RuntimeInfoHook", "warn_taken_name"]


def _is_scalar(value: Any) -> bool:
    if isinstance(value, torch.Tensor):  # the usual case first: a loss
        return value.numel() == 1
    if isinstance(value, np.ndarray):
        return value.size == 1
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return True
    if isinstance(value, torch.Tensor):
        return value.numel() == 1
    return False


#: Names the default hooks write themselves, by mode, with what a model's value of that name does
#: there (it goes to the same message-hub buffer or JSON field; MMEngine says nothing).
#: Evaluation metrics are checked here; the bridge checks training's values.
_AVERAGED = "the log lines and scalars.json show the average of both"
TAKEN_NAMES: dict[str, dict[str, str]] = {
    "train": {
        "time": f"IterTimerHook's iteration time: {_AVERAGED}",
        "data_time": f"IterTimerHook's data time: {_AVERAGED}",
        "lr": "the learning rate RuntimeInfoHook records: the log lines and scalars.json show yours instead",
        "epoch": "the record's epoch: the log line shows yours, scalars.json the counter",
        "iter": "the record's iteration: the log line shows yours, scalars.json the counter",
        "step": "the step of each scalars.json record: the record is filed under your value",
    },
    "val": {
        "time": f"IterTimerHook's iteration time: {_AVERAGED}",
        "data_time": f"IterTimerHook's data time: {_AVERAGED}",
        "step": "the step of each scalars.json record: the record is filed under your value",
    },
}
TAKEN_NAMES["test"] = TAKEN_NAMES["val"]


def warn_taken_name(logger: Any, mode: str, name: str) -> None:
    """Say that the model's value ``name`` shares its message-hub name with one of the default hooks'."""
    what = TAKEN_NAMES[mode][name]
    warn_during_run(
        logger,
        f"The model's value {name!r} shares its name with {what}. Rename it (e.g. '{mode}_{name}').",
        stacklevel=4,
    )


@HOOKS.register_module()
class RuntimeInfoHook(Hook):
    """Writes epoch, iteration, limits, loop stage, learning rates, losses and metrics into the message hub.

    Keys and timing are MMEngine's: ``train/lr`` is read in ``before_train_iter``
    (the learning rate the iteration uses), ``train/<loss>`` in
    ``after_train_iter``, ``val/<metric>`` and ``test/<metric>`` after each
    evaluation epoch. Losses given as tensors stay on their device until a
    reader (e.g. LoggerHook) asks for them.
    """

    priority = "VERY_HIGH"

    def __init__(self) -> None:
        #: ``name`` -> ``'train/<name>'``, built once per name rather than every iteration.
        self._train_keys: dict[str, str] = {}
        self._recorder: Optional[IterationRecorder] = None
        #: ``(mode, name)`` of evaluation metrics already warned about (see :data:`TAKEN_NAMES`).
        self._taken_said: set[tuple[str, str]] = set()

    def before_run(self, runner: RunnerView) -> None:
        from .._version import __version__

        runner.message_hub.update_info_dict(
            dict(
                cfg=None,
                seed=runner.seed,
                experiment_name=runner.experiment_name,
                lightning_hooks_version=__version__,
            )
        )
        self.last_loop_stage: Optional[str] = None
        self._train_keys = {}
        self._recorder = None
        self._taken_said = set()

    def before_train(self, runner: RunnerView) -> None:
        hub = runner.message_hub
        hub.update_info("loop_stage", "train")
        hub.update_info("epoch", runner.epoch)
        hub.update_info("iter", runner.iter)
        hub.update_info("max_epochs", runner.max_epochs)
        hub.update_info("max_iters", runner.max_iters)
        loader = runner.train_dataloader
        metainfo = getattr(getattr(loader, "dataset", None), "metainfo", None)
        if metainfo is not None:
            hub.update_info("dataset_meta", metainfo)

    def after_train(self, runner: RunnerView) -> None:
        runner.message_hub.pop_info("loop_stage")

    def before_train_epoch(self, runner: RunnerView) -> None:
        runner.message_hub.update_info("epoch", runner.epoch)

    def before_train_iter(self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        hub = runner.message_hub
        recorder = self._recorder
        if recorder is None or recorder.hub is not hub or not runner.iter & 4095:
            recorder = self._recorder = IterationRecorder(hub)
            recorder.set_info("iter", runner.iter)
        recorder.info["iter"] = runner.iter
        appenders = recorder.appenders
        optim_wrapper = runner.optim_wrapper
        # The bridge's optimizer view holds each optimizer's first group while an epoch runs:
        # group['lr'] is get_lr()[name][0], read without a call.
        first_groups = getattr(optim_wrapper, "first_groups", None)
        if type(first_groups) is not tuple:  # not the bridge's view, or not within a training epoch
            first_groups = self._first_lrs(optim_wrapper)
        for name, group in first_groups:
            value = group["lr"]
            append = appenders.get(name)
            if append is not None and type(value) is float:
                append(value)
            else:
                recorder.record(self._train_key(name), name, value)

    @staticmethod
    def _first_lrs(optim_wrapper: Any) -> list[tuple[str, dict[str, Any]]]:
        """``(name, {'lr': first lr})`` from ``get_lr()``, MMEngine's way, for any optimizer wrapper."""
        lr_dict = optim_wrapper.get_lr()
        if not isinstance(lr_dict, dict):
            raise AssertionError(f"runner.optim_wrapper.get_lr() should return a dict, got {type(lr_dict)}")
        return [(name, {"lr": lrs[0]}) for name, lrs in lr_dict.items() if lrs]

    def after_train_iter(
        self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Optional[dict] = None
    ) -> None:
        if not outputs:
            return
        hub = runner.message_hub
        recorder = self._recorder
        if recorder is None or recorder.hub is not hub:
            recorder = self._recorder = IterationRecorder(hub)
        appenders = recorder.appenders
        for name, value in outputs.items():
            kind = type(value)
            if kind is torch.Tensor:
                if value.numel() != 1:
                    continue
                append = appenders.get(name)
                if append is not None and not value.requires_grad:
                    append(value)  # a loss: stays on its device until a reader asks
                    continue
            elif kind is float:
                append = appenders.get(name)
                if append is not None:
                    append(value)
                    continue
            elif not _is_scalar(value):
                continue
            recorder.record(self._train_key(name), name, value)

    def _train_key(self, name: str) -> str:
        key = self._train_keys.get(name)
        if key is None:
            key = self._train_keys[name] = f"train/{name}"
        return key

    def before_val(self, runner: RunnerView) -> None:
        self.last_loop_stage = runner.message_hub.get_info("loop_stage")
        runner.message_hub.update_info("loop_stage", "val")

    def after_val_epoch(self, runner: RunnerView, metrics: Optional[dict[str, float]] = None) -> None:
        self._record_metrics(runner, "val", metrics)

    def after_val(self, runner: RunnerView) -> None:
        if getattr(self, "last_loop_stage", None) == "train":
            runner.message_hub.update_info("loop_stage", "train")
            self.last_loop_stage = None
        else:
            runner.message_hub.pop_info("loop_stage")

    def before_test(self, runner: RunnerView) -> None:
        runner.message_hub.update_info("loop_stage", "test")

    def after_test(self, runner: RunnerView) -> None:
        runner.message_hub.pop_info("loop_stage")

    def after_test_epoch(self, runner: RunnerView, metrics: Optional[dict[str, float]] = None) -> None:
        self._record_metrics(runner, "test", metrics)

    def _record_metrics(self, runner: RunnerView, mode: str, metrics: Optional[dict[str, Any]]) -> None:
        if metrics is None:
            return
        for key in sorted(TAKEN_NAMES[mode].keys() & metrics.keys()):
            if (mode, key) not in self._taken_said:
                self._taken_said.add((mode, key))
                warn_taken_name(runner.logger, mode, key)
        for key, value in metrics.items():
            if _is_scalar(value):
                runner.message_hub.update_scalar(f"{mode}/{key}", value)
            else:
                runner.message_hub.update_info(f"{mode}/{key}", value)
