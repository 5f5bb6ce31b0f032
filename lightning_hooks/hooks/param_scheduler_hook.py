"""ParamSchedulerHook: steps the schedulers of ``configure_optimizers`` at MMEngine's points.

MMEngine's rules (``mmengine.hooks.ParamSchedulerHook``):

* iteration-based schedulers (``by_epoch=False``) step after every training
  iteration, i.e. every batch, also under gradient accumulation (a warning names
  each torch scheduler with ``interval='step'`` that this makes step more often
  than Lightning would);
* epoch-based schedulers step in ``after_train_epoch``, before that epoch's
  validation (Lightning would step them after validation);
* plateau schedulers step in ``after_val_epoch`` with the validation metrics.

A scheduler's ``by_epoch`` is its own ``by_epoch`` attribute when it has one,
otherwise its Lightning ``interval`` (``'epoch'`` → True, ``'step'`` → False).

Taking over from Lightning (the Lightning glue of this hook): Lightning steps
an ``LRSchedulerConfig`` when its batch or epoch count is a multiple of
``config.frequency``. In ``before_train`` the hook records what it needs from each
config and sets ``config.frequency`` to :data:`TAKEN_OVER`, a count Lightning
never reaches, so nothing is stepped twice; ``interval`` is left alone, so that
Lightning's ``LearningRateMonitor`` still reports the scheduler's learning rates.
``after_train`` (or ``after_run`` when training fails) puts the original
frequencies back. The ``frequency`` of a config is
honoured (every ``frequency`` iterations or epochs; a plateau scheduler after the
validation of every ``frequency``-th epoch). Left to Lightning, and documented as
such: configs in manual optimization (Lightning never steps those either),
iteration-based plateau schedulers (MMEngine never gives them metrics, so it
cannot step them meaningfully) and torch plateau schedulers in a fit without
validation (MMEngine's moment to step them never comes).

With ``default_hooks=dict(param_scheduler=None)`` the hook is absent and
Lightning's own stepping is untouched.

Called without a Trainer (``before_train`` never took schedulers over: MMEngine's
own Runner, or a mocked runner as in MMEngine's unit tests), the hook steps
``runner.param_schedulers`` (a list, or a dict of lists) exactly as MMEngine's does.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from torch.optim.lr_scheduler import ReduceLROnPlateau

from ..optim.schedulers import ParamScheduler
from ..registry import HOOKS
from ..runner import warn_during_run
from .hook import DATA_BATCH, Hook

if TYPE_CHECKING:
    from ..runner import RunnerView

__all__ = ["TAKEN_OVER", "ParamSchedulerHook", "runner_schedulers"]

#: The ``frequency`` given to Lightning scheduler configs while this hook steps them: a batch or
#: epoch count Lightning never reaches.
TAKEN_OVER = 2**62

_SCHEDULERS_TYPE_ERROR = (
    "runner.param_schedulers should be list of ParamScheduler or a dict containing list of ParamScheduler"
)


def runner_schedulers(runner: Any) -> list[list[Any]]:
    """MMEngine's ``runner.param_schedulers`` as groups of schedulers (``[]`` when it is None).

    A list is one group; a dict gives one group per value. Anything else is
    MMEngine's ``TypeError``.
    """
    schedulers = getattr(runner, "param_schedulers", None)
    if schedulers is None:
        return []
    if isinstance(schedulers, list):
        return [schedulers]
    if isinstance(schedulers, dict) and all(isinstance(group, list) for group in schedulers.values()):
        return list(schedulers.values())
    raise TypeError(f"{_SCHEDULERS_TYPE_ERROR}, but got {schedulers!r}")


@dataclass
class _Scheduled:
    """One scheduler this hook steps, with what it needs from its Lightning config."""

    scheduler: Any
    by_epoch: bool
    plateau: str  # '' (plain), 'torch' (ReduceLROnPlateau: step(value)) or 'mmengine' (step(metrics))
    monitor: Optional[str]
    frequency: int
    strict: bool
    config: Any
    interval: str
    #: The config's own ``frequency``, put back when the hook gives the config back.
    lightning_frequency: Any = 1
    #: Whether Lightning's ``interval='step'`` set the counting (not an MMEngine scheduler class).
    from_interval: bool = False


def _plateau_kind(scheduler: Any, config: Any) -> str:
    if isinstance(scheduler, ReduceLROnPlateau) or (
        getattr(config, "reduce_on_plateau", False) and not getattr(scheduler, "need_val_args", False)
    ):
        return "torch"
    if getattr(scheduler, "need_val_args", False):
        return "mmengine"
    return ""


def _by_epoch(scheduler: Any, interval: str) -> bool:
    explicit = getattr(scheduler, "by_epoch", None)
    if isinstance(explicit, bool):
        return explicit
    if interval not in ("step", "epoch"):
        raise ValueError(f"lr scheduler interval must be 'step' or 'epoch', got {interval!r} for {scheduler!r}")
    return interval == "epoch"


def take_over_lightning_stepping(trainer: Any, left: Optional[list[Any]] = None) -> list[_Scheduled]:
    """Record the Trainer's scheduler configs and stop Lightning from stepping them (see module docstring).

    ``left``, when given, receives the torch plateau schedulers left to Lightning because the fit
    does not validate (MMEngine steps plateau schedulers after validations only).
    """
    module = trainer.lightning_module
    if module is None or not module.automatic_optimization:
        return []
    validates = bool(getattr(trainer, "enable_validation", True))
    taken = []
    for config in getattr(trainer, "lr_scheduler_configs", None) or []:
        if config.frequency == TAKEN_OVER:
            continue
        scheduler = config.scheduler
        # MMEngine's scheduler classes are built with a by_epoch; anything else counts as Lightning's interval says
        from_interval = config.interval == "step" and not isinstance(scheduler, ParamScheduler)
        by_epoch = _by_epoch(scheduler, config.interval)
        plateau = _plateau_kind(scheduler, config)
        if plateau and not by_epoch:
            continue  # left to Lightning: MMEngine never steps iteration-based plateau schedulers with metrics
        if plateau == "torch" and not config.monitor:
            raise ValueError(f"the plateau scheduler {scheduler!r} needs a 'monitor' key in its lr_scheduler config")
        if plateau == "torch" and not validates:
            if left is not None:
                left.append(config)
            continue  # no validation to step it after: Lightning steps it with the metric it monitors
        try:
            scheduler.by_epoch = by_epoch
        except AttributeError:
            pass
        taken.append(
            _Scheduled(
                scheduler=scheduler,
                by_epoch=by_epoch,
                plateau=plateau,
                monitor=config.monitor,
                frequency=max(int(config.frequency or 1), 1),
                strict=bool(config.strict),
                config=config,
                interval=config.interval,
                lightning_frequency=config.frequency,
                from_interval=from_interval,
            )
        )
        config.frequency = TAKEN_OVER
    return taken


def give_back_lightning_stepping(taken: Sequence[_Scheduled]) -> None:
    """Restore the original ``frequency`` of every config taken over."""
    for entry in taken:
        if entry.config.frequency == TAKEN_OVER:
            entry.config.frequency = entry.lightning_frequency


def _warn_batch_stepping(taken: Sequence[_Scheduled], accumulate: Any, logger: Any) -> None:
    """Say so when a Lightning ``interval='step'`` scheduler will step more often than Lightning steps it.

    Under gradient accumulation this hook steps iteration-based schedulers every batch, as
    MMEngine counts iterations; Lightning steps an ``interval='step'`` config once per optimizer
    step. A scheduler with its own ``by_epoch`` (MMEngine's classes) asked for MMEngine's counting.
    """
    if not isinstance(accumulate, int) or accumulate <= 1:
        return
    names = [type(entry.scheduler).__name__ for entry in taken if entry.from_interval and not entry.by_epoch]
    if not names:
        return
    message = (
        f"ParamSchedulerHook steps the interval='step' scheduler(s) {', '.join(names)} after every batch, "
        f"as MMEngine counts iterations: with accumulate_grad_batches={accumulate} that is {accumulate} steps "
        "per optimizer step, where Lightning would step once. To keep Lightning's stepping, pass "
        "default_hooks=dict(param_scheduler=None) to HookBridge; to keep this hook, count the schedule in "
        f"batches (e.g. {accumulate}x the step sizes and lengths)."
    )
    warn_during_run(logger, message)


def _refuse_plateau_frequency_by_iterations(taken: Sequence[_Scheduled], by_epoch: bool) -> None:
    """A plateau scheduler's ``frequency`` counts epochs; iteration-based training validates by iterations."""
    if by_epoch:
        return
    for entry in taken:
        if entry.plateau and entry.frequency > 1:
            raise ValueError(
                f"{type(entry.scheduler).__name__} has frequency={entry.frequency}: ParamSchedulerHook steps a "
                "plateau scheduler after validations, with frequency counting epochs, and this is iteration-based "
                "training (max_steps with max_epochs=-1), whose validations are counted in iterations. Use "
                "frequency=1 (a step after every validation) and set how often to validate, or pass "
                "default_hooks=dict(param_scheduler=None) to HookBridge to keep Lightning's stepping."
            )


def _say_left_to_lightning(left: list[Any], logger: Any) -> None:
    """One log line per plateau scheduler the fit leaves to Lightning because nothing validates."""
    for config in left:
        logger.info(
            f"{type(config.scheduler).__name__} (monitor={config.monitor!r}) is not stepped by ParamSchedulerHook: "
            "it steps plateau schedulers after validations, as MMEngine does, and this fit has no validation. "
            "Lightning steps it with the metric it monitors."
        )


def _warn_step_frequency(taken: Sequence[_Scheduled], epoch_batches: Any, logger: Any) -> None:
    """Say so when an ``interval='step'`` config's ``frequency`` falls on other batches than Lightning's.

    Lightning counts a step frequency in batches of the epoch, from 1 again each epoch; this hook
    counts MMEngine's iterations, which run on across epochs. They agree when the epoch's length
    is a multiple of the frequency.
    """
    if not isinstance(epoch_batches, int) or epoch_batches <= 0:
        return
    for entry in taken:
        if entry.from_interval and not entry.by_epoch and entry.frequency > 1 and epoch_batches % entry.frequency:
            warn_during_run(
                logger,
                f"ParamSchedulerHook steps {type(entry.scheduler).__name__} (interval='step', "
                f"frequency={entry.frequency}) every {entry.frequency} iterations of the run, as MMEngine counts "
                f"them; Lightning counts the frequency within each epoch of {epoch_batches} batches, starting "
                "again at every epoch, so it would step on other batches. To keep Lightning's stepping, pass "
                "default_hooks=dict(param_scheduler=None) to HookBridge.",
            )


@HOOKS.register_module()
class ParamSchedulerHook(Hook):
    """Steps the Trainer's LR schedulers where MMEngine steps its parameter schedulers."""

    priority = "LOW"

    # Class-level defaults too: MMEngine's hook has no __init__, so subclasses written for it
    # (mmyolo's) do not call this one.
    _scheduled: Sequence[_Scheduled] = ()
    #: Whether a Trainer's schedulers were taken over (else ``runner.param_schedulers`` is stepped).
    _with_trainer = False
    #: Set while a subclass's own ``before_train`` runs after the take-over (see __init_subclass__).
    _taken_over_now = False

    def __init__(self) -> None:
        self._scheduled = []
        self._with_trainer = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass's own ``before_train`` runs after the take-over from Lightning.

        MMEngine's hook has no ``before_train``, so subclasses written for it (mmyolo's) define one
        without calling ``super().before_train``; the schedulers must still be taken over, or
        Lightning and this hook would both step them.
        """
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("before_train")
        if own is None or getattr(own, "_takes_over_first", False):
            return

        @functools.wraps(own)
        def before_train(self: ParamSchedulerHook, runner: RunnerView) -> None:
            if self._taken_over_now:  # an outer subclass's wrapper took over already
                own(self, runner)
                return
            ParamSchedulerHook.before_train(self, runner)
            self._taken_over_now = True
            try:
                own(self, runner)
            finally:
                self._taken_over_now = False

        before_train._takes_over_first = True  # type: ignore[attr-defined]
        cls.before_train = before_train  # type: ignore[method-assign]

    @property
    def scheduled(self) -> list[Any]:
        """The schedulers this hook is stepping in the current ``fit``."""
        return [entry.scheduler for entry in self._scheduled]

    def before_train(self, runner: RunnerView) -> None:
        """Take the schedulers over from Lightning for this ``fit``."""
        if self._taken_over_now:  # called as super().before_train from a subclass's own
            return
        self._release()
        trainer = getattr(runner, "trainer", None)
        if trainer is None:
            return  # MMEngine's own Runner: runner.param_schedulers is stepped
        self._with_trainer = True
        left: list[Any] = []
        self._scheduled = take_over_lightning_stepping(trainer, left)
        try:
            _refuse_plateau_frequency_by_iterations(self._scheduled, runner.by_epoch)
        except ValueError:
            self._release()
            raise
        _say_left_to_lightning(left, runner.logger)
        _warn_batch_stepping(self._scheduled, getattr(trainer, "accumulate_grad_batches", 1), runner.logger)
        _warn_step_frequency(self._scheduled, getattr(trainer, "num_training_batches", None), runner.logger)

    def idle_stages(self) -> frozenset[str]:
        """``after_train_iter`` while stepping the Trainer's schedulers, none of them per iteration."""
        if (
            self._with_trainer
            and not any(not entry.by_epoch for entry in self._scheduled)
            and type(self).after_train_iter is ParamSchedulerHook.after_train_iter
        ):
            return frozenset({"after_train_iter"})
        return frozenset()

    def after_train_iter(
        self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Optional[dict] = None
    ) -> None:
        """Step the iteration-based schedulers (every batch, as MMEngine's iterations)."""
        if not self._with_trainer:
            self._step_runner_schedulers(runner, by_epoch=False)
            return
        if not self._scheduled:
            return
        count = runner.iter + 1
        for entry in self._scheduled:
            if not entry.by_epoch and count % entry.frequency == 0:
                entry.scheduler.step()

    def after_train_epoch(self, runner: RunnerView) -> None:
        """Step the epoch-based schedulers (plateau ones from MMEngine only count the epoch)."""
        if not self._with_trainer:
            self._step_runner_schedulers(runner, by_epoch=True)
            return
        self._drop_replaced(runner)
        if not self._scheduled:
            return
        count = runner.epoch + 1
        for entry in self._scheduled:
            if entry.by_epoch and entry.plateau != "torch" and count % entry.frequency == 0:
                entry.scheduler.step()

    def _drop_replaced(self, runner: RunnerView) -> None:
        """Stop stepping the schedulers whose config left the Trainer's list, and say so.

        Lightning's ``StochasticWeightAveraging`` puts its ``SWALR`` in place of the first
        config when averaging starts; Lightning steps what replaced it.
        """
        configs = getattr(getattr(runner, "trainer", None), "lr_scheduler_configs", None) or []
        present = {id(config) for config in configs}
        gone = [entry for entry in self._scheduled if id(entry.config) not in present]
        if not gone:
            return
        give_back_lightning_stepping(gone)
        self._scheduled = [entry for entry in self._scheduled if id(entry.config) in present]
        names = ", ".join(type(entry.scheduler).__name__ for entry in gone)
        runner.logger.info(
            f"ParamSchedulerHook no longer steps {names}: another callback (StochasticWeightAveraging, for "
            "one) replaced it in the Trainer's scheduler configs, and Lightning steps what replaced it."
        )

    def after_val_epoch(self, runner: RunnerView, metrics: Optional[dict[str, float]] = None) -> None:
        """Step the plateau schedulers with the validation metrics."""
        if metrics is None:
            return
        if not self._with_trainer:
            for group in runner_schedulers(runner):
                for scheduler in group:
                    if getattr(scheduler, "by_epoch", False) and getattr(scheduler, "need_val_args", False) is True:
                        scheduler.step(metrics)
            return
        self._drop_replaced(runner)
        for entry in self._scheduled:
            if not entry.plateau or runner.epoch % entry.frequency:
                continue  # frequency counts completed epochs, as Lightning counts it for plateau schedulers
            if entry.plateau == "mmengine":
                entry.scheduler.step(metrics)
            else:
                self._step_torch_plateau(entry, metrics)

    @staticmethod
    def _step_runner_schedulers(runner: Any, by_epoch: bool) -> None:
        """MMEngine's stepping of ``runner.param_schedulers`` (no Trainer took them over)."""
        for group in runner_schedulers(runner):
            for scheduler in group:
                if bool(scheduler.by_epoch) == by_epoch:
                    scheduler.step()

    @staticmethod
    def _step_torch_plateau(entry: _Scheduled, metrics: dict[str, float]) -> None:
        if entry.monitor in metrics:
            entry.scheduler.step(float(metrics[entry.monitor]))
            return
        message = (
            f"ReduceLROnPlateau monitors {entry.monitor!r}, which validation did not report; "
            f"available metrics: {sorted(metrics)}"
        )
        if entry.strict:
            raise KeyError(message)
        warnings.warn(message + ". Skipping this step (strict=False).", RuntimeWarning, stacklevel=2)

    def after_train(self, runner: RunnerView) -> None:
        """Give stepping back to Lightning."""
        self._release()

    def after_run(self, runner: RunnerView) -> None:
        """Give stepping back if training ended without ``after_train`` (an exception)."""
        self._release()

    def _release(self) -> None:
        give_back_lightning_stepping(self._scheduled)
        self._scheduled = []

    def __repr__(self) -> str:
        return "ParamSchedulerHook()"
