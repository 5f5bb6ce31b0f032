"""MMEngine 0.10.7 ``tests/test_optim/test_scheduler/test_lr_scheduler.py`` against ``lightning_hooks.optim``.

Every case drives this package's learning-rate schedulers (MMEngine's class names) on
upstream's two-layer toy model and SGD optimizer (``lr=0.05``, the second group at ten
times that), with upstream's inputs, targets and tolerance (``atol=1e-5``).
MMEngine's ``_ParamScheduler`` is :class:`~lightning_hooks.optim.ParamScheduler`.
Upstream cases that mix error checks with value checks are split, so that an error of a
different type fails only its own part. The cases that the param and momentum files repeat
(resume, ``get_last_value``, step count, ReduceOnPlateau errors and values, state dicts, several
schedulers) are ``TestSharedCases``, from ``scheduler_helpers.py``, parametrized per case.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lightning_hooks.optim import (
    ConstantLR,
    CosineAnnealingLR,
    CosineRestartLR,
    ExponentialLR,
    LinearLR,
    MultiStepLR,
    OneCycleLR,
    ParamScheduler,
    PolyLR,
    ReduceOnPlateauLR,
    StepLR,
)

from .scheduler_helpers import DOC_LINK, LAYER2_MULT, SharedCases, both_groups, check_values, cosine, make_optimizer
from .suite_helpers import check_schedulers_leave_optimizer_step_alone, documented_behaviour

ORDER_DOC = "docs/comparison.md#parameter-schedulers-leave-optimizerstep-alone"

DELIBERATE = pytest.mark.xfail(strict=True, raises=pytest.fail.Exception, reason=f"deliberate: {ORDER_DOC}")


@pytest.fixture
def optimizer() -> torch.optim.SGD:
    """Upstream's SGD: the second group has ten times the first's lr."""
    lr = 0.05
    return make_optimizer(torch.optim.SGD, {"lr": lr * LAYER2_MULT}, lr=lr, momentum=0.01, weight_decay=5e-4)


# ------------------------------------------------------------------------------ base behaviour
def test_base_scheduler_step(optimizer):
    with pytest.raises(NotImplementedError):
        ParamScheduler(optimizer, param_name="lr")


@DELIBERATE
def test_overwrite_optimzer_step(optimizer):
    with documented_behaviour(ORDER_DOC):
        check_schedulers_leave_optimizer_step_alone()
    # a warning when the counter in optimizer.step() has been overwritten
    scheduler = ExponentialLR(optimizer, gamma=0.9)

    def overwrite_fun():
        pass

    optimizer.step = overwrite_fun
    optimizer.step()
    with pytest.warns(UserWarning, match=DOC_LINK):
        scheduler.step()


def test_invalid_optimizer():
    with pytest.raises(TypeError, match="should be an Optimizer"):
        StepLR("invalid_optimizer", step_size=1)


@DELIBERATE
def test_scheduler_before_optim_warning(optimizer):
    """A warning (with the link to torch's docs) when the scheduler steps before the optimizer."""
    with documented_behaviour(ORDER_DOC):
        check_schedulers_leave_optimizer_step_alone()
    with pytest.warns(UserWarning, match=DOC_LINK):
        scheduler = StepLR(optimizer, gamma=0.1, step_size=3)
        scheduler.step()
        optimizer.step()


@DELIBERATE
def test_scheduler_before_optim_warning_resume(optimizer):
    with documented_behaviour(ORDER_DOC):
        check_schedulers_leave_optimizer_step_alone()
    for group in optimizer.param_groups:
        group["initial_lr"] = 0.01
    with pytest.warns(UserWarning, match=DOC_LINK):
        scheduler = StepLR(optimizer, gamma=0.1, step_size=3, last_step=10)
        scheduler.step()
        optimizer.step()


def test_effective_interval_invalid(optimizer):
    with pytest.raises(ValueError, match="end should be larger than begin"):
        StepLR(optimizer, gamma=0.1, step_size=3, begin=10, end=5)


def test_effective_interval(optimizer):
    # lr = 0.05 at epoch 0, 0.025, 0.03125, 0.0375, 0.04375 at epochs 1-4, then 0.05
    begin = 1
    epochs = 10
    start_factor = 1.0 / 2
    iters = 4
    interpolation = [start_factor + i * (1 - start_factor) / iters for i in range(iters)]
    single_targets = [0.05] * begin + [x * 0.05 for x in interpolation] + [0.05] * (epochs - iters - begin)
    scheduler = LinearLR(optimizer, start_factor=start_factor, begin=begin, end=begin + iters + 1)
    check_values(optimizer, scheduler, both_groups(single_targets), epochs)


# ----------------------------------------------------------------------------- single schedulers
def test_step_scheduler(optimizer):
    # 0.05 before epoch 3, 0.005 before 6, 0.0005 before 9, then 0.00005
    epochs = 10
    single_targets = [0.05] * 3 + [0.005] * 3 + [0.0005] * 3 + [0.00005] * 3
    scheduler = StepLR(optimizer, gamma=0.1, step_size=3, verbose=True)
    check_values(optimizer, scheduler, both_groups(single_targets), epochs)


def test_multi_step_scheduler(optimizer):
    # 0.05 before epoch 2, 0.005 before 5, 0.0005 before 9, then 0.00005
    epochs = 10
    single_targets = [0.05] * 2 + [0.005] * 3 + [0.0005] * 4 + [0.00005] * 3
    scheduler = MultiStepLR(optimizer, gamma=0.1, milestones=[2, 5, 9])
    check_values(optimizer, scheduler, both_groups(single_targets), epochs)


def test_constant_scheduler(optimizer):
    with pytest.raises(ValueError):  # factor must be in [0, 1]
        ConstantLR(optimizer, factor=99)
    epochs = 10
    single_targets = [0.025] * 4 + [0.05] * 6
    scheduler = ConstantLR(optimizer, factor=1.0 / 2, end=5)
    check_values(optimizer, scheduler, both_groups(single_targets), epochs)


def test_linear_scheduler(optimizer):
    with pytest.raises(ValueError):
        LinearLR(optimizer, start_factor=10, end=900)
    with pytest.raises(ValueError):
        LinearLR(optimizer, start_factor=-1, end=900)
    with pytest.raises(ValueError):
        LinearLR(optimizer, end_factor=1.001, end=900)
    with pytest.raises(ValueError):
        LinearLR(optimizer, end_factor=-0.00001, end=900)
    # 0.025, 0.03125, 0.0375, 0.04375 at epochs 0-3, then 0.05
    epochs = 10
    start_factor = 1.0 / 2
    iters = 4
    interpolation = [start_factor + i * (1 - start_factor) / iters for i in range(iters)]
    single_targets = [x * 0.05 for x in interpolation] + [0.05] * (epochs - iters)
    scheduler = LinearLR(optimizer, start_factor=start_factor, end=iters + 1)
    check_values(optimizer, scheduler, both_groups(single_targets), epochs)


def test_exp_scheduler(optimizer):
    epochs = 10
    single_targets = [0.05 * (0.9**x) for x in range(epochs)]
    scheduler = ExponentialLR(optimizer, gamma=0.9)
    check_values(optimizer, scheduler, both_groups(single_targets), epochs)


def test_cos_anneal_scheduler(optimizer):
    epochs = 12
    t = 10
    eta_min = 1e-10
    single_targets = [cosine(0.05, eta_min, x, t) for x in range(epochs)]
    scheduler = CosineAnnealingLR(optimizer, T_max=t, eta_min=eta_min)
    check_values(optimizer, scheduler, both_groups(single_targets), epochs)

    # T_max defaults to end - begin
    scheduler = CosineAnnealingLR(optimizer, begin=5, end=100, eta_min=eta_min)
    assert scheduler.T_max == 100 - 5


def test_poly_scheduler(optimizer):
    epochs = 10
    power = 0.9
    min_lr = 0.001
    iters = 4
    targets = [
        [min_lr + (base - min_lr) * (1 - i / iters) ** power for i in range(iters)] + [min_lr] * (epochs - iters)
        for base in (0.05, 0.05 * LAYER2_MULT)
    ]
    scheduler = PolyLR(optimizer, power=power, eta_min=min_lr, end=iters + 1)
    check_values(optimizer, scheduler, targets, epochs=10)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(restart_weights=[1, 0.5], eta_min=0, eta_min_ratio=0.1),  # both eta_min and eta_min_ratio
        dict(restart_weights=[1, 0.5, 0.0], eta_min=0),  # periods and restart_weights of different lengths
    ],
    ids=["eta_min-and-ratio", "restart_weights-length"],
)
def test_cosine_restart_scheduler_errors(optimizer, kwargs):
    with pytest.raises(AssertionError):
        CosineRestartLR(optimizer, periods=[4, 5], **kwargs)


