"""MMEngine 0.10.7 ``tests/test_optim/test_scheduler/test_momentum_scheduler.py`` against the ``*Momentum`` schedulers.

Pure torch: the two-convolution toy model, an SGD optimizer whose second group has ten
times the momentum, and an Adam optimizer with the same ``betas[0]`` layout, exactly as
upstream's ``setUp``; every test builds its own. Values are compared with upstream's
tolerance (``atol=1e-5``, ``rtol=0``); on Adam ``betas[0]`` is compared as well.
Upstream cases whose error checks and value checks test different things are split,
so that a different exception type or message fails only its own part.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import optim

from lightning_hooks.optim import (
    ConstantMomentum,
    CosineAnnealingMomentum,
    CosineRestartMomentum,
    ExponentialMomentum,
    LinearMomentum,
    MultiStepMomentum,
    ParamScheduler,
    PolyMomentum,
    ReduceOnPlateauMomentum,
    StepMomentum,
)

from .suite_helpers import check_schedulers_leave_optimizer_step_alone, documented_behaviour

ORDER_DOC = "docs/comparison.md#parameter-schedulers-leave-optimizerstep-alone"

MOMENTUM = 0.05
LAYER2_MULT = 10
DOC_LINK = r"how-to-adjust-learning-rate"
DELIBERATE = pytest.mark.xfail(strict=True, raises=pytest.fail.Exception, reason=f"deliberate: {ORDER_DOC}")


class ToyModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 1, 1)
        self.conv2 = torch.nn.Conv2d(1, 1, 1)

    def forward(self, x):
        return self.conv2(F.relu(self.conv1(x)))


def make_sgd(model: ToyModel) -> optim.SGD:
    groups = [
        {"params": model.conv1.parameters()},
        {"params": model.conv2.parameters(), "momentum": MOMENTUM * LAYER2_MULT},
    ]
    return optim.SGD(groups, lr=0.01, momentum=MOMENTUM, weight_decay=5e-4)


def make_adam(model: ToyModel) -> optim.Adam:
    groups = [
        {"params": model.conv1.parameters()},
        {"params": model.conv2.parameters(), "betas": (MOMENTUM * LAYER2_MULT, 0.999)},
    ]
    return optim.Adam(groups, lr=0.01, betas=(MOMENTUM, 0.999), weight_decay=5e-4)


MAKERS = {"sgd": make_sgd, "adam": make_adam}


@pytest.fixture
def model() -> ToyModel:
    return ToyModel()


@pytest.fixture
def optimizer(model) -> optim.SGD:
    return make_sgd(model)


@pytest.fixture
def optimizer_with_betas(model) -> optim.Adam:
    return make_adam(model)


def both_groups(single: list[float]) -> list[list[float]]:
    """Targets of the two parameter groups: the second has ``LAYER2_MULT`` times the first's."""
    return [single, [v * LAYER2_MULT for v in single]]


def check_values(opt, schedulers, targets, epochs=10, step_kwargs=None, param_name="momentum"):
    """Before each step, every group holds its target (and Adam's ``betas[0]`` too); then step all schedulers."""
    if isinstance(schedulers, ParamScheduler):
        schedulers = [schedulers]
    if step_kwargs is None:
        step_kwargs = [[{}] * len(schedulers)] * epochs
    assert len(step_kwargs) == epochs and len(step_kwargs[0]) == len(schedulers)
    for epoch in range(epochs):
        for group, target in zip(opt.param_groups, targets, strict=True):
            expected = pytest.approx(target[epoch], abs=1e-5, rel=0)
            assert group[param_name] == expected, f"{param_name} wrong in epoch {epoch}"
            if "betas" in opt.defaults:
                assert group["betas"][0] == expected, f"betas[0] wrong in epoch {epoch}"
        for scheduler, kwargs in zip(schedulers, step_kwargs[epoch], strict=True):
            scheduler.step(**kwargs)


def check_state_dict(construct, construct2, epochs=10, step_kwargs=None):
    """A scheduler stepped ``epochs`` times, loaded into a differently built one, gives equal attributes."""
    step_kwargs = step_kwargs if step_kwargs is not None else [{}] * epochs
    assert len(step_kwargs) == epochs
    scheduler = construct()
    for epoch in range(epochs):
        scheduler.optimizer.step()
        scheduler.step(**step_kwargs[epoch])
    copy = construct2()
    copy.load_state_dict(scheduler.state_dict())
    for key, value in scheduler.__dict__.items():
        if key != "optimizer":
            assert copy.__dict__[key] == value, key
    assert copy.get_last_value() == scheduler.get_last_value()


