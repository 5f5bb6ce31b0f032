"""MMEngine 0.10.7 ``tests/test_hooks/test_param_scheduler_hook.py`` against :class:`ParamSchedulerHook`.

In a Lightning run the hook steps the schedulers the LightningModule returns from
``configure_optimizers``, taken over from Lightning in ``before_train`` (see the
linked section of docs/comparison.md). Called without a Trainer, as upstream's
mocked-runner cases call it, it steps ``runner.param_schedulers`` as MMEngine's
does; each of those cases first checks the Lightning behaviour.
``test_with_runner`` trains with MMEngine's ``ConstantLR`` schedulers through
:func:`lightning_hooks.optim.mmengine_optimizers`.
"""

from __future__ import annotations

from unittest.mock import Mock

import pytest
from toy import ToyModule

from lightning_hooks.hooks import ParamSchedulerHook
from lightning_hooks.optim import mmengine_optimizers

from .suite_helpers import documented_behaviour, epoch_based, find_hook, iter_based, run

DOC = "docs/comparison.md#paramschedulerhook-steps-the-schedulers-of-configure_optimizers"
ERROR = "runner.param_schedulers should be list of ParamScheduler or a dict containing list of ParamScheduler"
INIT_LR = 0.1


class ScheduledModule(ToyModule):
    def __init__(self, param_scheduler: list) -> None:
        super().__init__()
        self.param_scheduler = param_scheduler

    def configure_optimizers(self):
        cfg = dict(optim_wrapper=dict(optimizer=dict(type="SGD", lr=INIT_LR)), param_scheduler=self.param_scheduler)
        return mmengine_optimizers(self, cfg)


def lr_history(bridge) -> list[float]:
    values, _ = bridge.runner.message_hub.get_scalar("train/lr").data
    return [round(v, 10) for v in values.tolist()]


def check_documented_behaviour(tmp_path) -> None:
    """The documented behaviour in a Lightning run: the schedulers of configure_optimizers are taken over and stepped."""
    with documented_behaviour(DOC):
        schedulers = [dict(type="ConstantLR", factor=0.5, begin=0)]
        bridge, trainer = run(tmp_path, epoch_based(tmp_path, max_epochs=2), module=ScheduledModule(schedulers))
        assert lr_history(bridge) == [INIT_LR * 0.5] * 4 + [INIT_LR] * 4
        assert trainer.lr_scheduler_configs[0].interval == "epoch"  # given back to Lightning after training
        assert find_hook(bridge, ParamSchedulerHook).scheduled == []


def mock_scheduler(by_epoch: bool, **attributes) -> Mock:
    scheduler = Mock()
    scheduler.step = Mock()
    scheduler.by_epoch = by_epoch
    for name, value in attributes.items():
        setattr(scheduler, name, value)
    return scheduler


@pytest.mark.parametrize("stage, by_epoch", [("after_train_iter", False), ("after_train_epoch", True)])
def test_mocked_runner_param_schedulers(tmp_path, stage, by_epoch):
    check_documented_behaviour(tmp_path)
    call = (
        (lambda hook, runner: hook.after_train_iter(runner, 0))
        if stage == "after_train_iter"
        else (lambda hook, runner: hook.after_train_epoch(runner))
    )
    # MMEngine: a list of schedulers is stepped ...
    runner = Mock()
    scheduler = mock_scheduler(by_epoch)
    runner.param_schedulers = [scheduler]
    call(ParamSchedulerHook(), runner)
    scheduler.step.assert_called()
    # ... so is a dict of lists, and anything else is a TypeError.
    first, second = mock_scheduler(by_epoch), mock_scheduler(by_epoch)
    runner.param_schedulers = dict(key1=[first], key2=[second])
    call(ParamSchedulerHook(), runner)
    first.step.assert_called()
    second.step.assert_called()
    with pytest.raises(TypeError, match=ERROR):
        runner.param_schedulers = mock_scheduler(by_epoch)
        call(ParamSchedulerHook(), runner)


def test_mocked_runner_after_val_epoch(tmp_path):
    check_documented_behaviour(tmp_path)
    metrics = dict(loss=1.0)
    runner = Mock()
    scheduler = mock_scheduler(True, need_val_args=True)
    runner.param_schedulers = [scheduler]
    ParamSchedulerHook().after_val_epoch(runner, metrics)
    scheduler.step.assert_called_with(metrics)


def test_with_runner_epoch_based(tmp_path):
    schedulers = [dict(type="ConstantLR", factor=0.5, begin=0), dict(type="ConstantLR", factor=0.5, begin=1)]
    bridge, _ = run(tmp_path, epoch_based(tmp_path, max_epochs=3), module=ScheduledModule(schedulers))
    # epoch 1: init_lr * 0.5; epoch 2: init_lr * 0.5 * 0.5; epoch 3: back to init_lr
    assert lr_history(bridge) == [INIT_LR * 0.5] * 4 + [INIT_LR * 0.25] * 4 + [INIT_LR] * 4


def test_with_runner_iter_based(tmp_path):
    schedulers = [
        dict(type="ConstantLR", factor=0.5, begin=0, by_epoch=False),
        dict(type="ConstantLR", factor=0.5, begin=4, by_epoch=False),
    ]
    bridge, _ = run(tmp_path, iter_based(tmp_path), module=ScheduledModule(schedulers))
    # iterations 1-4: init_lr * 0.5; 5-11: init_lr * 0.5 * 0.5; 12: init_lr
    assert lr_history(bridge) == [INIT_LR * 0.5] * 4 + [INIT_LR * 0.25] * 7 + [INIT_LR]
