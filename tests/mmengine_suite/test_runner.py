"""The hook-related tests of MMEngine 0.10.7 ``tests/test_runner/test_runner.py``, against HookBridge.

``Runner.register_hook``/``register_default_hooks``/``register_custom_hooks`` are
``HookBridge.register_hook`` and its ``default_hooks``/``custom_hooks`` arguments;
``runner._hooks`` is ``bridge.hooks``. Training runs are ``Trainer + HookBridge``
runs with the settings of MMEngine's ``epoch_based_cfg``/``iter_based_cfg``. The
rest of that file tests MMEngine's own machinery (``Runner.build_*``, configs,
environment, model wrappers, checkpoint loading through the Runner): see
``README.md`` here.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from toy import ToyDataset, ToyModule, make_trainer

from lightning_hooks import (
    HOOKS,
    CheckpointHook,
    DistSamplerSeedHook,
    Hook,
    HookBridge,
    IterTimerHook,
    LoggerHook,
    LogProcessor,
    ParamSchedulerHook,
    Priority,
    RuntimeInfoHook,
    UnsupportedSamplerError,
    get_priority,
)
from lightning_hooks.logging.log_processor import build_log_processor

from .suite_helpers import QUIET, epoch_based, iter_based, run


class ToyHook(Hook):
    priority = "Lowest"

    def before_train_epoch(self, runner):
        pass


class CustomLogProcessor(LogProcessor):
    def __init__(self, window_size=10, by_epoch=True, custom_cfg=None):
        super().__init__(window_size=window_size, by_epoch=by_epoch, custom_cfg=custom_cfg)
        self.custom = True


@pytest.fixture(autouse=True)
def _toy_hook_registered():
    HOOKS.register_module(module=ToyHook, force=True)
    yield
    HOOKS.module_dict.pop("ToyHook", None)


def empty_bridge() -> HookBridge:
    """A bridge with no hooks (MMEngine's ``runner._hooks = []``)."""
    return HookBridge(
        default_hooks={
            name: None for name in ("runtime_info", "timer", "sampler_seed", "logger", "param_scheduler", "checkpoint")
        },
        **QUIET,
    )


def test_register_hook():
    bridge = empty_bridge()
    with pytest.raises(TypeError, match="hook should be an instance of Hook or dict"):
        bridge.register_hook(["string"])
    bridge.register_hook(dict(type="IterTimerHook"))
    assert len(bridge.hooks) == 1 and isinstance(bridge.hooks[0], IterTimerHook)
    assert get_priority(bridge.hooks[0].priority) == get_priority("NORMAL")

    bridge = empty_bridge()
    bridge.register_hook(dict(type="IterTimerHook", priority="BELOW_NORMAL"))
    assert len(bridge.hooks) == 1 and isinstance(bridge.hooks[0], IterTimerHook)
    assert get_priority(bridge.hooks[0].priority) == get_priority("BELOW_NORMAL")

    bridge.register_hook(RuntimeInfoHook())
    assert len(bridge.hooks) == 2 and isinstance(bridge.hooks[0], RuntimeInfoHook)
    assert get_priority(bridge.hooks[0].priority) == get_priority("VERY_HIGH")

    bridge.register_hook(dict(type="ParamSchedulerHook", priority="LOW"), priority="VERY_LOW")
    assert len(bridge.hooks) == 3 and isinstance(bridge.hooks[2], ParamSchedulerHook)
    assert get_priority(bridge.hooks[2].priority) == get_priority("VERY_LOW")

    bridge.register_hook(dict(type="LoggerHook", priority="BELOW_NORMAL"), priority=Priority.VERY_LOW)
    assert len(bridge.hooks) == 4 and isinstance(bridge.hooks[3], LoggerHook)
    assert get_priority(bridge.hooks[3].priority) == get_priority("VERY_LOW")


def test_default_hooks():
    bridge = HookBridge(**QUIET)
    assert len(bridge.hooks) == 6
    assert isinstance(bridge.hooks[2], DistSamplerSeedHook)
    assert isinstance(bridge.hooks[4], ParamSchedulerHook)
    bridge = HookBridge(default_hooks=dict(timer=None), **QUIET)
    assert len(bridge.hooks) == 5 and isinstance(bridge.hooks[4], CheckpointHook)
    bridge = HookBridge(default_hooks=dict(ToyHook=dict(type="ToyHook")), **QUIET)
    assert len(bridge.hooks) == 7 and isinstance(bridge.hooks[6], ToyHook)


def test_custom_hooks():
    bridge = HookBridge(**QUIET)
    assert len(bridge.hooks) == 6
    bridge.register_hook(dict(type="ToyHook"))
    assert len(bridge.hooks) == 7 and isinstance(bridge.hooks[6], ToyHook)


def test_register_hooks():
    bridge = HookBridge(custom_hooks=[dict(type="ToyHook")], **QUIET)
    assert len(bridge.hooks) == 7 and isinstance(bridge.hooks[6], ToyHook)


def test_get_hooks_info():
    target = (
        "after_train_iter:\n"
        "(VERY_HIGH   ) RuntimeInfoHook                    \n"
        "(NORMAL      ) IterTimerHook                      \n"
        "(BELOW_NORMAL) LoggerHook                         \n"
        "(LOW         ) ParamSchedulerHook                 \n"
        "(VERY_LOW    ) CheckpointHook                     \n"
    )
    assert target in HookBridge(**QUIET).get_hooks_info()


def test_build_log_processor():
    with pytest.raises(TypeError, match="should be"):
        build_log_processor("invalid-type")
    assert isinstance(build_log_processor(dict(type="LogProcessor")), LogProcessor)
    assert isinstance(build_log_processor(dict()), LogProcessor)
    processor = LogProcessor()
    assert build_log_processor(processor) is processor
    assert isinstance(build_log_processor(dict(type="CustomLogProcessor")), CustomLogProcessor)
    assert isinstance(build_log_processor(dict(type=CustomLogProcessor)), CustomLogProcessor)
    with pytest.raises(ValueError, match="NoSuchLogProcessor"):
        build_log_processor(dict(type="NoSuchLogProcessor"))


class CounterHook(Hook):
    """Upstream's TestEpochHook / TestIterHook."""

    priority = 50

    def __init__(self) -> None:
        self.epochs: list[int] = []
        self.iters: list[int] = []
        self.batch_idx: list[int] = []
        self.val_epochs: list[int] = []
        self.val_iters: list[int] = []
        self.val_batch_idx: list[int] = []

    def before_train_epoch(self, runner):
        self.epochs.append(runner.epoch)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.iters.append(runner.iter)
        self.batch_idx.append(batch_idx)

    def before_val_epoch(self, runner):
        self.val_epochs.append(runner.epoch)

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        self.val_iters.append(runner.iter)
        self.val_batch_idx.append(batch_idx)


def test_train_epoch_based(tmp_path):
    """Upstream's case 2 with ``val_begin=1`` (Lightning has no ``val_begin``: see README.md)."""
    hook = CounterHook()
    _, trainer = run(tmp_path, epoch_based(tmp_path, [hook], max_epochs=3))
    assert trainer.global_step == 12
    assert hook.epochs == [0, 1, 2]
    assert hook.iters == list(range(12))
    assert hook.batch_idx == list(range(4)) * 3
    assert hook.val_epochs == [1, 2, 3]


def test_train_iter_based(tmp_path):
    """Upstream's cases 3 and 4: 12 iterations, validation every 4 (a finite sampler, as case 4)."""
    hook = CounterHook()
    bridge, trainer = run(tmp_path, iter_based(tmp_path, [hook], val_interval=4))
    assert trainer.global_step == 12
    assert hook.epochs == [0]
    assert bridge.runner.val_interval == 4 and bridge.runner.val_begin == 1
    assert hook.iters == list(range(12)) and hook.batch_idx == list(range(12))
    assert hook.val_iters == [4] * 4 + [8] * 4 + [12] * 4
    assert hook.val_batch_idx == list(range(4)) * 3


def test_custom_loop(tmp_path):
    """Upstream's custom train loop: a warm-up stage with its own mount points, fired through ``call_hook``.

    The warm-up stores a loss that still holds its graph in the message hub, as upstream's loop does
    (``update_info('train_logs', ...)``); the checkpoints saved afterwards must not fail on it.
    """
    before, after = [], []

    class WarmupHook(Hook):
        priority = 50

        def before_warmup_iter(self, runner, data_batch=None):
            before.append("before")

        def after_warmup_iter(self, runner, data_batch=None, outputs=None):
            after.append("after")

    class WarmupModule(ToyModule):
        def on_train_start(self):
            bridge = next(c for c in self.trainer.callbacks if isinstance(c, HookBridge))
            loader = DataLoader(ToyDataset(), batch_size=1, shuffle=True)
            for idx, batch in enumerate(loader, 1):
                bridge.call_hook("before_warmup_iter", data_batch=batch)
                loss = self.training_step(batch, idx)
                bridge.runner.message_hub.update_info("train_logs", {"loss": loss})
                bridge.call_hook("after_warmup_iter", data_batch=batch)
                if idx == 5:
                    break

    cfg = iter_based(tmp_path, [WarmupHook()], max_iters=10, checkpoint_interval=5)
    with pytest.warns(UserWarning, match="train_logs in message_hub cannot be copied"):
        _, trainer = run(tmp_path, cfg, module=WarmupModule())
    assert trainer.global_step == 10
    assert before == ["before"] * 5 and after == ["after"] * 5
    assert (tmp_path / "iter_5.pth").is_file() and (tmp_path / "iter_10.pth").is_file()


def test_infinite_sampler_is_refused(tmp_path):
    """MMEngine's iteration-based configs use InfiniteSampler; its iterator never ends a Lightning epoch."""
    from mmengine.dataset import InfiniteSampler

    dataset = ToyDataset()
    loader = DataLoader(dataset, batch_size=3, sampler=InfiniteSampler(dataset, shuffle=False))
    bridge = HookBridge(work_dir=str(tmp_path), **QUIET)
    trainer = make_trainer(tmp_path, bridge, max_epochs=-1, max_steps=6)
    with pytest.raises(UnsupportedSamplerError, match=r"InfiniteSampler.*DefaultSampler"):
        trainer.fit(ToyModule(), loader)


# ------------------------------------------------------------------ the loader hooks write to
class TaggedDataset(Dataset):
    """Each sample carries the tag of the pipeline that produced it (the dataset's ``pipeline``)."""

    def __init__(self) -> None:
        self.pipeline = "weak"
        self.base = ToyDataset()

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**self.base[i], "strong": torch.tensor(self.pipeline == "strong")}