# ------------------------------------------------------------------------------------ construction, stepping
def test_invalid_optimizer(model):
    asgd = optim.ASGD(model.parameters(), lr=0.01)
    with pytest.raises(ValueError, match="optimizer must support momentum when using momentum scheduler"):
        StepMomentum(asgd, step_size=1)


@DELIBERATE
def test_overwrite_optimzer_step(optimizer):
    with documented_behaviour(ORDER_DOC):
        check_schedulers_leave_optimizer_step_alone()
    scheduler = ExponentialMomentum(optimizer, gamma=0.9)
    optimizer.step = lambda: None  # the optimizer's step counter is lost
    optimizer.step()
    with pytest.warns(UserWarning, match=DOC_LINK):
        scheduler.step()


def test_resume_without_initial_momentum(optimizer):
    with pytest.raises(KeyError, match="param 'initial_momentum' is not specified"):
        StepMomentum(optimizer, gamma=0.1, step_size=3, last_step=10)


def test_resume(optimizer):
    """Resume by ``last_step`` (no state dict) after a checkpoint saved before ``scheduler.step()``."""
    epochs = 10
    targets = [0.05 * 0.9**x for x in range(epochs)]
    scheduler = ExponentialMomentum(optimizer, gamma=0.9)
    results = []
    for epoch in range(5):
        results.append(optimizer.param_groups[0]["momentum"])
        if epoch == 4:
            break
        scheduler.step()
    resumed = ExponentialMomentum(optimizer, gamma=0.9, last_step=4)
    for _ in range(6):
        results.append(optimizer.param_groups[0]["momentum"])
        resumed.step()
    assert results[:epochs] == pytest.approx(targets, abs=1e-5, rel=0)  # upstream checks the first 10 of 11


@DELIBERATE
def test_scheduler_before_optim_warning(optimizer):
    with documented_behaviour(ORDER_DOC):
        check_schedulers_leave_optimizer_step_alone()
    with pytest.warns(UserWarning, match=DOC_LINK):
        StepMomentum(optimizer, gamma=0.1, step_size=3).step()
        optimizer.step()

    for group in optimizer.param_groups:  # the resumed case
        group["initial_momentum"] = 0.01
    with pytest.warns(UserWarning, match=DOC_LINK):
        StepMomentum(optimizer, gamma=0.1, step_size=3, last_step=10).step()
        optimizer.step()


def test_get_last_value(optimizer):
    epochs = 10
    targets = both_groups([0.05] * 3 + [0.005] * 3 + [0.0005] * 3 + [0.00005])
    scheduler = StepMomentum(optimizer, 3, gamma=0.1)
    for epoch in range(epochs):
        result = scheduler.get_last_value()
        optimizer.step()
        scheduler.step()
        assert result == pytest.approx([t[epoch] for t in targets], abs=1e-5, rel=0), f"epoch {epoch}"


def test_scheduler_step_count(optimizer):
    scheduler = StepMomentum(optimizer, gamma=0.1, step_size=3)
    assert scheduler.last_step == 0
    counts = []
    for _ in range(10):
        optimizer.step()
        scheduler.step()
        counts.append(scheduler.last_step)
    assert counts == list(range(1, 11))


def test_effective_interval_invalid(optimizer):
    with pytest.raises(ValueError, match="end should be larger than begin"):
        StepMomentum(optimizer, gamma=0.1, step_size=3, begin=10, end=5)


def test_effective_interval(optimizer):
    # 0.05 at epoch 0, linear from 0.025 over epochs 1-4, then 0.05 again
    begin, epochs, start_factor, iters = 1, 10, 1.0 / 2, 4
    interpolation = [start_factor + i * (1 - start_factor) / iters for i in range(iters)]
    single = [0.05] * begin + [x * 0.05 for x in interpolation] + [0.05] * (epochs - iters - begin)
    scheduler = LinearMomentum(optimizer, start_factor=start_factor, begin=begin, end=begin + iters + 1)
    check_values(optimizer, scheduler, both_groups(single), epochs)


# ------------------------------------------------------------------------------------------- each scheduler
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_step_scheduler(model, kind):
    opt = MAKERS[kind](model)
    targets = both_groups([0.05] * 3 + [0.005] * 3 + [0.0005] * 3 + [0.00005] * 3)
    scheduler = StepMomentum(opt, gamma=0.1, step_size=3, verbose=True)
    check_values(opt, scheduler, targets, 10)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_multi_step_scheduler(model, kind):
    opt = MAKERS[kind](model)
    targets = both_groups([0.05] * 2 + [0.005] * 3 + [0.0005] * 4 + [0.00005] * 3)
    scheduler = MultiStepMomentum(opt, gamma=0.1, milestones=[2, 5, 9])
    check_values(opt, scheduler, targets, 10)


