"""lightning_hooks.optim's parameter schedulers step for step against MMEngine 0.10.7's own classes.

Every scheduler is built from the same config dict on two identical optimizers (three
parameter groups with different lr, momentum/betas and weight decay), once by MMEngine's
registry and once by ours, and stepped the same number of times; every group's value must
agree to 1e-9 relative after construction and after every step.
"""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from lightning_hooks.optim import PARAM_SCHEDULERS, build_param_scheduler, build_param_schedulers

mm_optim = pytest.importorskip("mmengine.optim")
mm_registry = pytest.importorskip("mmengine.registry")

STEPS = 14
EPOCH_LENGTH = 3


def three_groups(kind: str) -> torch.optim.Optimizer:
    torch.manual_seed(0)
    layers = [nn.Linear(2, 2) for _ in range(3)]
    groups = [
        {"params": layers[0].parameters()},
        {"params": layers[1].parameters(), "lr": 0.05, "weight_decay": 1e-3},
        {"params": layers[2].parameters(), "lr": 0.2, "weight_decay": 0.0},
    ]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=5e-4)
    return torch.optim.AdamW(groups, lr=0.1, betas=(0.9, 0.999), weight_decay=0.05)


def values(optimizer: torch.optim.Optimizer) -> list[tuple]:
    return [
        (g["lr"], g.get("momentum"), g["betas"][0] if "betas" in g else None, g["weight_decay"])
        for g in optimizer.param_groups
    ]


def assert_same(ours: list[tuple], theirs: list[tuple], where: str) -> None:
    flat_ours = [v for row in ours for v in row if v is not None]
    flat_theirs = [v for row in theirs for v in row if v is not None]
    assert len(flat_ours) == len(flat_theirs), where
    assert flat_ours == pytest.approx(flat_theirs, rel=1e-9, abs=1e-15), where


def mm_build(cfg: dict, optimizer: torch.optim.Optimizer, max_epochs: int = 5, max_iters: int = 12):
    cfg = dict(cfg)
    cfg.setdefault("end", max_epochs if cfg.get("by_epoch", True) else max_iters)
    return mm_registry.PARAM_SCHEDULERS.build(cfg, default_args=dict(optimizer=optimizer, epoch_length=EPOCH_LENGTH))


