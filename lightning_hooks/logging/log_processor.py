"""LogProcessor: turns the message hub's scalars into MMEngine's log lines and scalar tags.

The lines are MMEngine's character for character (timings aside), e.g.::

    Epoch(train) [1][ 5/12]  lr: 1.0000e-01  eta: 0:00:00  time: 0.0013  data_time: 0.0004  loss: 0.3034
    Epoch(val) [1][4/4]    acc: 0.5000  data_time: 0.0002  time: 0.0004
    Iter(train) [10/12]  lr: 1.0000e-01  eta: 0:00:00  time: 0.0019  data_time: 0.0008  loss: 0.1161

Values are read from the hub only when a line is built. Scalars that were
recorded as device tensors are then brought to the host in one copy per key
(see :class:`~lightning_hooks.message_hub.HistoryBuffer`), so a line costs a
few synchronisations and the iterations between two lines cost none.

Differences from MMEngine, on purpose (errors that name a bad ``custom_cfg`` entry, ``memory:`` only
for a CUDA model): see ``docs/hooks/logger_hook.md``.
"""

from __future__ import annotations

import copy
import datetime
import inspect
import operator
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from itertools import chain
from typing import Any, Optional, Union

import numpy as np
import torch

from ..arguments import guard_init
from ..errors import LogProcessorConfigError

__all__ = ["UNKNOWN_SIZE", "LogProcessor", "batches_in", "build_log_processor"]

MODES = ("train", "val", "test")
#: The steps of a training line that :meth:`LogProcessor._train_line` does in one pass.
_FAST_STEPS = (
    "get_log_after_iter",  # LoggerHook calls _train_line itself: the whole method is stood in for
    "_parse_windows_size",
    "_mode_scalars",
    "_collect_scalars",
    "_averaged_keys",
    "_get_iter",
    "_get_epoch",
    "_get_dataloader_size",
    "_has_train_loop",
    "_iter_header",
    "_timing_str",
)  # _train_line, _line_keys and _line_key are the fast path's own: overriding one customises it
_steps_of = operator.attrgetter(*_FAST_STEPS)
WindowSize = Union[int, str, None]
#: False for a torch built without CUDA: no model can be on a CUDA device, so a line does not ask.
_CUDA_BUILT = torch.backends.cuda.is_built()


#: The size :func:`batches_in` gives a loader that cannot tell its length; lines show it as ``?``.
UNKNOWN_SIZE = -1


def batches_in(loader: Any) -> int:
    """``len(loader)``, or :data:`UNKNOWN_SIZE` for a loader that cannot tell (an ``IterableDataset``
    without ``__len__``): lines then show ``[i/?]`` where MMEngine would fail."""
    try:
        return len(loader)
    except TypeError:
        return UNKNOWN_SIZE


def _of_size(size: int) -> str:
    """``size`` as a line shows it."""
    return "?" if size < 0 else str(size)


def _strip_prefix(key: str, prefix: str) -> str:
    return key[len(prefix) :] if key.startswith(prefix) else key


def _format_iter_value(value: Any, num_digits: int) -> Any:
    """A value in an iteration line: floats with ``num_digits`` decimals, anything else as it prints."""
    return f"{value:.{num_digits}f}" if isinstance(value, float) else value


def _format_value(value: Any, num_digits: int) -> Any:
    """A value in an epoch line: as in an iteration line, but an array or tensor on lines of its own."""
    if isinstance(value, float):
        return f"{value:.{num_digits}f}"
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"\n{value}\n"
    return value


def _check_statistic(index: int, entry: Mapping[str, Any]) -> None:
    """A ``custom_cfg`` entry names a known statistic and only arguments it takes.

    The entry's keys other than ``data_src`` and ``log_name`` are the arguments of
    ``HistoryBuffer.statistics`` (``method_name``, then the statistic's own, such as
    ``window_size``); checked now, a typo is an error when the bridge is built, not at the
    first log line. A statistic of your own must be registered before.
    """
    from ..message_hub import HistoryBuffer

    arguments = {key: value for key, value in entry.items() if key not in ("data_src", "log_name")}
    method_name = arguments.pop("method_name", None)
    if method_name is None:
        raise LogProcessorConfigError(
            f"custom_cfg[{index}] = {dict(entry)!r} needs a 'method_name' key ('mean', 'max', 'min', 'current' "
            "or a statistic registered with HistoryBuffer.register_statistics)"
        )
    function = HistoryBuffer.statistic_function(method_name) if isinstance(method_name, str) else None
    if function is None:
        known = ["mean", "max", "min", "current", *HistoryBuffer._statistics_methods]
        raise LogProcessorConfigError(
            f"custom_cfg[{index}] method_name {method_name!r} is not a statistic; available: {known} "
            "(register your own with HistoryBuffer.register_statistics before building the LogProcessor)"
        )
    try:
        inspect.signature(function).bind(None, **arguments)
    except TypeError as exc:
        raise LogProcessorConfigError(
            f"custom_cfg[{index}]: the statistic {method_name!r} takes {inspect.signature(function)}, "
            f"not the arguments {sorted(arguments)} ({exc})"
        ) from None


