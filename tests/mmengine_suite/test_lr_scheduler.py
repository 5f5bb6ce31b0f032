"""MMEngine 0.10.7 ``tests/test_optim/test_scheduler/test_lr_scheduler.py`` against ``lightning_hooks.optim``.

Every case drives this package's learning-rate schedulers (MMEngine's class names) on
upstream's two-layer toy model and SGD optimizer (``lr=0.05``, the second group at ten
times that), with upstream's inputs, targets and tolerance (``atol=1e-5``).
MMEngine's ``_ParamScheduler`` is :class:`~lightning_hooks.optim.ParamScheduler`.
Upstream cases that mix error checks with value checks are split, so that an error of a
different type fails only its own part; the plateau value cases are parametrized.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

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

from .suite_helpers import check_schedulers_leave_optimizer_step_alone, documented_behaviour

ORDER_DOC = "docs/comparison.md#parameter-schedulers-leave-optimizerstep-alone"

LR = 0.05
LAYER2_MULT = 10
ATOL = 1e-5
DOC_LINK = r"how-to-adjust-learning-rate"
DELIBERATE = pytest.mark.xfail(strict=True, raises=pytest.fail.Exception, reason=f"deliberate: {ORDER_DOC}")


class ToyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 1, 1)
        self.conv2 = nn.Conv2d(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x)))


def make_optimizer(model: ToyModel) -> torch.optim.SGD:
    groups = [
        {"params": model.conv1.parameters()},
        {"params": model.conv2.parameters(), "lr": LR * LAYER2_MULT},
    ]
    return torch.optim.SGD(groups, lr=LR, momentum=0.01, weight_decay=5e-4)


@pytest.fixture
def optimizer() -> torch.optim.SGD:
    return make_optimizer(ToyModel())


def both_groups(single: Sequence[float]) -> list[list[float]]:
    """Targets of the two parameter groups: the second is ``LAYER2_MULT`` times the first."""
    return [list(single), [x * LAYER2_MULT for x in single]]


def check_values(
    optimizer: torch.optim.Optimizer,
    schedulers: Any,
    targets: Sequence[Sequence[float]],
    epochs: int = 10,
    param_name: str = "lr",
    step_kwargs: Sequence[Sequence[dict]] | None = None,
) -> None:
    """Upstream's ``_test_scheduler_value``: check every group's value, then step every scheduler."""
    if isinstance(schedulers, ParamScheduler):
        schedulers = [schedulers]
    if step_kwargs is None:
        step_kwargs = [[{} for _ in schedulers] for _ in range(epochs)]
    assert len(step_kwargs) == epochs
    assert len(step_kwargs[0]) == len(schedulers)
    for epoch in range(epochs):
        for group, target in zip(optimizer.param_groups, targets, strict=False):
            assert group[param_name] == pytest.approx(target[epoch], abs=ATOL, rel=0), (
                f"{param_name} is wrong in epoch {epoch}: expected {target[epoch]}, got {group[param_name]}"
            )
        for scheduler, kwargs in zip(schedulers, step_kwargs[epoch], strict=True):
            scheduler.step(**kwargs)


def check_state_dict(
    construct: Callable[[], ParamScheduler],
    construct2: Callable[[], ParamScheduler],
    epochs: int = 10,
    step_kwargs: Sequence[dict] | None = None,
) -> None:
    """Upstream's ``_check_scheduler_state_dict``: a second scheduler loads the first's state."""
    if step_kwargs is None:
        step_kwargs = [{} for _ in range(epochs)]
    assert len(step_kwargs) == epochs
    scheduler = construct()
    for epoch in range(epochs):
        scheduler.optimizer.step()
        scheduler.step(**step_kwargs[epoch])
    scheduler_copy = construct2()
    scheduler_copy.load_state_dict(scheduler.state_dict())
    for key, value in scheduler.__dict__.items():
        if key != "optimizer":
            assert scheduler_copy.__dict__[key] == value, key
    assert scheduler.get_last_value() == scheduler_copy.get_last_value()


# ------------------------------------------------------------------------------ base behaviour
def test_base_scheduler_step(optimizer):
    with pytest.raises(NotImplementedError):
        ParamScheduler(optimizer, param_name="lr")


def test_invalid_optimizer():
    with pytest.raises(TypeError, match="should be an Optimizer"):
        StepLR("invalid_optimizer", step_size=1)


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


def test_resume_without_initial_lr(optimizer):
    # optimizer and scheduler not both resumed
    with pytest.raises(KeyError, match="param 'initial_lr' is not specified"):
        StepLR(optimizer, gamma=0.1, step_size=3, last_step=10)


def test_resume(optimizer):
    # resumed by hand with ``last_step`` instead of load_state_dict
    epochs = 10
    targets = [0.05 * (0.9**x) for x in range(epochs)]
    scheduler = ExponentialLR(optimizer, gamma=0.9)
    results = []
    for epoch in range(5):
        results.append(optimizer.param_groups[0]["lr"])
        # train_epoch() -> save_checkpoint() -> scheduler.step(): the checkpoint of epoch 4
        # is saved before its scheduler step
        if epoch == 4:
            break
        scheduler.step()
    scheduler2 = ExponentialLR(optimizer, gamma=0.9, last_step=4)
    for _ in range(6):
        results.append(optimizer.param_groups[0]["lr"])
        scheduler2.step()
    for epoch in range(epochs):
        assert results[epoch] == pytest.approx(targets[epoch], abs=ATOL, rel=0), (
            f"lr is wrong in epoch {epoch}: expected {targets[epoch]}, got {results[epoch]}"
        )


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


def test_get_last_value(optimizer):
    epochs = 10
    targets = both_groups([0.05] * 3 + [0.005] * 3 + [0.0005] * 3 + [0.00005])
    scheduler = StepLR(optimizer, 3, gamma=0.1)
    for epoch in range(epochs):
        result = scheduler.get_last_value()
        optimizer.step()
        scheduler.step()
        target = [t[epoch] for t in targets]
        assert result == pytest.approx(target, abs=ATOL, rel=0), f"LR is wrong in epoch {epoch}"


def test_scheduler_step_count(optimizer):
    iteration = 10
    scheduler = StepLR(optimizer, gamma=0.1, step_size=3)
    assert scheduler.last_step == 0
    step_counts = []
    for _ in range(iteration):
        optimizer.step()
        scheduler.step()
        step_counts.append(scheduler.last_step)
    assert step_counts == [i + 1 for i in range(iteration)]


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
    single_targets = [eta_min + (0.05 - eta_min) * (1 + math.cos(math.pi * x / t)) / 2 for x in range(epochs)]
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
def test_reduce_on_plateau_scheduler_init_errors(optimizer):
    with pytest.raises(TypeError):
        ReduceOnPlateauLR("invalid_optimizer")
    with pytest.raises(ValueError):
        ReduceOnPlateauLR(optimizer, begin=10, end=5)
    with pytest.raises(ValueError):
        ReduceOnPlateauLR(optimizer, factor=2.0)
    ReduceOnPlateauLR(optimizer, min_value=[0.1, 0.1])
    with pytest.raises(ValueError):
        ReduceOnPlateauLR(optimizer, min_value=[0.1, 0.1, 0.1, 0.1])
    with pytest.raises(ValueError):
        ReduceOnPlateauLR(optimizer, threshold=-1.0)
    with pytest.raises(ValueError):
        ReduceOnPlateauLR(optimizer, rule="foo")
    with pytest.raises(ValueError):
        ReduceOnPlateauLR(optimizer, threshold_rule="foo")


def test_reduce_on_plateau_scheduler_by_epoch_false(optimizer):
    with pytest.raises(AssertionError):
        ReduceOnPlateauLR(optimizer, by_epoch=False)


@pytest.mark.parametrize("last_step", [1.5, -2])
def test_reduce_on_plateau_scheduler_invalid_last_step(optimizer, last_step):
    with pytest.raises(AssertionError):
        ReduceOnPlateauLR(optimizer, last_step=last_step)


def test_reduce_on_plateau_scheduler_step_errors(optimizer):
    scheduler = ReduceOnPlateauLR(optimizer, monitor="loss")
    assert scheduler.step() is None
    with pytest.raises(TypeError):
        scheduler.step(("foo", 1.0))
    with pytest.raises(KeyError):
        scheduler.step(dict(loss_foo=1.0))


_REDUCED = [0.05] * 8 + [0.005] * 2
_LOSSES = [10.0, 9.0, 8.0, 7.0, 6.0, 6.0, 6.0, 6.0, 6.0, 6.0]
_MAPS = [1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]


@pytest.mark.parametrize(
    "rule, threshold_rule, threshold, monitor, metric_values, targets, min_value",
    [
        ("less", "rel", 0.01, "loss", _LOSSES, both_groups(_REDUCED), 0.0),
        ("less", "abs", 0.9, "loss", _LOSSES, both_groups(_REDUCED), 0.0),
        ("greater", "rel", 0.01, "bbox_mAP", _MAPS, both_groups(_REDUCED), 0.0),
        ("greater", "abs", 0.9, "bbox_mAP", _MAPS, both_groups(_REDUCED), 0.0),
        ("less", "rel", 0.01, "loss", _LOSSES, [[0.05] * 8 + [0.01] * 2, [0.5] * 8 + [0.05] * 2], 0.01),
    ],
    ids=["less-rel", "less-abs", "greater-rel", "greater-abs", "min_value"],
)
def test_reduce_on_plateau_scheduler(
    optimizer, rule, threshold_rule, threshold, monitor, metric_values, targets, min_value
):
    scheduler = ReduceOnPlateauLR(
        optimizer,
        monitor=monitor,
        rule=rule,
        factor=0.1,
        patience=2,
        threshold=threshold,
        threshold_rule=threshold_rule,
        cooldown=1,
        min_value=min_value,
    )
    metrics_list = [[dict(metrics={monitor: v})] for v in metric_values]
    check_values(optimizer, scheduler, targets, epochs=10, step_kwargs=metrics_list)


# ---------------------------------------------------------------------------------- state dicts
def test_step_scheduler_state_dict(optimizer):
    check_state_dict(
        lambda: StepLR(optimizer, gamma=0.1, step_size=3),
        lambda: StepLR(optimizer, gamma=0.01 / 2, step_size=1),
    )


def test_multi_step_scheduler_state_dict(optimizer):
    check_state_dict(
        lambda: MultiStepLR(optimizer, gamma=0.1, milestones=[2, 5, 9]),
        lambda: MultiStepLR(optimizer, gamma=0.01, milestones=[1, 4, 6]),
    )


def test_exp_scheduler_state_dict(optimizer):
    check_state_dict(
        lambda: ExponentialLR(optimizer, gamma=0.1),
        lambda: ExponentialLR(optimizer, gamma=0.01),
    )


def test_cosine_scheduler_state_dict(optimizer):
    epochs = 10
    eta_min = 1e-10
    check_state_dict(
        lambda: CosineAnnealingLR(optimizer, T_max=epochs, eta_min=eta_min),
        lambda: CosineAnnealingLR(optimizer, T_max=epochs // 2, eta_min=eta_min / 2),
        epochs=epochs,
    )


def test_linear_scheduler_state_dict(optimizer):
    check_state_dict(
        lambda: LinearLR(optimizer, start_factor=1 / 3),
        lambda: LinearLR(optimizer, start_factor=0, end_factor=0.3),
        epochs=10,
    )


def test_poly_scheduler_state_dict(optimizer):
    check_state_dict(
        lambda: PolyLR(optimizer, power=0.5, eta_min=0.001),
        lambda: PolyLR(optimizer, power=0.8, eta_min=0.002),
        epochs=10,
    )


def test_cosine_restart_scheduler_state_dict(optimizer):
    check_state_dict(
        lambda: CosineRestartLR(optimizer, periods=[4, 5], restart_weights=[1, 0.5], eta_min=0),
        lambda: CosineRestartLR(optimizer, periods=[4, 6], restart_weights=[1, 0.5], eta_min=0),
        epochs=10,
    )


def test_reduce_on_plateau_scheduler_state_dict(optimizer):
    epochs = 10
    check_state_dict(
        lambda: ReduceOnPlateauLR(
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
        lambda: ReduceOnPlateauLR(
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
        step_kwargs=[dict(metrics=dict(loss=1.0)) for _ in range(epochs)],
    )


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
    single_targets = [
        eta_min + (0.05 - eta_min) * (1 + math.cos(math.pi * x / t / epoch_length)) / 2
        for x in range(epochs * epoch_length)
    ]
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


# ------------------------------------------------------------------------- several schedulers
def test_multi_scheduler_without_overlap_linear_multi_step(optimizer):
    # Linear in the first 5 epochs, then MultiStep
    epochs = 12
    single_targets = [0.025, 0.03125, 0.0375, 0.04375] + [0.05] * 4 + [0.005] * 3 + [0.0005] * 1
    scheduler1 = LinearLR(optimizer, start_factor=1 / 2, begin=0, end=5)
    scheduler2 = MultiStepLR(optimizer, gamma=0.1, milestones=[3, 6], begin=5, end=12)
    check_values(optimizer, [scheduler1, scheduler2], both_groups(single_targets), epochs)


def test_multi_scheduler_without_overlap_exp_cosine(optimizer):
    # Exp in the first 5 epochs, then Cosine
    epochs = 10
    eta_min = 1e-10
    single_targets1 = [0.05 * (0.9**x) for x in range(5)]
    single_targets2 = [
        eta_min + (single_targets1[-1] - eta_min) * (1 + math.cos(math.pi * x / 5)) / 2 for x in range(5)
    ]
    scheduler1 = ExponentialLR(optimizer, gamma=0.9, begin=0, end=5)
    scheduler2 = CosineAnnealingLR(optimizer, T_max=5, eta_min=eta_min, begin=5, end=10)
    check_values(optimizer, [scheduler1, scheduler2], both_groups(single_targets1 + single_targets2), epochs)


def test_multi_scheduler_with_overlap(optimizer):
    # Linear in the first 5 epochs, MultiStep throughout
    epochs = 10
    single_targets = [0.025, 0.03125, 0.0375, 0.004375] + [0.005] * 2 + [0.0005] * 3 + [0.00005] * 1
    scheduler1 = LinearLR(optimizer, start_factor=1 / 2, begin=0, end=5)
    scheduler2 = MultiStepLR(optimizer, gamma=0.1, milestones=[3, 6, 9])
    check_values(optimizer, [scheduler1, scheduler2], both_groups(single_targets), epochs)


def test_multi_scheduler_with_gap(optimizer):
    # Exp in the first 5 epochs, nothing in the next 5, Cosine in the last 5
    epochs = 15
    eta_min = 1e-10
    single_targets1 = [0.05 * (0.9**x) for x in range(5)]
    single_targets2 = [
        eta_min + (single_targets1[-1] - eta_min) * (1 + math.cos(math.pi * x / 5)) / 2 for x in range(5)
    ]
    single_targets = single_targets1 + [single_targets1[-1]] * 5 + single_targets2
    scheduler1 = ExponentialLR(optimizer, gamma=0.9, begin=0, end=5)
    scheduler2 = CosineAnnealingLR(optimizer, T_max=5, eta_min=eta_min, begin=10, end=15)
    check_values(optimizer, [scheduler1, scheduler2], both_groups(single_targets), epochs)


# ------------------------------------------------------------------------------------- one cycle
def _annealing_cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def test_onecycle_lr(optimizer):
    # linear annealing (only the first group is checked, as upstream)
    target = [1.0, 13.0, 25.0, 21.5, 18.0, 14.5, 11.0, 7.5, 4.0, 0.5]
    scheduler = OneCycleLR(optimizer, eta_max=25, final_div_factor=2, total_steps=10, anneal_strategy="linear")
    check_values(optimizer, scheduler, [target], 10)

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
    check_values(optimizer, scheduler, [target], 10)

    # cosine annealing
    target = [1.0, 13.0, 25.0] + [_annealing_cos(25, 0.5, i / 7.0) for i in range(1, 7)] + [0.5]
    scheduler = OneCycleLR(optimizer, eta_max=25, final_div_factor=2, total_steps=10)
    check_values(optimizer, scheduler, [target], 10)