class PipelineSwitchHook(Hook):
    """mmdet's ``PipelineSwitchHook``: switch the pipeline at ``switch_epoch`` and restart persistent workers."""

    def __init__(self, switch_epoch: int) -> None:
        self.switch_epoch = switch_epoch
        self._restart_dataloader = False
        self.loaders: list[Any] = []

    def before_train_epoch(self, runner):
        train_loader = runner.train_dataloader
        self.loaders.append(train_loader)
        if runner.epoch >= self.switch_epoch and not self._restart_dataloader:
            train_loader.dataset.pipeline = "strong"
            if getattr(train_loader, "persistent_workers", False) is True:
                train_loader._DataLoader__initialized = False
                train_loader._iterator = None
                self._restart_dataloader = True
        elif self._restart_dataloader:
            train_loader._DataLoader__initialized = True


class TagRecorder(ToyModule):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[int, set] = {}

    def training_step(self, batch, batch_idx):
        self.tags.setdefault(self.current_epoch, set()).update(batch["strong"].tolist())
        return super().training_step(batch, batch_idx)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork for a quick worker")
def test_train_dataloader_writes_reach_persistent_workers(tmp_path):
    hook = PipelineSwitchHook(switch_epoch=1)
    bridge = HookBridge(custom_hooks=[hook], default_hooks=dict(checkpoint=None, logger=None), **QUIET)
    loader = DataLoader(
        TaggedDataset(), batch_size=3, num_workers=1, persistent_workers=True, multiprocessing_context="fork"
    )
    model = TagRecorder()
    make_trainer(tmp_path, bridge, max_epochs=3, limit_val_batches=0).fit(model, loader)
    assert hook.loaders[0] is hook.loaders[1] is hook.loaders[2]  # one stable object
    assert model.tags == {0: {False}, 1: {True}, 2: {True}}  # the workers run the new pipeline


