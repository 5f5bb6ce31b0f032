"""Real OpenMMLab recipes (``optim_wrapper`` + ``param_scheduler``) give the same hyper-parameters on Lightning.

Each scenario trains the tiny toy data (4 iterations per epoch) once through MMEngine's
``Runner`` with the config sections as written, and once through ``Trainer + HookBridge``
whose ``configure_optimizers`` returns ``mmengine_optimizers(self, cfg)``. A hook records
lr, momentum (or Adam's beta1) and weight decay of every parameter group before every
iteration and after training; the two records must be equal to 1e-9 relative.

The sections are copied from the named upstream files (Apache-2.0) and shortened in
length only: epochs, iterations, ``begin``/``end``, milestones and ``T_max`` are scaled
down, nothing else changes unless a comment says so.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any, Optional

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from toy import loaders, make_trainer, mm_loader_cfgs

from lightning_hooks import HookBridge, mmengine_optimizers
from lightning_hooks.hooks import Hook

pytest.importorskip("mmengine")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

NO_EXTRAS = dict(checkpoint=None, logger=None)


class Net(nn.Module):
    """Every kind of parameter the paramwise rules tell apart: conv, norm, depth-wise conv, bias, 1-d, custom key."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(2, 4, 1)
        self.bn = nn.BatchNorm2d(4)
        self.dw = nn.Conv2d(4, 4, 1, groups=4)
        self.ln = nn.LayerNorm(4)
        self.absolute_pos_embed = nn.Parameter(torch.zeros(4))
        self.head = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(self.stem(x[:, :, None, None]))
        h = self.dw(h).flatten(1) + self.absolute_pos_embed
        return self.head(self.ln(h)).squeeze(-1)


def group_values(optimizer: torch.optim.Optimizer) -> list[tuple]:
    return [
        (g["lr"], g["betas"][0] if "betas" in g else g.get("momentum"), g.get("weight_decay"))
        for g in optimizer.param_groups
    ]


def recorder(base: type, log: list) -> Any:
    """A hook (of MMEngine's or our Hook class) recording every group's values per iteration."""

    class Record(base):  # type: ignore[misc, valid-type]
        priority = "HIGHEST"

        def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
            log.append(("iter", runner.iter, group_values(runner.optim_wrapper.optimizer)))

        def after_train(self, runner: Any) -> None:
            log.append(("end", runner.iter, group_values(runner.optim_wrapper.optimizer)))

    return Record()