def _eta_text(seconds: int) -> str:
    """``str(datetime.timedelta(seconds=seconds))``: ``H:MM:SS``, with days when there are any."""
    if 0 <= seconds < 86400:
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return str(datetime.timedelta(seconds=seconds))


class LogProcessor:
    """Formats training, validation and test logs from the message hub, as MMEngine's LogProcessor.

    Args:
        window_size: number of recent values averaged for keys matching ``mean_pattern``.
        by_epoch: ``Epoch(...)`` headers with per-epoch iteration counts when True,
            ``Iter(...)`` headers with global iteration counts when False.
        custom_cfg: extra statistics, each ``dict(data_src, log_name=data_src,
            method_name, window_size)``; ``window_size`` is an int, ``'epoch'`` (the
            iterations of the current epoch, by_epoch only) or ``'global'`` (every
            iteration so far). A ``log_name`` may appear only once.
        num_digits: digits after the point for floats (``.4f``) and learning rates (``.4e``).
        log_with_hierarchy: keep the ``train/``, ``val/`` and ``test/`` prefixes in the tags.
        mean_pattern: keys matching this regular expression are averaged over
            ``window_size``; the others report their latest value.
        smooth_eval_metrics: how a validation or test metric whose name matches ``mean_pattern``
            (``val_loss``) is shown after its epoch, in the line and the scalars. False (the
            default): the value of this validation, the one ``save_best`` and early stopping use.
            True: MMEngine's exact output, the mean over the last ``window_size`` validations.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A misspelt argument (window_sise=...) is refused naming the closest valid one, as for hooks.
        super().__init_subclass__(**kwargs)
        guard_init(cls)

    def __init__(
        self,
        window_size: int = 10,
        by_epoch: bool = True,
        custom_cfg: Optional[list[dict[str, Any]]] = None,
        num_digits: int = 4,
        log_with_hierarchy: bool = False,
        mean_pattern: str = r".*(loss|time|data_time|grad_norm).*",
        smooth_eval_metrics: bool = False,
    ) -> None:
        if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size <= 0:
            raise ValueError(f"window_size must be a positive int, got {window_size!r}")
        if isinstance(num_digits, bool) or not isinstance(num_digits, int) or num_digits < 0:
            raise ValueError(f"num_digits must be a non-negative int, got {num_digits!r}")
        for name, flag in (("by_epoch", by_epoch), ("log_with_hierarchy", log_with_hierarchy)):
            if not isinstance(flag, bool):
                raise TypeError(f"LogProcessor: {name} must be True or False, got {flag!r}")
        self.window_size = window_size
        self.by_epoch = by_epoch
        self.custom_cfg: list[dict[str, Any]] = [dict(c) if isinstance(c, Mapping) else c for c in custom_cfg or []]
        self.num_digits = num_digits
        self.log_with_hierarchy = log_with_hierarchy
        try:
            self.mean_pattern = re.compile(mean_pattern)
        except (re.error, TypeError) as exc:
            raise LogProcessorConfigError(f"mean_pattern {mean_pattern!r} is not a regular expression: {exc}") from None
        if not isinstance(smooth_eval_metrics, bool):
            raise TypeError(f"smooth_eval_metrics must be True or False, got {smooth_eval_metrics!r}")
        self.smooth_eval_metrics = smooth_eval_metrics
        self._check_custom_cfg()

    # ------------------------------------------------------------------ validation
    def _check_custom_cfg(self) -> None:
        """Reject entries without ``data_src``, repeated log names and impossible windows."""
        seen: dict[str, str] = {}
        for index, entry in enumerate(self.custom_cfg):
            if not isinstance(entry, Mapping) or "data_src" not in entry:
                raise LogProcessorConfigError(
                    f"custom_cfg[{index}] = {entry!r} needs a 'data_src' key, "
                    "e.g. dict(data_src='loss', method_name='mean', window_size=100)"
                )
            log_name = entry.get("log_name", entry["data_src"])
            if log_name in seen:
                raise LogProcessorConfigError(
                    f"custom_cfg[{index}] writes log_name {log_name!r}, which custom_cfg already writes "
                    f"(from data_src {seen[log_name]!r}); give each entry a distinct log_name"
                )
            seen[log_name] = entry["data_src"]
            window = entry.get("window_size")
            if window == "epoch" and not self.by_epoch:
                raise LogProcessorConfigError(
                    f"custom_cfg[{index}] uses window_size='epoch', which needs by_epoch=True; "
                    "with by_epoch=False use an int or 'global'"
                )
            valid_window = window is None or window in ("epoch", "global")
            valid_window = valid_window or (isinstance(window, int) and not isinstance(window, bool))
            if not valid_window:
                raise TypeError(f"custom_cfg[{index}] window_size must be an int, 'epoch' or 'global', got {window!r}")
            if isinstance(window, int) and window <= 0:
                raise LogProcessorConfigError(f"custom_cfg[{index}] window_size must be positive, got {window}")
            _check_statistic(index, entry)

    def _parse_windows_size(
        self, runner: Any, batch_idx: int, custom_cfg: Optional[list[dict[str, Any]]] = None
    ) -> list[dict[str, Any]]:
        """``custom_cfg`` with ``'epoch'``/``'global'`` windows resolved to iteration counts."""
        source = self.custom_cfg if custom_cfg is None else custom_cfg
        if not source:
            return []
        parsed = copy.deepcopy(source)
        for entry in parsed:
            window = entry.get("window_size")
            if window == "epoch":
                entry["window_size"] = batch_idx + 1
            elif window == "global":
                entry["window_size"] = runner.iter + 1
            elif window is not None and not isinstance(window, int):
                raise TypeError(f"window_size should be int, epoch or global, but got invalid {window}")
        return parsed

    # ------------------------------------------------------------------ collection
    def _mode_scalars(self, runner: Any, mode: str, keep_prefix: bool) -> OrderedDict[str, Any]:
        """The hub's buffers whose key starts with ``mode``, in insertion order."""
        prefix = f"{mode}/"
        selected: OrderedDict[str, Any] = OrderedDict()
        for key, buffer in runner.message_hub.log_scalars.items():
            if key.startswith(mode):
                selected[key if keep_prefix else _strip_prefix(key, prefix)] = buffer
        return selected

    def _collect_scalars(
        self, custom_cfg: list[dict[str, Any]], runner: Any, mode: str, reserve_prefix: bool = False
    ) -> OrderedDict[str, Any]:
        """Smoothed or latest value of every scalar of ``mode``, then the custom statistics."""
        buffers = self._mode_scalars(runner, mode, reserve_prefix)
        tag: OrderedDict[str, Any] = OrderedDict()
        averaged = self._averaged_keys()
        for key, buffer in buffers.items():
            smoothed = averaged.get(key)
            if smoothed is None:
                smoothed = averaged[key] = self.mean_pattern.search(key) is not None
            tag[key] = buffer.mean(self.window_size) if smoothed else buffer.current()
        for entry in custom_cfg:
            statistic = dict(entry)
            data_src = statistic.pop("data_src")
            log_name = statistic.pop("log_name", data_src)
            if reserve_prefix:
                data_src, log_name = f"{mode}/{data_src}", f"{mode}/{log_name}"
            if data_src in buffers:
                tag[log_name] = buffers[data_src].statistics(**statistic)
        return tag

    def _averaged_keys(self) -> dict[str, bool]:
        """Whether each key matches ``mean_pattern``, remembered per pattern (a line asks for every key)."""
        cache: Optional[tuple[Any, dict[str, bool]]] = self.__dict__.get("_averaged_cache")
        if cache is None or cache[0] is not self.mean_pattern:
            cache = self.__dict__["_averaged_cache"] = (self.mean_pattern, {})
        return cache[1]

    def _collect_non_scalars(self, runner: Any, mode: str) -> OrderedDict[str, Any]:
        """Runtime information of ``mode`` (metrics that are not scalars: dicts, arrays)."""
        infos: OrderedDict[str, Any] = OrderedDict()
        for key, value in runner.message_hub.runtime_info.items():
            if key.startswith(mode):
                infos[key if self.log_with_hierarchy else _strip_prefix(key, f"{mode}/")] = value
        return infos

    # ------------------------------------------------------------------ counters
    @staticmethod
    def _has_train_loop(runner: Any) -> bool:
        loop = getattr(runner, "_train_loop", None)
        return loop is not None and not isinstance(loop, dict)

    def _get_iter(self, runner: Any, batch_idx: int) -> int:
        """1-based iteration shown in the header: within the epoch (by_epoch) or global."""
        return batch_idx + 1 if self.by_epoch else runner.iter + 1

    def _get_epoch(self, runner: Any, mode: str) -> int:
        """1-based running epoch in training; completed epochs (0 without training) in validation."""
        if mode == "train":
            return runner.epoch + 1
        if mode == "val":
            return runner.epoch if self._has_train_loop(runner) else 0
        raise ValueError(f"runner mode should be 'train' or 'val', but got {mode}")

    @staticmethod
    def _get_dataloader_size(runner: Any, mode: str) -> int:
        """Batches per epoch of the ``mode`` loader (:data:`UNKNOWN_SIZE` when it cannot tell)."""
        return batches_in(getattr(runner, f"{mode}_dataloader"))

    @staticmethod
    def _cuda_device(runner: Any) -> Optional[torch.device]:
        """The CUDA device the model is on, or None (then no ``memory:`` is shown)."""
        device = getattr(getattr(runner, "model", None), "device", None)
        if isinstance(device, torch.device) and device.type == "cuda" and torch.cuda.is_available():
            return device
        return None

    @staticmethod
    def _get_max_memory(runner: Any) -> int:
        """Peak CUDA memory (MB) since the previous call, then the peak is reset (MMEngine's helper).

        Callers check :meth:`_cuda_device` first.
        """
        model = getattr(runner, "model", None)
        device = getattr(model, "device", None)
        if not (isinstance(device, torch.device) and device.type == "cuda"):
            device = getattr(model, "output_device", None)  # MMEngine's choice for a DDP-wrapped model
        peak = torch.cuda.max_memory_allocated(device=device)
        torch.cuda.reset_peak_memory_stats(device=device)
        return int(peak // (1024 * 1024))

    # ------------------------------------------------------------------ headers
    def _iter_header(self, runner: Any, batch_idx: int, mode: str) -> tuple[str, Optional[int]]:
        """``Epoch(mode)[e][i/n]  `` or ``Iter(mode) [i/n]  `` and the epoch put in the tag."""
        if self.by_epoch:
            size = self._get_dataloader_size(runner, mode)
            current = str(self._get_iter(runner, batch_idx)).rjust(len(_of_size(size)))
            if mode == "test":
                return f"Epoch({mode}) [{current}/{_of_size(size)}]  ", None
            epoch = self._get_epoch(runner, mode)
            epoch_str = f"[{epoch}]"
            if self._has_train_loop(runner):
                max_epochs = runner.max_epochs  # -1 when training runs until stopped: as wide as the epoch
                epoch_str = epoch_str.rjust(len(str(max_epochs if max_epochs >= 0 else epoch)) + 3)
            return f"Epoch({mode}){epoch_str}[{current}/{_of_size(size)}]  ", epoch
        if mode == "train":
            current = str(self._get_iter(runner, batch_idx)).rjust(len(str(runner.max_iters)))
            return f"Iter({mode}) [{current}/{runner.max_iters}]  ", None
        size = self._get_dataloader_size(runner, mode)
        current = str(batch_idx + 1).rjust(len(_of_size(size)))
        return f"Iter({mode}) [{current}/{_of_size(size)}]  ", None

    def _timing_str(self, runner: Any, values: dict[str, Any]) -> str:
        """``eta: ...  time: ...  data_time: ...  `` when both timings and the ETA exist (consumes them)."""
        hub = runner.message_hub
        if "time" not in values or "data_time" not in values or "eta" not in hub.runtime_info:
            return ""
        eta = datetime.timedelta(seconds=int(hub.get_info("eta")))
        digits = self.num_digits
        text = f"eta: {eta}  time: {values.pop('time'):.{digits}f}  data_time: {values.pop('data_time'):.{digits}f}  "
        return text

    # ------------------------------------------------------------------ training line, fast
    def _train_line_is_fast(self) -> bool:
        """Whether :meth:`_train_line` may build the training line: no ``custom_cfg``, no hierarchy,
        and none of the steps it stands in for replaced (by a subclass or on the instance)."""
        return (
            not self.custom_cfg
            and not self.log_with_hierarchy
            and _steps_of(type(self)) == _DEFAULT_STEPS  # LogProcessor's own functions, compared in C
            and self.__dict__.keys().isdisjoint(_FAST_STEPS)
        )

    def _line_keys(self) -> tuple[Any, dict[str, Optional[tuple[str, bool, bool]]]]:
        """``(mean_pattern, per hub key: None (not a training key), else (name in the line, averaged,
        is a learning rate))``, remembered per ``mean_pattern`` object, as :meth:`_averaged_keys`."""
        cache: Optional[tuple[Any, dict[str, Optional[tuple[str, bool, bool]]]]] = self.__dict__.get("_line_cache")
        if cache is None or cache[0] is not self.mean_pattern:
            cache = self.__dict__["_line_cache"] = (self.mean_pattern, {})
        return cache

    def _train_line(self, runner: Any, batch_idx: int, size: int) -> Optional[tuple[dict[str, Any], str]]:
        """:meth:`get_log_after_iter`'s training tag and line in one pass over the hub (``size``: the
        epoch's length), or None when the general steps must build it: :meth:`_train_line_is_fast`
        is False, or the rare hub they must handle (see the comments).

        ``tests/test_logger_line_paths.py`` checks that both give the same tag and line.
        """
        if (  # _train_line_is_fast(), inline: a line runs with cold caches, where a call costs
            self.custom_cfg
            or self.log_with_hierarchy
            or _steps_of(type(self)) != _DEFAULT_STEPS
            or not self.__dict__.keys().isdisjoint(_FAST_STEPS)
        ):
            return None
        hub = runner.message_hub
        cache = self.__dict__.get("_line_cache")  # self._line_keys(), inline
        if cache is None or cache[0] is not self.mean_pattern:
            cache = self._line_keys()
        keys = cache[1]
        window = self.window_size
        digits = self.num_digits
        tag: OrderedDict[str, Any] = OrderedDict()
        values: dict[str, Any] = {}  # what the line shows after the learning rates
        rates: list[str] = []
        for key, buffer in hub.log_scalars.items():
            plan: Any = keys.get(key, False)  # False: not seen yet; None: not a training key
            if plan is False:
                plan = keys[key] = self._line_key(key)
            if plan is None:
                continue
            name, averaged, rate = plan
            if name in tag:
                return None  # two keys with one name ('train/x', 'trainx'...): the general steps' order
            value = tag[name] = buffer.mean(window) if averaged else buffer.current()
            if not rate:
                values[name] = value
            elif name.startswith("train/"):
                return None  # 'train/train/lr': the general steps strip its label twice
            else:
                rates.append(f"{name}: {value:.{digits}e}")
        line_rates = " ".join(rates)
        loop = getattr(runner, "_train_loop", None)
        in_fit = loop is not None and not isinstance(loop, dict)
        if self.by_epoch:
            epoch = runner.epoch + 1
            epoch_str = f"[{epoch}]"
            if in_fit:
                max_epochs = runner.max_epochs  # -1 when training runs until stopped: as wide as the epoch
                epoch_str = epoch_str.rjust(len(str(max_epochs if max_epochs >= 0 else epoch)) + 3)
            shown = str(size) if size >= 0 else "?"
            header = f"Epoch(train){epoch_str}[{str(batch_idx + 1).rjust(len(shown))}/{shown}]  "
            tag["epoch"] = epoch
            tag["iter"] = runner.iter + 1 if in_fit else 0
        else:
            iteration = runner.iter + 1
            max_iters = runner.max_iters
            header = f"Iter(train) [{str(iteration).rjust(len(str(max_iters)))}/{max_iters}]  "
            tag["iter"] = iteration if in_fit else 0
        line = header + line_rates + "  "
        info = hub.runtime_info
        if "time" in values and "data_time" in values and "eta" in info:
            seconds = int(info["eta"])  # _eta_text(seconds), its usual case inline
            eta = (
                f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
                if 0 <= seconds < 86400
                else _eta_text(seconds)
            )
            line += (
                f"eta: {eta}  time: {values.pop('time'):.{digits}f}  data_time: {values.pop('data_time'):.{digits}f}  "
            )
        probe = "_cuda_device" in self.__dict__ or type(self)._cuda_device is not LogProcessor._cuda_device
        if (probe or (_CUDA_BUILT and torch.cuda.is_initialized())) and self._cuda_device(runner) is not None:
            memory = self._get_max_memory(runner)
            line += f"memory: {memory}  "
            tag["memory"] = memory
        parts = []
        for name, value in values.items():  # a loop, not a comprehension: no frame of its own
            parts.append(
                f"{name}: {value:.{digits}f}"
                if type(value) is float
                else f"{name}: {_format_iter_value(value, digits)}"
            )
        return tag, line + "  ".join(parts)

    def _line_key(self, key: str) -> Optional[tuple[str, bool, bool]]:
        """How a hub key appears in the training line (see :meth:`_line_keys`)."""
        if not key.startswith("train"):
            return None
        name = _strip_prefix(key, "train/")
        return name, self.mean_pattern.search(name) is not None, name.endswith("lr")

    # ------------------------------------------------------------------ public API
    def get_log_after_iter(self, runner: Any, batch_idx: int, mode: str) -> tuple[dict[str, Any], str]:
        """The tag (scalars for the writers) and the terminal line after an iteration of ``mode``."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "train":
            fast = self._train_line(runner, batch_idx, self._get_dataloader_size(runner, mode))
            if fast is not None:
                return fast
        parsed = self._parse_windows_size(runner, batch_idx, self.custom_cfg)
        values = self._collect_scalars(parsed, runner, mode)
        tag = self._collect_scalars(parsed, runner, mode, True) if self.log_with_hierarchy else OrderedDict(values)
        lr_parts = []
        for key, value in tag.items():
            if key.endswith("lr"):
                short = _strip_prefix(key, f"{mode}/")
                values.pop(short, None)
                lr_parts.append(f"{short}: {value:.{self.num_digits}e}")
        header, epoch = self._iter_header(runner, batch_idx, mode)
        if epoch is not None:
            tag["epoch"] = epoch
        tag["iter"] = runner.iter + 1 if self._has_train_loop(runner) else 0
        line = header + " ".join(lr_parts) + "  " + self._timing_str(runner, values)
        memory = self._get_max_memory(runner) if self._cuda_device(runner) is not None else None
        if memory is not None:
            line += f"memory: {memory}  "
            tag["memory"] = memory
        if mode in ("train", "val"):
            items = [
                f"{name}: {_format_iter_value(value, self.num_digits)}"
                for name, value in values.items()
                if mode == "train" or name.startswith("val/loss")
            ]
            line += "  ".join(items)
        return tag, line

    def get_log_after_epoch(
        self, runner: Any, batch_idx: int, mode: str, with_non_scalar: bool = False
    ) -> tuple[dict[str, Any], str]:
        """The tag and the line after a validation or test epoch (metrics, then mean timings)."""
        if mode not in ("val", "test"):
            raise ValueError(f"get_log_after_epoch only accepts 'val' or 'test' mode, got {mode!r}")
        size = self._get_dataloader_size(runner, mode)
        if size < 0:  # a loader that cannot tell its length: the batches that ran, as the caller counts them
            size = batch_idx
        if self.by_epoch and mode == "val":
            header = f"Epoch({mode}) [{self._get_epoch(runner, mode)}][{size}/{size}]  "
        elif self.by_epoch:
            header = f"Epoch({mode}) [{size}/{size}]  "
        else:
            header = f"Iter({mode}) [{size}/{size}]  "
        statistics = self._epoch_statistics(mode)
        parsed = self._parse_windows_size(runner, batch_idx, statistics)
        collected = self._collect_scalars(parsed, runner, mode, self.log_with_hierarchy)
        non_scalars = self._collect_non_scalars(runner, mode)
        timing_keys = {f"{mode}/time", f"{mode}/data_time", "time", "data_time"}
        if not self.smooth_eval_metrics:
            self._latest_metric_values(collected, runner, mode, parsed, timing_keys)
        tag: OrderedDict[str, Any] = OrderedDict()
        timings: OrderedDict[str, Any] = OrderedDict()
        for key, value in collected.items():
            (timings if key in timing_keys else tag)[key] = value
        items = [
            f"{name}: {_format_value(value, self.num_digits)}"
            for name, value in chain(tag.items(), non_scalars.items(), timings.items())
        ]
        line = header + "  " + "  ".join(items)
        if with_non_scalar:
            tag.update(non_scalars)
        tag.update(timings)
        return tag, line

    def _latest_metric_values(
        self,
        collected: OrderedDict[str, Any],
        runner: Any,
        mode: str,
        statistics: list[dict[str, Any]],
        timing_keys: set[str],
    ) -> None:
        """Metrics matching ``mean_pattern`` show this evaluation's value, not a mean over past ones.

        Timings and what ``custom_cfg`` asks for keep their statistics.
        """
        prefix = f"{mode}/" if self.log_with_hierarchy else ""
        custom = {prefix + entry.get("log_name", entry["data_src"]) for entry in statistics}
        buffers = self._mode_scalars(runner, mode, self.log_with_hierarchy)
        for key in collected:
            if key in timing_keys or key in custom or key not in buffers:
                continue
            if self.mean_pattern.search(key) is not None:
                collected[key] = buffers[key].current()

    def _epoch_statistics(self, mode: str) -> list[dict[str, Any]]:
        """``custom_cfg`` plus epoch means of ``time`` and ``data_time`` unless it defines them."""
        entries = copy.deepcopy(self.custom_cfg)
        defined = {_strip_prefix(entry["data_src"], f"{mode}/") for entry in entries}
        for name in ("time", "data_time"):
            if name not in defined:
                entries.append(dict(data_src=name, window_size="epoch", method_name="mean"))
        return entries

    def __repr__(self) -> str:
        return (
            f"LogProcessor(window_size={self.window_size}, by_epoch={self.by_epoch}, "
            f"custom_cfg={self.custom_cfg}, num_digits={self.num_digits}, "
            f"smooth_eval_metrics={self.smooth_eval_metrics})"
        )


#: LogProcessor's own steps, as defined here (a subclass or a patch that replaces one is seen by identity).
_DEFAULT_STEPS = _steps_of(LogProcessor)


def _subclasses(cls: type) -> list[type]:
    found: list[type] = []
    sub: type
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def _log_processor_class(kind: Any) -> type[LogProcessor]:
    """``type`` of a log_processor config: ``LogProcessor``, a subclass, or a subclass's name.

    MMEngine looks names up in its ``LOG_PROCESSORS`` registry; here a subclass
    is found by its class name once it is defined (imported).
    """
    if isinstance(kind, type) and issubclass(kind, LogProcessor):
        return kind
    if isinstance(kind, str):
        matches = [c for c in [LogProcessor, *_subclasses(LogProcessor)] if c.__name__ == kind]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ValueError(
                f"log_processor type {kind!r} names {len(matches)} LogProcessor subclasses; pass the class"
            )
    known = sorted({c.__name__ for c in [LogProcessor, *_subclasses(LogProcessor)]})
    raise ValueError(f"log_processor type must be LogProcessor or a subclass (defined: {known}), got {kind!r}")


def build_log_processor(cfg: Union[LogProcessor, Mapping[str, Any], None]) -> LogProcessor:
    """A :class:`LogProcessor` from None (defaults), an instance, or a config dict (``type`` optional).

    ``type`` may be a :class:`LogProcessor` subclass or its class name.
    """
    if cfg is None:
        return LogProcessor()
    if isinstance(cfg, LogProcessor):
        return cfg
    if not isinstance(cfg, Mapping):
        raise TypeError(f"log_processor should be a dict of LogProcessor arguments or a LogProcessor, got {cfg!r}")
    kwargs = {str(k): v for k, v in dict(cfg).items()}
    processor_cls = _log_processor_class(kwargs.pop("type", "LogProcessor"))
    custom = kwargs.get("custom_cfg")
    if custom is not None and not isinstance(custom, Iterable):
        raise TypeError(f"custom_cfg must be a list of dicts, got {custom!r}")
    if custom is not None:
        kwargs["custom_cfg"] = [dict(entry) for entry in custom]
    return processor_cls(**kwargs)


guard_init(LogProcessor)
