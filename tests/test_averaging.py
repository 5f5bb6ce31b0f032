"""Averaged models: the same numbers as MMEngine's classes, plus the documented improvements."""

from __future__ import annotations

import copy
import warnings

import mmengine.model as mm
import pytest
import torch
from torch import nn

from lightning_hooks import (
    AVERAGED_MODELS,
    AveragingConfigError,
    BaseAveragedModel,
    ExponentialMovingAverage,
    MomentumAnnealingEMA,
    StochasticWeightAverage,
)

OURS = {
    "ExponentialMovingAverage": ExponentialMovingAverage,
    "MomentumAnnealingEMA": MomentumAnnealingEMA,
    "StochasticWeightAverage": StochasticWeightAverage,
}
KWARGS = {
    "ExponentialMovingAverage": dict(momentum=0.1),
    "MomentumAnnealingEMA": dict(momentum=0.1, gamma=4),
    "StochasticWeightAverage": {},
}


class BNNet(nn.Module):
    """Linear + BatchNorm1d (float running stats and an integer num_batches_tracked) + a non-persistent buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.bn = nn.BatchNorm1d(8)
        self.head = nn.Linear(8, 2)
        self.register_buffer("scratch", torch.zeros(3), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bn(self.fc(x)))


def train_step(model: nn.Module, gen: torch.Generator) -> None:
    """Change every parameter and the BN statistics, as a real training step would."""
    model.train()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
        model(torch.randn(16, 4, generator=gen))
        model.scratch.add_(1.0)


def float_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in module.state_dict().items() if v.is_floating_point()}


@pytest.mark.parametrize("name", list(OURS))
@pytest.mark.parametrize("update_buffers", [False, True])
@pytest.mark.parametrize("interval", [1, 3])
def test_same_numbers_as_mmengine(name, update_buffers, interval):
    torch.manual_seed(0)
    src = BNNet()
    ours = OURS[name](src, interval=interval, update_buffers=update_buffers, **KWARGS[name])
    theirs = getattr(mm, name)(src, interval=interval, update_buffers=update_buffers, **KWARGS[name])
    gen = torch.Generator().manual_seed(1)
    for _ in range(23):
        train_step(src, gen)
        ours.update_parameters(src)
        theirs.update_parameters(src)
    assert ours.steps == int(theirs.steps) == 23
    mine, ref = float_state(ours.module), float_state(theirs.module)
    assert list(mine) == list(ref)
    for key in ref:
        torch.testing.assert_close(mine[key], ref[key], rtol=1e-6, atol=1e-7, msg=f"{name}: {key} differs")
    # The average really moved away from the source (otherwise the comparison proves little).
    assert not torch.allclose(ours.module.fc.weight, src.fc.weight)
    # Integer buffers keep counting with the source; MMEngine freezes them after step 0 when averaging buffers.
    assert int(ours.module.bn.num_batches_tracked) == int(src.bn.num_batches_tracked) == 23
    assert int(theirs.module.bn.num_batches_tracked) == (1 if update_buffers else 23)


def test_state_dict_layout_is_mmengines_and_loads_both_ways():
    torch.manual_seed(0)
    src = BNNet()
    ours = ExponentialMovingAverage(src, momentum=0.1, update_buffers=True)
    theirs = mm.ExponentialMovingAverage(src, momentum=0.1, update_buffers=True)
    gen = torch.Generator().manual_seed(2)
    for _ in range(5):
        train_step(src, gen)
        ours.update_parameters(src)
        theirs.update_parameters(src)
    mine, ref = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(ref)
    assert mine["steps"].dtype == torch.long and int(mine["steps"]) == 5
    # MMEngine's state into ours, and ours into MMEngine's, strictly.
    fresh = ExponentialMovingAverage(BNNet(), momentum=0.1, update_buffers=True)
    fresh.load_state_dict(ref, strict=True)
    assert fresh.steps == 5
    torch.testing.assert_close(fresh.module.fc.weight, theirs.module.fc.weight)
    other = mm.ExponentialMovingAverage(BNNet(), momentum=0.1, update_buffers=True)
    other.load_state_dict(mine, strict=True)
    assert int(other.steps) == 5
    with pytest.raises(RuntimeError, match="steps"):
        fresh.load_state_dict({k: v for k, v in ref.items() if k != "steps"}, strict=True)


def test_mmengine_expected_sequences():
    """MMEngine's own expectations (test_averaged_model.py): EMA 0.9/0.1 and annealing max(0.1, 4/(4+i))."""
    model = nn.Linear(3, 3)
    ema = ExponentialMovingAverage(model, momentum=0.1)
    annealed = MomentumAnnealingEMA(model, momentum=0.1, gamma=4, interval=3)
    expected_ema = expected_ann = None
    for i in range(10):
        with torch.no_grad():
            model.weight.copy_(torch.full((3, 3), float(i * i)))
        ema.update_parameters(model)
        annealed.update_parameters(model)
        w = model.weight.detach().clone()
        expected_ema = w if i == 0 else expected_ema * 0.9 + w * 0.1
        if i == 0:
            expected_ann = w
        elif i % 3 == 0:
            m = max(0.1, 4 / (4 + i))
            expected_ann = expected_ann * (1 - m) + w * m
        torch.testing.assert_close(ema.module.weight, expected_ema)
        torch.testing.assert_close(annealed.module.weight, expected_ann)