# ----------------------------------------------------------------------------------- MMEngine side
def run_mmengine(tmp_path: Any, cfg: dict, train_cfg: dict, infinite: bool = False) -> list:
    from mmengine.evaluator import BaseMetric
    from mmengine.hooks import Hook as MMHook
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class MMNet(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            self.net = Net()

        def forward(self, inputs: torch.Tensor, label: torch.Tensor, mode: str = "tensor") -> Any:
            out = self.net(inputs)
            if mode == "loss":
                return {"loss": ((out - label) ** 2).mean()}
            return [((out > 0.5).float() == label).float()]

    class Acc(BaseMetric):
        def process(self, data_batch: Any, data_samples: Any) -> None:
            self.results.extend(data_samples[0].tolist())

        def compute_metrics(self, results: list) -> dict:
            return {"acc": sum(results) / len(results)}

    log: list = []
    train, val = mm_loader_cfgs(infinite)
    runner = Runner(
        model=MMNet(),
        work_dir=str(tmp_path / "mm"),
        experiment_name=f"mm_{uuid.uuid4().hex[:8]}",
        train_dataloader=train,
        val_dataloader=val,
        val_cfg=dict(),
        val_evaluator=dict(type=Acc),
        train_cfg=train_cfg,
        optim_wrapper=copy.deepcopy(cfg["optim_wrapper"]),
        param_scheduler=copy.deepcopy(cfg.get("param_scheduler")),
        auto_scale_lr=copy.deepcopy(cfg.get("auto_scale_lr")),
        default_hooks=dict(NO_EXTRAS),
        custom_hooks=[recorder(MMHook, log)],
        log_level="WARNING",
    )
    runner.train()
    return log


# ---------------------------------------------------------------------------------- Lightning side
class RecipeModule(pl.LightningModule):
    def __init__(self, cfg: dict) -> None:
        super().__init__()
        self.net = Net()
        self.cfg = cfg

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return ((self.net(batch["inputs"]) - batch["label"]) ** 2).mean()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        acc = ((self.net(batch["inputs"]) > 0.5).float() == batch["label"]).float().mean()
        self.log("acc", acc, on_epoch=True)

    def configure_optimizers(self) -> Any:
        return mmengine_optimizers(self, self.cfg)


def run_lightning(tmp_path: Any, cfg: dict, trainer_kwargs: dict) -> tuple[list, pl.Trainer]:
    log: list = []
    bridge = HookBridge(default_hooks=dict(NO_EXTRAS), custom_hooks=[recorder(Hook, log)])
    trainer = make_trainer(tmp_path / "lh", bridge, **trainer_kwargs)
    train, val = loaders()
    trainer.fit(RecipeModule(copy.deepcopy(cfg)), train, val)
    return log, trainer


def compare(
    tmp_path: Any,
    cfg: dict,
    train_cfg: dict,
    trainer_kwargs: dict,
    infinite: bool = False,
    mm_cfg: Optional[dict] = None,
) -> tuple[list, pl.Trainer]:
    """Run both sides (MMEngine gets ``mm_cfg`` where it needs a different spelling) and compare the records."""
    mm_log = run_mmengine(tmp_path, mm_cfg or cfg, train_cfg, infinite)
    lh_log, trainer = run_lightning(tmp_path, cfg, trainer_kwargs)
    assert [entry[:2] for entry in lh_log] == [entry[:2] for entry in mm_log]
    for (kind, it, ours), (_, _, theirs) in zip(lh_log, mm_log, strict=True):
        assert len(ours) == len(theirs), f"{kind} {it}: {len(ours)} groups vs {len(theirs)}"
        flat_ours = [v for row in ours for v in row]
        flat_theirs = [v for row in theirs for v in row]
        assert [v is None for v in flat_ours] == [v is None for v in flat_theirs], f"{kind} {it}"
        assert [v for v in flat_ours if v is not None] == pytest.approx(
            [v for v in flat_theirs if v is not None], rel=1e-9, abs=1e-15
        ), f"{kind} {it}"
    return mm_log, trainer


def epochs(n: int, val_interval: int = 1) -> tuple[dict, dict]:
    return dict(by_epoch=True, max_epochs=n, val_interval=val_interval), dict(max_epochs=n)


def lr_series(log: list, group: int = 0) -> list[float]:
    return [values[group][0] for _, _, values in log]


# -------------------------------------------------------------------------------------------- mmpretrain
# mmpretrain 1.2.0 configs/_base_/schedules/imagenet_bs256_coslr_coswd_300e.py: 300 epochs, 5 warmup -> 4 and 1
COSLR_COSWD = dict(
    optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=0.0001)),
    param_scheduler=[
        dict(type="LinearLR", start_factor=0.001, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
        dict(type="CosineAnnealingLR", T_max=3, eta_min=1.0e-6, by_epoch=True, begin=1, end=4),
        dict(
            type="CosineAnnealingParamScheduler",
            param_name="weight_decay",
            eta_min=0.00001,
            by_epoch=True,
            begin=0,
            end=4,
        ),
    ],
)


def test_mmpretrain_cosine_lr_and_weight_decay(tmp_path):
    train_cfg, trainer_kwargs = epochs(4)
    log, _ = compare(tmp_path, COSLR_COSWD, train_cfg, trainer_kwargs)
    lrs = lr_series(log)
    assert lrs[0] == pytest.approx(1e-4) and max(lrs) == pytest.approx(0.1)  # warmup by iteration, then cosine
    assert log[-1][2][0][2] < 1e-4  # the weight decay was annealed too


