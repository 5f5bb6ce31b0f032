"""MMEngine 0.10.7 ``tests/test_hooks/test_ema_hook.py`` against :class:`EMAHook`.

Upstream builds a Runner and calls the hook's methods; here the hook is called
with a runner of the same shape (``runner_like``), or taken from a finished
``Trainer + HookBridge`` run. ``test_with_runner`` becomes Trainer runs with the
same settings, asserting the same checkpoint files and contents.
"""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from torch import nn
from toy import ToyModule

from lightning_hooks.averaging import ExponentialMovingAverage
from lightning_hooks.hooks import EMAHook

from .suite_helpers import epoch_based, find_hook, iter_based, run, runner_like


class ToyModule2(ToyModule):
    """An extra layer: a ToyModule checkpoint misses its keys. Loads non-strictly, as MMEngine's ``load_from``."""

    def __init__(self) -> None:
        super().__init__()
        self.linear3 = nn.Linear(2, 1)
        self.strict_loading = False


class ToyModule3(ToyModule):
    """``linear`` of another structure: a ToyModule checkpoint has other keys. Loads non-strictly."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
        self.strict_loading = False


def assert_allclose(a, b):
    torch.testing.assert_close(a.float().cpu(), b.float().cpu())


def test_init():
    EMAHook()
    with pytest.raises(AssertionError, match="`begin_iter` must"):
        EMAHook(begin_iter=-1)
    with pytest.raises(AssertionError, match="`begin_epoch` must"):
        EMAHook(begin_epoch=-1)
    with pytest.raises(AssertionError, match="`begin_iter` and `begin_epoch`"):
        EMAHook(begin_iter=1, begin_epoch=1)


def test_before_run():
    runner = runner_like()
    hook = EMAHook()
    hook.before_run(runner)
    assert isinstance(hook.ema_model, ExponentialMovingAverage)
    assert hook.src_model is runner.model


def test_before_train():
    runner = runner_like(max_epochs=2, max_iters=12)
    hook = EMAHook(begin_epoch=1)
    hook.before_run(runner)
    hook.before_train(runner)
    hook = EMAHook(begin_epoch=3)
    hook.before_run(runner)
    with pytest.raises(AssertionError, match=r"self\.begin_epoch"):
        hook.before_train(runner)
    hook = EMAHook(begin_iter=13)
    hook.before_run(runner)
    with pytest.raises(AssertionError, match=r"self\.begin_iter"):
        hook.before_train(runner)


def test_after_train_iter():
    runner = runner_like()
    hook = EMAHook()
    hook.before_run(runner)
    hook.before_train(runner)
    src_model, ema_model = runner.model, hook.ema_model
    with torch.no_grad():
        for parameter in src_model.parameters():
            parameter.copy_(torch.randn(parameter.shape))
    hook.after_train_iter(runner, 1)  # the first update copies
    for src, ema in zip(src_model.parameters(), ema_model.module.parameters(), strict=True):
        assert_allclose(src, ema)
    with torch.no_grad():
        for parameter in src_model.parameters():
            parameter.copy_(torch.randn(parameter.shape))
    hook.after_train_iter(runner, 1)
    for src, ema in zip(src_model.parameters(), ema_model.module.parameters(), strict=True):
        assert not (src == ema).all()


@pytest.mark.parametrize("stage", ["before_val_epoch", "after_val_epoch", "before_test_epoch", "after_test_epoch"])
def test_swap_parameters(tmp_path, stage):
    """Each of the four mount points swaps on its own, as in MMEngine (after ``runner.train()``)."""
    bridge, _ = run(tmp_path, epoch_based(tmp_path, [dict(type="EMAHook")]))
    hook = find_hook(bridge, EMAHook)
    with torch.no_grad():
        for parameter in hook.src_model.parameters():
            parameter.copy_(torch.randn(parameter.shape))
    src_before = copy.deepcopy(list(hook.src_model.parameters()))
    ema_before = copy.deepcopy(list(hook.ema_model.module.parameters()))
    getattr(hook, stage)(bridge.runner)
    for src, ema, now_src, now_ema in zip(
        src_before, ema_before, hook.src_model.parameters(), hook.ema_model.module.parameters(), strict=True
    ):
        assert (src == now_ema).all() and (ema == now_src).all()


def test_before_save_checkpoint():
    runner = runner_like()
    checkpoint = dict(state_dict=ToyModule().state_dict())
    hook = EMAHook()
    hook.before_run(runner)
    hook.before_train(runner)
    original = copy.deepcopy(checkpoint)
    hook.before_save_checkpoint(runner, checkpoint)
    for key in original["state_dict"]:
        assert_allclose(original["state_dict"][key], checkpoint["ema_state_dict"][f"module.{key}"])
        assert_allclose(hook.ema_model.state_dict()[f"module.{key}"], checkpoint["state_dict"][key])


def test_after_load_checkpoint(caplog):
    runner = runner_like()
    checkpoint = dict(state_dict=ToyModule().state_dict())
    hook = EMAHook()
    hook.before_run(runner)
    hook.before_train(runner)
    hook.after_load_checkpoint(runner, checkpoint)
    for key in checkpoint["state_dict"]:
        assert_allclose(checkpoint["state_dict"][key], hook.ema_model.state_dict()[f"module.{key}"])

    # Resuming from a checkpoint without `ema_state_dict` warns.
    runner.resume = runner._resume = True
    with caplog.at_level(logging.WARNING, logger=runner.logger.name):
        hook.after_load_checkpoint(runner, checkpoint)
    assert "There is no `ema_state_dict`" in caplog.records[0].getMessage()

    # Resuming swaps state_dict and ema_state_dict back.
    checkpoint = dict(
        state_dict=ToyModule().state_dict(), ema_state_dict=ExponentialMovingAverage(ToyModule()).state_dict()
    )
    original = copy.deepcopy(checkpoint)
    hook.after_load_checkpoint(runner, checkpoint)
    for key in original["state_dict"]:
        assert_allclose(original["state_dict"][key], hook.ema_model.state_dict()[f"module.{key}"])
    runner.resume = runner._resume = False
    hook.after_load_checkpoint(runner, checkpoint)


def test_with_runner(tmp_path):
    cfg = epoch_based(tmp_path, [dict(type="EMAHook")])
    bridge, _ = run(tmp_path, cfg)
    assert isinstance(find_hook(bridge, EMAHook).ema_model, ExponentialMovingAverage)
    checkpoint = torch.load(tmp_path / "epoch_2.pth", weights_only=True)
    assert "ema_state_dict" in checkpoint and checkpoint["ema_state_dict"]["steps"] == 8

    # Load and test (MMEngine's `load_from`), the plain module and a subclass.
    run(tmp_path, cfg, mode="test", ckpt_path=str(tmp_path / "epoch_2.pth"))

    # A checkpoint without ema_state_dict.
    checkpoint.pop("ema_state_dict")
    torch.save(checkpoint, tmp_path / "without_ema_state_dict.pth")
    run(tmp_path, cfg, mode="test", ckpt_path=str(tmp_path / "without_ema_state_dict.pth"))


@pytest.mark.parametrize("module_cls", [ToyModule2, ToyModule3])
def test_with_runner_not_strict(tmp_path, module_cls):
    """Test a ToyModule checkpoint on a model with other keys or shapes; EMAHook(strict_load=False) warns only."""
    run(tmp_path, epoch_based(tmp_path, [dict(type="EMAHook")], max_epochs=1))
    cfg = epoch_based(tmp_path, [dict(type="EMAHook", strict_load=False)])
    run(tmp_path, cfg, mode="test", module=module_cls(), ckpt_path=str(tmp_path / "epoch_1.pth"))


def test_with_runner_begin_epoch(tmp_path):
    run(tmp_path, epoch_based(tmp_path, [dict(type="EMAHook", begin_epoch=5)], max_epochs=5))
    state = torch.load(tmp_path / "epoch_4.pth", map_location="cpu", weights_only=True)
    assert "ema_state_dict" in state
    for key, value in state["state_dict"].items():
        assert_allclose(value, state["ema_state_dict"]["module." + key])


def test_with_runner_begin_iter(tmp_path):
    cfg = iter_based(tmp_path, [dict(type="EMAHook", begin_iter=5)], max_iters=5, val_interval=1, checkpoint_interval=1)
    run(tmp_path, cfg)
    state = torch.load(tmp_path / "iter_4.pth", map_location="cpu", weights_only=True)
    assert "ema_state_dict" in state
    for key, value in state["state_dict"].items():
        assert_allclose(value, state["ema_state_dict"]["module." + key])
    assert "ema_state_dict" in torch.load(tmp_path / "iter_5.pth", map_location="cpu", weights_only=True)
