"""ParamSchedulerHook: the learning rate of every iteration equals MMEngine's for the same schedule.

Each scenario runs MMEngine's Runner with its ``param_scheduler`` configs and a
Lightning Trainer with the equivalent torch schedulers from ``configure_optimizers``,
then compares the ``train/lr`` history (the lr each iteration used, read before
the step) and the final lr.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from log_toy import run_lh, run_mm
from toy import ToyModule, loaders, make_trainer

from lightning_hooks import HookBridge
from lightning_hooks.hooks.param_scheduler_hook import TAKEN_OVER, ParamSchedulerHook
from lightning_hooks.optim import StepLR as MMStepLR

NO_CKPT = dict(checkpoint=None, logger=None)


class ScheduledModule(ToyModule):
    """ToyModule whose ``configure_optimizers`` returns several scheduler configs."""

    def __init__(self, make_configs: Callable[[torch.optim.Optimizer], list[dict]]) -> None:
        super().__init__()
        self.make_configs = make_configs

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=self.lr)
        return [opt], self.make_configs(opt)


def lr_history(hub: Any) -> list[float]:
    return [float(v) for v in hub.get_scalar("train/lr").data[0]]


def compare(tmp_path, mm_kwargs: dict, lh_trainer: dict, configs, lh_bridge: dict | None = None):
    runner, _ = run_mm(tmp_path / "mm", default_hooks=NO_CKPT, **mm_kwargs)
    trainer, bridge, _ = run_lh(
        tmp_path / "lh",
        trainer_kwargs=lh_trainer,
        bridge_kwargs=dict(default_hooks=NO_CKPT, **(lh_bridge or {})),
        module=ScheduledModule(configs),
    )
    mm_lrs = lr_history(runner.message_hub)
    lh_lrs = lr_history(bridge.message_hub)
    assert len(mm_lrs) == len(lh_lrs) > 0
    assert lh_lrs == pytest.approx(mm_lrs, rel=1e-9, abs=1e-15)
    # (The lr left after the last step is not compared: MMEngine's schedulers stop at their ``end``
    # (max_epochs by default) while torch's keep going; no iteration uses that value.)
    return mm_lrs, trainer


def test_epoch_based_step_lr(tmp_path):
    mm_lrs, _ = compare(
        tmp_path,
        dict(
            train_cfg=dict(by_epoch=True, max_epochs=3, val_interval=1),
            param_scheduler=dict(type="StepLR", by_epoch=True, step_size=1, gamma=0.5),
        ),
        dict(max_epochs=3),
        lambda opt: [dict(scheduler=torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5), interval="epoch")],
    )
    assert mm_lrs == pytest.approx([0.1] * 4 + [0.05] * 4 + [0.025] * 4)


def warmup_then_decay(opt: torch.optim.Optimizer) -> list[dict]:
    # MMEngine's LinearLR(begin=0, end=6) reaches the full lr at step 5: torch's total_iters=5 is the same schedule.
    return [
        dict(scheduler=torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=5), interval="step"),
        dict(scheduler=torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[1, 2], gamma=0.5), interval="epoch"),
    ]


MM_WARMUP_DECAY = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=6),
    dict(type="MultiStepLR", by_epoch=True, milestones=[1, 2], gamma=0.5),
]


@pytest.mark.parametrize("accumulate", [1, 2])
def test_iteration_warmup_then_epoch_decay(tmp_path, accumulate):
    optim = dict(optimizer=dict(type="SGD", lr=0.1), accumulative_counts=accumulate)
    expected = pytest.warns(UserWarning, match="LinearLR after every batch") if accumulate > 1 else nullcontext()
    with expected:  # torch's LinearLR with interval='step' steps every batch here, not every optimizer step
        mm_lrs, trainer = compare(
            tmp_path,
            dict(
                train_cfg=dict(by_epoch=True, max_epochs=3, val_interval=1),
                optim_wrapper=optim,
                param_scheduler=MM_WARMUP_DECAY,
            ),
            dict(max_epochs=3, accumulate_grad_batches=accumulate),
            warmup_then_decay,
        )
    # warmup moves every batch (not every optimizer step), then the epoch decay halves it twice
    assert mm_lrs[0] == pytest.approx(0.01) and mm_lrs[-1] == pytest.approx(0.025)
    assert mm_lrs[:4] == sorted(set(mm_lrs[:4]))  # rising within the first epoch
    # Lightning's intervals are restored after fit
    assert [c.interval for c in trainer.lr_scheduler_configs] == ["step", "epoch"]


def test_iteration_based_training_warmup(tmp_path):
    compare(
        tmp_path,
        dict(
            train_cfg=dict(by_epoch=False, max_iters=10, val_interval=5),
            infinite=True,
            param_scheduler=[
                dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=4),
                dict(type="MultiStepLR", by_epoch=False, milestones=[7], gamma=0.5),
            ],
        ),
        dict(max_steps=10, max_epochs=-1, val_check_interval=5, check_val_every_n_epoch=None),
        lambda opt: [
            dict(scheduler=torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=3), interval="step"),
            dict(scheduler=torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[7], gamma=0.5), interval="step"),
        ],
    )


def test_plateau_schedule(tmp_path):
    mm_lrs, _ = compare(
        tmp_path,
        dict(
            train_cfg=dict(by_epoch=True, max_epochs=5, val_interval=1),
            param_scheduler=dict(
                type="ReduceOnPlateauLR", monitor="acc", rule="greater", factor=0.5, patience=0, by_epoch=True
            ),
        ),
        dict(max_epochs=5),
        lambda opt: [
            dict(
                scheduler=torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=0),
                monitor="acc",
                interval="epoch",
            )
        ],
    )
    assert min(mm_lrs) < 0.1  # the plateau really reduced the lr


def test_without_the_hook_lightning_steps_after_validation(tmp_path):
    """param_scheduler=None leaves Lightning's stepping alone (its intervals are never changed)."""
    seen: list[str] = []

    def configs(opt):
        return [dict(scheduler=torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5), interval="epoch")]

    class Watch(ScheduledModule):
        def on_train_batch_start(self, batch, batch_idx):
            seen.append(self.trainer.lr_scheduler_configs[0].interval)

    trainer, _, _ = run_lh(
        tmp_path,
        trainer_kwargs=dict(max_epochs=2),
        bridge_kwargs=dict(default_hooks=dict(param_scheduler=None, checkpoint=None, logger=None)),
        module=Watch(configs),
    )
    assert set(seen) == {"epoch"}
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.025)


