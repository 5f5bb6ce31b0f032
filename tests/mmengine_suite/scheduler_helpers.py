"""What ``test_param_scheduler.py``, ``test_lr_scheduler.py`` and ``test_momentum_scheduler.py`` share.

MMEngine's three scheduler test files repeat the same toy model, value and state-dict checks and many
of the same cases; here they are once. :func:`check_values` is upstream's ``_test_scheduler_value``
and :func:`check_state_dict` its ``_check_scheduler_state_dict`` (tolerance ``atol=1e-5, rtol=0``).
The cases all three files run with the same inputs and targets are the tests of
:class:`SharedCases`; each file subclasses it, naming its classes (``<stem>ParamScheduler`` with
``param_name='lr'``, ``<stem>LR`` or ``<stem>Momentum``), and they run on its ``optimizer`` fixture.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lightning_hooks.optim
from lightning_hooks.optim import ParamScheduler

LAYER2_MULT = 10  # the second group's scheduled value is ten times the first's
ATOL = 1e-5
DOC_LINK = r"how-to-adjust-learning-rate"  # in upstream's warning when a scheduler steps before the optimizer


class ToyModel(nn.Module):
    """Upstream's toy model: two 1x1 convolutions, one parameter group each."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 1, 1)
        self.conv2 = nn.Conv2d(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x)))


def make_optimizer(
    optimizer_class: type[torch.optim.Optimizer],
    second: dict[str, Any],
    *,
    model: Optional[ToyModel] = None,
    **defaults: Any,
) -> torch.optim.Optimizer:
    """Upstream's optimizer: ``conv1`` in a group with the defaults, ``conv2`` in one with ``second`` on top."""
    model = model if model is not None else ToyModel()
    groups = [{"params": model.conv1.parameters()}, {"params": model.conv2.parameters(), **second}]
    return optimizer_class(groups, **defaults)


def both_groups(single: Sequence[float]) -> list[list[float]]:
    """Targets of the two parameter groups: the second is ``LAYER2_MULT`` times the first."""
    return [list(single), [x * LAYER2_MULT for x in single]]


def cosine(start: float, end: float, x: float, period: float) -> float:
    """Cosine annealing from ``start`` to ``end`` over ``period`` steps, at step ``x``."""
    return end + (start - end) * (1 + math.cos(math.pi * x / period)) / 2


def check_values(
    optimizer: torch.optim.Optimizer,
    schedulers: Union[ParamScheduler, Sequence[ParamScheduler]],
    targets: Sequence[Sequence[float]],
    epochs: int = 10,
    param_name: str = "lr",
    step_kwargs: Optional[Sequence[Sequence[dict[str, Any]]]] = None,
) -> None:
    """Each epoch every group holds its target (and Adam's ``betas[0]`` the momentum's), then every scheduler steps."""
    if isinstance(schedulers, ParamScheduler):
        schedulers = [schedulers]
    if step_kwargs is None:
        step_kwargs = [[{} for _ in schedulers] for _ in range(epochs)]
    assert len(step_kwargs) == epochs and len(step_kwargs[0]) == len(schedulers)
    check_betas = param_name == "momentum" and "betas" in optimizer.defaults
    for epoch in range(epochs):
        for group, target in zip(optimizer.param_groups, targets, strict=True):
            expected = pytest.approx(target[epoch], abs=ATOL, rel=0)
            assert group[param_name] == expected, (
                f"{param_name} is wrong in epoch {epoch}: expected {target[epoch]}, got {group[param_name]}"
            )
            if check_betas:
                assert group["betas"][0] == expected, f"betas[0] is wrong in epoch {epoch}"
        for scheduler, kwargs in zip(schedulers, step_kwargs[epoch], strict=True):
            scheduler.step(**kwargs)


def check_state_dict(
    construct: Callable[[], ParamScheduler],
    construct2: Callable[[], ParamScheduler],
    epochs: int = 10,
    step_kwargs: Optional[Sequence[dict[str, Any]]] = None,
) -> None:
    """A stepped scheduler's state, through ``torch.save``/``torch.load``, makes a differently built one equal to it."""
    if step_kwargs is None:
        step_kwargs = [{} for _ in range(epochs)]
    assert len(step_kwargs) == epochs
    scheduler = construct()
    for kwargs in step_kwargs:
        scheduler.optimizer.step()
        scheduler.step(**kwargs)
    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    buffer.seek(0)
    copy = construct2()
    copy.load_state_dict(torch.load(buffer))
    for key, value in scheduler.__dict__.items():
        if key != "optimizer":
            assert copy.__dict__[key] == value, key
    assert copy.get_last_value() == scheduler.get_last_value()