CASES = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=6),
    dict(type="LinearLR", start_factor=0.25, end_factor=0.5, begin=2, end=9, by_epoch=False),
    dict(type="ConstantLR", factor=0.5, begin=1, end=4),
    dict(type="StepLR", step_size=3, gamma=0.5),
    dict(type="MultiStepLR", milestones=[2, 2, 4], gamma=0.5),
    dict(type="ExponentialLR", gamma=0.9, begin=3),
    dict(type="CosineAnnealingLR", T_max=5, eta_min=0.001, by_epoch=False, end=20),
    dict(type="CosineAnnealingLR", eta_min_ratio=0.01, begin=2, end=10, by_epoch=False),
    dict(type="CosineAnnealingLR", T_max=3, by_epoch=False, end=30),  # past T_max: the (2k+1)T_max branch
    dict(type="CosineRestartLR", periods=[4, 6], restart_weights=[1, 0.5], eta_min=0.001, by_epoch=False, end=20),
    dict(type="CosineRestartLR", periods=[5, 5], restart_weights=[1, 0.8], eta_min_ratio=0.1, by_epoch=False, end=20),
    dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=1, end=12, by_epoch=False),
    dict(type="PolyLR", power=1.0),
    dict(type="OneCycleLR", eta_max=0.3, total_steps=14, by_epoch=False, end=14),
    dict(
        type="OneCycleLR",
        eta_max=[0.3, 0.2, 0.1],
        total_steps=14,
        three_phase=True,
        anneal_strategy="linear",
        by_epoch=False,
        end=14,
    ),
    dict(type="LinearMomentum", start_factor=0.5, by_epoch=False, end=6),
    dict(type="CosineAnnealingMomentum", T_max=8, eta_min=0.85, by_epoch=False, end=8),
    dict(type="StepMomentum", step_size=2, gamma=0.9),
    dict(type="MultiStepMomentum", milestones=[3], gamma=0.95),
    dict(type="ExponentialMomentum", gamma=0.99),
    dict(type="PolyMomentum", eta_min=0.5, power=2.0, by_epoch=False, end=10),
    dict(type="ConstantMomentum", factor=0.9, end=3),
    dict(type="CosineRestartMomentum", periods=[5], restart_weights=[1], eta_min=0.5, by_epoch=False, end=10),
    dict(
        type="CosineAnnealingParamScheduler", param_name="weight_decay", T_max=10, eta_min=0.0, by_epoch=False, end=10
    ),
    dict(type="LinearParamScheduler", param_name="weight_decay", start_factor=0.2, by_epoch=False, end=5),
    dict(type="MultiStepParamScheduler", param_name="weight_decay", milestones=[2], gamma=10.0),
    # convert_to_iter_based: epoch-counted arguments times the epoch length
    dict(type="CosineAnnealingLR", T_max=3, eta_min=0.0, begin=1, end=4, convert_to_iter_based=True),
    dict(type="MultiStepLR", milestones=[1, 3], gamma=0.1, convert_to_iter_based=True),
    dict(type="StepLR", step_size=2, gamma=0.5, convert_to_iter_based=True),
    dict(type="LinearLR", start_factor=0.001, begin=0, end=1, convert_to_iter_based=True),
    dict(type="CosineRestartLR", periods=[2, 2], restart_weights=[1, 0.5], eta_min=0.0, convert_to_iter_based=True),
    dict(type="OneCycleLR", eta_max=0.4, total_steps=4, end=4, convert_to_iter_based=True),
    dict(type="PolyLR", power=2.0, eta_min=0.0, begin=0, convert_to_iter_based=True),
]


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
@pytest.mark.parametrize("cfg", CASES, ids=lambda c: f"{c['type']}-{c.get('param_name', '')}{c.get('begin', '')}")
def test_scheduler_matches_mmengine(cfg, kind):
    ours_opt, mm_opt = three_groups(kind), three_groups(kind)
    ours = build_param_scheduler(cfg, ours_opt, epoch_length=EPOCH_LENGTH, max_epochs=5, max_iters=12)
    theirs = mm_build(cfg, mm_opt)
    assert_same(values(ours_opt), values(mm_opt), "after construction")
    for step in range(STEPS):
        ours.step()
        theirs.step()
        assert_same(values(ours_opt), values(mm_opt), f"after step {step + 1}")
    assert (ours.begin, ours.end, ours.by_epoch) == (theirs.begin, theirs.end, theirs.by_epoch)


def test_schedulers_compose_within_their_windows():
    """Warmup, then cosine, then a constant tail: MMEngine's usual list, stepped together."""
    section = [
        dict(type="LinearLR", start_factor=1e-3, by_epoch=False, begin=0, end=4),
        dict(type="CosineAnnealingLR", eta_min=1e-5, begin=4, end=10, by_epoch=False),
        dict(type="ConstantLR", factor=0.5, begin=10, end=13, by_epoch=False),
        dict(type="CosineAnnealingMomentum", eta_min=0.8, begin=0, end=12, by_epoch=False),
        dict(type="CosineAnnealingParamScheduler", param_name="weight_decay", eta_min=1e-5, by_epoch=False),
    ]
    ours_opt, mm_opt = three_groups("sgd"), three_groups("sgd")
    ours = build_param_schedulers(section, ours_opt, None)
    theirs = [mm_build(c, mm_opt, max_iters=12) for c in section]
    # our default end comes from the lengths; without them it stays INF, as MMEngine without a train loop
    assert ours[-1].end == 10**9 and theirs[-1].end == 12
    ours_opt, mm_opt = three_groups("sgd"), three_groups("sgd")
    from lightning_hooks.optim import TrainingLengths

    ours = build_param_schedulers(section, ours_opt, TrainingLengths(max_epochs=5, max_iters=12, epoch_length=3))
    theirs = [mm_build(c, mm_opt, max_iters=12) for c in section]
    for step in range(15):
        assert_same(values(ours_opt), values(mm_opt), f"step {step}")
        for a, b in zip(ours, theirs, strict=True):
            a.step()
            b.step()