def test_hook_takes_over_during_fit_only(tmp_path):
    seen: list[tuple[str, int]] = []

    class Watch(ScheduledModule):
        def on_train_batch_start(self, batch, batch_idx):
            config = self.trainer.lr_scheduler_configs[0]
            seen.append((config.interval, config.frequency))

    trainer, _, _ = run_lh(
        tmp_path,
        trainer_kwargs=dict(max_epochs=2),
        bridge_kwargs=dict(default_hooks=NO_CKPT),
        module=Watch(lambda opt: [dict(scheduler=torch.optim.lr_scheduler.StepLR(opt, 1, 0.5), interval="epoch")]),
    )
    assert set(seen) == {("epoch", TAKEN_OVER)}  # the interval stays for LearningRateMonitor
    assert (trainer.lr_scheduler_configs[0].interval, trainer.lr_scheduler_configs[0].frequency) == ("epoch", 1)
    # stepped exactly twice (once per epoch), not four times
    assert trainer.lr_scheduler_configs[0].scheduler.last_epoch == 2


@pytest.mark.parametrize("interval", ["step", "epoch"])
def test_learning_rate_monitor_reports_what_it_reports_without_the_bridge(tmp_path, interval):
    """Lightning's LearningRateMonitor finds the taken-over scheduler under its own interval."""
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger

    def monitored(*bridge: HookBridge) -> list[float]:
        monitor = LearningRateMonitor()
        trainer = make_trainer(
            tmp_path, None, max_epochs=2, callbacks=[*bridge, monitor], logger=CSVLogger(tmp_path), log_every_n_steps=1
        )
        trainer.fit(ScheduledModule(_torch_step_lr(interval)), loaders()[0])
        return monitor.lrs["lr-SGD"]

    plain = monitored()
    assert len(set(plain)) > 1
    assert monitored(HookBridge(default_hooks=NO_CKPT, print_hooks_table=False)) == plain