def test_constant_scheduler_invalid_factor(optimizer):
    with pytest.raises(ValueError):
        ConstantMomentum(optimizer, factor=99)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_constant_scheduler(model, kind):
    opt = MAKERS[kind](model)
    targets = both_groups([0.025] * 4 + [0.05] * 6)
    scheduler = ConstantMomentum(opt, factor=1.0 / 2, end=5)
    check_values(opt, scheduler, targets, 10)


@pytest.mark.parametrize(
    "kwargs", [dict(start_factor=10), dict(start_factor=-1), dict(end_factor=1.001), dict(end_factor=-0.00001)]
)
def test_linear_scheduler_invalid_factor(optimizer, kwargs):
    with pytest.raises(ValueError):
        LinearMomentum(optimizer, end=900, **kwargs)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_linear_scheduler(model, kind):
    opt = MAKERS[kind](model)
    epochs, start_factor, iters = 10, 1.0 / 2, 4
    interpolation = [start_factor + i * (1 - start_factor) / iters for i in range(iters)]
    targets = both_groups([x * 0.05 for x in interpolation] + [0.05] * (epochs - iters))
    scheduler = LinearMomentum(opt, start_factor=start_factor, end=iters + 1)
    check_values(opt, scheduler, targets, epochs)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_exp_scheduler(model, kind):
    opt = MAKERS[kind](model)
    targets = both_groups([0.05 * 0.9**x for x in range(10)])
    scheduler = ExponentialMomentum(opt, gamma=0.9)
    check_values(opt, scheduler, targets, 10)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_cos_anneal_scheduler(model, kind):
    opt = MAKERS[kind](model)
    epochs, t, eta_min = 12, 10, 1e-10
    single = [eta_min + (0.05 - eta_min) * (1 + math.cos(math.pi * x / t)) / 2 for x in range(epochs)]
    scheduler = CosineAnnealingMomentum(opt, T_max=t, eta_min=eta_min)
    check_values(opt, scheduler, both_groups(single), epochs)


def test_cos_anneal_scheduler_default_t_max(optimizer):
    scheduler = CosineAnnealingMomentum(optimizer, begin=5, end=100, eta_min=1e-10)
    assert scheduler.T_max == 100 - 5


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_poly_scheduler(model, kind):
    opt = MAKERS[kind](model)
    epochs, power, min_lr, iters = 10, 0.9, 0.001, 4

    def decay(start: float) -> list[float]:
        return [min_lr + (start - min_lr) * (1 - i / iters) ** power for i in range(iters)] + [min_lr] * (
            epochs - iters
        )

    targets = [decay(0.05), decay(0.05 * LAYER2_MULT)]
    scheduler = PolyMomentum(opt, power=power, eta_min=min_lr, end=iters + 1)
    check_values(opt, scheduler, targets, epochs)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(restart_weights=[1, 0.5], eta_min=0, eta_min_ratio=0.1),  # both eta_min and eta_min_ratio
        dict(restart_weights=[1, 0.5, 0.0], eta_min=0),  # one weight too many
    ],
    ids=["eta_min-and-ratio", "weights-length"],
)
def test_cosine_restart_scheduler_invalid(optimizer, kwargs):
    with pytest.raises(AssertionError):
        CosineRestartMomentum(optimizer, periods=[4, 5], **kwargs)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_cosine_restart_scheduler(model, kind):
    opt = MAKERS[kind](model)
    single = [0.05, 0.0426776, 0.025, 0.00732233, 0.025, 0.022612712, 0.01636271, 0.0086372, 0.0023872, 0.0023872]
    scheduler = CosineRestartMomentum(opt, periods=[4, 5], restart_weights=[1, 0.5], eta_min=0)
    check_values(opt, scheduler, both_groups(single), 10)


