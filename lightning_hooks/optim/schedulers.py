"""MMEngine's parameter schedulers, with MMEngine's class names, arguments and numbers.

Each scheduler sets one hyper-parameter (``param_name``: ``'lr'``, ``'momentum'``,
``'weight_decay'``, ...) of every parameter group of a torch optimizer, in MMEngine's
"chainable" form: a step computes the new value from the group's current value, so
several schedulers compose, each acting only inside its own window
``begin <= step < end`` (``end`` exclusive). Construction performs the first step,
exactly as in MMEngine, so the optimizer already holds the value of step 0.

The ``*LR`` classes fix ``param_name='lr'``; the ``*Momentum`` classes schedule SGD's
``momentum`` or Adam's ``betas[0]``; the ``*ParamScheduler`` classes take any
``param_name`` (e.g. ``'weight_decay'``). ``QuadraticWarmup*`` are mmdet's.

Schedulers are built from config dicts by :func:`build_param_scheduler` through the
:data:`PARAM_SCHEDULERS` registry, with MMEngine's ``convert_to_iter_based`` and
its default ``end`` (the training's epochs for ``by_epoch=True``, its iterations
otherwise).

They subclass torch's ``LRScheduler`` only so that Lightning accepts them from
``configure_optimizers``; none of torch's scheduler machinery is used.
:class:`~lightning_hooks.hooks.ParamSchedulerHook` steps them where MMEngine does.
Their ``state_dict`` holds plain values only, so checkpoints load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Optional, Union

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ..errors import OptimConfigError, OptimKeyError
from ..registry import Registry, mmengine_class_name, to_plain

__all__ = [
    "INF",
    "PARAM_SCHEDULERS",
    "ConstantLR",
    "ConstantMomentum",
    "ConstantParamScheduler",
    "CosineAnnealingLR",
    "CosineAnnealingMomentum",
    "CosineAnnealingParamScheduler",
    "CosineRestartLR",
    "CosineRestartMomentum",
    "CosineRestartParamScheduler",
    "ExponentialLR",
    "ExponentialMomentum",
    "ExponentialParamScheduler",
    "LinearLR",
    "LinearMomentum",
    "LinearParamScheduler",
    "MultiStepLR",
    "MultiStepMomentum",
    "MultiStepParamScheduler",
    "OneCycleLR",
    "OneCycleParamScheduler",
    "ParamScheduler",
    "PolyLR",
    "PolyMomentum",
    "PolyParamScheduler",
    "QuadraticWarmupLR",
    "QuadraticWarmupMomentum",
    "QuadraticWarmupParamScheduler",
    "ReduceOnPlateauLR",
    "ReduceOnPlateauMomentum",
    "ReduceOnPlateauParamScheduler",
    "StepLR",
    "StepMomentum",
    "StepParamScheduler",
    "build_param_scheduler",
]

#: MMEngine's "no end": ``int(1e9)`` steps.
INF = int(1e9)

#: Scheduler classes by name (MMEngine's and mmdet's names).
PARAM_SCHEDULERS = Registry("parameter scheduler")

_logger = logging.getLogger("lightning_hooks")


def _check_optimizer(optimizer: Any) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer should be an Optimizer (torch.optim.Optimizer), got {type(optimizer).__name__}")


def _check_param_name(cls_name: str, optimizer: Optimizer, param_name: str) -> None:
    for i, group in enumerate(optimizer.param_groups):
        if param_name not in group:
            keys = sorted(k for k in group if k != "params")
            raise OptimKeyError(
                f"{cls_name}: param_name={param_name!r} is not a setting of the optimizer "
                f"{type(optimizer).__name__} (param group {i} has {keys})"
            )


class ParamScheduler(LRScheduler):
    """Base of every scheduler: MMEngine's ``_ParamScheduler`` (window, counters, first step).

    Args:
        optimizer: the torch optimizer whose parameter groups are scheduled.
        param_name: the group setting to schedule (``'lr'``, ``'momentum'``, ...).
        begin: first step (epoch or iteration) at which the scheduler acts.
        end: step at which it stops acting (exclusive); must be greater than ``begin``.
        last_step: index of the last step, for resuming without a state dict; ``-1`` for a
            fresh start (the groups must then hold ``initial_<param_name>`` otherwise).
        by_epoch: whether steps are epochs (stepped after each training epoch) or iterations.
        verbose: log every value set.
    """

    #: Set on plateau schedulers: ``step(metrics)`` after validation.
    need_val_args: ClassVar[bool] = False
    #: Arguments multiplied by the epoch length by ``convert_to_iter_based``.
    _scaled_by_epoch_length: ClassVar[tuple[str, ...]] = ()
    #: Whether ``convert_to_iter_based`` rounds ``begin``/``end`` down to integers (mmdet's quadratic warmup does not).
    _int_window: ClassVar[bool] = True

    def __init__(
        self,
        optimizer: Optimizer,
        param_name: str,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        self._setup(optimizer, param_name, begin, end, last_step, by_epoch, verbose)
        self._global_step = -1
        self.step()

    def _setup(
        self,
        optimizer: Optimizer,
        param_name: str,
        begin: int,
        end: int,
        last_step: int,
        by_epoch: bool,
        verbose: bool,
    ) -> None:
        """Everything of the constructor but the first step (plateau schedulers take no first step)."""
        name = type(self).__name__
        _check_optimizer(optimizer)
        _check_param_name(name, optimizer, param_name)
        if end <= begin:
            raise OptimConfigError(
                f"{name}: end should be larger than begin (end is exclusive), got begin={begin}, end={end}"
            )
        if not isinstance(last_step, int) or isinstance(last_step, bool) or last_step < -1:
            raise OptimConfigError(f"{name}: last_step must be an int >= -1, got {last_step!r}")
        if not isinstance(by_epoch, bool):
            raise TypeError(f"{name}: by_epoch must be a bool, got {by_epoch!r}")
        if not isinstance(verbose, bool):
            raise TypeError(f"{name}: verbose must be True or False, got {verbose!r}")
        self.optimizer = optimizer
        self.param_name = param_name
        self.begin = begin
        self.end = end
        self.by_epoch = by_epoch
        self.verbose = verbose
        initial = f"initial_{param_name}"
        if last_step == -1:
            for group in optimizer.param_groups:
                group.setdefault(initial, group[param_name])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if initial not in group:
                    raise OptimKeyError(
                        f"{name}: param {initial!r} is not specified in param_groups[{i}], needed to resume at "
                        f"last_step={last_step} (resume the optimizer too, or build the scheduler with last_step=-1)"
                    )
        self.base_values = [group[initial] for group in optimizer.param_groups]
        self.last_step = last_step

    # -- construction from an epoch-based config ----------------------------------------------
    @classmethod
    def build_iter_from_epoch(
        cls,
        *args: Any,
        begin: int = 0,
        end: int = INF,
        by_epoch: bool = True,
        epoch_length: Optional[int] = None,
        **kwargs: Any,
    ) -> ParamScheduler:
        """Build the iteration-based equivalent of an epoch-based config (MMEngine's ``convert_to_iter_based``).

        ``begin``, ``end`` and the class's epoch-counted arguments (``step_size``, ``milestones``,
        ``T_max``, ``periods``, ``total_steps``) are multiplied by ``epoch_length``.
        """
        if not by_epoch:
            raise OptimConfigError(
                f"{cls.__name__}: convert_to_iter_based=True needs an epoch-based config, got by_epoch=False"
            )
        if not isinstance(epoch_length, int) or epoch_length <= 0:
            raise OptimConfigError(f"{cls.__name__}: epoch_length must be a positive int, got {epoch_length!r}")
        for key in cls._scaled_by_epoch_length:
            value = kwargs.get(key)
            if value is None:
                continue
            if isinstance(value, (list, tuple)):
                kwargs[key] = [v * epoch_length for v in value]
            else:
                kwargs[key] = value * epoch_length
        if cls._int_window:
            begin = int(begin * epoch_length)
            if end != INF:
                end = int(end * epoch_length)
        else:
            begin = begin * epoch_length
            if end != INF:
                end = end * epoch_length
        factory: Any = cls
        return factory(*args, begin=begin, end=end, by_epoch=False, **kwargs)  # type: ignore[no-any-return]

    # -- stepping -------------------------------------------------------------------------------
    def _get_value(self) -> list[float]:
        """The new value of every group for ``self.last_step`` (chainable form)."""
        raise NotImplementedError

    def _current(self) -> list[Any]:
        return [group[self.param_name] for group in self.optimizer.param_groups]

    def step(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Advance one step; inside ``[begin, end)`` set every group's value for the new step."""
        self._global_step += 1
        if self.begin <= self._global_step < self.end:
            self.last_step += 1
            self._assign(self._get_value())
        self._last_value = self._current()

    def _assign(self, values: Sequence[float]) -> None:
        for i, (group, value) in enumerate(zip(self.optimizer.param_groups, values, strict=True)):
            group[self.param_name] = value
            self._log_value(i, value)

    def _log_value(self, group: int, value: float) -> None:
        if self.verbose:
            _logger.info(f"Adjusting parameter value of group {group} to {value:.4e}.")

    def get_last_value(self) -> list[Any]:
        """The values set by the last step, one per parameter group."""
        return self._last_value

    def get_last_lr(self) -> list[float]:  # type: ignore[override]
        """The current values (named after torch's API, which Lightning's tools call)."""
        return list(self._last_value)

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer, as plain values (``Counter`` as ``dict``)."""
        state = {}
        for key, value in self.__dict__.items():
            if key == "optimizer" or callable(value):
                continue
            state[key] = dict(value) if isinstance(value, Counter) else value
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the attributes written by :meth:`state_dict`."""
        self.__dict__.update(state_dict)
        milestones = self.__dict__.get("milestones")
        if isinstance(milestones, Mapping):
            self.__dict__["milestones"] = Counter(milestones)

    def __repr__(self) -> str:
        settings = ", ".join(
            f"{key}={self.__dict__[key]!r}"
            for key in ("param_name", "begin", "end", "by_epoch")
            if key in self.__dict__
        )  # a scheduler whose construction failed has only some of them
        return f"{type(self).__name__}({settings})"


