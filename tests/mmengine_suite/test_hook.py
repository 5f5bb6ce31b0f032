"""MMEngine 0.10.7 ``tests/test_hooks/test_hook.py``: the base ``Hook``'s mount points and helpers, mocked runner."""

from __future__ import annotations

from unittest.mock import Mock

import pytest

from lightning_hooks import Hook

NO_ARGS = ["before_run", "after_run", "before_train_epoch", "before_val_epoch", "before_test_epoch"]
NO_ARGS += ["after_train_epoch", "_before_epoch", "_after_epoch"]


@pytest.mark.parametrize("stage", NO_ARGS)
def test_mount_points_without_arguments_do_nothing(stage):
    runner = Mock()
    assert getattr(Hook(), stage)(runner) is None
    assert runner.mock_calls == []


@pytest.mark.parametrize("stage", ["before_save_checkpoint", "after_load_checkpoint"])
def test_checkpoint_mount_points(stage):
    checkpoint: dict = {}
    getattr(Hook(), stage)(Mock(), checkpoint)
    assert checkpoint == {}


@pytest.mark.parametrize("stage", ["after_val_epoch", "after_test_epoch"])
def test_after_eval_epoch(stage):
    getattr(Hook(), stage)(Mock(), {})


@pytest.mark.parametrize("stage", ["before_train_iter", "before_val_iter", "before_test_iter", "_before_iter"])
def test_before_iter(stage):
    getattr(Hook(), stage)(Mock(), {})


@pytest.mark.parametrize("stage", ["after_train_iter", "after_val_iter", "after_test_iter", "_after_iter"])
def test_after_iter(stage):
    getattr(Hook(), stage)(Mock(), {}, {})


def test_every_n_epochs():
    hook, runner = Hook(), Mock()
    for i in range(100):
        runner.epoch = i
        assert hook.every_n_epochs(runner, 3) == ((i + 1) % 3 == 0)


def test_every_n_inner_iters():
    hook = Hook()
    for i in range(100):
        assert hook.every_n_inner_iters(i, 3) == ((i + 1) % 3 == 0)


def test_every_n_train_iters():
    hook, runner = Hook(), Mock()
    for i in range(100):
        runner.iter = i
        assert hook.every_n_train_iters(runner, 3) == ((i + 1) % 3 == 0)


def test_end_of_epoch():
    dataloader = Mock()
    dataloader.__len__ = Mock(return_value=2)
    assert Hook().end_of_epoch(dataloader, 1)
    assert not Hook().end_of_epoch(dataloader, 0)


def test_is_last_train_epoch():
    runner = Mock()
    runner.epoch, runner.max_epochs = 1, 2
    assert Hook().is_last_train_epoch(runner)
    runner.max_epochs = 0
    assert not Hook().is_last_train_epoch(runner)


def test_is_last_train_iter():
    runner = Mock()
    runner.iter, runner.max_iters = 1, 2
    assert Hook().is_last_train_iter(runner)


def test_get_triggered_stages():
    class AfterTrain(Hook):
        def after_train(self, runner):
            return super().after_train(runner)

    assert AfterTrain().get_triggered_stages() == ["after_train"]

    class BeforeIter(Hook):
        def _before_iter(self, runner, batch_idx, data_batch=None, mode="train"):
            pass

    stages = BeforeIter().get_triggered_stages()
    assert len(stages) == 3
    assert set(stages) == {"before_train_iter", "before_val_iter", "before_test_iter"}

    class Helper(Hook):
        def is_last_train_epoch(self, runner):
            return False

    assert Helper().get_triggered_stages() == []