@dataclass
class SchedulerBuilder:
    """One test file's schedulers on one optimizer: ``build("Step", step_size=3)`` makes its ``Step`` scheduler."""

    optimizer: torch.optim.Optimizer
    suffix: str  # "ParamScheduler", "LR" or "Momentum"
    param_name: str  # what the schedulers set: "lr" or "momentum"

    def __call__(self, stem: str, **kwargs: Any) -> ParamScheduler:
        """``lightning_hooks.optim.<stem><suffix>`` on the optimizer; a generic class gets ``param_name`` too."""
        if self.suffix == "ParamScheduler":
            kwargs = dict(param_name=self.param_name, **kwargs)
        return getattr(lightning_hooks.optim, f"{stem}{self.suffix}")(self.optimizer, **kwargs)


# Upstream's state-dict cases: class stem -> (kwargs of the stepped scheduler, of the one loading its state,
# step kwargs per epoch or None).
_PLATEAU_FIRST = dict(monitor="loss", rule="less", factor=0.01, patience=5, threshold=1e-4, threshold_rule="rel")
_PLATEAU_SECOND = dict(
    monitor="loss_foo", rule="greater", factor=0.05, patience=10, threshold=1e-5, threshold_rule="abs"
)
STATE_DICT_CASES: dict[str, tuple[dict[str, Any], dict[str, Any], Optional[list[dict[str, Any]]]]] = {
    "Step": (dict(gamma=0.1, step_size=3), dict(gamma=0.01 / 2, step_size=1), None),
    "MultiStep": (dict(gamma=0.1, milestones=[2, 5, 9]), dict(gamma=0.01, milestones=[1, 4, 6]), None),
    "Exponential": (dict(gamma=0.1), dict(gamma=0.01), None),
    "CosineAnnealing": (dict(T_max=10, eta_min=1e-10), dict(T_max=10 // 2, eta_min=1e-10 / 2), None),
    "Linear": (dict(start_factor=1 / 3), dict(start_factor=0, end_factor=0.3), None),
    "Poly": (dict(power=0.5, eta_min=0.001), dict(power=0.8, eta_min=0.002), None),
    "CosineRestart": (
        dict(periods=[4, 5], restart_weights=[1, 0.5], eta_min=0),
        dict(periods=[4, 6], restart_weights=[1, 0.5], eta_min=0),
        None,
    ),
    "ReduceOnPlateau": (
        dict(_PLATEAU_FIRST, cooldown=0, min_value=0.0, eps=1e-8),
        dict(_PLATEAU_SECOND, cooldown=5, min_value=0.1, eps=1e-9),
        [dict(metrics=dict(loss=1.0)) for _ in range(10)],
    ),
}

# Upstream's invalid ReduceOnPlateau arguments (on a valid optimizer): id -> (kwargs, the error).
PLATEAU_INVALID: dict[str, tuple[dict[str, Any], type[Exception]]] = {
    "end-before-begin": (dict(begin=10, end=5), ValueError),
    "not-by-epoch": (dict(by_epoch=False), AssertionError),
    "last_step-float": (dict(last_step=1.5), AssertionError),
    "last_step-negative": (dict(last_step=-2), AssertionError),
    "factor": (dict(factor=2.0), ValueError),
    "min_value-per-group": (dict(min_value=[0.1, 0.1, 0.1, 0.1]), ValueError),
    "threshold": (dict(threshold=-1.0), ValueError),
    "rule": (dict(rule="foo"), ValueError),
    "threshold_rule": (dict(threshold_rule="foo"), ValueError),
}

LESS = [10.0, 9.0, 8.0, 7.0, 6.0, 6.0, 6.0, 6.0, 6.0, 6.0]  # a loss that stops improving
GREATER = [1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]  # an mAP that stops improving
DROPPED = both_groups([0.05] * 8 + [0.005] * 2)
FLOORED = [[0.05] * 8 + [0.01] * 2, [0.5] * 8 + [0.05] * 2]  # min_value=0.01 holds the first group

# Upstream's ReduceOnPlateau value cases: id -> (monitor, rule, threshold_rule, threshold, min_value, metric per
# epoch, targets of both groups); factor 0.1, patience 2, cooldown 1 in all.
PLATEAU_CASES: dict[str, tuple[str, str, str, float, float, list[float], list[list[float]]]] = {
    "less-rel": ("loss", "less", "rel", 0.01, 0.0, LESS, DROPPED),
    "less-abs": ("loss", "less", "abs", 0.9, 0.0, LESS, DROPPED),
    "greater-rel": ("bbox_mAP", "greater", "rel", 0.01, 0.0, GREATER, DROPPED),
    "greater-abs": ("bbox_mAP", "greater", "abs", 0.9, 0.0, GREATER, DROPPED),
    "min_value": ("loss", "less", "rel", 0.01, 0.01, LESS, FLOORED),
}


def check_plateau_case(build: SchedulerBuilder, case: str) -> None:
    """Run ``PLATEAU_CASES[case]`` on the ``ReduceOnPlateau`` scheduler that ``build`` makes."""
    monitor, rule, threshold_rule, threshold, min_value, metric_values, targets = PLATEAU_CASES[case]
    kwargs = dict(monitor=monitor, rule=rule, threshold_rule=threshold_rule, threshold=threshold, min_value=min_value)
    scheduler = build("ReduceOnPlateau", factor=0.1, patience=2, cooldown=1, **kwargs)
    step_kwargs = [[dict(metrics={monitor: value})] for value in metric_values]
    check_values(build.optimizer, scheduler, targets, epochs=10, param_name=build.param_name, step_kwargs=step_kwargs)


def _exp_then_cosine(gap: int, eta_min: float = 1e-10) -> list[float]:
    """Five exponential steps (gamma 0.9), ``gap`` steps held, then a 5-step cosine from where they ended."""
    exp = [0.05 * 0.9**x for x in range(5)]
    return exp + [exp[-1]] * gap + [cosine(exp[-1], eta_min, x, 5) for x in range(5)]


# Upstream's cases of two schedulers on one optimizer: id -> ((stem, kwargs) of each scheduler, the first group's
# targets, one per epoch).
MULTI_SCHEDULER_CASES: dict[str, tuple[list[tuple[str, dict[str, Any]]], list[float]]] = {
    "without_overlap_linear_multi_step": (
        [
            ("Linear", dict(start_factor=1 / 2, begin=0, end=5)),
            ("MultiStep", dict(gamma=0.1, milestones=[3, 6], begin=5, end=12)),
        ],
        [0.025, 0.03125, 0.0375, 0.04375] + [0.05] * 4 + [0.005] * 3 + [0.0005],
    ),
    "without_overlap_exp_cosine": (
        [
            ("Exponential", dict(gamma=0.9, begin=0, end=5)),
            ("CosineAnnealing", dict(T_max=5, eta_min=1e-10, begin=5, end=10)),
        ],
        _exp_then_cosine(gap=0),
    ),
    "with_overlap": (
        [("Linear", dict(start_factor=1 / 2, begin=0, end=5)), ("MultiStep", dict(gamma=0.1, milestones=[3, 6, 9]))],
        [0.025, 0.03125, 0.0375, 0.004375] + [0.005] * 2 + [0.0005] * 3 + [0.00005],
    ),
    "with_gap": (
        [
            ("Exponential", dict(gamma=0.9, begin=0, end=5)),
            ("CosineAnnealing", dict(T_max=5, eta_min=1e-10, begin=10, end=15)),
        ],
        _exp_then_cosine(gap=5),
    ),
}


class SharedCases:
    """Upstream's cases that the three files run alike; a file's ``Test*`` subclass names its classes."""

    suffix: str  # the subclass's: "ParamScheduler", "LR" or "Momentum"
    param_name: str  # the subclass's: "lr" or "momentum"

    def builder(self, optimizer: torch.optim.Optimizer) -> SchedulerBuilder:
        """This file's schedulers on ``optimizer``."""
        return SchedulerBuilder(optimizer, self.suffix, self.param_name)

    @pytest.fixture
    def build(self, optimizer: torch.optim.Optimizer) -> SchedulerBuilder:
        """This file's schedulers on its ``optimizer`` fixture."""
        return self.builder(optimizer)

    def test_resume_without_initial_value(self, build: SchedulerBuilder) -> None:
        """The optimizer and the scheduler must be resumed together."""
        with pytest.raises(KeyError, match=f"param 'initial_{build.param_name}' is not specified"):
            build("Step", gamma=0.1, step_size=3, last_step=10)

    def test_resume(self, build: SchedulerBuilder) -> None:
        """Resumed by ``last_step`` (no state dict) after a checkpoint saved before ``scheduler.step()``."""
        epochs = 10
        targets = [0.05 * 0.9**x for x in range(epochs)]
        first_group = build.optimizer.param_groups[0]
        scheduler = build("Exponential", gamma=0.9)
        results = []
        for epoch in range(5):
            results.append(first_group[build.param_name])
            if epoch == 4:  # the checkpoint was saved before this epoch's scheduler.step()
                break
            scheduler.step()
        resumed = build("Exponential", gamma=0.9, last_step=4)
        for _ in range(6):
            results.append(first_group[build.param_name])
            resumed.step()
        assert results[:epochs] == pytest.approx(targets, abs=ATOL, rel=0)  # upstream checks the first 10 of 11

    def test_get_last_value(self, build: SchedulerBuilder) -> None:
        """``get_last_value`` before each step is the value the step started from."""
        targets = both_groups([0.05] * 3 + [0.005] * 3 + [0.0005] * 3 + [0.00005])
        scheduler = build("Step", step_size=3, gamma=0.1)
        for epoch in range(10):
            result = scheduler.get_last_value()
            build.optimizer.step()
            scheduler.step()
            assert result == pytest.approx([t[epoch] for t in targets], abs=ATOL, rel=0), f"epoch {epoch}"

    def test_scheduler_step_count(self, build: SchedulerBuilder) -> None:
        """``last_step`` counts the scheduler's steps."""
        scheduler = build("Step", gamma=0.1, step_size=3)
        assert scheduler.last_step == 0
        counts = []
        for _ in range(10):
            build.optimizer.step()
            scheduler.step()
            counts.append(scheduler.last_step)
        assert counts == list(range(1, 11))

    @pytest.mark.parametrize("case", list(PLATEAU_INVALID))
    def test_reduce_on_plateau_scheduler_invalid(self, build: SchedulerBuilder, case: str) -> None:
        """``ReduceOnPlateau`` rejects each of upstream's invalid arguments."""
        kwargs, error = PLATEAU_INVALID[case]
        with pytest.raises(error):
            build("ReduceOnPlateau", **kwargs)

    def test_reduce_on_plateau_scheduler_step_errors(self, build: SchedulerBuilder) -> None:
        """``step`` without metrics does nothing; metrics that are not a dict or lack the monitor raise."""
        build("ReduceOnPlateau", min_value=[0.1, 0.1])  # one per group is fine
        scheduler = build("ReduceOnPlateau", monitor="loss")
        assert scheduler.step() is None
        with pytest.raises(TypeError):
            scheduler.step(("foo", 1.0))
        with pytest.raises(KeyError):
            scheduler.step(dict(loss_foo=1.0))

    @pytest.mark.parametrize("case", list(PLATEAU_CASES))
    def test_reduce_on_plateau_scheduler_values(self, build: SchedulerBuilder, case: str) -> None:
        """Upstream's ``ReduceOnPlateau`` value cases."""
        check_plateau_case(build, case)

    @pytest.mark.parametrize("stem", list(STATE_DICT_CASES))
    def test_scheduler_state_dict(self, build: SchedulerBuilder, stem: str) -> None:
        """Upstream's ``test_*_scheduler_state_dict``: a differently built scheduler loads the stepped one's state."""
        first, second, step_kwargs = STATE_DICT_CASES[stem]
        check_state_dict(lambda: build(stem, **first), lambda: build(stem, **second), step_kwargs=step_kwargs)

    @pytest.mark.parametrize("case", list(MULTI_SCHEDULER_CASES))
    def test_multi_scheduler(self, build: SchedulerBuilder, case: str) -> None:
        """Upstream's ``test_multi_scheduler_*``: two schedulers on one optimizer, in turn or together."""
        schedulers, single = MULTI_SCHEDULER_CASES[case]
        built = [build(stem, **kwargs) for stem, kwargs in schedulers]
        check_values(build.optimizer, built, both_groups(single), len(single), param_name=build.param_name)