# ------------------------------------------------------------------------------------------ reduce on plateau
def test_reduce_on_plateau_scheduler_init_errors(model, optimizer):
    with pytest.raises(ValueError):
        ReduceOnPlateauMomentum(optim.ASGD(model.parameters(), lr=0.01))
    with pytest.raises(ValueError):
        ReduceOnPlateauMomentum(optimizer, begin=10, end=5)
    with pytest.raises(ValueError):
        ReduceOnPlateauMomentum(optimizer, factor=2.0)
    ReduceOnPlateauMomentum(optimizer, min_value=[0.1, 0.1])
    with pytest.raises(ValueError):
        ReduceOnPlateauMomentum(optimizer, min_value=[0.1, 0.1, 0.1, 0.1])
    with pytest.raises(ValueError):
        ReduceOnPlateauMomentum(optimizer, threshold=-1.0)
    with pytest.raises(ValueError):
        ReduceOnPlateauMomentum(optimizer, rule="foo")
    with pytest.raises(ValueError):
        ReduceOnPlateauMomentum(optimizer, threshold_rule="foo")


def test_reduce_on_plateau_scheduler_not_by_epoch(optimizer):
    with pytest.raises(AssertionError):
        ReduceOnPlateauMomentum(optimizer, by_epoch=False)


@pytest.mark.parametrize("last_step", [1.5, -2])
def test_reduce_on_plateau_scheduler_invalid_last_step(optimizer, last_step):
    with pytest.raises(AssertionError):
        ReduceOnPlateauMomentum(optimizer, last_step=last_step)


def test_reduce_on_plateau_scheduler_step_errors(optimizer):
    scheduler = ReduceOnPlateauMomentum(optimizer, monitor="loss")
    assert scheduler.step() is None
    with pytest.raises(TypeError):
        scheduler.step(("foo", 1.0))
    with pytest.raises(KeyError):
        scheduler.step(dict(loss_foo=1.0))


DECREASING = [10.0, 9.0, 8.0, 7.0, 6.0, 6.0, 6.0, 6.0, 6.0, 6.0]
INCREASING = [1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]
REDUCED = [0.05] * 8 + [0.005] * 2
FLOORED = [[0.05] * 8 + [0.01] * 2, [0.5] * 8 + [0.05] * 2]  # min_value=0.01 holds the first group


@pytest.mark.parametrize(
    "kind, rule, threshold_rule, threshold, monitor, metric_values, min_value, targets",
    [
        ("sgd", "less", "rel", 0.01, "loss", DECREASING, 0.0, both_groups(REDUCED)),
        ("sgd", "less", "abs", 0.9, "loss", DECREASING, 0.0, both_groups(REDUCED)),
        ("sgd", "greater", "rel", 0.01, "bbox_mAP", INCREASING, 0.0, both_groups(REDUCED)),
        ("sgd", "greater", "abs", 0.9, "bbox_mAP", INCREASING, 0.0, both_groups(REDUCED)),
        ("sgd", "less", "rel", 0.01, "loss", DECREASING, 0.01, FLOORED),
        ("adam", "less", "rel", 0.01, "loss", DECREASING, 0.01, FLOORED),
    ],
    ids=["less-rel", "less-abs", "greater-rel", "greater-abs", "min_value-sgd", "min_value-adam"],
)
def test_reduce_on_plateau_scheduler_values(
    model, kind, rule, threshold_rule, threshold, monitor, metric_values, min_value, targets
):
    opt = MAKERS[kind](model)
    scheduler = ReduceOnPlateauMomentum(
        opt,
        monitor=monitor,
        rule=rule,
        factor=0.1,
        patience=2,
        threshold=threshold,
        threshold_rule=threshold_rule,
        cooldown=1,
        min_value=min_value,
    )
    step_kwargs = [[dict(metrics={monitor: v})] for v in metric_values]
    check_values(opt, scheduler, targets, epochs=10, step_kwargs=step_kwargs)


# ---------------------------------------------------------------------------------------------- state dicts
def test_step_scheduler_state_dict(optimizer):
    check_state_dict(
        lambda: StepMomentum(optimizer, gamma=0.1, step_size=3),
        lambda: StepMomentum(optimizer, gamma=0.01 / 2, step_size=1),
    )


def test_multi_step_scheduler_state_dict(optimizer):
    check_state_dict(
        lambda: MultiStepMomentum(optimizer, gamma=0.1, milestones=[2, 5, 9]),
        lambda: MultiStepMomentum(optimizer, gamma=0.01, milestones=[1, 4, 6]),
    )


def test_exp_scheduler_state_dict(optimizer):
    check_state_dict(
        lambda: ExponentialMomentum(optimizer, gamma=0.1),
        lambda: ExponentialMomentum(optimizer, gamma=0.01),
    )


