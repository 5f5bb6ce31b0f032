"""Every use of Lightning's private API, behind small named functions.

Lightning gives callbacks no public way to do some of what MMEngine's hooks
need: read the epoch-level metrics of the evaluation loop that just ended, know
that an epoch's last batch has run, force one validation off the interval,
save one checkpoint through another writer, choose the resume checkpoint after
``fit`` started. Those few places reach into Lightning's internals; they are
all here, and ``tests/test_lightning_shim.py`` checks each assumption against
the installed Lightning, so a Lightning release that changes one fails loudly
there instead of quietly elsewhere.

The supported Lightning versions are the ones ``pyproject.toml`` allows
(``>=2.6,<2.7``); CI runs the shim's tests on the lowest and the highest of them.
Older versions fail them: before 2.6 ``resume_start`` takes no ``weights_only``
(auto-resume could not load with ``weights_only=True``), and 2.4 skips callbacks'
``on_load_checkpoint`` in ``validate``/``test``, so ``after_load_checkpoint`` would
not fire there.
"""

from __future__ import annotations

import operator
import os
import os.path as osp
import sys
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any, Optional

import torch

if TYPE_CHECKING:
    import lightning.pytorch as pl

__all__ = [
    "TrainBatchEndReader",
    "attached_trainer",
    "batches_for_steps",
    "default_root_dir_named",
    "discard_default_outputs",
    "drop_pending_validation",
    "end_fit_after_this_batch",
    "evaluation_epoch_metrics",
    "fit_validates",
    "intercept_resume_start",
    "load_evaluation_dataloaders",
    "load_sharded_directories_without_optimizer_state",
    "load_train_dataloader",
    "logs_after_callback_batch_end",
    "mark_epoch_finished",
    "mark_stopped_epoch_validation_pending",
    "mark_validation_pending",
    "move_default_outputs",
    "reload_train_data_after_restore",
    "reloads_train_data",
    "restarts_inside_epoch",
    "restore_max_steps",
    "restore_trainer_attributes",
    "save_with_checkpoint_io",
    "sharded_save_kind",
    "skip_callback_events",
    "step_past_a_finished_run",
    "strategy_checkpoint_io",
    "train_batch_running",
    "train_batches_processed",
    "train_epoch_batches_reached",
    "train_total_batch_idx",
    "tuner_trial",
    "unwrap_optimizer",
    "validate_after_this_batch",
    "validates_within_epochs",
    "validation_ends_training",
    "validation_follows_batch",
    "writer_kind",
]


# -- loop progress ------------------------------------------------------------------------------
def train_batches_processed(trainer: pl.Trainer) -> int:
    """Training batches run so far, restored on resume (the fit loop's batch progress).

    ``processed``, not ``completed``: a checkpoint written in ``on_train_batch_end``
    records its batch as processed but not yet completed, and that batch did train.
    """
    total = trainer.fit_loop.epoch_loop.batch_progress.total
    return int(getattr(total, "processed", total.completed))


def tuner_trial(trainer: pl.Trainer) -> bool:
    """Whether this ``fit`` only runs Lightning's Tuner (``Tuner.lr_find``/``scale_batch_size``): its
    finder callback searches in ``on_fit_start``, with its own callbacks in place of the Trainer's,
    and then ends the ``fit``."""
    from lightning.pytorch.callbacks import BatchSizeFinder, LearningRateFinder

    return any(
        isinstance(callback, (BatchSizeFinder, LearningRateFinder)) and getattr(callback, "_early_exit", False)
        for callback in getattr(trainer, "callbacks", ())
    )


def train_batch_running(trainer: pl.Trainer) -> bool:
    """Whether a training batch is between its ``on_train_batch_start`` and the end of its
    ``on_train_batch_end`` (Lightning counts it ready before the one and completed after the other)."""
    progress = trainer.fit_loop.epoch_loop.batch_progress.current
    return bool(progress.ready > progress.completed)


def end_fit_after_this_batch(trainer: pl.Trainer) -> int:
    """End the running ``fit`` once the current training batch is done, as a ``max_steps`` reached
    there would: without the validation Lightning adds when ``trainer.should_stop`` is set.
    Returns the ``max_steps`` it replaced (see :func:`restore_max_steps`)."""
    loop = trainer.fit_loop.epoch_loop
    previous = int(loop.max_steps)
    loop.max_steps = int(trainer.global_step)
    return previous


