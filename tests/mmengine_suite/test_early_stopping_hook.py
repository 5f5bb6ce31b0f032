"""MMEngine 0.10.7 ``tests/test_hooks/test_early_stopping_hook.py`` against :class:`EarlyStoppingHook`.

Mocked-runner cases call the hook with a ``Mock`` runner as upstream does;
``test_with_runner`` becomes a ``Trainer + HookBridge`` run with the same
metric sequence, ``min_delta`` and ``patience``.
"""

from __future__ import annotations

import math
from unittest.mock import Mock

import pytest
import torch
from toy import ToyModule, loaders, make_trainer

from lightning_hooks import HookBridge
from lightning_hooks.hooks import EarlyStoppingHook


def get_mock_runner() -> Mock:
    runner = Mock()
    runner.train_loop = Mock()
    runner.train_loop.stop_training = False
    return runner


@pytest.mark.parametrize(
    "monitor, rule",
    [
        ("acc", "greater"),
        ("ACC", "greater"),
        ("mAP_50", "greater"),
        ("loss", "less"),
        ("Loss", "less"),
        ("ce_loss", "less"),
    ],
)
def test_init(monitor, rule):
    hook = EarlyStoppingHook(monitor=monitor)
    assert hook.rule == rule
    assert (hook.best_score < 0) if rule == "greater" else (hook.best_score > 0)


def test_init_errors():
    with pytest.raises(ValueError):
        EarlyStoppingHook(monitor="recall")  # the rule cannot be inferred
    with pytest.raises(ValueError):
        EarlyStoppingHook(monitor="accuracy/top1", rule="the world")


def test_before_run():
    runner = Mock()
    runner.train_loop = object()
    with pytest.raises(AssertionError, match="stop_training"):
        EarlyStoppingHook(monitor="accuracy/top1", rule="greater").before_run(runner)


def _run(hook: EarlyStoppingHook, metrics: list[dict]) -> Mock:
    runner = get_mock_runner()
    for metric in metrics:
        hook.after_val_epoch(runner, metric)
        if runner.train_loop.stop_training:
            break
    return runner


def test_after_val_epoch_missing_monitor():
    metrics = {"accuracy/top1": 0.5, "loss": 0.23}
    with pytest.warns(UserWarning):
        EarlyStoppingHook(monitor="acc", rule="greater").after_val_epoch(get_mock_runner(), metrics)
    with pytest.raises(RuntimeError):
        EarlyStoppingHook(monitor="acc", rule="greater", strict=True).after_val_epoch(get_mock_runner(), metrics)


def test_after_val_epoch_largest_and_smallest():
    hook = EarlyStoppingHook(monitor="accuracy/top1", rule="greater")
    _run(hook, [{"accuracy/top1": i / 9.0} for i in range(8)])
    assert hook.best_score == pytest.approx(7 / 9)
    hook = EarlyStoppingHook(monitor="loss")
    _run(hook, [{"loss": i / 9.0} for i in range(8, 0, -1)])
    assert hook.best_score == pytest.approx(1 / 9)


def test_after_val_epoch_stop_finite_patience():
    tensors = [{"accuracy/top1": i} for i in torch.linspace(98, 99, 8)]
    runner = _run(EarlyStoppingHook(monitor="accuracy/top1", rule="greater", min_delta=1), tensors)
    assert runner.train_loop.stop_training
    infinite = [{"accuracy/top1": math.inf} for _ in range(5)]
    runner = _run(EarlyStoppingHook(monitor="accuracy/top1", rule="greater", min_delta=1), infinite)
    assert runner.train_loop.stop_training
    runner = _run(EarlyStoppingHook(monitor="accuracy/top1", rule="greater", min_delta=1, patience=10), tensors)
    assert not runner.train_loop.stop_training


def test_after_val_epoch_stopping_threshold():
    metrics = [{"accuracy/top1": i} for i in torch.linspace(98, 99, 8)]
    hook = EarlyStoppingHook(monitor="accuracy/top1", rule="greater", stopping_threshold=98.5, patience=0)
    _run(hook, metrics)
    assert hook.best_score.item() == pytest.approx(98 + 4 / 7, abs=5e-6)


class SequenceAcc(ToyModule):
    """Logs ``test/acc`` from MMEngine's DummyMetric sequence, one value per validation."""

    VALUES = [90, 91, 92, 88, 89, 90] * 2

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def validation_step(self, batch, batch_idx):
        self.log("test/acc", float(self.VALUES[self.calls]), on_epoch=True)

    def on_validation_end(self):
        self.calls += 1


def test_with_runner(tmp_path):
    hook_cfg = dict(type="EarlyStoppingHook", monitor="test/acc", rule="greater", min_delta=1, patience=3)
    bridge = HookBridge(custom_hooks=[hook_cfg], experiment_name="earlystop_test", print_hooks_table=False)
    trainer = make_trainer(tmp_path, bridge, max_epochs=10, num_sanity_val_steps=0)
    train, val = loaders()
    trainer.fit(SequenceAcc(), train, val)
    assert bridge.runner.epoch == 6