# mmpretrain 1.2.0 configs/_base_/schedules/imagenet_bs1024_adamw_swin.py (300 epochs, 20 warmup -> 3 and 1),
# with configs/swin_transformer/swin-tiny_16xb64_in1k.py's clip_grad=dict(max_norm=5.0)
ADAMW_SWIN = dict(
    optim_wrapper=dict(
        optimizer=dict(type="AdamW", lr=5e-4 * 1024 / 512, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
        paramwise_cfg=dict(
            norm_decay_mult=0.0,
            bias_decay_mult=0.0,
            flat_decay_mult=0.0,
            custom_keys={
                ".absolute_pos_embed": dict(decay_mult=0.0),
                ".relative_position_bias_table": dict(decay_mult=0.0),
            },
        ),
        clip_grad=dict(max_norm=5.0),
    ),
    param_scheduler=[
        dict(type="LinearLR", start_factor=1e-3, by_epoch=True, end=1, convert_to_iter_based=True),
        dict(type="CosineAnnealingLR", eta_min=1e-5, by_epoch=True, begin=1),
    ],
    auto_scale_lr=dict(base_batch_size=1024),
)


def test_mmpretrain_adamw_swin_paramwise_and_clipping(tmp_path):
    train_cfg, trainer_kwargs = epochs(3)
    log, trainer = compare(tmp_path, ADAMW_SWIN, train_cfg, trainer_kwargs)
    decays = [wd for _, _, wd in log[0][2]]
    assert 0.0 in decays and 0.05 in decays  # paramwise rules made groups differ
    assert len(log[0][2]) == 11  # one group per parameter
    assert trainer.gradient_clip_val == 5.0 and trainer.gradient_clip_algorithm == "norm"


# mmpretrain 1.2.0 configs/_base_/schedules/imagenet_bs1024_linearlr_bn_nowd.py: ConstantLR for 5000 iterations -> 5,
# then PolyLR to the end of training (its default end: max_iters)
LINEARLR_BN_NOWD = dict(
    optim_wrapper=dict(
        optimizer=dict(type="SGD", lr=0.5, momentum=0.9, weight_decay=0.00004), paramwise_cfg=dict(norm_decay_mult=0)
    ),
    param_scheduler=[
        dict(type="ConstantLR", factor=0.1, by_epoch=False, begin=0, end=5),
        dict(type="PolyLR", eta_min=0, by_epoch=False, begin=5),
    ],
)


def test_mmpretrain_constant_then_poly_default_end(tmp_path):
    train_cfg, trainer_kwargs = epochs(3)
    log, _ = compare(tmp_path, LINEARLR_BN_NOWD, train_cfg, trainer_kwargs)
    assert lr_series(log)[-1] == pytest.approx(0.0, abs=1e-12)  # PolyLR reached eta_min at max_iters


def test_auto_scale_lr_scales_by_the_real_batch(tmp_path):
    """auto_scale_lr with enable=True: world size 1 x batch 3 against base_batch_size 12 -> lr x 0.25."""
    cfg = copy.deepcopy(LINEARLR_BN_NOWD)
    cfg["auto_scale_lr"] = dict(enable=True, base_batch_size=12, _delete_=True)  # a merge's leftover: ignored
    train_cfg, trainer_kwargs = epochs(2)
    log, _ = compare(tmp_path, cfg, train_cfg, trainer_kwargs)
    assert lr_series(log)[0] == pytest.approx(0.5 * 0.25 * 0.1)  # ConstantLR's factor 0.1 on the scaled lr


# ------------------------------------------------------------------------------------------------ mmdet
# mmdet 3.3.0 configs/_base_/schedules/schedule_1x.py: 12 epochs, milestones 8/11, warmup 500 iterations
# -> 4 epochs, milestones 2/3, warmup 6 iterations. accumulative_counts=2 is added here.
SCHEDULE_1X = dict(
    param_scheduler=[
        dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=6),
        dict(type="MultiStepLR", begin=0, end=4, by_epoch=True, milestones=[2, 3], gamma=0.1),
    ],
    optim_wrapper=dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.02, momentum=0.9, weight_decay=0.0001)),
    auto_scale_lr=dict(enable=False, base_batch_size=16),
)


@pytest.mark.parametrize("accumulate", [1, 2])
def test_mmdet_schedule_1x(tmp_path, accumulate):
    cfg = copy.deepcopy(SCHEDULE_1X)
    if accumulate != 1:
        cfg["optim_wrapper"]["accumulative_counts"] = accumulate
    train_cfg, trainer_kwargs = epochs(4)
    log, trainer = compare(tmp_path, cfg, train_cfg, trainer_kwargs)
    assert trainer.accumulate_grad_batches == accumulate
    assert lr_series(log)[-1] == pytest.approx(0.02 * 0.01)


# mmdet 3.3.0 configs/rtmdet/rtmdet_l_8xb32-300e_coco.py: 300 epochs, warmup 1000 iterations, cosine over the
# second half -> 4 epochs, warmup 5 iterations
RTMDET = dict(
    optim_wrapper=dict(
        _delete_=True,
        type="OptimWrapper",
        optimizer=dict(type="AdamW", lr=0.004, weight_decay=0.05),
        paramwise_cfg=dict(norm_decay_mult=0, bias_decay_mult=0, bypass_duplicate=True),
    ),
    param_scheduler=[
        dict(type="LinearLR", start_factor=1.0e-5, by_epoch=False, begin=0, end=5),
        dict(
            type="CosineAnnealingLR",
            eta_min=0.004 * 0.05,
            begin=4 // 2,
            end=4,
            T_max=4 // 2,
            by_epoch=True,
            convert_to_iter_based=True,
        ),
    ],
)