def _torch_step_lr(interval: str) -> Callable[[torch.optim.Optimizer], list[dict]]:
    return lambda opt: [dict(scheduler=torch.optim.lr_scheduler.StepLR(opt, 1, 0.5), interval=interval)]


def _mmengine_step_lr(opt: torch.optim.Optimizer) -> list[dict]:
    return [dict(scheduler=MMStepLR(opt, step_size=1, gamma=0.5, by_epoch=False), interval="step")]


@pytest.mark.parametrize(
    ("configs", "accumulate", "warned"),
    [
        (_torch_step_lr("step"), 2, True),  # Lightning would step it every second batch
        (_torch_step_lr("step"), 1, False),  # one batch, one optimizer step: the same counting
        (_torch_step_lr("epoch"), 2, False),
        (_mmengine_step_lr, 2, False),  # built with by_epoch=False: MMEngine's counting was asked for
    ],
    ids=["torch-step-accumulate", "torch-step", "torch-epoch-accumulate", "mmengine-iter-accumulate"],
)
def test_batch_stepping_under_accumulation_is_said(tmp_path, configs, accumulate, warned):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer, _, _ = run_lh(
            tmp_path,
            trainer_kwargs=dict(max_epochs=1, accumulate_grad_batches=accumulate),
            bridge_kwargs=dict(default_hooks=NO_CKPT),
            module=ScheduledModule(configs),
        )
    ours = [str(w.message) for w in caught if "ParamSchedulerHook steps" in str(w.message)]
    if warned:
        assert len(ours) == 1 and "StepLR" in ours[0] and f"accumulate_grad_batches={accumulate}" in ours[0]
        assert "default_hooks=dict(param_scheduler=None)" in ours[0]
    else:
        assert ours == []
    # what happened: the iteration-based schedulers halved the lr at each of the epoch's 4 batches
    steps = 1 if trainer.lr_scheduler_configs[0].interval == "epoch" else 4
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**steps)


def test_missing_plateau_metric_is_a_clear_error(tmp_path):
    def configs(opt):
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max")
        return [dict(scheduler=plateau, monitor="val_f1", interval="epoch")]

    with pytest.raises(KeyError, match=r"'val_f1'.*available metrics: \['acc'\]"):
        run_lh(
            tmp_path,
            trainer_kwargs=dict(max_epochs=1),
            bridge_kwargs=dict(default_hooks=NO_CKPT),
            module=ScheduledModule(configs),
        )


def test_bad_interval_rejected(tmp_path):
    def configs(opt):
        scheduler = torch.optim.lr_scheduler.StepLR(opt, 1)
        return [dict(scheduler=scheduler, interval="step")]

    module = ScheduledModule(configs)
    trainer, _, _ = run_lh(
        tmp_path, trainer_kwargs=dict(max_epochs=1), bridge_kwargs=dict(default_hooks=NO_CKPT), module=module
    )
    config = trainer.lr_scheduler_configs[0]
    config.interval = "batch"
    del config.scheduler.by_epoch  # no explicit by_epoch: the interval decides, and 'batch' is invalid
    with pytest.raises(ValueError, match="interval must be 'step' or 'epoch', got 'batch'"):
        from lightning_hooks.hooks.param_scheduler_hook import take_over_lightning_stepping

        take_over_lightning_stepping(trainer)
    assert isinstance(ParamSchedulerHook(), ParamSchedulerHook)