# ----------------------------------------------------------------------------------- generic schedulers
@PARAM_SCHEDULERS.register_module()
class StepParamScheduler(ParamScheduler):
    """Multiply the value by ``gamma`` every ``step_size`` steps."""

    _scaled_by_epoch_length = ("step_size",)

    def __init__(
        self,
        optimizer: Optimizer,
        param_name: str,
        step_size: Union[int, float],
        gamma: float = 0.1,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        # A number, as MMEngine takes it: convert_to_iter_based=True makes step_size=1.5 six iterations.
        if isinstance(step_size, bool) or not isinstance(step_size, (int, float)) or not 0 < step_size < math.inf:
            raise OptimConfigError(f"{type(self).__name__}: step_size must be a positive number, got {step_size!r}")
        self.step_size = step_size
        self.gamma = _check_gamma(type(self).__name__, gamma)
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        if self.last_step == 0 or self.last_step % self.step_size != 0:
            return self._current()
        return [value * self.gamma for value in self._current()]


def _check_gamma(name: str, gamma: Any) -> float:
    """A decay factor: a number >= 0 (a negative one would flip the sign of the learning rate)."""
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or gamma < 0:
        raise OptimConfigError(f"{name}: gamma must be a number >= 0, got {gamma!r}")
    return gamma


@PARAM_SCHEDULERS.register_module()
class MultiStepParamScheduler(ParamScheduler):
    """Multiply the value by ``gamma`` at each of ``milestones`` (repeated milestones multiply repeatedly)."""

    _scaled_by_epoch_length = ("milestones",)

    def __init__(
        self,
        optimizer: Optimizer,
        param_name: str,
        milestones: Sequence[int],
        gamma: float = 0.1,
        last_step: int = -1,
        begin: int = 0,
        end: int = INF,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        name = type(self).__name__
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence):
            raise OptimConfigError(f"{name}: milestones must be a list of steps, got {milestones!r}")
        if not all(isinstance(m, (int, float)) and not isinstance(m, bool) for m in milestones):
            raise OptimConfigError(f"{name}: milestones must be numbers of steps, got {list(milestones)!r}")
        self.milestones: Counter[int] = Counter(milestones)
        self.gamma = _check_gamma(name, gamma)
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        if self.last_step not in self.milestones:
            return self._current()
        factor = self.gamma ** self.milestones[self.last_step]
        return [value * factor for value in self._current()]


@PARAM_SCHEDULERS.register_module()
class ConstantParamScheduler(ParamScheduler):
    """Multiply the value by ``factor`` from ``begin`` until the last step of the window."""

    def __init__(
        self,
        optimizer: Optimizer,
        param_name: str,
        factor: float = 1.0 / 3,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        if factor > 1.0 or factor < 0:
            raise OptimConfigError(f"{type(self).__name__}: factor must be between 0 and 1, got {factor}")
        self.factor = factor
        self.total_iters = end - begin - 1
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        if self.last_step == 0:
            return [value * self.factor for value in self._current()]
        if self.last_step != self.total_iters:
            return self._current()
        return [value * (1.0 / self.factor) for value in self._current()]


@PARAM_SCHEDULERS.register_module()
class ExponentialParamScheduler(ParamScheduler):
    """Multiply the value by ``gamma`` every step."""

    def __init__(
        self,
        optimizer: Optimizer,
        param_name: str,
        gamma: float,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        self.gamma = gamma
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        if self.last_step == 0:
            return self._current()
        return [value * self.gamma for value in self._current()]


@PARAM_SCHEDULERS.register_module()
class CosineAnnealingParamScheduler(ParamScheduler):
    """Cosine annealing from the initial value to ``eta_min`` (or ``eta_min_ratio`` times it) over ``T_max`` steps.

    ``T_max`` defaults to ``end - begin``; give either ``eta_min`` or ``eta_min_ratio`` (neither: ``eta_min=0``).
    """

    _scaled_by_epoch_length = ("T_max",)

    def __init__(
        self,
        optimizer: Optimizer,
        param_name: str,
        T_max: Optional[int] = None,
        eta_min: Optional[float] = None,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
        eta_min_ratio: Optional[float] = None,
    ) -> None:
        if eta_min is None and eta_min_ratio is None:
            eta_min = 0.0
        if eta_min is not None and eta_min_ratio is not None:
            raise OptimConfigError(
                f"{type(self).__name__}: give either eta_min or eta_min_ratio, got eta_min={eta_min}, "
                f"eta_min_ratio={eta_min_ratio}"
            )
        self.T_max = T_max or (end - begin)
        self.eta_min = eta_min
        self.eta_min_ratio = eta_min_ratio
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _eta_min(self, base_value: float) -> float:
        if self.eta_min_ratio is None:
            return self.eta_min  # type: ignore[return-value]
        return base_value * self.eta_min_ratio

    def _get_value(self) -> list[float]:
        current = self._current()
        if self.last_step == 0:
            return current
        t_max = self.T_max
        if (self.last_step - 1 - t_max) % (2 * t_max) == 0:
            return [
                value + (base - self._eta_min(base)) * (1 - math.cos(math.pi / t_max)) / 2
                for base, value in zip(self.base_values, current, strict=True)
            ]
        return [
            (1 + math.cos(math.pi * self.last_step / t_max))
            / (1 + math.cos(math.pi * (self.last_step - 1) / t_max))
            * (value - self._eta_min(base))
            + self._eta_min(base)
            for base, value in zip(self.base_values, current, strict=True)
        ]


@PARAM_SCHEDULERS.register_module()
class LinearParamScheduler(ParamScheduler):
    """Scale the value linearly from ``start_factor`` to ``end_factor`` times over the window."""

    def __init__(
        self,
        optimizer: Optimizer,
        param_name: str,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        name = type(self).__name__
        if start_factor > 1.0 or start_factor < 0:
            raise OptimConfigError(f"{name}: start_factor must be between 0 and 1, got {start_factor}")
        if end_factor > 1.0 or end_factor < 0:
            raise OptimConfigError(f"{name}: end_factor must be between 0 and 1, got {end_factor}")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = end - begin - 1
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        if self.last_step == 0:
            return [value * self.start_factor for value in self._current()]
        delta = self.end_factor - self.start_factor
        factor = 1.0 + delta / (self.total_iters * self.start_factor + (self.last_step - 1) * delta)
        return [value * factor for value in self._current()]


@PARAM_SCHEDULERS.register_module()
class PolyParamScheduler(ParamScheduler):
    """Polynomial decay of the value to ``eta_min`` at the end of the window."""

    def __init__(
        self,
        optimizer: Optimizer,
        param_name: str,
        eta_min: float = 0,
        power: float = 1.0,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        self.eta_min = eta_min
        self.power = power
        self.total_iters = end - begin - 1
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        if self.last_step == 0:
            return self._current()
        factor = (1 - 1 / (self.total_iters - self.last_step + 1)) ** self.power
        return [(value - self.eta_min) * factor + self.eta_min for value in self._current()]


def _anneal_cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _anneal_linear(start: float, end: float, pct: float) -> float:
    return (end - start) * pct + start


_ANNEAL = {"cos": _anneal_cos, "linear": _anneal_linear}


@PARAM_SCHEDULERS.register_module()
class OneCycleParamScheduler(ParamScheduler):
    """The 1cycle policy: up from ``eta_max / div_factor`` to ``eta_max``, then down (lr only; not chainable).

    ``total_steps`` defaults to ``end - begin``. ``eta_max`` may be one value per parameter group.
    """

    _scaled_by_epoch_length = ("total_steps",)

    def __init__(
        self,
        optimizer: Optimizer,
        param_name: str,
        eta_max: Union[float, Sequence[float]] = 0,
        total_steps: Optional[int] = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        name = type(self).__name__
        if param_name != "lr":
            raise OptimConfigError(f"{name} only schedules the learning rate, got param_name={param_name!r}")
        _check_optimizer(optimizer)
        if total_steps is not None and (not isinstance(total_steps, int) or total_steps <= 0):
            raise OptimConfigError(f"{name}: total_steps must be a positive int, got {total_steps!r}")
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise OptimConfigError(f"{name}: pct_start must be a float between 0 and 1, got {pct_start!r}")
        if anneal_strategy not in _ANNEAL:
            raise OptimConfigError(f"{name}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.eta_max = eta_max
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor
        self.total_steps = total_steps if total_steps is not None else end - begin
        self.anneal_strategy = anneal_strategy
        phase_end = float(pct_start * self.total_steps) - 1
        self._schedule_phases: list[dict[str, Any]]
        if three_phase:
            self._schedule_phases = [
                {"end_step": phase_end, "start": "initial_lr", "end": "max_lr"},
                {"end_step": float(2 * pct_start * self.total_steps) - 2, "start": "max_lr", "end": "initial_lr"},
                {"end_step": self.total_steps - 1, "start": "initial_lr", "end": "min_lr"},
            ]
        else:
            self._schedule_phases = [
                {"end_step": phase_end, "start": "initial_lr", "end": "max_lr"},
                {"end_step": self.total_steps - 1, "start": "max_lr", "end": "min_lr"},
            ]
        max_values = self._per_group(optimizer, eta_max)
        if last_step == -1:
            for value, group in zip(max_values, optimizer.param_groups, strict=True):
                group["initial_lr"] = value / div_factor
                group["max_lr"] = value
                group["min_lr"] = group["initial_lr"] / final_div_factor
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _per_group(self, optimizer: Optimizer, value: Any) -> list[float]:
        n = len(optimizer.param_groups)
        if isinstance(value, (list, tuple)):
            # MMEngine's OptimWrapper adds one group (the base settings) when there are several.
            if len(value) not in (n, n + 1) or (len(value) == n + 1 and n == 1):
                raise OptimConfigError(f"{type(self).__name__}: expected {n} values for eta_max, got {len(value)}")
            return list(value[:n])
        return [value] * n

    def _get_value(self) -> list[float]:
        step = self.last_step
        if step > self.total_steps:
            raise OptimConfigError(
                f"{type(self).__name__}: tried to step {step + 1} times; total_steps is {self.total_steps}"
            )
        anneal = _ANNEAL[self.anneal_strategy]
        values = []
        last = len(self._schedule_phases) - 1
        for group in self.optimizer.param_groups:
            start_step: float = 0
            for i, phase in enumerate(self._schedule_phases):
                end_step = phase["end_step"]
                if step <= end_step or i == last:
                    pct = (step - start_step) / (end_step - start_step)
                    values.append(anneal(group[phase["start"]], group[phase["end"]], pct))
                    break
                start_step = phase["end_step"]
        return values


@PARAM_SCHEDULERS.register_module()
class CosineRestartParamScheduler(ParamScheduler):
    """Cosine annealing with restarts: one cosine per entry of ``periods``, restarting at ``restart_weights``."""

    _scaled_by_epoch_length = ("periods",)

    def __init__(
        self,
        optimizer: Optimizer,
        param_name: str,
        periods: Sequence[int],
        restart_weights: Sequence[float] = (1,),
        eta_min: Optional[float] = None,
        eta_min_ratio: Optional[float] = None,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        name = type(self).__name__
        if (eta_min is None) == (eta_min_ratio is None):
            raise OptimConfigError(
                f"{name}: give exactly one of eta_min and eta_min_ratio, got eta_min={eta_min}, "
                f"eta_min_ratio={eta_min_ratio}"
            )
        if len(periods) != len(restart_weights):
            raise OptimConfigError(
                f"{name}: periods and restart_weights must have the same length, got {list(periods)} and "
                f"{list(restart_weights)}"
            )
        self.periods = list(periods)
        self.eta_min = eta_min
        self.eta_min_ratio = eta_min_ratio
        self.restart_weights = list(restart_weights)
        self.cumulative_periods = [sum(self.periods[: i + 1]) for i in range(len(self.periods))]
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _position(self, step: int) -> Optional[int]:
        for i, period in enumerate(self.cumulative_periods):
            if step < period:
                return i
        return None

    def _get_value(self) -> list[float]:
        idx = self._position(self.last_step)
        current = self._current()
        if idx is None:
            return current
        weight = self.restart_weights[idx]
        restart = 0 if idx == 0 else self.cumulative_periods[idx - 1]
        period = self.periods[idx]
        step = self.last_step - restart
        values = []
        for base, value in zip(self.base_values, current, strict=True):
            eta_max = base * weight
            eta_min = self.eta_min if self.eta_min_ratio is None else base * self.eta_min_ratio
            if step == 0:
                values.append(eta_max)
            else:
                values.append(
                    (1 + math.cos(math.pi * step / period))
                    / (1 + math.cos(math.pi * (step - 1) / period))
                    * (value - eta_min)
                    + eta_min
                )
        return values


@PARAM_SCHEDULERS.register_module()
class ReduceOnPlateauParamScheduler(ParamScheduler):
    """Multiply the value by ``factor`` when the validation metric ``monitor`` stops improving.

    Epoch-based only. Stepped with the validation metrics after each validation
    (``step(metrics)``); a plain ``step()`` after each training epoch only counts the epoch,
    which is what ``begin``/``end`` refer to. A missing ``monitor`` in the metrics is a KeyError
    naming it and the metrics there are.
    """

    need_val_args = True

    def __init__(
        self,
        optimizer: Optimizer,
        param_name: str,
        monitor: str = "loss",
        rule: str = "less",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_rule: str = "rel",
        cooldown: int = 0,
        min_value: Union[float, Sequence[float]] = 0.0,
        eps: float = 1e-8,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        name = type(self).__name__
        if not by_epoch:
            raise OptimConfigError(f"{name} is epoch-based only (it steps after validation), got by_epoch=False")
        self._setup(optimizer, param_name, begin, end, last_step, by_epoch, verbose)
        self._global_step = 0
        if factor >= 1.0:
            raise OptimConfigError(f"{name}: factor must be < 1.0, got {factor}")
        if threshold < 0:
            raise OptimConfigError(f"{name}: threshold must be >= 0, got {threshold}")
        if rule not in ("less", "greater"):
            raise OptimConfigError(f"{name}: rule must be 'less' or 'greater', got {rule!r}")
        if threshold_rule not in ("rel", "abs"):
            raise OptimConfigError(f"{name}: threshold_rule must be 'rel' or 'abs', got {threshold_rule!r}")
        if not isinstance(monitor, str) or not monitor:
            raise OptimConfigError(f"{name}: monitor must name a validation metric, got {monitor!r}")
        n = len(optimizer.param_groups)
        if isinstance(min_value, (list, tuple)):
            if len(min_value) not in (n, n + 1) or (len(min_value) == n + 1 and n == 1):
                raise OptimConfigError(f"{name}: expected {n} values for min_value, got {len(min_value)}")
            self.min_values = list(min_value[:n])
        else:
            self.min_values = [min_value] * n
        self.factor = factor
        self.patience = patience
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.eps = eps
        self.monitor = monitor
        self.rule = rule
        self.threshold = threshold
        self.threshold_rule = threshold_rule
        self.rule_worse = INF if rule == "less" else -INF
        self.best = self.rule_worse
        self.num_bad_epochs = 0
        self._last_value = self._current()

    def step(self, metrics: Optional[Mapping[str, Any]] = None) -> None:  # type: ignore[override]
        """Count an epoch (``metrics=None``), or judge the validation ``metrics`` inside the window."""
        if metrics is None:
            self._global_step += 1
            return
        if not isinstance(metrics, Mapping):
            raise TypeError(f"{type(self).__name__}: metrics must be a dict, got {type(metrics).__name__}")
        if self.monitor not in metrics:  # checked outside the window too (MMEngine checks only inside)
            raise KeyError(
                f"{type(self).__name__} monitors {self.monitor!r}, which validation did not report; "
                f"available metrics: {sorted(metrics)}"
            )
        if self.begin <= self._global_step < self.end:
            self.last_step += 1
            self._judge(metrics[self.monitor])
        self._last_value = self._current()

    def _judge(self, metric: Any) -> None:
        if self._is_better(metric, self.best):
            self.best = metric
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for i, (group, value) in enumerate(zip(self.optimizer.param_groups, self._get_value(), strict=True)):
                if group[self.param_name] - value > self.eps:
                    group[self.param_name] = value
                    self._log_value(i, value)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0

    def _get_value(self) -> list[float]:
        values = [float(value) * self.factor for value in self._current()]
        return [max(v, floor) for v, floor in zip(values, self.min_values, strict=True)]

    def _is_better(self, a: Any, best: Any) -> bool:
        if self.rule == "less":
            return bool(
                a < best * (1.0 - self.threshold) if self.threshold_rule == "rel" else a < best - self.threshold
            )
        return bool(a > best * (self.threshold + 1.0) if self.threshold_rule == "rel" else a > best + self.threshold)


@PARAM_SCHEDULERS.register_module()
class QuadraticWarmupParamScheduler(ParamScheduler):
    """mmdet's quadratic warmup: the value grows as ``base * (t + 1)**2 / (end - begin)**2``; ``end`` is required."""

    _int_window = False

    def __init__(
        self,
        optimizer: Optimizer,
        param_name: str,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        if end >= INF:
            raise OptimConfigError(f"{type(self).__name__}: end must be set (the step where the warmup ends)")
        self.total_iters = end - begin
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        increment = [base * (2 * self.last_step + 1) / self.total_iters**2 for base in self.base_values]
        if self.last_step == 0:
            return increment
        return [value + inc for value, inc in zip(self._current(), increment, strict=True)]


# ------------------------------------------------------------------------------------ lr and momentum
class _LRMixin:
    """Fixes ``param_name='lr'``."""

    def __init__(self, optimizer: Optimizer, *args: Any, **kwargs: Any) -> None:
        super().__init__(optimizer, "lr", *args, **kwargs)  # type: ignore[call-arg]


class _MomentumMixin:
    """Schedules SGD-style ``momentum`` or, for Adam-style optimizers, ``betas[0]`` (mirrored in ``momentum``)."""

    optimizer: Optimizer

    def __init__(self, optimizer: Optimizer, *args: Any, **kwargs: Any) -> None:
        _check_optimizer(optimizer)
        self.use_betas = False
        if "momentum" not in optimizer.defaults:
            if "betas" not in optimizer.defaults:
                raise OptimConfigError(
                    f"{type(self).__name__}: optimizer must support momentum when using momentum scheduler; "
                    f"the optimizer {type(optimizer).__name__} has neither momentum nor betas"
                )
            self.use_betas = True
            for group in optimizer.param_groups:
                group["momentum"] = group["betas"][0]
        super().__init__(optimizer, "momentum", *args, **kwargs)  # type: ignore[call-arg]

    def step(self, *args: Any, **kwargs: Any) -> None:
        super().step(*args, **kwargs)  # type: ignore[misc]
        if self.use_betas:
            for group in self.optimizer.param_groups:
                group["betas"] = (group["momentum"], group["betas"][1])


def _register_pair(generic: type[ParamScheduler], stem: str) -> tuple[type, type]:
    """Register ``<stem>LR`` and ``<stem>Momentum`` built on ``generic``."""
    doc = (generic.__doc__ or "").split("\n")[0]
    lr_cls = type(f"{stem}LR", (_LRMixin, generic), {"__doc__": f"{doc} (the learning rate)", "__module__": __name__})
    momentum_cls = type(
        f"{stem}Momentum", (_MomentumMixin, generic), {"__doc__": f"{doc} (the momentum)", "__module__": __name__}
    )
    PARAM_SCHEDULERS.register_module(module=lr_cls)
    PARAM_SCHEDULERS.register_module(module=momentum_cls)
    return lr_cls, momentum_cls


ConstantLR, ConstantMomentum = _register_pair(ConstantParamScheduler, "Constant")
CosineAnnealingLR, CosineAnnealingMomentum = _register_pair(CosineAnnealingParamScheduler, "CosineAnnealing")
CosineRestartLR, CosineRestartMomentum = _register_pair(CosineRestartParamScheduler, "CosineRestart")
ExponentialLR, ExponentialMomentum = _register_pair(ExponentialParamScheduler, "Exponential")
LinearLR, LinearMomentum = _register_pair(LinearParamScheduler, "Linear")
MultiStepLR, MultiStepMomentum = _register_pair(MultiStepParamScheduler, "MultiStep")
PolyLR, PolyMomentum = _register_pair(PolyParamScheduler, "Poly")
ReduceOnPlateauLR, ReduceOnPlateauMomentum = _register_pair(ReduceOnPlateauParamScheduler, "ReduceOnPlateau")
StepLR, StepMomentum = _register_pair(StepParamScheduler, "Step")
QuadraticWarmupLR, QuadraticWarmupMomentum = _register_pair(QuadraticWarmupParamScheduler, "QuadraticWarmup")
OneCycleLR = type(
    "OneCycleLR",
    (_LRMixin, OneCycleParamScheduler),
    {"__doc__": "The 1cycle learning-rate policy.", "__module__": __name__},
)
PARAM_SCHEDULERS.register_module(module=OneCycleLR)


# ------------------------------------------------------------------------------------------ building
def build_param_scheduler(
    cfg: Mapping[str, Any],
    optimizer: Optimizer,
    *,
    epoch_length: Optional[int] = None,
    max_epochs: Optional[int] = None,
    max_iters: Optional[int] = None,
) -> ParamScheduler:
    """Build one scheduler from a config dict, as MMEngine's Runner builds it.

    Args:
        cfg: ``dict(type='LinearLR', ...)``; ``type`` names a :data:`PARAM_SCHEDULERS` entry (a
            scope prefix such as ``'mmdet.'`` is ignored) or is a class.
            ``convert_to_iter_based=True`` builds the iteration-based equivalent of an epoch-based
            config.
        optimizer: the optimizer to schedule.
        epoch_length: iterations per epoch (needed by ``convert_to_iter_based``).
        max_epochs: the default ``end`` of epoch-based schedulers.
        max_iters: the default ``end`` of iteration-based schedulers.
    """
    if not isinstance(cfg, Mapping):  # mmengine's ConfigDict and OmegaConf's DictConfig are Mappings
        raise TypeError(f"a param_scheduler entry must be a dict, got {type(cfg).__name__}: {cfg!r}")
    args = to_plain(dict(cfg.items()))
    args.pop("_scope_", None)
    if "type" not in args:
        raise KeyError(f"a param_scheduler entry needs a 'type', got {args!r}")
    type_name = args.pop("type")
    cls = _scheduler_class(type_name)
    by_epoch = args.get("by_epoch", True)
    default_end = max_epochs if by_epoch else max_iters
    if "end" not in args and default_end is not None:
        args["end"] = default_end
    convert = args.pop("convert_to_iter_based", False)
    if not isinstance(convert, bool):
        raise TypeError(f"{cls.__name__}: convert_to_iter_based must be True or False, got {convert!r}")
    if convert:
        if not by_epoch:
            raise OptimConfigError(
                f"{cls.__name__}: convert_to_iter_based=True converts an epoch-based config, but it has by_epoch=False"
            )
        if epoch_length is None:
            raise OptimConfigError(
                f"{cls.__name__}: convert_to_iter_based=True needs the epoch length (iterations per epoch)"
            )
        return _construct(cls, cls.build_iter_from_epoch, optimizer, args, epoch_length=epoch_length)
    return _construct(cls, cls, optimizer, args)


def _scheduler_class(type_name: Any) -> type[ParamScheduler]:
    """The class a ``type`` names: a registered name, a :class:`ParamScheduler` class, or one of
    MMEngine's scheduler classes (built as this package's class of the same name)."""
    if isinstance(type_name, str):
        cls = PARAM_SCHEDULERS.get(type_name)
        if cls is None:
            raise PARAM_SCHEDULERS._unknown_type_error(type_name)
    elif isinstance(type_name, type) and issubclass(type_name, ParamScheduler):
        cls = type_name
    elif mmengine_class_name(type_name) is not None:
        return _scheduler_class(mmengine_class_name(type_name))
    else:
        hint = ""
        name = getattr(type_name, "__name__", None)
        if isinstance(type_name, type) and isinstance(name, str) and name in PARAM_SCHEDULERS:
            hint = f"; write type={name!r} for MMEngine's {name}"
        raise TypeError(
            "param_scheduler type must be a registered name, a ParamScheduler class or one of MMEngine's "
            f"scheduler classes, got {type_name!r}{hint}"
        )
    return cls  # type: ignore[return-value]


def _construct(cls: type, factory: Any, optimizer: Optimizer, args: dict[str, Any], **extra: Any) -> ParamScheduler:
    try:
        return factory(optimizer, **args, **extra)  # type: ignore[no-any-return]
    except TypeError as exc:
        raise TypeError(f"{cls.__name__}: {exc}") from exc