def test_mmdet_rtmdet(tmp_path):
    cfg = copy.deepcopy(RTMDET)
    mm_cfg = copy.deepcopy(cfg)
    mm_cfg["optim_wrapper"].pop("_delete_")  # left over from merging in a config file; the Runner takes no such key
    train_cfg, trainer_kwargs = epochs(4)
    log, _ = compare(tmp_path, cfg, train_cfg, trainer_kwargs, mm_cfg=mm_cfg)
    lrs = lr_series(log)
    assert len(log) == 17 and lrs[5:9] == [0.004] * 4 and lrs[-1] < lrs[9] < 0.004  # warmup, flat, cosine


# mmdet 3.3.0 configs/yolox/yolox_s_8xb8-300e_coco.py: 300 epochs, 5 quadratic-warmup, 15 constant at the end
# -> 4 epochs, 1 warmup, 1 constant
YOLOX = dict(
    optim_wrapper=dict(
        type="OptimWrapper",
        optimizer=dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True),
        paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    ),
    param_scheduler=[
        dict(type="mmdet.QuadraticWarmupLR", by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
        dict(
            type="CosineAnnealingLR",
            eta_min=0.01 * 0.05,
            begin=1,
            T_max=4 - 1,
            end=4 - 1,
            by_epoch=True,
            convert_to_iter_based=True,
        ),
        dict(type="ConstantLR", by_epoch=True, factor=1, begin=4 - 1, end=4),
    ],
)


def register_quadratic_warmup_in_mmengine() -> None:
    """mmdet's QuadraticWarmupLR for MMEngine's registry, from its closed form (mmdet itself needs mmcv)."""
    from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler
    from mmengine.registry import PARAM_SCHEDULERS

    if "QuadraticWarmupLR" in PARAM_SCHEDULERS.module_dict:
        return

    class QuadraticWarmupLR(_ParamScheduler):
        def __init__(self, optimizer, begin=0, end=INF, last_step=-1, by_epoch=True, verbose=False):
            self.total_iters = end - begin
            super().__init__(optimizer, "lr", begin, end, last_step, by_epoch, verbose)

        @classmethod
        def build_iter_from_epoch(cls, *args, begin=0, end=INF, by_epoch=True, epoch_length=None, **kwargs):
            return cls(*args, begin=begin * epoch_length, end=end * epoch_length, by_epoch=False, **kwargs)

        def _get_value(self):
            return [base * (self.last_step + 1) ** 2 / self.total_iters**2 for base in self.base_values]

    PARAM_SCHEDULERS.register_module(module=QuadraticWarmupLR)


def test_mmdet_yolox_quadratic_warmup(tmp_path):
    register_quadratic_warmup_in_mmengine()
    mm_cfg = copy.deepcopy(YOLOX)
    mm_cfg["param_scheduler"][0]["type"] = "QuadraticWarmupLR"
    train_cfg, trainer_kwargs = epochs(4)
    log, _ = compare(tmp_path, YOLOX, train_cfg, trainer_kwargs, mm_cfg=mm_cfg)
    assert lr_series(log)[:4] == pytest.approx([0.01 * (t + 1) ** 2 / 16 for t in range(4)])


# ------------------------------------------------------------------------------------------------- mmseg
# mmseg 1.2.2 configs/_base_/schedules/schedule_20k.py: iteration-based, 20000 iterations -> 10
SCHEDULE_20K = dict(
    optim_wrapper=dict(
        type="OptimWrapper", optimizer=dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=0.0005), clip_grad=None
    ),
    param_scheduler=[dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=0, end=10, by_epoch=False)],
)


def test_mmseg_iteration_based_poly(tmp_path):
    log, _ = compare(
        tmp_path,
        SCHEDULE_20K,
        dict(type="IterBasedTrainLoop", max_iters=10, val_interval=5),
        dict(max_steps=10, max_epochs=-1, val_check_interval=5, check_val_every_n_epoch=None),
        infinite=True,
    )
    assert lr_series(log)[-1] == pytest.approx(1e-4)


