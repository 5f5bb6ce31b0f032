"""ProfilerHook: profile the first training epoch (or the first N iterations) with ``torch.profiler``.

MMEngine's behaviour: the profiler starts in ``before_run`` (so it also covers
checkpoint loading and ``before_train``), steps after every training
iteration, and stops after ``profile_times`` epochs (``by_epoch=True``, only 1
allowed) or iterations. ``on_trace_ready`` may be a callable, or
``dict(type='log_trace', **table_kwargs)`` (prints ``key_averages().table``),
or ``dict(type='tb_trace', dir_name=..., worker_name=..., use_gzip=...)``
(``torch.profiler.tensorboard_trace_handler``; ``dir_name`` defaults to
``<log_dir>/tf_tracing_logs`` and a relative one is joined to ``log_dir``).
``json_trace_path`` exports a Chrome trace.

Differences from MMEngine, on purpose (no ``torch_tb_profiler``, the profiler always closed, per-rank
trace names, ...): see ``docs/hooks/profiler_hook.md``.
"""

from __future__ import annotations

import gzip
import inspect
import os
import os.path as osp
import shutil
import socket
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional, Union

import torch
from torch import profiler as torch_profiler

from ..registry import HOOKS
from .hook import DATA_BATCH, Hook

if TYPE_CHECKING:
    from ..runner import RunnerView

__all__ = ["ProfilerHook", "available_activities"]

TraceHandler = Callable[[Any], None]
TRACE_TYPES = ("log_trace", "tb_trace")


def _kineto_available() -> bool:
    try:
        return bool(torch.autograd.kineto_available())
    except AttributeError:
        return False


def available_activities(with_cpu: bool, with_cuda: bool) -> list[torch_profiler.ProfilerActivity]:
    """The requested profiler activities that this process can record.

    CUDA is kept only when a CUDA device is present and torch's profiler supports
    it; otherwise it is dropped with a warning. If nothing is left, CPU is used.
    """
    activities: list[torch_profiler.ProfilerActivity] = []
    if with_cpu:
        activities.append(torch_profiler.ProfilerActivity.CPU)
    if with_cuda:
        cuda = torch_profiler.ProfilerActivity.CUDA
        if torch.cuda.is_available() and cuda in torch_profiler.supported_activities():
            activities.append(cuda)
        else:
            warnings.warn(
                "ProfilerHook: activity_with_cuda=True but no CUDA device can be profiled here; "
                "profiling the CPU activity only.",
                UserWarning,
                stacklevel=3,
            )
    if not activities:
        activities.append(torch_profiler.ProfilerActivity.CPU)
    return activities


def _rank_path(path: str, rank: int) -> str:
    """``path`` for ``rank``: unchanged on rank 0, ``<stem>_rank<k><ext>`` elsewhere."""
    if rank == 0:
        return path
    stem, ext = osp.splitext(path)
    return f"{stem}_rank{rank}{ext}"


def _trace_arguments(trace_type: str) -> set[str]:
    """The keys a ``dict(type=...)`` of ``on_trace_ready`` may hold besides ``type``."""
    if trace_type == "log_trace":  # handed to EventList.table
        from torch.autograd.profiler_util import EventList

        return set(inspect.signature(EventList.table).parameters) - {"self"}
    return {"dir_name", "worker_name", "use_gzip"}


def _check_trace_arguments(config: dict[str, Any]) -> None:
    """Unknown keys of ``on_trace_ready`` fail now, not when the first trace is ready."""
    unknown = sorted(set(config) - {"type"} - _trace_arguments(config["type"]))
    if unknown:
        valid = sorted(_trace_arguments(config["type"]))
        raise ValueError(
            f"ProfilerHook: on_trace_ready={config!r} has arguments {config['type']} does not take: {unknown}; "
            f"valid: {valid}"
        )