def test_a_scheduler_swapped_out_by_stochastic_weight_averaging_is_left_to_lightning(tmp_path):
    """SWA puts its SWALR in place of the first config when averaging starts; the replaced one stops stepping."""
    from lightning.pytorch.callbacks import StochasticWeightAveraging
    from log_toy import LineCatcher
    from toy import loaders, make_trainer

    from lightning_hooks import HookBridge

    class EpochStartLR(pl.Callback):
        def __init__(self) -> None:
            self.lrs: list[float] = []

        def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
            self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def fit(with_bridge: bool) -> list[float]:
        record = EpochStartLR()
        swa = StochasticWeightAveraging(swa_lrs=0.05, swa_epoch_start=2, annealing_epochs=1)
        bridge = HookBridge(default_hooks=NO_CKPT, log_level="INFO")
        callbacks = [record, swa, bridge] if with_bridge else [record, swa]
        trainer = make_trainer(tmp_path / str(with_bridge), bridge, max_epochs=5, callbacks=callbacks)
        trainer.fit(
            ScheduledModule(lambda opt: [dict(scheduler=torch.optim.lr_scheduler.StepLR(opt, 1, 0.5))]), *loaders()
        )
        return record.lrs

    catcher = LineCatcher()
    logging.getLogger("lightning_hooks").addHandler(catcher)
    try:
        ours = fit(with_bridge=True)
    finally:
        logging.getLogger("lightning_hooks").removeHandler(catcher)
    assert ours == pytest.approx(fit(with_bridge=False))
    assert ours[1] == pytest.approx(0.05) and len(ours) == 5
    assert any(m.startswith("ParamSchedulerHook no longer steps StepLR") for m in catcher.messages)


class EpochLrModule(ScheduledModule):
    """Records the lr each epoch starts with; logs a constant training metric (a plateau for ``train_loss``)."""

    def __init__(self, make_configs: Callable[[torch.optim.Optimizer], list[dict]]) -> None:
        super().__init__(make_configs)
        self.epoch_lrs: list[float] = []

    def on_train_epoch_start(self) -> None:
        self.epoch_lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])

    def training_step(self, batch, batch_idx):
        self.log("train_loss", 1.0, on_step=False, on_epoch=True)
        return super().training_step(batch, batch_idx)


def _plateau(monitor: str, frequency: int = 1) -> Callable[[torch.optim.Optimizer], list[dict]]:
    def configs(opt):
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=0)
        return [dict(scheduler=plateau, monitor=monitor, interval="epoch", frequency=frequency)]

    return configs


def _epoch_lrs(tmp_path, configs, hook: bool, **trainer_kwargs: Any) -> tuple[list[float], Any]:
    module = EpochLrModule(configs)
    hooks = NO_CKPT if hook else dict(NO_CKPT, param_scheduler=None)
    _, _, catcher = run_lh(
        tmp_path / ("hook" if hook else "lightning"),
        trainer_kwargs=trainer_kwargs,
        bridge_kwargs=dict(default_hooks=hooks),
        module=module,
    )
    return module.epoch_lrs, catcher


def test_plateau_frequency_counts_epochs_as_lightning(tmp_path):
    """``frequency=2``: the plateau scheduler steps after the validation of every second epoch."""
    every_second, _ = _epoch_lrs(tmp_path / "f2", _plateau("acc", 2), hook=True, max_epochs=6)
    lightning, _ = _epoch_lrs(tmp_path / "f2", _plateau("acc", 2), hook=False, max_epochs=6)
    every_epoch, _ = _epoch_lrs(tmp_path / "f1", _plateau("acc", 1), hook=True, max_epochs=6)
    assert every_second == lightning
    assert every_second != every_epoch  # the frequency changes the schedule here


def test_plateau_frequency_in_iteration_based_training_is_refused(tmp_path):
    kwargs = dict(max_steps=12, max_epochs=-1, val_check_interval=4, check_val_every_n_epoch=None)
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau.*frequency=2.*iteration-based"):
        _epoch_lrs(tmp_path, _plateau("acc", 2), hook=True, **kwargs)