# ------------------------------------------------------------------------------- momentum and plateau
# MMEngine's scheduler tutorial (docs/en/tutorials/param_scheduler.md) pairs lr and momentum schedules;
# here with AdamW, whose betas[0] is the momentum.
MOMENTUM = dict(
    optim_wrapper=dict(optimizer=dict(type="AdamW", lr=0.001, betas=(0.95, 0.999), weight_decay=0.01)),
    param_scheduler=[
        dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=5),
        dict(type="CosineAnnealingMomentum", eta_min=0.85, by_epoch=True, begin=0, end=3),
        dict(type="StepMomentum", step_size=4, gamma=0.99, by_epoch=False, begin=2),
    ],
)


def test_momentum_schedulers_on_betas(tmp_path):
    train_cfg, trainer_kwargs = epochs(3)
    log, _ = compare(tmp_path, MOMENTUM, train_cfg, trainer_kwargs)
    assert log[-1][2][0][1] < 0.9


PLATEAU = dict(
    optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)),
    param_scheduler=dict(type="ReduceOnPlateauLR", monitor="acc", rule="greater", factor=0.5, patience=0),
)


def test_reduce_on_plateau_steps_after_validation(tmp_path):
    train_cfg, trainer_kwargs = epochs(5)
    log, _ = compare(tmp_path, PLATEAU, train_cfg, trainer_kwargs)
    assert min(lr_series(log)) < 0.1


# ---------------------------------------------------------------------------------------- bad input
def fit_with(tmp_path: Any, cfg: dict, **trainer_kwargs: Any) -> pl.Trainer:
    bridge = HookBridge(default_hooks=dict(NO_EXTRAS))
    trainer = make_trainer(tmp_path, bridge, max_epochs=1, **trainer_kwargs)
    train, val = loaders()
    trainer.fit(RecipeModule(cfg), train, val)
    return trainer


@pytest.mark.parametrize(
    ("cfg", "error", "match"),
    [
        (dict(optim_wrapper=dict(optimizer=dict(type="SDG", lr=0.1))), KeyError, r"'SDG' is not registered.*'SGD'"),
        (
            dict(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)), param_scheduler=dict(type="CosLR")),
            KeyError,
            r"'CosLR' is not registered",
        ),
        (
            dict(
                optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
                param_scheduler=dict(type="LinearLR", begin=3, end=3),
            ),
            ValueError,
            r"begin=3, end=3",
        ),
        (
            dict(
                optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
                param_scheduler=dict(type="LinearParamScheduler", param_name="betas_x"),
            ),
            ValueError,
            r"param_name='betas_x'",
        ),
        (
            dict(
                optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
                param_scheduler=dict(type="StepLR", step_size=1, by_epoch=False, convert_to_iter_based=True),
            ),
            ValueError,
            r"convert_to_iter_based=True .*by_epoch=False",
        ),
        (
            dict(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), clip_gard=dict(max_norm=1))),
            ValueError,
            r"'clip_gard'",
        ),
        (
            dict(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), paramwise_cfg=dict(norm_decay=0))),
            ValueError,
            r"paramwise_cfg: unknown keys \['norm_decay'\]",
        ),
        (
            dict(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), constructor="LayerDecayOptimizerConstructor")),
            ValueError,
            r"constructor='LayerDecayOptimizerConstructor' is not supported",
        ),
        (  # MMEngine asserts this (an AssertionError); here it is also a ValueError
            dict(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)), auto_scale_lr=dict(enable=True)),
            AssertionError,
            r"auto_scale_lr.enable=True needs base_batch_size",
        ),
        (  # a misspelt 'enable' would have turned the scaling off without a word
            dict(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)), auto_scale_lr=dict(enabled=True)),
            ValueError,
            r"auto_scale_lr: unknown keys \['enabled'\]",
        ),
        (
            dict(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)), auto_scale_lr=dict(enable="False")),
            ValueError,
            r"auto_scale_lr.enable must be True or False, got 'False'",
        ),
        (
            dict(
                optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
                auto_scale_lr=dict(enable=True, base_batch_size=0),
            ),
            ValueError,
            r"base_batch_size must be a positive int, got 0",
        ),
        (  # Lightning would skip clipping for a threshold <= 0: no gradient clipping, silently
            dict(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), clip_grad=dict(max_norm=0))),
            ValueError,
            r"clip_grad.max_norm must be a number > 0, got 0",
        ),
    ],
)
def test_bad_recipe_fails_before_training(tmp_path, cfg, error, match):
    seen: list = []

    class Watch(RecipeModule):
        def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
            seen.append(batch_idx)

    bridge = HookBridge(default_hooks=dict(NO_EXTRAS))
    trainer = make_trainer(tmp_path, bridge, max_epochs=1)
    train, val = loaders()
    with pytest.raises(error, match=match):
        trainer.fit(Watch(cfg), train, val)
    assert seen == []