class IntervalHook(Hook):
    """Upstream's TestIterDynamicIntervalHook / TestEpochDynamicIntervalHook."""

    priority = 50

    def __init__(self) -> None:
        self.validated_at: list[int] = []
        self.intervals: list[int] = []

    def before_val_epoch(self, runner):
        self.validated_at.append(runner.epoch if runner.by_epoch else runner.iter)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if not runner.by_epoch:
            self.intervals.append(runner.train_loop.val_interval)

    def before_train_epoch(self, runner):
        if runner.by_epoch:
            self.intervals.append(runner.train_loop.val_interval)


def test_train_val_begin(tmp_path):
    """Upstream's case 2 as written: ``val_begin=2`` (``ValIntervalHook``, what ``train_cfg.val_begin`` becomes)."""
    hook = CounterHook()
    interval = dict(type="ValIntervalHook", val_interval=1, val_begin=2)
    bridge, _ = run(tmp_path, epoch_based(tmp_path, [hook, interval], max_epochs=3))
    assert bridge.runner.val_begin == 2
    assert hook.epochs == [0, 1, 2] and hook.iters == list(range(12))
    assert hook.val_epochs == [2, 3]


def test_train_dynamic_intervals_iter_based(tmp_path):
    """Upstream's case 5.1: 12 iterations, interval 5, then 2 from iteration 11."""
    hook = IntervalHook()
    interval = dict(type="ValIntervalHook", val_interval=5, dynamic_intervals=[(11, 2)])
    run(tmp_path, iter_based(tmp_path, [hook, interval], val_interval=5))
    assert hook.validated_at == [5, 10, 12]
    assert hook.intervals == [5] * 10 + [2] * 2