def test_plateau_matches_mmengine():
    cfg = dict(
        type="ReduceOnPlateauLR", monitor="acc", rule="greater", factor=0.5, patience=1, cooldown=1, min_value=0.02
    )
    metrics = [0.5, 0.6, 0.6, 0.6, 0.55, 0.7, 0.7, 0.7, 0.7, 0.7]
    ours_opt, mm_opt = three_groups("sgd"), three_groups("sgd")
    ours = build_param_scheduler(cfg, ours_opt, max_epochs=8)
    theirs = mm_build(cfg, mm_opt, max_epochs=8)
    for metric in metrics:
        for s in (ours, theirs):
            s.step()  # after the training epoch: counts only
            s.step({"acc": metric})  # after validation
        assert_same(values(ours_opt), values(mm_opt), f"metric {metric}")
    assert ours_opt.param_groups[0]["lr"] < 0.1


def test_quadratic_warmup_closed_form():
    """mmdet's QuadraticWarmupLR: lr(t) = base * (t + 1)^2 / T^2 inside the window, then left alone."""
    opt = three_groups("sgd")
    base = [g["lr"] for g in opt.param_groups]
    sched = build_param_scheduler(
        dict(type="mmdet.QuadraticWarmupLR", by_epoch=True, begin=0, end=2, convert_to_iter_based=True),
        opt,
        epoch_length=3,
    )
    total = 6
    for t in range(10):
        expected = [b * min(t + 1, total) ** 2 / total**2 for b in base]
        assert [g["lr"] for g in opt.param_groups] == pytest.approx(expected, rel=1e-9), t
        sched.step()


