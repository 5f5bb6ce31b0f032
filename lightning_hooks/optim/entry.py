"""``mmengine_optimizers``: an MMEngine config's ``optim_wrapper`` and ``param_scheduler`` as ``configure_optimizers``.

::

    class Model(LightningModule):
        def configure_optimizers(self):
            return mmengine_optimizers(self, "configs/resnet50_8xb32_in1k.py")

The optimizer is built as MMEngine's ``DefaultOptimWrapperConstructor`` builds it, the
learning rate is scaled by ``auto_scale_lr`` as MMEngine's Runner scales it, and the
schedulers are built as the Runner builds them (default ``end``, ``convert_to_iter_based``)
from the attached Trainer's lengths. The wrapper's ``clip_grad``, ``accumulative_counts`` and
``AmpOptimWrapper`` are checked against the Trainer: unset Trainer settings are filled in,
conflicting ones are an error naming both values. Run with a :class:`~lightning_hooks.HookBridge`
so that its ``ParamSchedulerHook`` steps the schedulers at MMEngine's points.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

import torch
from torch import nn

from .._lightning import attached_trainer, batches_for_steps, load_train_dataloader
from ..config_reader import config_to_dict, load_mmengine_config, without_delete_keys
from ..errors import OptimConfigError
from ..registry import import_custom_modules, to_plain
from .optimizer import WrapperSettings, build_optimizer, parse_optim_wrapper
from .schedulers import ParamScheduler, build_param_scheduler

__all__ = ["TrainingLengths", "build_param_schedulers", "mmengine_optimizers", "scale_lr"]

_logger = logging.getLogger("lightning_hooks")

ConfigLike = Union[str, "os.PathLike[str]", Mapping[str, Any]]


class TrainingLengths:
    """The lengths MMEngine's Runner gives its schedulers: epochs, iterations and iterations per epoch."""

    def __init__(
        self, max_epochs: Optional[int] = None, max_iters: Optional[int] = None, epoch_length: Optional[int] = None
    ) -> None:
        self.max_epochs = max_epochs
        self.max_iters = max_iters
        self.epoch_length = epoch_length

    def __repr__(self) -> str:
        return (
            f"TrainingLengths(max_epochs={self.max_epochs}, max_iters={self.max_iters}, "
            f"epoch_length={self.epoch_length})"
        )


def _load_config(cfg: Any) -> dict[str, Any]:
    """The config as plain dicts: a file read as ``mmengine.Config.fromfile(path).to_dict()`` reads it.

    An ``mmengine.Config`` or ``ConfigDict`` is read through ``to_dict()``, as the bridge reads it,
    so that a new-style config's lazy imports become names (``'mmengine.optim.LinearLR'``) instead
    of being imported and built into MMEngine's classes.
    """
    if isinstance(cfg, (str, os.PathLike)):
        return load_mmengine_config(cfg)
    if type(cfg).__module__.partition(".")[0] == "mmengine" and callable(getattr(cfg, "to_dict", None)):
        return to_plain(config_to_dict(cfg))
    if isinstance(cfg, Mapping) or hasattr(cfg, "items"):
        return to_plain(dict(cfg.items()))
    raise TypeError(f"cfg must be a config file path, a dict or an mmengine.Config, got {type(cfg).__name__}")


# ------------------------------------------------------------------------------------ Trainer settings
def apply_wrapper_settings(trainer: Any, settings: WrapperSettings) -> None:
    """Fill the Trainer's unset clipping/accumulation from the wrapper; refuse conflicting settings.

    Precision cannot change once the Trainer exists, so a different one is always an error.
    """
    if trainer.precision != settings.precision:
        raise ValueError(
            f"optim_wrapper asks for precision {settings.precision!r} but the Trainer runs {trainer.precision!r}; "
            f"create the Trainer with precision={settings.precision!r}"
        )
    current = int(trainer.accumulate_grad_batches)
    if current != settings.accumulate_grad_batches:
        if current != 1:
            raise ValueError(
                f"optim_wrapper.accumulative_counts={settings.accumulate_grad_batches} but the Trainer has "
                f"accumulate_grad_batches={current}"
            )
        trainer.accumulate_grad_batches = settings.accumulate_grad_batches
        _logger.info(f"accumulate_grad_batches={settings.accumulate_grad_batches} (optim_wrapper.accumulative_counts)")
    _apply_clipping(trainer, settings)