def test_train_dynamic_intervals_epoch_based(tmp_path):
    """Upstream's case 5.2: 12 epochs, interval 5, then 2 from epoch 11."""
    hook = IntervalHook()
    interval = dict(type="ValIntervalHook", val_interval=5, dynamic_intervals=[(11, 2)])
    cfg = epoch_based(tmp_path, [hook, interval], max_epochs=12)
    cfg["trainer"]["check_val_every_n_epoch"] = 5
    run(tmp_path, cfg)
    assert hook.validated_at == [5, 10, 12]
    assert hook.intervals == [5] * 10 + [2] * 2


def test_loader_view_writes_and_copies():
    """The view forwards writes to the DataLoader and can be copied (no recursion before its fields exist)."""
    import copy

    from lightning_hooks.runner import LoaderView

    loader = DataLoader(ToyDataset(), batch_size=3)
    view = LoaderView(loader, lambda: 4)
    view._iterator = None
    view.note = "switched"
    assert loader.note == "switched" and "note" not in vars(view)
    clone = copy.copy(view)
    assert len(clone) == 4 and clone.loader is loader


# ----------------------------------------------------------------------------- the optimization recipe
class _ScalesLr(ToyModule):
    """Runs upstream's ``test_scale_lr`` steps in ``configure_optimizers``, where the Trainer is attached."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, Any] = {}

    def configure_optimizers(self):
        from lightning_hooks.optim import scale_lr

        def sgd():
            return torch.optim.SGD(self.parameters(), lr=0.01)

        # no base_batch_size: an AssertionError
        with pytest.raises(AssertionError):
            scale_lr(sgd(), dict(enable=True), self.trainer)
        # None, or enable=False: not scaled
        for auto_scale_lr in (None, dict(base_batch_size=16, enable=False)):
            optimizer = sgd()
            scale_lr(optimizer, auto_scale_lr, self.trainer)
            self.seen.setdefault("unscaled", []).append(optimizer.param_groups[0]["lr"])
        # enable=True: scaled by world_size * batch_size / base_batch_size
        optimizer = sgd()
        scale_lr(optimizer, dict(base_batch_size=16, enable=True), self.trainer)
        self.seen["scaled"] = optimizer.param_groups[0]["lr"]
        self.seen["real_bs"] = self.trainer.world_size * self.trainer.train_dataloader.batch_size
        return optimizer


def test_scale_lr(tmp_path):
    """Upstream's last case (an ``OptimWrapperDict``) has no counterpart: one optimizer is scaled."""
    module = _ScalesLr()
    run(tmp_path, dict(epoch_based(tmp_path), trainer=dict(max_steps=1, num_sanity_val_steps=0)), module=module)
    assert module.seen["unscaled"] == [0.01, 0.01]
    assert module.seen["scaled"] == 0.01 * (module.seen["real_bs"] / 16)