def test_cosine_restart_scheduler(optimizer):
    single_targets = [
        0.05,
        0.0426776,
        0.025,
        0.00732233,
        0.025,
        0.022612712,
        0.01636271,
        0.0086372,
        0.0023872,
        0.0023872,
    ]
    scheduler = CosineRestartLR(optimizer, periods=[4, 5], restart_weights=[1, 0.5], eta_min=0)
    check_values(optimizer, scheduler, both_groups(single_targets), epochs=10)


# ------------------------------------------------------------------------------------- plateau
# ReduceOnPlateauLR does not run the base class's constructor in MMEngine, so its checks are retested.
def test_reduce_on_plateau_scheduler_invalid_optimizer():
    with pytest.raises(TypeError):
        ReduceOnPlateauLR("invalid_optimizer")


# ------------------------------------------------------------------- epoch-based to iter-based
def test_step_scheduler_convert_iterbased_invalid(optimizer):
    with pytest.raises(AssertionError):
        StepLR.build_iter_from_epoch(optimizer, gamma=0.1, step_size=2, epoch_length=-1)


def test_step_scheduler_convert_iterbased(optimizer):
    # 0.05 in epochs 0-1, 0.005 in epochs 2-3
    epochs = 4
    epoch_length = 7
    single_targets = [0.05] * 2 * epoch_length + [0.005] * 2 * epoch_length
    scheduler = StepLR.build_iter_from_epoch(optimizer, gamma=0.1, step_size=2, epoch_length=epoch_length)
    check_values(optimizer, scheduler, both_groups(single_targets), epochs * epoch_length, param_name="lr")