def test_plateau_without_validation_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"ReduceOnPlateauLR\(monitor='acc'\) steps on validation metrics"):
        fit_with(tmp_path, PLATEAU, limit_val_batches=0)


def test_plateau_metric_missing_names_it(tmp_path):
    cfg = copy.deepcopy(PLATEAU)
    cfg["param_scheduler"]["monitor"] = "mAP"
    with pytest.raises(KeyError, match=r"'mAP'.*available metrics: \['acc'\]"):
        fit_with(tmp_path, cfg)


def test_trainer_conflicts_are_errors(tmp_path):
    accumulate = dict(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), accumulative_counts=2))
    with pytest.raises(ValueError, match=r"accumulative_counts=2 but the Trainer has accumulate_grad_batches=3"):
        fit_with(tmp_path, accumulate, accumulate_grad_batches=3)
    clip = dict(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), clip_grad=dict(max_norm=1.0)))
    with pytest.raises(
        ValueError, match=r"clip_grad asks for norm clipping at 1.0 but the Trainer has gradient_clip_val=2"
    ):
        fit_with(tmp_path, clip, gradient_clip_val=2)
    amp = dict(optim_wrapper=dict(type="AmpOptimWrapper", dtype="bfloat16", optimizer=dict(type="SGD", lr=0.1)))
    with pytest.raises(ValueError, match=r"precision 'bf16-mixed' but the Trainer runs '32-true'"):
        fit_with(tmp_path, amp)


def test_amp_wrapper_runs_under_matching_precision(tmp_path):
    amp = dict(optim_wrapper=dict(type="AmpOptimWrapper", dtype="bfloat16", optimizer=dict(type="SGD", lr=0.1)))
    trainer = fit_with(tmp_path, amp, precision="bf16-mixed")
    assert trainer.precision == "bf16-mixed" and trainer.global_step == 4


def test_without_the_hook_it_warns(tmp_path):
    trainer = make_trainer(tmp_path, HookBridge(default_hooks=dict(param_scheduler=None, **NO_EXTRAS)), max_epochs=1)
    train, val = loaders()
    with pytest.warns(UserWarning, match="no HookBridge with a ParamSchedulerHook"):
        trainer.fit(RecipeModule(copy.deepcopy(SCHEDULE_1X)), train, val)


def test_config_file_path_and_mmengine_config(tmp_path):
    from mmengine import Config

    path = tmp_path / "recipe.py"
    path.write_text(
        "optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.02, momentum=0.9))\n"
        "param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[1], gamma=0.5)]\n"
    )
    for cfg in (str(path), path, Config.fromfile(str(path))):
        module = RecipeModule({})
        optimizers, configs = mmengine_optimizers(module, cfg, max_epochs=2)
        assert optimizers[0].param_groups[0]["lr"] == 0.02
        assert configs[0]["interval"] == "epoch" and configs[0]["scheduler"].end == 2


def test_resume_continues_the_schedule(tmp_path):
    """Schedulers' state goes into Lightning's checkpoint (plain values) and a resumed fit continues it."""
    full_log, _ = run_lightning(tmp_path / "full", COSLR_COSWD, dict(max_epochs=4))
    _, trainer = run_lightning(tmp_path / "first", COSLR_COSWD, dict(max_epochs=2))
    ckpt = tmp_path / "half.ckpt"
    trainer.save_checkpoint(ckpt)
    assert "lr_schedulers" in torch.load(ckpt, weights_only=True)
    log: list = []
    bridge = HookBridge(default_hooks=dict(NO_EXTRAS), custom_hooks=[recorder(Hook, log)])
    resumed = make_trainer(tmp_path / "second", bridge, max_epochs=4)
    train, val = loaders()
    resumed.fit(RecipeModule(copy.deepcopy(COSLR_COSWD)), train, val, ckpt_path=str(ckpt))
    assert [entry[:2] for entry in log] == [entry[:2] for entry in full_log[8:]]
    for (_, it, ours), (_, _, theirs) in zip(log, full_log[8:], strict=True):
        assert [v for row in ours for v in row] == pytest.approx([v for row in theirs for v in row], rel=1e-12), it