def step_past_a_finished_run(trainer: pl.Trainer, checkpoint: Mapping[str, Any]) -> Optional[int]:
    """Iteration-based resume of a checkpoint written before the validation that follows the last
    iteration: Lightning would find ``max_steps`` reached and skip its loop, that validation included.
    ``max_steps`` is raised by one so that the loop runs (it starts with that validation); returns the
    Trainer's own value for :func:`restore_max_steps`, or None when the run is not at its end."""
    max_steps = int(trainer.fit_loop.epoch_loop.max_steps)
    steps_done = checkpoint.get("global_step")
    if max_steps < 0 or not isinstance(steps_done, int) or steps_done < max_steps:
        return None
    trainer.fit_loop.epoch_loop.max_steps = steps_done + 1
    return max_steps


def restore_max_steps(trainer: pl.Trainer, max_steps: int) -> None:
    """Put back the ``max_steps`` :func:`end_fit_after_this_batch` replaced."""
    trainer.fit_loop.epoch_loop.max_steps = max_steps


def train_epoch_batches_reached(trainer: pl.Trainer) -> bool:
    """Whether the running training epoch has run its last batch (Lightning's own test for it)."""
    return bool(trainer.fit_loop.epoch_loop._num_ready_batches_reached())


def skip_callback_events(callback: Any, names: tuple[str, ...]) -> list[str]:
    """Make Lightning skip ``callback``'s events ``names`` entirely; returns the names skipped.

    Lightning's dispatch calls a callback's event only when ``getattr(callback, name)``
    is callable, so ``None`` on the instance saves the call, its profiler span and its
    ``state_key`` on every iteration. An event the callback's class overrides is kept.
    """
    from lightning.pytorch.callbacks import Callback

    skipped = []
    for name in names:
        if getattr(type(callback), name, None) is getattr(Callback, name):
            setattr(callback, name, None)
            skipped.append(name)
    return skipped


def train_total_batch_idx(trainer: pl.Trainer) -> int:
    """The 0-based index of the current training batch over the whole run."""
    return int(trainer.fit_loop.epoch_loop.total_batch_idx)