def test_multi_step_scheduler_convert_iterbased(optimizer):
    # 0.05 before epoch 2, 0.005 before 5, 0.0005 before 9, then 0.00005
    epochs = 10
    epoch_length = 7
    single_targets = (
        [0.05] * 2 * epoch_length
        + [0.005] * 3 * epoch_length
        + [0.0005] * 4 * epoch_length
        + [0.00005] * 3 * epoch_length
    )
    scheduler = MultiStepLR.build_iter_from_epoch(optimizer, gamma=0.1, milestones=[2, 5, 9], epoch_length=epoch_length)
    check_values(optimizer, scheduler, both_groups(single_targets), epochs * epoch_length)


def test_constant_scheduler_convert_iterbased(optimizer):
    epochs = 10
    epoch_length = 7
    single_targets = [0.025] * (5 * epoch_length - 1) + [0.05] * (5 * epoch_length + 1)
    scheduler = ConstantLR.build_iter_from_epoch(optimizer, factor=1.0 / 2, end=5, epoch_length=epoch_length)
    check_values(optimizer, scheduler, both_groups(single_targets), epochs * epoch_length)


def test_linear_scheduler_convert_iterbased(optimizer):
    epochs = 10
    start_factor = 1.0 / 2
    end = 5
    epoch_length = 11
    iters = end * epoch_length - 1
    interpolation = [start_factor + i * (1 - start_factor) / iters for i in range(iters)]
    single_targets = [x * 0.05 for x in interpolation] + [0.05] * (epochs * epoch_length - iters)
    scheduler = LinearLR.build_iter_from_epoch(optimizer, start_factor=start_factor, end=end, epoch_length=epoch_length)
    check_values(optimizer, scheduler, both_groups(single_targets), epochs)  # upstream checks the first 10 only