def test_swa_is_the_mean_of_the_snapshots():
    model = nn.Linear(2, 2)
    swa = StochasticWeightAverage(model)
    snaps = []
    for _ in range(7):
        with torch.no_grad():
            model.weight.normal_()
        snaps.append(model.weight.detach().clone())
        swa.update_parameters(model)
    torch.testing.assert_close(swa.module.weight, torch.stack(snaps).mean(0))


class _CountSyncs:
    """Counts the Tensor methods that read a value back to the host (each is a device sync on GPU)."""

    NAMES = ("item", "__bool__", "__int__", "__float__", "__index__", "tolist")

    def __init__(self) -> None:
        self.count = 0
        self._saved: dict[str, object] = {}

    def __enter__(self) -> _CountSyncs:
        for name in self.NAMES:
            original = getattr(torch.Tensor, name)
            self._saved[name] = original

            def wrapper(tensor, *args, _original=original, **kwargs):
                self.count += 1
                return _original(tensor, *args, **kwargs)

            setattr(torch.Tensor, name, wrapper)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, original in self._saved.items():
            setattr(torch.Tensor, name, original)


@pytest.mark.parametrize("name", list(OURS))
def test_no_host_reads_per_update(name):
    torch.manual_seed(0)
    src = BNNet()
    ours = OURS[name](src, interval=2, update_buffers=True, **KWARGS[name])
    theirs = getattr(mm, name)(src, interval=2, update_buffers=True, **KWARGS[name])
    gen = torch.Generator().manual_seed(3)
    train_step(src, gen)
    ours.update_parameters(src)  # plan resolution happens once, outside the counted updates
    with _CountSyncs() as mine:
        for _ in range(6):
            ours.update_parameters(src)
    with _CountSyncs() as ref:
        for _ in range(6):
            theirs.update_parameters(src)
    assert mine.count == 0
    assert ref.count >= 6  # MMEngine reads its tensor step counter on the host at every update


def test_bad_arguments_name_the_value():
    model = nn.Linear(2, 2)
    with pytest.raises(AssertionError, match=r"momentum must be in range \(0.0, 1.0\).*got 3"):
        ExponentialMovingAverage(model, momentum=3)
    with pytest.raises(AveragingConfigError, match=r"gamma must be greater than 0.*-1"):
        MomentumAnnealingEMA(model, gamma=-1)
    with pytest.raises(AveragingConfigError, match=r"gamma must be greater than 0.*nan"):
        MomentumAnnealingEMA(model, gamma=float("nan"))  # would average as plain EMA without a word
    with pytest.raises(ValueError, match=r"interval must be an int >= 1.*got 0"):
        ExponentialMovingAverage(model, interval=0)
    with pytest.raises(ValueError, match=r"dtype must be None.*'int8'"):
        ExponentialMovingAverage(model, dtype="int8")
    with pytest.warns(UserWarning, match=r"Did you mean momentum=0\.1"):
        ExponentialMovingAverage(model, momentum=0.9)