def _apply_clipping(trainer: Any, settings: WrapperSettings) -> None:
    current_val = trainer.gradient_clip_val
    current_algorithm = getattr(trainer.gradient_clip_algorithm, "value", trainer.gradient_clip_algorithm)
    if settings.gradient_clip_val is None:
        if current_val is not None:
            raise ValueError(
                f"the Trainer clips gradients (gradient_clip_val={current_val}) but optim_wrapper has no clip_grad"
            )
        return
    if current_val is None:
        from lightning.pytorch.utilities import GradClipAlgorithmType

        trainer.gradient_clip_val = settings.gradient_clip_val
        trainer.gradient_clip_algorithm = GradClipAlgorithmType(settings.gradient_clip_algorithm)
        _logger.info(
            f"gradient_clip_val={settings.gradient_clip_val}, gradient_clip_algorithm="
            f"{settings.gradient_clip_algorithm!r} (optim_wrapper.clip_grad)"
        )
        return
    if float(current_val) != settings.gradient_clip_val or (current_algorithm or "norm") != (
        settings.gradient_clip_algorithm
    ):
        raise ValueError(
            f"optim_wrapper.clip_grad asks for {settings.gradient_clip_algorithm} clipping at "
            f"{settings.gradient_clip_val} but the Trainer has gradient_clip_val={current_val}, "
            f"gradient_clip_algorithm={current_algorithm!r}"
        )


def training_lengths(trainer: Any) -> TrainingLengths:
    """MMEngine's ``max_epochs``, ``max_iters`` and ``len(train_dataloader)`` for this Trainer's ``fit``.

    Iteration-based training (``max_epochs=-1`` with ``max_steps``) has one "epoch" and as
    many iterations as the batches ``max_steps`` optimizer steps take, since MMEngine counts
    batches: ``max_steps * accumulate_grad_batches``, less where Lightning also steps at an
    epoch's end (an epoch length that is not a multiple of ``accumulate_grad_batches``), as
    ``runner.max_iters`` counts them.
    """
    load_train_dataloader(trainer)
    batches = trainer.num_training_batches
    epoch_length = int(batches) if batches not in (None, float("inf")) else None
    accumulate = int(trainer.accumulate_grad_batches)
    steps = int(trainer.max_steps) if trainer.max_steps is not None and trainer.max_steps > 0 else None
    by_steps = None if steps is None else batches_for_steps(steps, epoch_length or float("inf"), accumulate)
    if trainer.max_epochs == -1 and by_steps is not None:
        return TrainingLengths(1, by_steps, epoch_length)
    max_epochs = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs > 0 else None
    max_iters = max_epochs * epoch_length if max_epochs is not None and epoch_length is not None else None
    if max_iters is None:
        max_iters = by_steps
    return TrainingLengths(max_epochs, max_iters, epoch_length)


# ------------------------------------------------------------------------------------------ lr scaling
def scale_lr(optimizer: torch.optim.Optimizer, auto_scale_lr: Any, trainer: Any) -> None:
    """MMEngine's ``auto_scale_lr``: multiply every group's lr by (world size x batch size) / ``base_batch_size``."""
    if not auto_scale_lr:
        return
    auto_scale_lr = without_delete_keys(auto_scale_lr)  # merge syntax left over, ignored as MMEngine does
    unknown = sorted(set(auto_scale_lr) - {"enable", "base_batch_size"})
    if unknown:  # checked first: a misspelt 'enable' would otherwise turn the scaling off without a word
        raise OptimConfigError(f"auto_scale_lr: unknown keys {unknown}; supported: ['base_batch_size', 'enable']")
    enable = auto_scale_lr.get("enable", False)
    if not isinstance(enable, bool):
        raise OptimConfigError(f"auto_scale_lr.enable must be True or False, got {enable!r}")
    if not enable:
        return
    if "base_batch_size" not in auto_scale_lr:  # an AssertionError too, as in MMEngine
        raise OptimConfigError("auto_scale_lr.enable=True needs base_batch_size")
    base_batch_size = auto_scale_lr["base_batch_size"]
    if isinstance(base_batch_size, bool) or not isinstance(base_batch_size, int) or base_batch_size <= 0:
        raise OptimConfigError(f"auto_scale_lr.base_batch_size must be a positive int, got {base_batch_size!r}")
    if trainer is None:
        raise ValueError(
            "auto_scale_lr.enable=True needs the Trainer (call mmengine_optimizers in configure_optimizers)"
        )
    load_train_dataloader(trainer)
    batch_size = _batch_size(trainer.train_dataloader)
    real = int(trainer.world_size) * batch_size
    base = auto_scale_lr["base_batch_size"]
    ratio = float(real) / float(base)
    _logger.info(
        f"LR is set based on batch size of {base} and the current batch size is {real}. "
        f"Scaling the original LR by {ratio}."
    )
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * ratio


def _batch_size(loader: Any) -> int:
    if isinstance(loader, (list, tuple)):
        loader = loader[0]
    loader = getattr(loader, "loader", loader)
    size = getattr(loader, "batch_size", None)
    if size is None:
        size = getattr(getattr(loader, "batch_sampler", None), "batch_size", None)
    if not isinstance(size, int):
        raise ValueError(f"auto_scale_lr: cannot read the batch size of the train dataloader {loader!r}")
    return size