def test_state_dict_loads_weights_only_and_resumes():
    cfg = dict(type="MultiStepLR", milestones=[2, 4], gamma=0.5, by_epoch=False, end=10)
    opt = three_groups("sgd")
    sched = build_param_scheduler(cfg, opt)
    for _ in range(3):
        sched.step()
    buffer = io.BytesIO()
    torch.save({"sched": sched.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    opt2 = three_groups("sgd")
    sched2 = build_param_scheduler(cfg, opt2)
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    for _ in range(4):
        sched.step()
        sched2.step()
    assert values(opt2) == values(opt)
    assert math.isclose(opt2.param_groups[0]["lr"], 0.025)


def test_last_step_resumes_without_a_state_dict():
    """last_step=k continues a schedule from the optimizer's initial_lr, as MMEngine's last_step does."""
    cfg = dict(type="CosineAnnealingLR", T_max=10, eta_min=0.0, by_epoch=False, end=10, last_step=3)
    ours_opt, mm_opt = three_groups("sgd"), three_groups("sgd")
    for opt in (ours_opt, mm_opt):
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
    ours = build_param_scheduler(cfg, ours_opt)
    theirs = mm_build(cfg, mm_opt)
    for step in range(6):
        assert_same(values(ours_opt), values(mm_opt), f"step {step}")
        ours.step()
        theirs.step()
    assert ours.last_step == theirs.last_step
    with pytest.raises(
        KeyError, match=r"param 'initial_lr' is not specified in param_groups\[0\], needed to resume at last_step=3"
    ):
        build_param_scheduler(cfg, three_groups("sgd"))


def test_registry_names_match_mmengine():
    mm_names = {
        name for name in mm_registry.PARAM_SCHEDULERS.module_dict if name.endswith(("LR", "Momentum", "ParamScheduler"))
    }
    assert mm_names <= set(PARAM_SCHEDULERS.module_dict)
    assert {"QuadraticWarmupLR", "QuadraticWarmupMomentum", "QuadraticWarmupParamScheduler"} <= set(
        PARAM_SCHEDULERS.module_dict
    )


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("cfg", "error", "match"),
    [
        (dict(type="LinearRL"), KeyError, r"'LinearRL' is not registered.*Did you mean 'LinearLR'"),
        (
            dict(type="StepLR", step_size=1, begin=5, end=5),
            ValueError,
            r"StepLR: end should be larger than begin \(end is exclusive\), got begin=5, end=5",
        ),
        (dict(type="LinearLR", begin=4, end=2), ValueError, r"begin=4, end=2"),
        (
            dict(type="LinearParamScheduler", param_name="dampening_x"),
            ValueError,
            r"param_name='dampening_x' is not a setting",
        ),
        (
            dict(type="CosineAnnealingLR", by_epoch=False, convert_to_iter_based=True),
            ValueError,
            r"convert_to_iter_based=True .* by_epoch=False",
        ),
        (
            dict(type="ReduceOnPlateauLR", monitor="acc", by_epoch=False),
            ValueError,
            r"ReduceOnPlateauLR is epoch-based only",
        ),
        (dict(type="StepLR", step_size=1, gama=0.5), TypeError, r"StepLR: .*'gama'"),
        (dict(type="QuadraticWarmupLR"), ValueError, r"end must be set"),
        # values MMEngine takes and then fails on (or silently ignores) in the middle of training
        (dict(type="StepLR", step_size=0), ValueError, r"StepLR: step_size must be a positive number, got 0"),
        (dict(type="StepLR", step_size=1, gamma=-1), ValueError, r"StepLR: gamma must be a number >= 0, got -1"),
        (dict(type="MultiStepLR", milestones="12"), ValueError, r"milestones must be a list of steps, got '12'"),
        (dict(type="StepLR", step_size=1, convert_to_iter_based="yes"), TypeError, r"convert_to_iter_based must be"),
        (dict(type="StepLR", step_size=1, verbose="no"), TypeError, r"StepLR: verbose must be True or False"),
    ],
)
def test_bad_scheduler_config_names_the_value(cfg, error, match):
    with pytest.raises(error, match=match):
        build_param_scheduler(cfg, three_groups("sgd"), epoch_length=3)


def test_momentum_scheduler_needs_momentum():
    opt = torch.optim.Adagrad(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="Adagrad has neither momentum nor betas"):
        build_param_scheduler(dict(type="LinearMomentum"), opt)


@pytest.mark.parametrize(
    "cfg",
    [
        dict(type="StepLR", step_size=1.5, gamma=0.5, by_epoch=False),
        dict(type="StepLR", step_size=2.0, gamma=0.5, by_epoch=False),
        dict(type="StepLR", step_size=1.5, gamma=0.5, convert_to_iter_based=True),
    ],
)
def test_a_float_step_size_steps_as_in_mmengine(cfg):
    """MMEngine takes any number: ``step_size=1.5`` converted with 4 batches an epoch is 6 iterations."""
    from mmengine.optim.scheduler import StepLR as MMStepLR

    def lrs(build):
        optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1.0)
        scheduler = build(optimizer)
        seen = []
        for _ in range(14):
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return seen

    ours = lrs(lambda opt: build_param_scheduler(dict(cfg), opt, epoch_length=4))
    mm_cfg = {k: v for k, v in cfg.items() if k not in ("type", "convert_to_iter_based")}
    if cfg.get("convert_to_iter_based"):
        theirs = lrs(lambda opt: MMStepLR.build_iter_from_epoch(opt, epoch_length=4, **mm_cfg))
    else:
        theirs = lrs(lambda opt: MMStepLR(opt, **mm_cfg))
    assert len(set(ours)) > 1 and ours == theirs