@HOOKS.register_module()
class ProfilerHook(Hook):
    """Profile training with ``torch.profiler`` (see the module docstring for MMEngine's behaviour).

    Args:
        by_epoch: profile the first epoch (True) or the first ``profile_times`` iterations.
        profile_times: iterations to profile; must be 1 when ``by_epoch``.
        activity_with_cpu: record CPU operators.
        activity_with_cuda: record CUDA kernels (when a CUDA device is present).
        schedule: keyword arguments of ``torch.profiler.schedule`` (wait, warmup, active, repeat, skip_first).
        on_trace_ready: a callable taking the profiler, ``dict(type='log_trace', ...)`` or
            ``dict(type='tb_trace', ...)``; None records without a handler.
        record_shapes: record operator input shapes.
        profile_memory: track tensor allocations.
        with_stack: record source locations.
        with_flops: estimate FLOPs of matrix multiplications and convolutions.
        json_trace_path: also export a Chrome trace (JSON) to this file.
    """

    priority = "VERY_LOW"

    def __init__(
        self,
        *,
        by_epoch: bool = True,
        profile_times: int = 1,
        activity_with_cpu: bool = True,
        activity_with_cuda: bool = False,
        schedule: Optional[dict[str, Any]] = None,
        on_trace_ready: Union[TraceHandler, dict[str, Any], None] = None,
        record_shapes: bool = False,
        profile_memory: bool = False,
        with_stack: bool = False,
        with_flops: bool = False,
        json_trace_path: Optional[str] = None,
    ) -> None:
        if not _kineto_available():
            raise ImportError(
                "ProfilerHook needs a torch build with Kineto (torch.autograd.kineto_available() is False)"
            )
        for name, value in (
            ("by_epoch", by_epoch),
            ("activity_with_cpu", activity_with_cpu),
            ("activity_with_cuda", activity_with_cuda),
        ):
            if not isinstance(value, bool):
                raise TypeError(f"ProfilerHook: {name} should be a boolean, got {value!r}")
        if isinstance(profile_times, bool) or not isinstance(profile_times, int) or profile_times < 1:
            raise ValueError(f"profile_times should be an int greater than 0, but got {profile_times!r}")
        if by_epoch and profile_times > 1:
            raise ValueError(
                f"ProfilerHook(by_epoch=True) profiles one epoch only, but profile_times={profile_times}: "
                "profile 1 epoch, or set by_epoch=False to profile that many iterations."
            )
        if schedule is not None and not isinstance(schedule, dict):
            raise TypeError(
                f"ProfilerHook: schedule should be a dict of torch.profiler.schedule arguments, got {schedule!r}"
            )
        if on_trace_ready is not None and not callable(on_trace_ready) and not isinstance(on_trace_ready, dict):
            raise ValueError(f"``on_trace_ready`` should be a handler, or dict, or None, but got {on_trace_ready!r}")
        if isinstance(on_trace_ready, dict) and on_trace_ready.get("type") not in TRACE_TYPES:
            raise ValueError(f'trace_type should be "log_trace" or "tb_trace", but got {on_trace_ready.get("type")!r}')
        if isinstance(on_trace_ready, dict):
            _check_trace_arguments(on_trace_ready)
        if json_trace_path is not None and not isinstance(json_trace_path, (str, os.PathLike)):
            raise TypeError(f"ProfilerHook: json_trace_path must be a file path, got {json_trace_path!r}")
        self.by_epoch = by_epoch
        self.profile_times = profile_times
        self.activities = available_activities(activity_with_cpu, activity_with_cuda)
        # An empty dict raises TypeError here, as in MMEngine (wait/warmup/active are required).
        self.schedule = torch_profiler.schedule(**schedule) if schedule is not None else None
        self.on_trace_ready = on_trace_ready
        self.record_shapes = record_shapes
        self.profile_memory = profile_memory
        self.with_stack = with_stack
        self.with_flops = with_flops
        self.json_trace_path = json_trace_path
        self.profiler: Optional[torch_profiler.profile] = None
        self._closed = False
        self.trace_dir: Optional[str] = None
        self._saved_trace: Optional[str] = None

    # ------------------------------------------------------------------ trace handlers
    def _parse_trace_config(self, runner: RunnerView) -> Optional[TraceHandler]:
        """Turn ``on_trace_ready`` into the handler given to ``torch.profiler.profile``."""
        config = self.on_trace_ready
        if config is None or callable(config):
            return config
        if not isinstance(config, dict):
            raise ValueError(f"``on_trace_ready`` should be a handler, or dict, or None, but got {config!r}")
        trace_cfg = dict(config)
        trace_type = trace_cfg.pop("type", None)
        if trace_type not in TRACE_TYPES:
            raise ValueError(f'trace_type should be "log_trace" or "tb_trace", but got {trace_type!r}')
        if trace_type == "log_trace":

            def log_handler(prof: Any) -> None:
                print(prof.key_averages().table(**trace_cfg))

            return log_handler
        dir_name = trace_cfg.pop("dir_name", None)
        if dir_name is None:
            dir_name = osp.join(runner.log_dir, "tf_tracing_logs")
        elif not osp.isabs(dir_name):
            dir_name = osp.join(runner.log_dir, dir_name)
        self.trace_dir = dir_name
        runner.logger.info(f"trace_files of ProfilerHook will be saved to {dir_name}.")
        if self.json_trace_path is not None:
            runner.logger.warning(
                "When using tensorboard_trace, it is recommended to save json files by setting "
                "``worker_name`` instead of setting ``json_trace_path``"
            )
        return self._tensorboard_handler(dir_name, **trace_cfg)

    def _tensorboard_handler(
        self, dir_name: str, worker_name: Optional[str] = None, use_gzip: bool = False
    ) -> TraceHandler:
        """``torch.profiler.tensorboard_trace_handler``'s files, remembering the last one written.

        torch saves a profile's trace only once; ``json_trace_path`` is then
        filled with a copy of this file instead of a second export.
        """

        def handler(prof: Any) -> None:
            os.makedirs(dir_name, exist_ok=True)
            worker = worker_name or f"{socket.gethostname()}_{os.getpid()}"
            name = f"{worker}.{time.time_ns()}.pt.trace.json" + (".gz" if use_gzip else "")
            path = osp.join(dir_name, name)
            prof.export_chrome_trace(path)
            self._saved_trace = path

        return handler

    # ------------------------------------------------------------------ mount points
    def before_run(self, runner: RunnerView) -> None:
        """Start the profiler, before checkpoint loading and ``before_train`` (MMEngine's order)."""
        self._closed = False
        self._saved_trace = None
        on_trace_ready = self._parse_trace_config(runner)
        self.profiler = torch_profiler.profile(
            activities=self.activities,
            schedule=self.schedule,
            on_trace_ready=on_trace_ready,
            record_shapes=self.record_shapes,
            profile_memory=self.profile_memory,
            with_stack=self.with_stack,
            with_flops=self.with_flops,
        )
        self.profiler.__enter__()
        runner.logger.info("profiler is profiling...")

    def before_train(self, runner: RunnerView) -> None:
        """Check ``profile_times`` against the run's epochs or iterations, now that they are known
        (not for a training the Trainer does not bound)."""
        max_times = runner.max_epochs if self.by_epoch else runner.max_iters
        if 0 <= max_times < self.profile_times:
            raise ValueError(
                f"``profile_times`` should not be greater than {max_times} (the run's "
                f"{'epochs' if self.by_epoch else 'iterations'}), got {self.profile_times}"
            )

    def after_train_iter(
        self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Optional[dict] = None
    ) -> None:
        """Step the profiler; in iteration mode stop after iteration ``profile_times``."""
        if self._closed or self.profiler is None:
            return
        self.profiler.step()
        if not self.by_epoch and runner.iter == self.profile_times - 1:
            self._export_chrome_trace(runner)

    def after_train_epoch(self, runner: RunnerView) -> None:
        """Stop after the first epoch (also fires at the end of iteration-based training)."""
        if not self._closed:
            self._export_chrome_trace(runner)

    def after_run(self, runner: RunnerView) -> None:
        """Close a profiler still running (failed, stopped or standalone validate/test runs)."""
        if not self._closed and self.profiler is not None:
            self._export_chrome_trace(runner)

    def _export_chrome_trace(self, runner: RunnerView) -> None:
        self._closed = True
        if self.profiler is None:
            return
        runner.logger.info("profiler may take a few minutes...")
        self.profiler.__exit__(None, None, None)
        if self.json_trace_path is not None:
            path = _rank_path(self.json_trace_path, int(getattr(runner, "rank", 0)))
            directory = osp.dirname(path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            self._write_json_trace(runner, path)

    def _write_json_trace(self, runner: Any, path: str) -> None:
        """Export the Chrome trace to ``path``, or copy the one ``tb_trace`` already saved."""
        if self._saved_trace is not None:
            opener = gzip.open if self._saved_trace.endswith(".gz") else open
            with opener(self._saved_trace, "rb") as source, open(path, "wb") as target:
                shutil.copyfileobj(source, target)
            return
        assert self.profiler is not None
        try:
            self.profiler.export_chrome_trace(path)
        except RuntimeError as error:
            if "already saved" not in str(error):
                raise
            runner.logger.warning(
                f"ProfilerHook: json_trace_path={self.json_trace_path!r} was not written: the on_trace_ready "
                f"handler already saved this trace ({error}); torch saves a trace only once."
            )

    def __repr__(self) -> str:
        return f"ProfilerHook(by_epoch={self.by_epoch}, profile_times={self.profile_times})"