def test_build_param_scheduler():
    """Upstream's cases for one optimizer: 1 (a scheduler object, a dict), 2 (lists of both), 5.2 and 6
    (``convert_to_iter_based`` and the default ``end``, with MMEngine's ``max_epochs=3`` and 4 iterations
    per epoch). Its cases 3 and 4 (several optimizers) are refused here: see docs/optim.md."""
    from lightning_hooks.optim import MultiStepLR, StepLR, TrainingLengths, build_param_schedulers

    optimizer = torch.optim.SGD(ToyModule().parameters(), lr=0.01)
    lengths = TrainingLengths(max_epochs=3, max_iters=12, epoch_length=4)
    cfg = dict(type="MultiStepLR", milestones=[1, 2])
    param_schedulers = build_param_schedulers(cfg, optimizer, lengths)
    assert isinstance(param_schedulers, list) and len(param_schedulers) == 1
    assert isinstance(param_schedulers[0], MultiStepLR)

    # 1.1 a scheduler object is kept as it is
    param_scheduler = MultiStepLR(optimizer, milestones=[1, 2])
    param_schedulers = build_param_schedulers(param_scheduler, optimizer, lengths)
    assert len(param_schedulers) == 1 and param_schedulers[0] is param_scheduler
    # 2.1 a list of dicts
    cfg_list = [dict(type="MultiStepLR", milestones=[1, 2]), dict(type="StepLR", step_size=1)]
    param_schedulers = build_param_schedulers(cfg_list, optimizer, lengths)
    assert [type(s) for s in param_schedulers] == [MultiStepLR, StepLR]
    # 2.2 a list with scheduler objects
    param_schedulers = build_param_schedulers([param_scheduler, dict(type="StepLR", step_size=1)], optimizer, lengths)
    assert [type(s) for s in param_schedulers] == [MultiStepLR, StepLR] and param_schedulers[0] is param_scheduler
    # 3/4 several optimizers: a dict of per-optimizer schedules is refused, naming what to give
    with pytest.raises(ValueError, match="per-optimizer schedules"):
        build_param_schedulers(dict(key1=dict(type="MultiStepLR", milestones=[1, 2])), optimizer, lengths)

    # 5.2 epoch-based converted to iteration-based
    cfg = dict(type="MultiStepLR", milestones=[1, 2], begin=1, end=7, convert_to_iter_based=True)
    (scheduler,) = build_param_schedulers(cfg, optimizer, lengths)
    assert (scheduler.by_epoch, scheduler.begin, scheduler.end) == (False, 4, 28)
    # 6. the default end
    (scheduler,) = build_param_schedulers(dict(type="MultiStepLR", milestones=[1, 2], begin=1), optimizer, lengths)
    assert (scheduler.by_epoch, scheduler.begin, scheduler.end) == (True, 1, 3)
    cfg = dict(type="MultiStepLR", milestones=[1, 2], begin=1, convert_to_iter_based=True)
    (scheduler,) = build_param_schedulers(cfg, optimizer, lengths)
    assert (scheduler.by_epoch, scheduler.begin, scheduler.end) == (False, 4, 12)
