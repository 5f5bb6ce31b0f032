"""LoggerHook: MMEngine's terminal lines, JSON lines, TensorBoard, W&B and the Trainer's loggers.

Behaviour is MMEngine's (``mmengine.hooks.LoggerHook``):

* a training line every ``interval`` iterations of the epoch (of the whole run
  in iteration-based training); the tail of an epoch is logged only with
  ``ignore_last=False`` or when the dataloader is no longer than ``interval``;
* ``Exp name: <name>`` every ``interval_exp_name`` iterations and at the end of
  each epoch (once, at iteration ``len(train_dataloader)``, in iteration-based runs);
* validation and test lines every ``interval`` batches (terminal only), and one
  line after each validation/test epoch;
* scalars with MMEngine's steps: training at ``iter + 1``, validation at the
  number of completed epochs (``log_metric_by_epoch``) or iterations; test
  results go to ``<log_dir>/<timestamp>.json`` only;
* ``after_run`` copies the log files ending with ``out_suffix`` to
  ``<out_dir>/<basename(work_dir)>`` (``out_dir`` may be an fsspec URL such as
  ``s3://`` or ``memory://``) and, with ``keep_local=False``, deletes the local ones.

Where scalars go: the backends of ``vis_backends`` (default: JSON lines in
``<log_dir>/vis_data/scalars.json`` and ``vis_data/<timestamp>.json``; add
``dict(type='TensorboardVisBackend')`` or ``dict(type='WandbVisBackend',
init_kwargs=...)``), and every Lightning logger attached to the Trainer
(``logger.log_metrics(scalars, step)``). Only rank 0 prints and writes.

Differences from MMEngine, on purpose (no host-device synchronisation between two lines,
``vis_backends`` on the hook, ...): see ``docs/hooks/logger_hook.md``.
"""

from __future__ import annotations

import json
import logging
import os
import os.path as osp
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

from ..logging.backends import DEFAULT_VIS_BACKENDS, build_writers, check_vis_backends
from ..logging.file_copy import copy_logs, join_out_dir
from ..logging.log_processor import LogProcessor, batches_in
from ..logging.scalars import json_ready
from ..registry import HOOKS
from ..runner import RunnerView, log_info
from .hook import DATA_BATCH, Hook

__all__ = ["LoggerHook"]

DEFAULT_OUT_SUFFIX = (".json", ".log", ".py", "yaml")


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be greater than 0, got {value}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a boolean (True or False), got {value!r}")


def _check_out_suffix(out_suffix: Any) -> Union[str, tuple[str, ...]]:
    if isinstance(out_suffix, str):
        return out_suffix
    if isinstance(out_suffix, Sequence) and all(isinstance(s, str) for s in out_suffix):
        return tuple(out_suffix)
    raise TypeError(f"out_suffix should be a string or a sequence of strings, got {out_suffix!r}")


