"""MMEngine 0.10.7 ``tests/test_optim/test_scheduler/test_momentum_scheduler.py`` against the ``*Momentum`` schedulers.

Pure torch: the two-convolution toy model, an SGD optimizer whose second group has ten
times the momentum, and an Adam optimizer with the same ``betas[0]`` layout, exactly as
upstream's ``setUp``; every test builds its own. Values are compared with upstream's
tolerance (``atol=1e-5``, ``rtol=0``); on Adam ``betas[0]`` is compared as well.
Upstream cases whose error checks and value checks test different things are split,
so that a different exception type or message fails only its own part. The cases that the
param and lr files repeat (resume, ``get_last_value``, step count, ReduceOnPlateau errors and
values, state dicts, several schedulers) are ``TestSharedCases``, from ``scheduler_helpers.py``,
on SGD; its one Adam case is added there.
"""

from __future__ import annotations

import pytest
from torch import optim

from lightning_hooks.optim import (
    ConstantMomentum,
    CosineAnnealingMomentum,
    CosineRestartMomentum,
    ExponentialMomentum,
    LinearMomentum,
    MultiStepMomentum,
    PolyMomentum,
    ReduceOnPlateauMomentum,
    StepMomentum,
)

from .scheduler_helpers import (
    DOC_LINK,
    LAYER2_MULT,
    SharedCases,
    ToyModel,
    both_groups,
    check_plateau_case,
    check_values,
    cosine,
    make_optimizer,
)
from .suite_helpers import check_schedulers_leave_optimizer_step_alone, documented_behaviour

ORDER_DOC = "docs/comparison.md#parameter-schedulers-leave-optimizerstep-alone"

MOMENTUM = 0.05
DELIBERATE = pytest.mark.xfail(strict=True, raises=pytest.fail.Exception, reason=f"deliberate: {ORDER_DOC}")


def make_sgd(model: ToyModel) -> optim.SGD:
    """Upstream's SGD: the second group has ten times the first's momentum."""
    second = {"momentum": MOMENTUM * LAYER2_MULT}
    return make_optimizer(optim.SGD, second, model=model, lr=0.01, momentum=MOMENTUM, weight_decay=5e-4)


def make_adam(model: ToyModel) -> optim.Adam:
    """Upstream's Adam: the second group has ten times the first's ``betas[0]``."""
    second = {"betas": (MOMENTUM * LAYER2_MULT, 0.999)}
    return make_optimizer(optim.Adam, second, model=model, lr=0.01, betas=(MOMENTUM, 0.999), weight_decay=5e-4)


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


# ------------------------------------------------------------------------------------ construction, stepping
@DELIBERATE
def test_overwrite_optimzer_step(optimizer):
    with documented_behaviour(ORDER_DOC):
        check_schedulers_leave_optimizer_step_alone()
    scheduler = ExponentialMomentum(optimizer, gamma=0.9)
    optimizer.step = lambda: None  # the optimizer's step counter is lost
    optimizer.step()
    with pytest.warns(UserWarning, match=DOC_LINK):
        scheduler.step()


def test_invalid_optimizer(model):
    asgd = optim.ASGD(model.parameters(), lr=0.01)
    with pytest.raises(ValueError, match="optimizer must support momentum when using momentum scheduler"):
        StepMomentum(asgd, step_size=1)


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


def test_effective_interval_invalid(optimizer):
    with pytest.raises(ValueError, match="end should be larger than begin"):
        StepMomentum(optimizer, gamma=0.1, step_size=3, begin=10, end=5)


def test_effective_interval(optimizer):
    # 0.05 at epoch 0, linear from 0.025 over epochs 1-4, then 0.05 again
    begin, epochs, start_factor, iters = 1, 10, 1.0 / 2, 4
    interpolation = [start_factor + i * (1 - start_factor) / iters for i in range(iters)]
    single = [0.05] * begin + [x * 0.05 for x in interpolation] + [0.05] * (epochs - iters - begin)
    scheduler = LinearMomentum(optimizer, start_factor=start_factor, begin=begin, end=begin + iters + 1)
    check_values(optimizer, scheduler, both_groups(single), epochs, param_name="momentum")


# ------------------------------------------------------------------------------------------- each scheduler
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_step_scheduler(model, kind):
    opt = MAKERS[kind](model)
    targets = both_groups([0.05] * 3 + [0.005] * 3 + [0.0005] * 3 + [0.00005] * 3)
    scheduler = StepMomentum(opt, gamma=0.1, step_size=3, verbose=True)
    check_values(opt, scheduler, targets, 10, param_name="momentum")


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_multi_step_scheduler(model, kind):
    opt = MAKERS[kind](model)
    targets = both_groups([0.05] * 2 + [0.005] * 3 + [0.0005] * 4 + [0.00005] * 3)
    scheduler = MultiStepMomentum(opt, gamma=0.1, milestones=[2, 5, 9])
    check_values(opt, scheduler, targets, 10, param_name="momentum")


def test_constant_scheduler_invalid_factor(optimizer):
    with pytest.raises(ValueError):
        ConstantMomentum(optimizer, factor=99)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_constant_scheduler(model, kind):
    opt = MAKERS[kind](model)
    targets = both_groups([0.025] * 4 + [0.05] * 6)
    scheduler = ConstantMomentum(opt, factor=1.0 / 2, end=5)
    check_values(opt, scheduler, targets, 10, param_name="momentum")


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
    check_values(opt, scheduler, targets, epochs, param_name="momentum")


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_exp_scheduler(model, kind):
    opt = MAKERS[kind](model)
    targets = both_groups([0.05 * 0.9**x for x in range(10)])
    scheduler = ExponentialMomentum(opt, gamma=0.9)
    check_values(opt, scheduler, targets, 10, param_name="momentum")


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_cos_anneal_scheduler(model, kind):
    opt = MAKERS[kind](model)
    epochs, t, eta_min = 12, 10, 1e-10
    single = [cosine(0.05, eta_min, x, t) for x in range(epochs)]
    scheduler = CosineAnnealingMomentum(opt, T_max=t, eta_min=eta_min)
    check_values(opt, scheduler, both_groups(single), epochs, param_name="momentum")


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
    check_values(opt, scheduler, targets, epochs, param_name="momentum")


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
    check_values(opt, scheduler, both_groups(single), 10, param_name="momentum")


# ------------------------------------------------------------------------------------------ reduce on plateau
def test_reduce_on_plateau_scheduler_invalid_optimizer(model):
    with pytest.raises(ValueError):
        ReduceOnPlateauMomentum(optim.ASGD(model.parameters(), lr=0.01))


# ------------------------------------------------------------------------------ shared cases
class TestSharedCases(SharedCases):
    """``scheduler_helpers.SharedCases`` on the ``*Momentum`` classes and SGD, and one plateau case on Adam."""

    suffix, param_name = "Momentum", "momentum"

    def test_reduce_on_plateau_scheduler_values_adam(self, model):
        """Upstream's ``min_value`` case again, on Adam's ``betas[0]``."""
        check_plateau_case(self.builder(make_adam(model)), "min_value")