def test_iteration_based_accumulation_cut_short_by_epoch_ends_is_named_and_scheduled_to_its_end(tmp_path):
    """4 batches an epoch, 3 accumulated: Lightning also steps at each epoch's end, so 3 steps take 7
    batches, not MMEngine's 9. A warning says so, and a schedule's default ``end`` is those 7 batches."""
    cfg = dict(
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), accumulative_counts=3),
        param_scheduler=dict(type="PolyLR", eta_min=0.001, by_epoch=False),
    )
    trainer_kwargs = dict(max_steps=3, max_epochs=-1, val_check_interval=4, check_val_every_n_epoch=None)
    with pytest.warns(UserWarning, match=r"max_steps=3 trains 7 batches \(runner.max_iters\), not 9"):
        log, trainer = run_lightning(tmp_path, cfg, dict(trainer_kwargs, accumulate_grad_batches=3))
    assert [entry[1] for entry in log if entry[0] == "iter"] == list(range(7))
    assert trainer.lr_scheduler_configs[0].scheduler.end == 7
    assert lr_series(log)[-1] == pytest.approx(0.001)


def test_a_new_style_mmengine_config_object_builds_as_its_path(tmp_path, monkeypatch):
    """A lazy-import Config is read through ``to_dict()``: its classes become the names MMEngine registers,
    and modules the config imports for other sections are not imported."""
    import sys

    from mmengine import Config

    from lightning_hooks.optim import LinearLR, MultiStepLR

    unused = f"lh_unused_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{unused}.py").write_text("class Model:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "_base_").mkdir()
    (tmp_path / "_base_" / "schedule.py").write_text(
        "from mmengine.optim import LinearLR, MultiStepLR, OptimWrapper\n"
        "from torch.optim import SGD\n"
        f"from {unused} import Model\n\n"
        "model = dict(type=Model)\n"
        "param_scheduler = [\n"
        "    dict(type=LinearLR, start_factor=0.001, by_epoch=False, begin=0, end=500),\n"
        "    dict(type=MultiStepLR, begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),\n"
        "]\n"
        "optim_wrapper = dict(type=OptimWrapper, optimizer=dict(type=SGD, lr=0.02, momentum=0.9))\n"
    )
    path = tmp_path / "recipe.py"
    path.write_text("from mmengine.config import read_base\n\nwith read_base():\n    from ._base_.schedule import *\n")
    for cfg in (str(path), Config.fromfile(str(path))):
        optimizers, configs = mmengine_optimizers(RecipeModule({}), cfg, max_epochs=12, epoch_length=10)
        assert type(optimizers[0]) is torch.optim.SGD and optimizers[0].defaults["momentum"] == 0.9
        assert [type(c["scheduler"]) for c in configs] == [LinearLR, MultiStepLR]
        assert [c["interval"] for c in configs] == ["step", "epoch"]
    assert unused not in sys.modules


def test_mmengine_classes_in_a_plain_dict_build_as_in_mmengine():
    """MMEngine's registry takes a class as ``type``; its wrapper, constructor and scheduler classes name ours."""
    from mmengine.optim import AmpOptimWrapper, DefaultOptimWrapperConstructor, OptimWrapper
    from mmengine.optim import LinearLR as MMLinearLR

    from lightning_hooks.optim import LinearLR, parse_optim_wrapper

    cfg = dict(
        optim_wrapper=dict(
            type=OptimWrapper, constructor=DefaultOptimWrapperConstructor, optimizer=dict(type=torch.optim.SGD, lr=0.1)
        ),
        param_scheduler=dict(type=MMLinearLR, start_factor=0.5, by_epoch=False, end=4),
    )
    optimizers, configs = mmengine_optimizers(RecipeModule({}), cfg)
    assert type(optimizers[0]) is torch.optim.SGD and type(configs[0]["scheduler"]) is LinearLR
    amp = dict(type=AmpOptimWrapper, dtype="bfloat16", optimizer=dict(type="SGD", lr=0.1))
    assert parse_optim_wrapper(amp)[2].precision == "bf16-mixed"


def test_a_class_that_is_not_mmengines_names_what_to_write_instead():
    from mmengine.optim import OptimWrapper

    class MyWrapper(OptimWrapper):
        pass

    sgd = dict(type="SGD", lr=0.1)
    with pytest.raises(ValueError, match=r"optim_wrapper.type=<class .*MyWrapper'> is not supported; supported: "):
        mmengine_optimizers(RecipeModule({}), dict(optim_wrapper=dict(type=MyWrapper, optimizer=sgd)))
    torch_step = dict(type=torch.optim.lr_scheduler.StepLR, step_size=1)
    with pytest.raises(TypeError, match=r"torch.optim.lr_scheduler.StepLR.*write type='StepLR'"):
        mmengine_optimizers(RecipeModule({}), dict(optim_wrapper=dict(optimizer=sgd), param_scheduler=torch_step))


@pytest.mark.parametrize("kind", ["path", "dict", "Config"])
def test_custom_imports_are_imported_before_the_optimizer_is_built(tmp_path, monkeypatch, kind):
    """As ``mmengine.Config.fromfile`` imports them, so a module registering an optimizer can be named there."""
    import sys

    from mmengine import Config

    from lightning_hooks.optim import OPTIMIZERS

    module_name = f"lh_user_optim_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module_name}.py").write_text(
        "import torch\n\nfrom lightning_hooks.optim import OPTIMIZERS\n\n\n"
        "@OPTIMIZERS.register_module()\nclass LhUserSGD(torch.optim.SGD):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(OPTIMIZERS, "_module_dict", dict(OPTIMIZERS._module_dict))
    cfg = dict(
        custom_imports=dict(imports=[module_name], allow_failed_imports=False),
        optim_wrapper=dict(optimizer=dict(type="LhUserSGD", lr=0.1)),
    )
    path = tmp_path / "recipe.py"
    path.write_text("".join(f"{key} = {value!r}\n" for key, value in cfg.items()))
    given = {"path": str(path), "dict": cfg, "Config": Config(cfg)}[kind]
    try:
        optimizer = mmengine_optimizers(RecipeModule({}), given)
        assert type(optimizer).__name__ == "LhUserSGD" and type(optimizer).__module__ == module_name
    finally:
        sys.modules.pop(module_name, None)


def test_custom_imports_that_fail_are_named_or_skipped_as_allowed():
    sgd = dict(optimizer=dict(type="SGD", lr=0.1))
    missing = dict(imports=["lh_no_such_optim_module"])
    with pytest.raises(ImportError, match=r"custom_imports: cannot import 'lh_no_such_optim_module'"):
        mmengine_optimizers(RecipeModule({}), dict(custom_imports=missing, optim_wrapper=sgd))
    with pytest.warns(UserWarning, match=r"'lh_no_such_optim_module' failed to import and is skipped"):
        optimizer = mmengine_optimizers(
            RecipeModule({}), dict(custom_imports=dict(missing, allow_failed_imports=True), optim_wrapper=sgd)
        )
    assert type(optimizer) is torch.optim.SGD


def test_scope_keys_choose_nothing_and_are_dropped():
    """``mmengine.Config`` adds ``_scope_='mmdet'`` to each typed dict of an ``mmdet::`` base; MMEngine's
    registry only switches to that scope, so the wrapper, optimizer and schedulers build as without it."""
    from lightning_hooks.optim import LinearLR, MultiStepLR, build_optimizer, parse_optim_wrapper

    sgd = dict(type="SGD", lr=0.02, momentum=0.9, _scope_="mmdet")
    cfg = dict(
        optim_wrapper=dict(type="OptimWrapper", optimizer=sgd, clip_grad=None, _scope_="mmdet"),
        param_scheduler=[
            dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=5, _scope_="mmdet"),
            dict(type="MultiStepLR", by_epoch=True, milestones=[1], gamma=0.1, _scope_="mmdet"),
        ],
    )
    optimizers, configs = mmengine_optimizers(RecipeModule({}), cfg, max_epochs=2, epoch_length=4)
    assert type(optimizers[0]) is torch.optim.SGD and optimizers[0].defaults["momentum"] == 0.9
    assert [type(c["scheduler"]) for c in configs] == [LinearLR, MultiStepLR]
    amp = dict(type="AmpOptimWrapper", dtype="bfloat16", optimizer=sgd, _scope_="mmdet")
    assert parse_optim_wrapper(amp)[2].precision == "bf16-mixed"
    untyped = dict(optim_wrapper=dict(optimizer=sgd))  # the scope goes to the first typed dict down
    assert type(mmengine_optimizers(RecipeModule({}), untyped)) is torch.optim.SGD
    assert type(build_optimizer(nn.Linear(2, 2), sgd)) is torch.optim.SGD