def test_a_plateau_on_a_training_metric_without_validation_is_left_to_lightning(tmp_path):
    """No validation: MMEngine's moment for a plateau step never comes, so Lightning keeps stepping it
    (with the training metric), and a log line says so."""
    kwargs = dict(max_epochs=5, limit_val_batches=0)
    ours, catcher = _epoch_lrs(tmp_path, _plateau("train_loss"), hook=True, **kwargs)
    lightning, _ = _epoch_lrs(tmp_path, _plateau("train_loss"), hook=False, **kwargs)
    assert ours == lightning
    assert min(ours) < ours[0]  # the plateau really reduced the lr
    told = [m for m in catcher.messages if "ReduceLROnPlateau" in m and "no validation" in m]
    assert len(told) == 1 and "Lightning steps it" in told[0]


@pytest.mark.parametrize(("frequency", "warned"), [(3, True), (2, False)])
def test_a_step_frequency_lightning_counts_differently_is_said(tmp_path, frequency, warned):
    """Lightning counts ``frequency`` in batches of the epoch, restarting each epoch; MMEngine's
    iterations run on. With 4 batches per epoch they differ for 3, not for 2."""

    def configs(opt):
        return [dict(scheduler=torch.optim.lr_scheduler.StepLR(opt, 1, 0.5), interval="step", frequency=frequency)]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer, _, _ = run_lh(
            tmp_path,
            trainer_kwargs=dict(max_epochs=3),
            bridge_kwargs=dict(default_hooks=NO_CKPT),
            module=ScheduledModule(configs),
        )
    ours = [str(w.message) for w in caught if f"frequency={frequency}" in str(w.message)]
    assert len(ours) == int(warned)
    if warned:
        assert "StepLR" in ours[0] and "default_hooks=dict(param_scheduler=None)" in ours[0]
    assert trainer.lr_scheduler_configs[0].scheduler.last_epoch == 12 // frequency  # every `frequency` iterations


class _NoInitSubclass(ParamSchedulerHook):
    """mmyolo's pattern: its own __init__ without super().__init__() (MMEngine's hook has no __init__),
    and its own before_train without super().before_train() (MMEngine's hook has none)."""

    priority = 9

    def __init__(self) -> None:
        self.seen_lrs: list[float] = []

    def before_train(self, runner) -> None:
        self.base_lrs = [group["lr"] for group in runner.optim_wrapper.optimizer.param_groups]


class _SuperCallingSubclass(ParamSchedulerHook):
    """A subclass that calls both super() methods."""

    def before_train(self, runner) -> None:
        super().before_train(runner)
        self.base_lrs = [group["lr"] for group in runner.optim_wrapper.optimizer.param_groups]


@pytest.mark.parametrize("hook_class", [_NoInitSubclass, _SuperCallingSubclass], ids=["mmyolo-style", "super-calling"])
def test_subclasses_written_for_mmengine_step_once(tmp_path, hook_class):
    """An iteration-based MMEngine StepLR halves the lr once per iteration, as in MMEngine's Runner."""
    from lightning_hooks import mmengine_optimizers

    class Module(ToyModule):
        def configure_optimizers(self):
            cfg = dict(
                optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
                param_scheduler=dict(type="StepLR", by_epoch=False, step_size=1, gamma=0.5),
            )
            return mmengine_optimizers(self, cfg)

    hook = hook_class()
    trainer, _, _ = run_lh(
        tmp_path,
        trainer_kwargs=dict(max_epochs=1),
        bridge_kwargs=dict(default_hooks=dict(checkpoint=None, logger=None, param_scheduler=hook)),
        module=Module(),
    )
    assert hook.base_lrs == [0.1]
    # 4 iterations; the schedule ends with the run (MMEngine's default end), so the 4th step changes nothing
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**3)
    assert trainer.lr_scheduler_configs[0].interval == "step"  # given back after fit