def test_exp_scheduler_convert_iterbased(optimizer):
    epochs = 10
    epoch_length = 7
    single_targets = [0.05 * (0.9**x) for x in range(epochs * epoch_length)]
    scheduler = ExponentialLR.build_iter_from_epoch(optimizer, gamma=0.9, epoch_length=epoch_length)
    check_values(optimizer, scheduler, both_groups(single_targets), epochs * epoch_length)


def test_cos_anneal_scheduler_convert_iterbased(optimizer):
    epochs = 12
    t = 10
    eta_min = 1e-10
    epoch_length = 11
    single_targets = [cosine(0.05, eta_min, x, t * epoch_length) for x in range(epochs * epoch_length)]
    scheduler = CosineAnnealingLR.build_iter_from_epoch(optimizer, T_max=t, eta_min=eta_min, epoch_length=epoch_length)
    check_values(optimizer, scheduler, both_groups(single_targets), epochs)  # upstream checks the first 12 only


def test_poly_scheduler_convert_iterbased(optimizer):
    epochs = 10
    power = 0.9
    min_lr = 0.001
    end = 5
    epoch_length = 11
    iters = end * epoch_length - 1
    # upstream's tail ``[min_lr] * (epochs - iters)`` is empty; the first 10 values are checked
    targets = [
        [min_lr + (base - min_lr) * (1 - i / iters) ** power for i in range(iters)] + [min_lr] * (epochs - iters)
        for base in (0.05, 0.05 * LAYER2_MULT)
    ]
    scheduler = PolyLR.build_iter_from_epoch(optimizer, power=power, eta_min=min_lr, end=end, epoch_length=epoch_length)
    check_values(optimizer, scheduler, targets, epochs=10)


# ------------------------------------------------------------------------------------- one cycle
def test_onecycle_lr(optimizer):
    # upstream checks only the first group: check_values gets a view of the optimizer with just that group
    first_group = SimpleNamespace(param_groups=optimizer.param_groups[:1], defaults=optimizer.defaults)

    # linear annealing
    target = [1.0, 13.0, 25.0, 21.5, 18.0, 14.5, 11.0, 7.5, 4.0, 0.5]
    scheduler = OneCycleLR(optimizer, eta_max=25, final_div_factor=2, total_steps=10, anneal_strategy="linear")
    check_values(first_group, scheduler, [target], 10)

    # linear annealing, three phases
    target = [1.0, 9.0, 17.0, 25.0, 17.0, 9.0, 1.0, 0.75, 0.5, 0.25]
    scheduler = OneCycleLR(
        optimizer,
        eta_max=25,
        div_factor=25,
        total_steps=10,
        anneal_strategy="linear",
        pct_start=0.4,
        final_div_factor=4,
        three_phase=True,
    )
    check_values(first_group, scheduler, [target], 10)

    # cosine annealing
    target = [1.0, 13.0, 25.0] + [cosine(25, 0.5, i, 7.0) for i in range(1, 7)] + [0.5]
    scheduler = OneCycleLR(optimizer, eta_max=25, final_div_factor=2, total_steps=10)
    check_values(first_group, scheduler, [target], 10)


# ------------------------------------------------------------------------------ shared cases
class TestSharedCases(SharedCases):
    """``scheduler_helpers.SharedCases`` on the ``*LR`` classes."""

    suffix, param_name = "LR", "lr"