def test_cosine_scheduler_state_dict(optimizer):
    epochs, eta_min = 10, 1e-10
    check_state_dict(
        lambda: CosineAnnealingMomentum(optimizer, T_max=epochs, eta_min=eta_min),
        lambda: CosineAnnealingMomentum(optimizer, T_max=epochs // 2, eta_min=eta_min / 2),
        epochs=epochs,
    )


def test_linear_scheduler_state_dict(optimizer):
    check_state_dict(
        lambda: LinearMomentum(optimizer, start_factor=1 / 3),
        lambda: LinearMomentum(optimizer, start_factor=0, end_factor=0.3),
        epochs=10,
    )


def test_poly_scheduler_state_dict(optimizer):
    check_state_dict(
        lambda: PolyMomentum(optimizer, power=0.5, eta_min=0.001),
        lambda: PolyMomentum(optimizer, power=0.8, eta_min=0.002),
        epochs=10,
    )


def test_cosine_restart_scheduler_state_dict(optimizer):
    check_state_dict(
        lambda: CosineRestartMomentum(optimizer, periods=[4, 5], restart_weights=[1, 0.5], eta_min=0),
        lambda: CosineRestartMomentum(optimizer, periods=[4, 6], restart_weights=[1, 0.5], eta_min=0),
        epochs=10,
    )


def test_reduce_on_plateau_scheduler_state_dict(optimizer):
    epochs = 10
    check_state_dict(
        lambda: ReduceOnPlateauMomentum(
            optimizer,
            monitor="loss",
            rule="less",
            factor=0.01,
            patience=5,
            threshold=1e-4,
            threshold_rule="rel",
            cooldown=0,
            min_value=0.0,
            eps=1e-8,
        ),
        lambda: ReduceOnPlateauMomentum(
            optimizer,
            monitor="loss_foo",
            rule="greater",
            factor=0.05,
            patience=10,
            threshold=1e-5,
            threshold_rule="abs",
            cooldown=5,
            min_value=0.1,
            eps=1e-9,
        ),
        epochs=epochs,
        step_kwargs=[dict(metrics=dict(loss=1.0))] * epochs,
    )


# ---------------------------------------------------------------------------------------- several schedulers
def _exp_then_cosine(eta_min: float) -> tuple[list[float], list[float]]:
    """Five exponential steps (gamma 0.9), then a 5-step cosine from where they ended."""
    exp = [0.05 * 0.9**x for x in range(5)]
    cos = [eta_min + (exp[-1] - eta_min) * (1 + math.cos(math.pi * x / 5)) / 2 for x in range(5)]
    return exp, cos


def test_multi_scheduler_without_overlap_linear_multi_step(optimizer):
    # linear over the first 5 epochs, then multi-step
    single = [0.025, 0.03125, 0.0375, 0.04375] + [0.05] * 4 + [0.005] * 3 + [0.0005]
    first = LinearMomentum(optimizer, start_factor=1 / 2, begin=0, end=5)
    second = MultiStepMomentum(optimizer, gamma=0.1, milestones=[3, 6], begin=5, end=12)
    check_values(optimizer, [first, second], both_groups(single), 12)


def test_multi_scheduler_without_overlap_exp_cosine(optimizer):
    eta_min = 1e-10
    exp, cos = _exp_then_cosine(eta_min)
    first = ExponentialMomentum(optimizer, gamma=0.9, begin=0, end=5)
    second = CosineAnnealingMomentum(optimizer, T_max=5, eta_min=eta_min, begin=5, end=10)
    check_values(optimizer, [first, second], both_groups(exp + cos), 10)


def test_multi_scheduler_with_overlap(optimizer):
    # linear over the first 5 epochs together with multi-step
    single = [0.025, 0.03125, 0.0375, 0.004375] + [0.005] * 2 + [0.0005] * 3 + [0.00005]
    first = LinearMomentum(optimizer, start_factor=1 / 2, begin=0, end=5)
    second = MultiStepMomentum(optimizer, gamma=0.1, milestones=[3, 6, 9])
    check_values(optimizer, [first, second], both_groups(single), 10)


def test_multi_scheduler_with_gap(optimizer):
    # exponential for epochs 0-4, nothing for 5-9, cosine for 10-14
    eta_min = 1e-10
    exp, cos = _exp_then_cosine(eta_min)
    first = ExponentialMomentum(optimizer, gamma=0.9, begin=0, end=5)
    second = CosineAnnealingMomentum(optimizer, T_max=5, eta_min=eta_min, begin=10, end=15)
    check_values(optimizer, [first, second], both_groups(exp + [exp[-1]] * 5 + cos), 15)