@HOOKS.register_module()
class LoggerHook(Hook):
    """Prints and records the logs that :class:`~lightning_hooks.logging.LogProcessor` formats.

    Args:
        interval: iterations between two training lines (batches between two
            validation/test lines).
        ignore_last: skip the epoch's last, partial window of iterations.
        interval_exp_name: iterations between two ``Exp name`` lines.
        out_dir: where ``after_run`` copies the log files (local path or fsspec URL);
            ``basename(work_dir)`` is appended, as MMEngine does.
        out_suffix: suffixes of the files copied to ``out_dir``.
        keep_local: keep the local log files after copying them.
        log_metric_by_epoch: validation scalars at step ``epoch`` (True) or ``iter`` (False).
        backend_args: storage options for ``out_dir`` (passed to fsspec).
        vis_backends: MMEngine-style writer settings (``LocalVisBackend``,
            ``TensorboardVisBackend``, ``WandbVisBackend``); ``[]`` writes to the
            Trainer's loggers only.
    """

    priority = "BELOW_NORMAL"

    def __init__(
        self,
        interval: int = 10,
        ignore_last: bool = True,
        interval_exp_name: int = 1000,
        out_dir: Optional[Union[str, Path]] = None,
        out_suffix: Union[str, Sequence[str]] = DEFAULT_OUT_SUFFIX,
        keep_local: bool = True,
        file_client_args: Optional[dict] = None,
        log_metric_by_epoch: bool = True,
        backend_args: Optional[dict] = None,
        vis_backends: Optional[list[dict[str, Any]]] = None,
    ) -> None:
        _check_positive_int("interval", interval)
        _check_bool("ignore_last", ignore_last)
        _check_positive_int("interval_exp_name", interval_exp_name)
        if out_dir is not None and not isinstance(out_dir, (str, Path)):
            raise TypeError(f"out_dir must be a str or Path object, got {out_dir!r}")
        _check_bool("keep_local", keep_local)
        _check_bool("log_metric_by_epoch", log_metric_by_epoch)
        if file_client_args is not None and backend_args is not None:
            raise ValueError(
                '"file_client_args" and "backend_args" cannot be set at the same time; file_client_args is '
                "deprecated in MMEngine and not supported here: pass backend_args only"
            )
        if file_client_args is not None:
            raise ValueError(
                "file_client_args is deprecated in MMEngine and not supported; "
                "pass storage options for out_dir as backend_args"
            )
        if backend_args is not None and not isinstance(backend_args, dict):
            raise TypeError(f"backend_args must be a dict of fsspec storage options, got {backend_args!r}")
        if out_dir is None:
            unused = [
                name
                for name, given in (
                    ("keep_local=False", not keep_local),
                    ("out_suffix", _check_out_suffix(out_suffix) != DEFAULT_OUT_SUFFIX),
                    ("backend_args", bool(backend_args)),
                )
                if given
            ]
            if unused:
                warnings.warn(
                    f"LoggerHook: {', '.join(unused)} only apply with out_dir (where the logs are copied), "
                    "which is not set",
                    UserWarning,
                    stacklevel=2,
                )
        self.interval = interval
        self.ignore_last = ignore_last
        self.interval_exp_name = interval_exp_name
        self._out_root: Optional[str] = str(out_dir) if out_dir is not None else None
        self.out_dir: Optional[str] = self._out_root
        self.out_suffix = _check_out_suffix(out_suffix)
        self.keep_local = keep_local
        self.log_metric_by_epoch = log_metric_by_epoch
        self.backend_args = backend_args
        self.vis_backends = check_vis_backends(DEFAULT_VIS_BACKENDS if vis_backends is None else vis_backends)
        self.json_log_path: Optional[str] = None
        self._writers: list[Any] = []
        self._rank0 = True
        self._train_len: Optional[int] = None
        #: Batches of the running validation or test epoch so far (its size, for a loader that cannot tell).
        self._eval_batches = 0
        #: The runner view's logger, read once per run (``logging.getLogger`` takes the logging lock).
        self._logger: Optional[logging.Logger] = None

    # ------------------------------------------------------------------ run
    def before_run(self, runner: RunnerView) -> None:
        """Set the JSON file name, resolve ``out_dir`` and create the writers (rank 0)."""
        if self._out_root is not None:
            basename = osp.basename(runner.work_dir.rstrip(osp.sep))
            self.out_dir = join_out_dir(self._out_root, basename)
            runner.logger.info(f"Text logs will be saved to {self.out_dir} after the training process.")
        self.json_log_path = f"{runner.timestamp}.json"
        self._close_writers()
        self._rank0 = runner.rank == 0
        self._train_len = None
        self._logger = runner.logger if type(runner) is RunnerView else None
        if self._rank0:
            loggers = list(getattr(runner.trainer, "loggers", None) or [])
            self._writers = build_writers(
                self.vis_backends,
                osp.join(runner.log_dir, "vis_data"),
                loggers,
                getattr(runner, "lightning_logged_names", frozenset()),
            )

    def _add_scalars(self, tag: dict[str, Any], step: int) -> None:
        for writer in self._writers:
            writer.add_scalars(tag, step=step, file_path=self.json_log_path)

    def _close_writers(self) -> None:
        writers, self._writers = self._writers, []
        for writer in writers:
            writer.close()

    # ------------------------------------------------------------------ training
    def before_train_epoch(self, runner: RunnerView) -> None:
        """Remember the epoch's length once (it is read after every iteration); -1 when the loader cannot tell."""
        self._train_len = batches_in(runner.train_dataloader)

    def after_train_iter(
        self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Optional[dict] = None
    ) -> None:
        """``Exp name`` and the training line when due; scalars at step ``iter + 1``.

        Same rules as MMEngine's ``every_n_train_iters``/``every_n_inner_iters``/``end_of_epoch``,
        written out so that an iteration without a line costs a few integer operations.
        """
        if not self._rank0:
            return
        done, size = batch_idx + 1, self._train_len
        if size is None:  # before_train_epoch did not run (a subclass's override)
            size = batches_in(runner.train_dataloader)
        elif done % self.interval and done != size and (runner.iter + 1) % self.interval_exp_name:
            return  # most iterations: no line, not the epoch's last, no Exp name
        last = done == size
        logger = self._logger if self._logger is not None else runner.logger
        if last or (runner.iter + 1) % self.interval_exp_name == 0:
            log_info(logger, f"Exp name: {runner.experiment_name}")
        due = done % self.interval == 0 or (last and (not self.ignore_last or size <= self.interval))
        if not due:
            return
        processor = runner.log_processor
        result = None
        if isinstance(processor, LogProcessor):
            result = processor._train_line(runner, batch_idx, size)  # the epoch's length is known here
        tag, line = result if result is not None else processor.get_log_after_iter(runner, batch_idx, "train")
        log_info(logger, line)
        step = runner.iter + 1
        for writer in self._writers:  # self._add_scalars(tag, step), inline
            writer.add_scalars(tag, step=step, file_path=self.json_log_path)

    # ------------------------------------------------------------------ evaluation
    def after_val_iter(
        self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Optional[Sequence] = None
    ) -> None:
        """A validation line every ``interval`` batches (terminal only)."""
        self._eval_batches = batch_idx + 1
        if runner.rank == 0 and self.every_n_inner_iters(batch_idx, self.interval):
            _, line = runner.log_processor.get_log_after_iter(runner, batch_idx, "val")
            log_info(runner.logger, line)

    def after_test_iter(
        self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Optional[Sequence] = None
    ) -> None:
        """A test line every ``interval`` batches (terminal only)."""
        self._eval_batches = batch_idx + 1
        if runner.rank == 0 and self.every_n_inner_iters(batch_idx, self.interval):
            _, line = runner.log_processor.get_log_after_iter(runner, batch_idx, "test")
            log_info(runner.logger, line)

    def after_val_epoch(self, runner: RunnerView, metrics: Optional[dict[str, float]] = None) -> None:
        """The validation summary line; scalars at the completed epoch (or iteration) count."""
        if runner.rank != 0:
            return
        tag, line = runner.log_processor.get_log_after_epoch(runner, self._eval_size(runner.val_dataloader), "val")
        log_info(runner.logger, line)
        if runner.train_loop is None:
            step = 0
        else:
            step = runner.epoch if self.log_metric_by_epoch else runner.iter
        self._add_scalars(tag, step)

    def after_test_epoch(self, runner: RunnerView, metrics: Optional[dict[str, float]] = None) -> None:
        """The test summary line; the results (non-scalars too) go to ``<log_dir>/<timestamp>.json``."""
        if runner.rank != 0:
            return
        tag, line = runner.log_processor.get_log_after_epoch(
            runner,
            self._eval_size(runner.test_dataloader),
            "test",
            with_non_scalar=True,
        )
        log_info(runner.logger, line)
        os.makedirs(runner.log_dir, exist_ok=True)
        with open(osp.join(runner.log_dir, self.json_log_path or f"{runner.timestamp}.json"), "w") as f:
            json.dump(json_ready(dict(tag)), f)

    def _eval_size(self, loader: Any) -> int:
        """``len(loader)`` as MMEngine passes it, or the batches that ran when the loader cannot tell."""
        size = batches_in(loader)
        return size if size >= 0 else self._eval_batches

    # ------------------------------------------------------------------ end of run
    def after_run(self, runner: RunnerView) -> None:
        """Close the writers; copy the logs to ``out_dir`` and drop the local ones if asked."""
        self._close_writers()
        if self.out_dir is None or runner.rank != 0:
            return
        log_dir = runner.log_dir
        copied = copy_logs(log_dir, self.out_dir, self.out_suffix, self.backend_args)
        for local, remote in copied:
            runner.logger.info(f"The file {local} has been uploaded to {remote}.")
            if not self.keep_local:
                runner.logger.info(
                    f"{local} was removed due to the `self.keep_local=False`. You can check the running logs in {remote}"
                )
        if not self.keep_local:
            self._release_file_handlers(runner, [local for local, _ in copied])
            for local, _ in copied:
                if osp.exists(local):
                    os.remove(local)

    @staticmethod
    def _release_file_handlers(runner: RunnerView, paths: list[str]) -> None:
        """Close the logger's handlers writing to files about to be deleted."""
        targets = {osp.abspath(p) for p in paths}
        for handler in list(runner.logger.handlers):
            filename = getattr(handler, "baseFilename", None)
            if filename is not None and osp.abspath(filename) in targets:
                runner.logger.removeHandler(handler)
                handler.close()

    def __repr__(self) -> str:
        return f"LoggerHook(interval={self.interval}, ignore_last={self.ignore_last}, out_dir={self.out_dir!r})"