def batches_for_steps(max_steps: int, epoch_batches: float, accumulate: Any) -> int:
    """The batches Lightning trains for ``max_steps`` optimizer steps.

    It steps after every ``accumulate`` batches and after the last batch of each epoch, so an
    epoch of ``epoch_batches`` takes ``ceil(epoch_batches / accumulate)`` steps; with a loader of
    unknown length every step takes ``accumulate`` batches.
    """
    accumulate = max(int(accumulate or 1), 1)
    if epoch_batches == float("inf") or epoch_batches <= 0:
        return max_steps * accumulate
    epoch_batches = int(epoch_batches)
    epochs, rest = divmod(max_steps, -(-epoch_batches // accumulate))
    return epochs * epoch_batches + min(rest * accumulate, epoch_batches)


# -- validation interval -------------------------------------------------------------------------
def validate_after_this_batch(trainer: pl.Trainer, by_epoch: bool) -> dict[str, Any]:
    """Make Lightning validate after the current training batch even when it is off the interval.

    Lightning decides right after ``on_train_batch_end`` whether to validate, from
    ``check_val_every_n_epoch`` (epoch-based) and ``val_check_batch`` (counted in the
    epoch, or over the run when ``check_val_every_n_epoch`` is None). Each attribute
    that says no is relaxed to 1 for this one decision; the returned dict holds the
    original values for :func:`restore_trainer_attributes` (empty when nothing changed).
    """
    saved: dict[str, Any] = {}
    every = trainer.check_val_every_n_epoch
    if by_epoch and every is not None and (trainer.current_epoch + 1) % every != 0:
        saved["check_val_every_n_epoch"] = every
        trainer.check_val_every_n_epoch = 1
    every_batch = trainer.val_check_batch
    if every_batch not in (None, float("inf")):
        in_run = not by_epoch or every is None
        index = train_total_batch_idx(trainer) if in_run else int(trainer.fit_loop.epoch_loop.batch_idx)
        if (index + 1) % every_batch != 0:
            saved["val_check_batch"] = every_batch
            trainer.val_check_batch = 1
    return saved


def validates_within_epochs(trainer: pl.Trainer) -> bool:
    """Whether Lightning validates inside training epochs, not only at their ends: a ``val_check_interval``
    shorter than the epoch, or one in wall time. Read once the fit loop has set up its data (``on_train_start``)."""
    if not trainer.enable_validation:
        return False
    if getattr(trainer, "_val_check_time_interval", None) is not None:
        return True
    every = trainer.val_check_batch
    return every is not None and every != float("inf") and every < trainer.num_training_batches


def restore_trainer_attributes(trainer: pl.Trainer, saved: dict[str, Any]) -> None:
    """Put back the attributes :func:`validate_after_this_batch` changed."""
    for name, value in saved.items():
        setattr(trainer, name, value)


# -- evaluation metrics --------------------------------------------------------------------------
def evaluation_epoch_metrics(
    trainer: pl.Trainer, lightning_logged: Optional[set[str]] = None, step_only: Optional[set[str]] = None
) -> dict[str, Any]:
    """What the module logged (epoch-level) in the evaluation loop that just ended, in logging order.

    Read from the loop's result collection before Lightning resets it; a one-element
    tensor becomes a float. ``trainer.callback_metrics`` would mix in training metrics.
    ``lightning_logged``, when given, is set to the names among them that Lightning sends to
    its own loggers (``self.log(..., logger=True)``, the default). ``step_only``, when given,
    receives the names logged with ``on_epoch=False``, which have no epoch value.
    """
    results = trainer._results
    metrics: dict[str, Any] = {}
    if lightning_logged is not None:
        lightning_logged.clear()
    if results is None:
        return metrics
    # Every dataloader's metrics (``acc/dataloader_idx_1``...): ``valid_items()`` gives only the
    # current dataloader's, and there is none once the epoch has ended.
    for result_metric in results.values():
        if result_metric.has_reset:
            continue
        if not result_metric.meta.on_epoch:
            if step_only is not None:
                step_only.add(result_metric.meta.name)
            continue
        value = results._get_cache(result_metric, on_step=False)
        if not isinstance(value, torch.Tensor):
            continue
        name, _ = results._forked_name(result_metric, on_step=False)
        metrics[name] = value.item() if value.numel() == 1 else value
        if lightning_logged is not None and result_metric.meta.logger:
            lightning_logged.add(name)
    return metrics


class EvalBatchIndex:
    """MMEngine's batch index in an evaluation epoch that runs several dataloaders one after another.

    Lightning starts ``batch_idx`` again at 0 for each dataloader. MMEngine's loop has one
    dataloader, so hooks get the batches run so far in the epoch: the first dataloader's
    indices, then the next dataloader's following on. Call :meth:`reset` as an epoch starts.
    """

    __slots__ = ("base", "last", "loader")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.base, self.loader, self.last = 0, 0, -1

    def __call__(self, batch_idx: int, dataloader_idx: int) -> int:
        if dataloader_idx != self.loader:  # the next dataloader started
            self.base += self.last + 1
            self.loader = dataloader_idx
        self.last = batch_idx
        return self.base + batch_idx


class TrainBatchEndReader:
    """What ``on_train_batch_end`` needs from Lightning, bound once per epoch to Lightning's objects.

    * :meth:`ends_epoch`: whether this batch is the epoch's last, Lightning's own test
      (:func:`train_epoch_batches_reached`) on the progress counters, which are final when
      ``on_train_batch_end`` runs. The bridge evaluates the same expression inline from
      ``progress`` and ``batches`` (no call per batch); the shim's tests pin both to Lightning's.
    * ``results``: the training loop's result collection, empty (false) until the module logs
      something with ``self.log``; only then is :meth:`logged` worth calling.
    * :meth:`logged`: the step-level values logged with ``self.log`` during this batch, by name.
      Each ``on_step`` key keeps its latest value in the collection until it is logged again: a
      value is this batch's when its tensor is not the one seen at the previous call (every
      ``self.log`` stores a new tensor; a torchmetrics object, its new ``forward`` value).
      ``last_seen`` keeps those tensors between calls. Values stay tensors on their device (no
      host sync). The names Lightning itself sends to its loggers (``self.log(..., logger=True)``,
      the default) are added to ``lightning_logged``.

    Valid while the epoch's data and progress objects stay; the result collection lives as long
    as the fit loop.
    """

    __slots__ = ("batches", "last_seen", "lightning_logged", "progress", "results")

    def __init__(
        self, trainer: pl.Trainer, last_seen: dict[str, Any], lightning_logged: Optional[set[str]] = None
    ) -> None:
        epoch_loop = trainer.fit_loop.epoch_loop
        self.progress = epoch_loop.batch_progress
        self.batches = trainer.num_training_batches
        self.results = epoch_loop._results
        self.last_seen = last_seen
        self.lightning_logged = lightning_logged

    def ends_epoch(self) -> bool:
        """Whether the batch that just ran is the epoch's last."""
        progress = self.progress
        return progress.current.ready == self.batches or bool(progress.is_last_batch)

    def logged(self) -> dict[str, torch.Tensor]:
        """The values logged with ``self.log`` (on step) during this batch, by name."""
        fresh: dict[str, torch.Tensor] = {}
        results = self.results
        if not results or not results.training:
            return fresh
        last_seen, lightning_logged = self.last_seen, self.lightning_logged
        for key, result_metric in results.valid_items():
            if not result_metric.meta.on_step:
                continue
            value = result_metric._forward_cache
            if not isinstance(value, torch.Tensor) or last_seen.get(key) is value:
                continue
            last_seen[key] = value
            fresh[result_metric.meta.name] = value.detach()
            if lightning_logged is not None and result_metric.meta.logger:
                lightning_logged.add(result_metric.meta.name)
        return fresh


def logs_after_callback_batch_end(trainer: pl.Trainer, callback: Any) -> bool:
    """Whether ``self.log`` values may be logged after ``callback``'s ``on_train_batch_end``.

    Lightning calls every callback's ``on_train_batch_end`` first, then the module's: values the
    module logs there, or a callback listed after ``callback`` (Lightning's own callbacks log
    nothing there), come after ``callback`` has read the batch's values.
    """
    from lightning.pytorch import Callback, LightningModule
    from lightning.pytorch.utilities.model_helpers import is_overridden

    module = trainer.lightning_module
    if module is not None and is_overridden("on_train_batch_end", module, LightningModule):
        return True
    callbacks = list(getattr(trainer, "callbacks", ()))
    later = callbacks[callbacks.index(callback) + 1 :] if callback in callbacks else []
    return any(
        not type(other).__module__.startswith("lightning.") and is_overridden("on_train_batch_end", other, Callback)
        for other in later
    )


# -- output directories --------------------------------------------------------------------------
def default_root_dir_named(trainer: pl.Trainer) -> bool:
    """Whether ``Trainer(default_root_dir=...)`` was given: Lightning stores ``os.getcwd()`` when it was not."""
    stored: Any = trainer
    return str(stored._default_root_dir) != os.getcwd()


def move_default_outputs(trainer: pl.Trainer, root: str) -> list[str]:
    """Make ``root`` Lightning's default output directory for this run, as if ``default_root_dir=root`` was given.

    ``trainer.default_root_dir`` becomes ``root``, and so does the save directory of the
    ``TensorBoardLogger``/``CSVLogger`` that Lightning built for the old default (``logger=True``).
    Lightning has already created that logger's writer before any callback's ``setup``: it is
    closed, and what it created for this process (TensorBoard's event file, named with this
    process id, and then-empty directories) is removed; the logger makes a new one under
    ``root`` on first use. Loggers the user configured are left alone. Returns the names of
    default loggers that had written more than that and were left where they are.
    """
    from lightning.fabric.plugins.environments import SLURMEnvironment
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    settable: Any = trainer
    old_root = str(settable._default_root_dir)
    settable._default_root_dir = root
    left: list[str] = []
    loggers: list[Any] = list(trainer.loggers)
    for logger in loggers:
        if type(logger) not in (TensorBoardLogger, CSVLogger) or logger.save_dir != old_root:
            continue
        experiment = logger._experiment
        if experiment is not None:
            if not _remove_fresh_logger_files(experiment, str(logger.log_dir)):
                left.append(type(logger).__name__)
                continue
        logger._root_dir = root
        if isinstance(logger, CSVLogger):
            logger._save_dir = root
        logger._experiment = None
        if SLURMEnvironment.job_id() is None:  # the version was counted in the old directory: count again
            logger._version = None
    return left


def discard_default_outputs(trainer: pl.Trainer) -> None:
    """Undo what Lightning's default logger created in the unnamed default directory before ``setup`` (a run
    that stops there, e.g. because no output directory was named, leaves nothing behind)."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    old_root = str(getattr(trainer, "_default_root_dir", ""))
    loggers: list[Any] = list(trainer.loggers)
    for logger in loggers:
        if type(logger) in (TensorBoardLogger, CSVLogger) and logger.save_dir == old_root:
            if logger._experiment is not None and _remove_fresh_logger_files(logger._experiment, str(logger.log_dir)):
                logger._experiment = None


def _remove_fresh_logger_files(experiment: Any, log_dir: str) -> bool:
    """Close a default logger's writer and remove what it created so far; False if it holds anything else."""
    entries = os.listdir(log_dir) if osp.isdir(log_dir) else []
    ours = [name for name in entries if name.startswith("events.out.tfevents.") and f".{os.getpid()}." in name]
    if len(ours) != len(entries):
        return False
    close = getattr(experiment, "close", None)
    if callable(close):
        close()
    for name in ours:
        os.remove(osp.join(log_dir, name))
    directory = log_dir
    for _ in range(2):  # version_N, then lightning_logs: only when empty
        if osp.isdir(directory) and not os.listdir(directory):
            os.rmdir(directory)
        directory = osp.dirname(directory)
    return True


# -- checkpoint contents -------------------------------------------------------------------------
def mark_epoch_finished(loops: dict[str, Any]) -> None:
    """Make loop state saved inside an epoch's last batch look like the end of that epoch.

    The epoch's last batch is counted completed (and as an optimizer step) and the
    epoch as processed, which is what a save in ``on_train_epoch_end`` records, so
    ``fit(ckpt_path=...)`` starts the next epoch as MMEngine's resume does. No-op
    when Lightning already counted the epoch, or when ``loops`` has another layout.
    """
    fit = loops.get("fit_loop")
    if not isinstance(fit, dict) or "epoch_progress" not in fit:
        return
    epochs = fit["epoch_progress"]
    if epochs["current"]["processed"] >= epochs["current"]["started"]:
        return
    for scope in ("total", "current"):
        epochs[scope]["processed"] += 1
        batches = fit["epoch_loop.batch_progress"][scope]
        batches["completed"] = batches["processed"]
    fit["epoch_loop.state_dict"]["_batches_that_stepped"] += 1


def validation_follows_batch(trainer: pl.Trainer) -> bool:
    """Lightning's own decision, read in ``on_train_batch_end``: will it validate after this batch?"""
    fetcher = trainer.fit_loop._data_fetcher
    return fetcher is not None and bool(trainer.fit_loop.epoch_loop._should_check_val_fx(fetcher))


def validation_ends_training(trainer: pl.Trainer) -> bool:
    """Whether the validation starting now is the last of ``fit`` because training was asked to stop.

    Read in ``on_validation_start``. With ``trainer.should_stop`` set (``max_time``, a callback)
    and the minimum epochs and steps met, Lightning validates after the batch that asked,
    wherever it falls in the epoch, and then ends the epoch and the fit.
    """
    return bool(trainer.should_stop) and bool(trainer.fit_loop._can_stop_early)


def mark_stopped_epoch_validation_pending(loops: dict[str, Any], epoch_batches: float) -> None:
    """Loop state saved right before the validation of an epoch that stopped early: a resume runs
    that validation, then starts the next epoch.

    The epoch's batch is recorded as its last, and its own batch counters are moved to its end
    (``epoch_batches``; not for a loader without a length, where the last-batch flag is what
    Lightning reads), as if its remaining batches had run: Lightning then re-runs the validation
    there and closes the epoch, as the stopped run did. The run's totals (the batches and
    optimizer steps that did run) are kept. No-op when ``loops`` has another layout.
    """
    fit = loops.get("fit_loop")
    if not isinstance(fit, dict) or "epoch_loop.batch_progress" not in fit:
        return
    progress = fit["epoch_loop.batch_progress"]
    if epoch_batches != float("inf"):
        current = progress["current"]
        for counter in ("ready", "started", "processed", "completed"):
            current[counter] = max(current[counter], int(epoch_batches))
    progress["is_last_batch"] = True
    mark_validation_pending(loops)


def mark_validation_pending(loops: dict[str, Any]) -> None:
    """Make loop state saved in ``on_train_batch_end`` resume *inside* the validation that follows it.

    The batch is recorded as completed and the validation loop as started on its
    first batch, which is how Lightning records a run stopped mid-validation: on
    restore it runs that validation, then goes on where the uninterrupted run did.
    No-op when ``loops`` has another layout.
    """
    fit = loops.get("fit_loop")
    if not isinstance(fit, dict) or "epoch_loop.val_loop.batch_progress" not in fit:
        return
    for scope in ("total", "current"):
        batches = fit["epoch_loop.batch_progress"][scope]
        batches["completed"] = batches["processed"]
        val = fit["epoch_loop.val_loop.batch_progress"][scope]
        done = val["completed"] if scope == "total" else 0
        val.update(ready=done + 1, started=done + 1, processed=done, completed=done)
    fit["epoch_loop.val_loop.batch_progress"]["is_last_batch"] = False


def drop_pending_validation(loops: dict[str, Any], finish_epoch: bool) -> None:
    """Undo :func:`mark_validation_pending` for a fit that will not validate: the validation loop
    as it was before, and with ``finish_epoch`` (saved after an epoch's end) the epoch finished,
    so the resumed fit starts the next epoch as MMEngine's resume does. No-op when ``loops`` has
    another layout."""
    fit = loops.get("fit_loop")
    if not isinstance(fit, dict) or "epoch_loop.val_loop.batch_progress" not in fit:
        return
    val = fit["epoch_loop.val_loop.batch_progress"]
    done = val["total"]["completed"]
    val["total"].update(ready=done, started=done, processed=done, completed=done)
    val["current"].update(ready=0, started=0, processed=0, completed=0)
    if finish_epoch:
        mark_epoch_finished(loops)


def restarts_inside_epoch(trainer: pl.Trainer) -> bool:
    """Read in ``on_train_start``: whether the resumed ``fit`` starts inside an epoch (mid-epoch or at its
    end), where Lightning calls no ``on_train_epoch_start`` for that epoch."""
    loop: Any = trainer.fit_loop
    return bool(getattr(loop, "restarted_mid_epoch", False) or getattr(loop, "restarted_on_epoch_end", False))


def reloads_train_data(trainer: pl.Trainer) -> bool:
    """Whether Lightning reloads the training data every few epochs (``reload_dataloaders_every_n_epochs``)."""
    return bool(getattr(trainer, "reload_dataloaders_every_n_epochs", 0))


def fit_validates(trainer: pl.Trainer) -> bool:
    """Whether this ``fit`` can validate at all: validation data, a ``validation_step`` and batches to run."""
    return bool(trainer.enable_validation)


# -- checkpoint writing and resuming -------------------------------------------------------------
def strategy_checkpoint_io(trainer: pl.Trainer) -> Any:
    """The ``CheckpointIO`` plugin the Trainer's strategy writes with."""
    return trainer.strategy.checkpoint_io


def writer_kind(checkpoint_io: Any) -> str:
    """``'default'`` for Lightning's plain ``TorchCheckpointIO``, ``'async'`` for its ``AsyncCheckpointIO``,
    ``'other'`` for anything else (a user's plugin)."""
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
    from lightning.pytorch.plugins.io.async_plugin import AsyncCheckpointIO

    if isinstance(checkpoint_io, AsyncCheckpointIO):
        return "async"
    if type(checkpoint_io) is TorchCheckpointIO:
        return "default"
    return "other"


def save_with_checkpoint_io(
    trainer: pl.Trainer, filepath: str, checkpoint_io: Any, storage_options: Optional[dict[str, Any]]
) -> None:
    """``trainer.save_checkpoint(filepath)`` with the strategy's writer replaced by ``checkpoint_io`` for this save.

    The Trainer still builds the dict (every strategy, collective under DDP) and
    the strategy decides which rank writes; only the writer object changes.
    """
    strategy = trainer.strategy
    current = strategy.checkpoint_io
    strategy.checkpoint_io = checkpoint_io
    try:
        trainer.save_checkpoint(filepath, weights_only=False, storage_options=storage_options)
    finally:
        strategy.checkpoint_io = current


def sharded_save_kind(trainer: pl.Trainer) -> Optional[str]:
    """How the strategy writes checkpoints when it bypasses ``CheckpointIO.save_checkpoint(storage_options=...)``.

    ``'directory'``: ``ModelParallelStrategy`` writing a sharded directory per
    checkpoint (its default); ``'file'``: ``ModelParallelStrategy(save_distributed_checkpoint=False)``,
    one full-state file written on rank 0 (it refuses ``storage_options``); None otherwise.
    """
    from lightning.pytorch.strategies import ModelParallelStrategy

    strategy = trainer.strategy
    if not isinstance(strategy, ModelParallelStrategy):
        return None
    return "directory" if getattr(strategy, "_save_distributed_checkpoint", True) else "file"


def requested_ckpt_path(trainer: pl.Trainer) -> Optional[str]:
    """The checkpoint the running ``fit``/``validate``/``test`` was given (``'last'``/``'best'`` resolved).

    Lightning holds it as an argument of ``Trainer._run`` and loads it right after ``setup``; until
    then ``trainer.ckpt_path`` is None, or still the previous run's. It is read from the ``_run``
    call of this Trainer on the stack (callbacks run inside it); outside one, ``trainer.ckpt_path``.
    """
    from lightning.pytorch import Trainer

    run_code = Trainer._run.__code__
    frame: Optional[FrameType] = sys._getframe(1)
    while frame is not None:
        if frame.f_code is run_code and frame.f_locals.get("self") is trainer:
            path = frame.f_locals.get("ckpt_path")
            return str(path) if path else None
        frame = frame.f_back
    path = trainer.ckpt_path
    return str(path) if path else None


def intercept_resume_start(
    trainer: pl.Trainer,
    choose_path: Callable[[Optional[Any]], Optional[Any]],
    chosen_weights_only: Optional[bool] = None,
) -> None:
    """Let ``choose_path`` pick the checkpoint of this ``fit`` after it started.

    Lightning chooses ``ckpt_path`` before any callback runs; it loads it in the
    checkpoint connector's ``resume_start``, right after ``setup``, on every rank.
    The next call of it (one call only) passes ``fit``'s path through
    ``choose_path`` first. Arming it twice replaces the earlier, unused choice.
    ``chosen_weights_only`` is the ``weights_only`` for a path ``choose_path`` picked
    when ``fit`` was given none (and no ``weights_only``).
    """
    connector = trainer._checkpoint_connector
    if "resume_start" in vars(connector):  # armed by an earlier run that never loaded
        del connector.resume_start
    original = connector.resume_start

    def resume_start(checkpoint_path: Optional[Any] = None, weights_only: Optional[bool] = None) -> None:
        del connector.resume_start  # one call only
        chosen = choose_path(checkpoint_path)
        if checkpoint_path is None and chosen is not None and weights_only is None:
            weights_only = chosen_weights_only
        original(chosen, weights_only)

    connector.resume_start = resume_start  # type: ignore[method-assign]


def load_sharded_directories_without_optimizer_state(trainer: pl.Trainer) -> None:
    """Let ``ModelParallelStrategy`` load a sharded directory that holds no optimizer state.

    Lightning loads every optimizer's shards from the directory before any callback runs, and
    fails on a directory without them: one written with ``CheckpointHook(save_optimizer=False)``,
    or a best checkpoint. For such a directory the optimizers are left out of that load (they keep
    the state they were built with, as MMEngine resumes such a file). A directory that has them
    loads as Lightning loads it; the returned dict then says so with an empty
    ``optimizer_states`` (Lightning restores nothing from it under this strategy). Installed once
    per strategy; the index is read as data (:func:`~lightning_hooks.sharded_index.read_sharded_index`).
    """
    from lightning.pytorch.strategies import ModelParallelStrategy

    from .fileio import is_sharded_checkpoint
    from .sharded_index import read_sharded_index

    strategy: Any = trainer.strategy
    if not isinstance(strategy, ModelParallelStrategy) or "load_checkpoint" in vars(strategy):
        return
    original = strategy.load_checkpoint

    def load_checkpoint(checkpoint_path: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        path = str(checkpoint_path)
        if not is_sharded_checkpoint(path) or not strategy.optimizers:
            return original(checkpoint_path, *args, **kwargs)  # type: ignore[no-any-return]
        entries = read_sharded_index(path).state_dict_metadata
        if not any(str(key).startswith("optimizer_") for key in entries):
            optimizers, strategy.optimizers = strategy.optimizers, []
            try:
                return original(checkpoint_path, *args, **kwargs)  # type: ignore[no-any-return]
            finally:
                strategy.optimizers = optimizers
        loaded = original(checkpoint_path, *args, **kwargs)
        loaded.setdefault("optimizer_states", [])  # restored by the strategy above
        return loaded  # type: ignore[no-any-return]

    strategy.load_checkpoint = load_checkpoint  # type: ignore[method-assign]


# -- optimizers ----------------------------------------------------------------------------------
def averaging_callbacks(trainer: pl.Trainer) -> tuple[list[Any], list[Any]]:
    """The Trainer's callbacks that average the weights: those that swap their average into the model
    for every validation (``WeightAveraging``, ``EMAWeightAveraging``), and those that put it into
    the model when training ends (``StochasticWeightAveraging``)."""
    from lightning.pytorch.callbacks import StochasticWeightAveraging, WeightAveraging

    callbacks = list(getattr(trainer, "callbacks", None) or [])
    return (
        [cb for cb in callbacks if isinstance(cb, WeightAveraging)],
        [cb for cb in callbacks if isinstance(cb, StochasticWeightAveraging)],
    )


def unwrap_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside a ``LightningOptimizer`` (or the optimizer itself)."""
    return getattr(optimizer, "_optimizer", optimizer)


# -- configure_optimizers ------------------------------------------------------------------------
def attached_trainer(module: Any) -> Optional[pl.Trainer]:
    """The Trainer a LightningModule is attached to, or None (``module.trainer`` raises when there is none)."""
    return getattr(module, "_trainer", None)


def load_evaluation_dataloaders(trainer: pl.Trainer, kind: str) -> None:
    """Load the running ``fit``/``validate``'s validation dataloaders (``kind='val'``) or ``test``'s test
    dataloaders (``'test'``) now, through the loop that will run them (a ``fit`` reuses what it loaded)."""
    fn = str(getattr(trainer.state.fn, "value", trainer.state.fn))
    if str(getattr(trainer.state.status, "value", trainer.state.status)) != "running":
        return
    loops = {
        ("val", "fit"): "fit_loop.epoch_loop.val_loop",
        ("val", "validate"): "validate_loop",
        ("test", "test"): "test_loop",
    }
    path = loops.get((kind, fn))
    if path is not None:
        operator.attrgetter(path)(trainer).setup_data()


def reload_train_data_after_restore(trainer: pl.Trainer) -> None:
    """In ``on_fit_start`` of a resumed ``fit``: if the training data is loaded already (a hook read
    the loader in ``before_run``, ``mmengine_optimizers`` measured the epoch, ``estimated_stepping_batches``),
    have Lightning load it again after it restores the checkpoint's loop state. Lightning hands a
    resumable loader its saved position only while loading it; loaded earlier, the resumed run would
    replay the epoch from its first batch."""
    loop: Any = trainer.fit_loop
    if trainer.ckpt_path is not None and loop._combined_loader is not None:
        loop._combined_loader = None


def load_train_dataloader(trainer: pl.Trainer) -> None:
    """Load the training dataloader now, as ``Trainer.estimated_stepping_batches`` does inside ``configure_optimizers``.

    MMEngine builds its schedulers knowing the epoch length; under Lightning the train loader is
    otherwise loaded only after ``configure_optimizers``.
    """
    if trainer.train_dataloader is None:
        trainer.fit_loop.setup_data()
