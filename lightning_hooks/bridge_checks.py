"""What HookBridge refuses or says before and around a run, so that nothing goes wrong unnoticed.

* its own arguments, at construction: types (a ``work_dir`` of ``5``, a ``resume`` given a path),
  the log level, a second EMAHook, a ``default_hooks`` key that adds a second hook of a default
  hook's type;
* the Trainer it joins, in ``setup``: Lightning callbacks that do a hook's job beside it
  (``ModelCheckpoint``, the weight-averaging callbacks), and 1000 epochs (Lightning's default)
  with every checkpoint kept;
* the checkpoint it resumes: one saved with EMAHook in a run without it, and one saved without
  optimizer or scheduler state (resumed as MMEngine resumes it).

Errors come before anything is written; warnings go to the package logger, and also through
:mod:`warnings` where tests and users filter them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional, Union

from . import _lightning
from .arguments import check_flags
from .hooks.checkpoint_hook import CheckpointHook
from .hooks.ema_hook import EMAHook
from .hooks.hook import Hook
from .hooks.logger_hook import LoggerHook
from .runner import get_logger, warn_during_run

if TYPE_CHECKING:
    import lightning.pytorch as pl

    from .dispatch import HookList

__all__ = [
    "check_arguments",
    "check_log_level",
    "fill_dropped_training_state",
    "refuse_overlapping_callbacks",
    "refuse_second_ema",
    "warn_ema_checkpoint_without_ema",
    "warn_implicit_max_epochs",
    "warn_overlapping_callbacks",
    "warn_second_default",
]

#: What Lightning trains for when neither ``max_epochs`` nor ``max_steps`` is given.
LIGHTNING_DEFAULT_MAX_EPOCHS = 1000

LOG_LEVELS = ("CRITICAL", "FATAL", "ERROR", "WARN", "WARNING", "INFO", "DEBUG", "NOTSET")


# ---------------------------------------------------------------------- arguments
def check_arguments(
    work_dir: Any, experiment_name: Any, resume: Any, print_hooks_table: Any, validate_at_end: Any
) -> None:
    """Refuse arguments of the wrong type before they turn into a directory named ``5`` or a silent choice."""
    if work_dir is not None and not isinstance(work_dir, (str, os.PathLike)):
        raise TypeError(f"HookBridge: work_dir must be a path (str or os.PathLike), got {work_dir!r}")
    if experiment_name is not None and not isinstance(experiment_name, str):
        raise TypeError(f"HookBridge: experiment_name must be a str, got {experiment_name!r}")
    if isinstance(resume, (str, os.PathLike)):
        raise TypeError(
            f"HookBridge: resume must be True or False, got {resume!r}. To resume from a checkpoint file, "
            "pass it to fit: trainer.fit(model, ckpt_path=...); resume=True resumes from <work_dir>/last_checkpoint."
        )
    check_flags("HookBridge", resume=resume, print_hooks_table=print_hooks_table, validate_at_end=validate_at_end)


def check_log_level(log_level: Any) -> Union[str, int]:
    """A level name (upper-cased) or number, as MMEngine's logger takes them; anything else is an
    error naming the valid names."""
    if isinstance(log_level, str) and log_level.upper() in LOG_LEVELS:
        return log_level.upper()
    if isinstance(log_level, int) and not isinstance(log_level, bool) and log_level >= 0:
        return log_level
    raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)} or a logging level number, got {log_level!r}")


def refuse_second_ema(hook_list: HookList) -> None:
    """Two EMAHooks would both swap averaged weights into the one model and corrupt the training weights."""
    emas = hook_list.find(EMAHook)
    if len(emas) > 1:
        raise ValueError(
            f"HookBridge got {len(emas)} EMAHooks ({', '.join(repr(h) for h in emas)}); only one is allowed: "
            "each swaps its average into the model for validation, so a second one would overwrite the "
            "training weights. Keep one EMAHook."
        )


def _hook_type_name(cfg: Any) -> Optional[str]:
    if isinstance(cfg, Hook):
        return type(cfg).__name__
    kind = cfg.get("type") if isinstance(cfg, Mapping) else None
    return kind if isinstance(kind, str) else getattr(kind, "__name__", None)


def warn_second_default(merged: Mapping[str, Any], default_names: Mapping[str, Any]) -> None:
    """Say so when a key of its own adds a second hook of a default hook's type (``loger`` beside ``logger``).

    MMEngine keeps such a hook without a word, and then two LoggerHooks print every line twice.
    """
    defaults = {_hook_type_name(merged[name]): name for name in default_names if name in merged}
    for name, cfg in merged.items():
        default = defaults.get(_hook_type_name(cfg))
        if name not in default_names and default is not None:
            warnings.warn(
                f"default_hooks[{name!r}] adds a second {_hook_type_name(cfg)} beside default_hooks[{default!r}], "
                f"and both will run. To change the default one, give its key: default_hooks={{{default!r}: ...}}.",
                UserWarning,
                stacklevel=4,
            )


# ---------------------------------------------------------------------- the Trainer
def _class_names(objects: list[Any]) -> str:
    return ", ".join(type(o).__name__ for o in objects)


def refuse_overlapping_callbacks(trainer: pl.Trainer, hook_list: HookList) -> None:
    """Refuse a weight average that Lightning swaps into the model for validation beside EMAHook's.

    As a second EMAHook is refused: swapped in and out in the callbacks' order (not nested),
    the two swaps overwrite the training weights.
    """
    swapping, _ = _lightning.averaging_callbacks(trainer) if hook_list.find(EMAHook) else ([], [])
    if swapping:
        raise ValueError(
            f"EMAHook and Lightning's {_class_names(swapping)} would both swap a weight average into the model "
            "for validation, and the two swaps overwrite the training weights. Keep one: remove "
            f"{_class_names(swapping)} from the Trainer's callbacks, or EMAHook from custom_hooks."
        )


def warn_overlapping_callbacks(trainer: pl.Trainer, hook_list: HookList) -> None:
    """Say so when one of Lightning's callbacks does a hook's job beside it (checkpoints, weight averages)."""
    if not trainer.is_global_zero:
        return
    savers = list(getattr(trainer, "checkpoint_callbacks", None) or [])
    if savers and hook_list.find(CheckpointHook):
        get_logger().warning(
            f"Both CheckpointHook and Lightning's {_class_names(savers)} will save checkpoints. To keep only "
            "CheckpointHook's files, pass Trainer(enable_checkpointing=False)."
        )
    _, at_end = _lightning.averaging_callbacks(trainer) if hook_list.find(EMAHook) else ([], [])
    if at_end:
        get_logger().warning(
            f"Both EMAHook and Lightning's {_class_names(at_end)} average the weights: validation and "
            f"EMAHook's checkpoints use the EMA, and {_class_names(at_end)} puts its own average into the model "
            "when training ends. Keep one unless that is what you want."
        )


def warn_implicit_max_epochs(trainer: pl.Trainer, hook_list: HookList) -> None:
    """Say so when a fit runs 1000 epochs (Lightning's default) and CheckpointHook keeps every checkpoint."""
    if not trainer.is_global_zero or trainer.max_epochs != LIGHTNING_DEFAULT_MAX_EPOCHS:
        return
    if trainer.max_steps not in (None, -1):
        return
    for hook in hook_list.find(CheckpointHook):
        if not isinstance(hook, CheckpointHook):
            continue
        if hook.interval > 0 and hook.max_keep_ckpts <= 0:
            unit = "epochs" if hook.by_epoch else "iterations"
            files = f" (up to {trainer.max_epochs // hook.interval} files)" if hook.by_epoch else ""
            get_logger().warning(
                f"This fit runs {trainer.max_epochs} epochs, Lightning's default when Trainer(max_epochs=...) "
                f"is not set, and CheckpointHook keeps a checkpoint every {hook.interval} {unit}{files} "
                f"(max_keep_ckpts={hook.max_keep_ckpts}). Set Trainer(max_epochs=...) or "
                "CheckpointHook(max_keep_ckpts=...)."
            )
            return


def warn_shared_validation_steps(trainer: pl.Trainer, hook_list: HookList, by_epoch: bool) -> None:
    """Say so when the validations of one epoch would be recorded at one step.

    LoggerHook's ``log_metric_by_epoch=True`` (MMEngine's default) records validation scalars at
    the number of completed epochs, which names one validation per epoch in MMEngine's epoch-based
    loop; Lightning's ``val_check_interval`` can validate several times within an epoch.
    """
    if not by_epoch or not trainer.is_global_zero or not _lightning.validates_within_epochs(trainer):
        return
    for hook in hook_list.find(LoggerHook):
        if getattr(hook, "log_metric_by_epoch", False) is True:
            get_logger().warning(
                f"Lightning validates within each training epoch here (val_check_interval="
                f"{trainer.val_check_interval!r}), and LoggerHook(log_metric_by_epoch=True) records validation "
                "scalars at the number of completed epochs, so the validations of one epoch share a step. "
                "Set LoggerHook(log_metric_by_epoch=False) to record each at its iteration."
            )
            return


def warn_steps_shortened_by_epoch_ends(trainer: pl.Trainer, by_epoch: bool) -> None:
    """Say so when iteration-based training trains fewer batches than ``max_steps x accumulate_grad_batches``.

    MMEngine's iteration-based loop has no epochs, and its ``max_iters`` counts batches.
    Lightning steps the optimizer after every epoch's last batch too, so with an epoch
    length that is not a multiple of ``accumulate_grad_batches`` the optimizer steps
    ``max_steps`` take fewer batches (``runner.max_iters`` counts them).
    """
    steps, accumulate = trainer.max_steps, int(trainer.accumulate_grad_batches)
    epoch = trainer.num_training_batches
    if by_epoch or not trainer.is_global_zero or accumulate <= 1 or not steps or steps <= 0:
        return
    if epoch in (None, float("inf")) or int(epoch) % accumulate == 0:
        return
    batches = _lightning.batches_for_steps(int(steps), epoch, accumulate)
    if batches < steps * accumulate:
        warn_during_run(
            get_logger(),
            f"Iteration-based training with accumulate_grad_batches={accumulate} on epochs of {int(epoch)} "
            f"batches: Lightning also steps the optimizer after each epoch's last batch, so max_steps={steps} "
            f"trains {batches} batches (runner.max_iters), not {steps * accumulate} as MMEngine's "
            f"max_iters={steps * accumulate} would. A training loader whose length is a multiple of "
            "accumulate_grad_batches trains MMEngine's count.",
            stacklevel=3,
        )


# ---------------------------------------------------------------------- the resumed checkpoint
def _warn(message: str) -> None:
    warn_during_run(get_logger(), message, stacklevel=3)


def warn_ema_checkpoint_without_ema(hook_list: HookList) -> None:
    """Resuming an EMAHook checkpoint without EMAHook continues from the average (MMEngine says nothing)."""
    if hook_list.find(EMAHook):
        return
    _warn(
        "This checkpoint was saved with EMAHook: its state_dict holds the averaged weights, and the "
        "training weights are in ema_state_dict. Without EMAHook in this run, training goes on from the "
        "averaged weights. Add EMAHook to custom_hooks to continue where the run stopped."
    )


def fill_dropped_training_state(checkpoint: dict[str, Any]) -> None:
    """Resume a checkpoint saved with ``save_optimizer=False`` or ``save_param_scheduler=False`` as MMEngine
    does: the optimizers or schedulers keep the state they were built with. Lightning would refuse it
    (a ``KeyError`` about ``ModelCheckpoint.save_weights_only``); an empty list of states loads nothing."""
    missing = [
        what
        for key, what in (("optimizer_states", "optimizer"), ("lr_schedulers", "learning-rate scheduler"))
        if key not in checkpoint
    ]
    if not missing:
        return
    checkpoint.setdefault("optimizer_states", [])
    checkpoint.setdefault("lr_schedulers", [])
    _warn(
        f"This checkpoint holds no {' and no '.join(missing)} state (CheckpointHook saved it with "
        "save_optimizer=False or save_param_scheduler=False): training resumes with them as they are "
        "built now, as MMEngine does."
    )