def test_user_registered_avg_func_and_subclass_rules():
    @AVERAGED_MODELS.register_module(force=True)
    class HalfwayAverage(BaseAveragedModel):
        def avg_func(self, averaged_param, source_param, steps):
            averaged_param.lerp_(source_param, 0.5)

    class OverridesOnlyAvgFunc(ExponentialMovingAverage):
        def avg_func(self, averaged_param, source_param, steps):
            averaged_param.copy_(source_param * 0 + 7)

    model = nn.Linear(2, 2)
    built = AVERAGED_MODELS.build(dict(type="HalfwayAverage", model=model))
    sub = OverridesOnlyAvgFunc(model, momentum=0.1)
    start = model.weight.detach().clone()
    built.update_parameters(model)
    sub.update_parameters(model)
    with torch.no_grad():
        model.weight.add_(2.0)
    built.update_parameters(model)
    sub.update_parameters(model)
    torch.testing.assert_close(built.module.weight, start + 1.0)
    torch.testing.assert_close(sub.module.weight, torch.full_like(start, 7.0))  # its own rule, not the fused EMA


def test_other_dtype_and_device_match_mmengine_in_that_dtype():
    """An fp64 average of an fp32 model (staging path) equals MMEngine averaging an fp64 copy of it."""
    torch.manual_seed(0)
    src = BNNet()
    ours = ExponentialMovingAverage(src, momentum=0.2, interval=2, update_buffers=True, device="cpu", dtype="float64")
    shadow = copy.deepcopy(src).double()
    theirs = mm.ExponentialMovingAverage(shadow, momentum=0.2, interval=2, update_buffers=True)
    gen = torch.Generator().manual_seed(4)
    for _ in range(9):
        train_step(src, gen)
        shadow.load_state_dict(src.state_dict())
        ours.update_parameters(src)
        theirs.update_parameters(shadow)
    assert ours.module.fc.weight.dtype == torch.float64
    for key, ref in float_state(theirs.module).items():
        torch.testing.assert_close(ours.module.state_dict()[key], ref, rtol=0, atol=0)


def test_buffers_replaced_by_to_are_followed():
    """module.to() replaces buffer tensors; the cached plan must read the new ones."""
    torch.manual_seed(0)
    src = BNNet()
    ema = ExponentialMovingAverage(src, momentum=0.5)
    ema.update_parameters(src)
    src.to(torch.float64).to(torch.float32)  # new buffer objects
    gen = torch.Generator().manual_seed(5)
    train_step(src, gen)
    ema.update_parameters(src)
    torch.testing.assert_close(ema.module.bn.running_mean, src.bn.running_mean)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ema.to("cpu")
    ema.update_parameters(src)
    assert ema.steps == 3


def test_copies_of_the_average_do_not_drag_the_source_model_along():
    torch.manual_seed(0)
    src = BNNet()
    ema = ExponentialMovingAverage(src, momentum=0.5)
    ema.update_parameters(src)
    clone = copy.deepcopy(ema)
    assert clone._plan is None and ema._plan is not None
    assert clone.steps == 1
    torch.testing.assert_close(clone.module.fc.weight, ema.module.fc.weight)
    gen = torch.Generator().manual_seed(6)
    train_step(src, gen)
    clone.update_parameters(src)  # the copy resolves its own plan against the source
    ema.update_parameters(src)
    torch.testing.assert_close(clone.module.fc.weight, ema.module.fc.weight)