# ----------------------------------------------------------------------------------------- schedulers
def build_param_schedulers(
    param_scheduler: Any, optimizer: torch.optim.Optimizer, lengths: Optional[TrainingLengths] = None
) -> list[ParamScheduler]:
    """Build a ``param_scheduler`` section (one dict or a list of dicts) in order, as MMEngine's Runner does.

    An entry that is already a scheduler is kept as it is, as MMEngine's ``build_param_scheduler``
    keeps it.
    """
    if param_scheduler is None:
        return []
    if isinstance(param_scheduler, ParamScheduler):
        return [param_scheduler]
    if isinstance(param_scheduler, Mapping) and "type" not in param_scheduler:
        raise ValueError(
            "param_scheduler is a dict of per-optimizer schedules; mmengine_optimizers builds one optimizer, "
            f"so give a dict with 'type' or a list of them (got keys {sorted(param_scheduler)})"
        )
    entries = [param_scheduler] if isinstance(param_scheduler, Mapping) else param_scheduler
    if not isinstance(entries, Sequence):
        raise TypeError(f"param_scheduler must be a dict or a list of dicts, got {type(param_scheduler).__name__}")
    lengths = lengths or TrainingLengths()
    return [
        entry
        if isinstance(entry, ParamScheduler)
        else build_param_scheduler(
            entry,
            optimizer,
            epoch_length=lengths.epoch_length,
            max_epochs=lengths.max_epochs,
            max_iters=lengths.max_iters,
        )
        for entry in entries
    ]


def _check_plateau_has_validation(schedulers: list[ParamScheduler], module: nn.Module, trainer: Any) -> None:
    plateau = [s for s in schedulers if s.need_val_args]
    if not plateau:
        return
    from lightning.pytorch.utilities.model_helpers import is_overridden

    validates = is_overridden("validation_step", module) and trainer.limit_val_batches != 0
    if not validates:
        names = ", ".join(f"{type(s).__name__}(monitor={getattr(s, 'monitor', None)!r})" for s in plateau)
        raise ValueError(
            f"{names} steps on validation metrics, but this fit does not validate (no validation_step or "
            "limit_val_batches=0)"
        )


def _is_param_scheduler_hook(hook: Any) -> bool:
    # by class name: this package's hooks sit above optim/ and are not imported from here
    return any(cls.__name__ == "ParamSchedulerHook" for cls in type(hook).__mro__)


def _warn_without_hook(trainer: Any) -> None:
    for callback in getattr(trainer, "callbacks", []):
        if any(_is_param_scheduler_hook(hook) for hook in getattr(callback, "hooks", [])):
            return
    warnings.warn(
        "mmengine_optimizers: no HookBridge with a ParamSchedulerHook is among the Trainer's callbacks, so Lightning "
        "steps the MMEngine schedulers at its own points (after optimizer steps, epoch schedulers after "
        "validation) instead of MMEngine's",
        UserWarning,
        stacklevel=3,
    )


# ------------------------------------------------------------------------------------------- the entry
def mmengine_optimizers(
    module: nn.Module,
    cfg: ConfigLike,
    *,
    max_epochs: Optional[int] = None,
    max_iters: Optional[int] = None,
    epoch_length: Optional[int] = None,
) -> Any:
    """Return for ``configure_optimizers``: the config's optimizer and parameter schedulers.

    Args:
        module: the LightningModule (or any module) whose parameters are optimized.
        cfg: a config holding ``optim_wrapper`` (required), ``param_scheduler``, ``auto_scale_lr``
            and ``custom_imports`` (optional): a dict, an ``mmengine.Config`` or a config file path.
            The ``custom_imports`` modules are imported first, as ``mmengine.Config.fromfile``
            imports them, so that a module registering an optimizer in ``OPTIMIZERS`` can be named there.
        max_epochs, max_iters, epoch_length: override the lengths read from the attached Trainer
            (the default ``end`` of schedulers and the ``convert_to_iter_based`` factor); needed only
            when the module is not attached to a Trainer.

    Returns:
        The optimizer alone when there are no schedulers, otherwise ``([optimizer], [configs])`` with
        one Lightning scheduler config per scheduler (``interval`` 'epoch' or 'step' by its ``by_epoch``).
    """
    config = _load_config(cfg)
    import_custom_modules(config.get("custom_imports"))
    if config.get("optim_wrapper") is None:
        raise ValueError(f"the config has no optim_wrapper (its keys: {sorted(config)})")
    optimizer_cfg, paramwise, settings = parse_optim_wrapper(config["optim_wrapper"])
    trainer = attached_trainer(module)
    if trainer is not None:
        apply_wrapper_settings(trainer, settings)
    optimizer = build_optimizer(module, optimizer_cfg, paramwise)
    scale_lr(optimizer, config.get("auto_scale_lr"), trainer)
    param_scheduler = config.get("param_scheduler")
    if not param_scheduler:
        return optimizer
    lengths = training_lengths(trainer) if trainer is not None else TrainingLengths()
    for name, value in (("max_epochs", max_epochs), ("max_iters", max_iters), ("epoch_length", epoch_length)):
        if value is not None:
            setattr(lengths, name, value)
    schedulers = build_param_schedulers(param_scheduler, optimizer, lengths)
    if trainer is not None:
        _check_plateau_has_validation(schedulers, module, trainer)
        _warn_without_hook(trainer)
    configs = [{"scheduler": s, "interval": "epoch" if s.by_epoch else "step"} for s in schedulers]
    return [optimizer], configs
