"""Hook base class: helper formulas against MMEngine's, triggered stages, and the seed example."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch
from mmengine.hooks import Hook as MMHook
from toy import ToyModule, loaders, make_trainer

from lightning_hooks import Hook as LHHook
from lightning_hooks import HookBridge
from lightning_hooks.hooks.hook import STAGES


def test_stages_match_mmengine():
    assert STAGES == MMHook.stages


@pytest.mark.parametrize("start", [0, 1, 2, 5])
@pytest.mark.parametrize("n", [-1, 0, 1, 2, 3])
def test_every_n_helpers_match_mmengine(n, start):
    ours, theirs = LHHook(), MMHook()
    for k in range(0, 30):
        runner = SimpleNamespace(epoch=k, iter=k, max_epochs=10, max_iters=10)
        assert ours.every_n_epochs(runner, n, start) == theirs.every_n_epochs(runner, n, start)
        assert ours.every_n_train_iters(runner, n, start) == theirs.every_n_train_iters(runner, n, start)
        assert ours.every_n_inner_iters(k, n) == theirs.every_n_inner_iters(k, n)
        assert ours.is_last_train_epoch(runner) == theirs.is_last_train_epoch(runner)
        assert ours.is_last_train_iter(runner) == theirs.is_last_train_iter(runner)


def test_mmengine_expected_values():
    hook = LHHook()
    assert [e for e in range(100) if hook.every_n_epochs(SimpleNamespace(epoch=e), 3)] == [
        e for e in range(100) if (e + 1) % 3 == 0
    ]
    assert hook.end_of_epoch([0, 0], 1) and not hook.end_of_epoch([0, 0], 0)
    assert hook.is_last_train_epoch(SimpleNamespace(epoch=1, max_epochs=2))
    assert not hook.is_last_train_epoch(SimpleNamespace(epoch=1, max_epochs=0))
    assert hook.is_last_train_iter(SimpleNamespace(iter=1, max_iters=2))
    # save_begin edge: start > 0 fires at step `start` itself
    assert [k + 1 for k in range(11) if hook.every_n_epochs(SimpleNamespace(epoch=k), 2, 5)] == [5, 7, 9, 11]


def test_triggered_stages_match_mmengine():
    for body in ["after_train", "_before_iter", "is_last_train_epoch", "_after_epoch"]:

        def f(self, *a, **k):
            return None

        ours = type("A", (LHHook,), {body: f})()
        theirs = type("B", (MMHook,), {body: f})()
        assert ours.get_triggered_stages() == sorted(theirs.get_triggered_stages(), key=STAGES.index)


def test_every_base_mount_point_is_callable():
    hook, runner = LHHook(), SimpleNamespace()
    for stage in STAGES:
        kwargs = {}
        if "iter" in stage:
            kwargs["batch_idx"] = 0
        if "checkpoint" in stage:
            kwargs["checkpoint"] = {}
        assert getattr(hook, stage)(runner, **kwargs) is None


def test_seed_check_invalid_loss_hook_runs_unchanged(tmp_path):
    """MMEngine's documentation example, verbatim apart from its imports."""
    import torch

    from lightning_hooks import HOOKS, Hook

    @HOOKS.register_module()
    class CheckInvalidLossHook(Hook):
        """Check invalid loss hook.

        This hook will regularly check whether the loss is valid
        during training.

        Args:
            interval (int): Checking interval (every k iterations).
                Defaults to 50.
        """

        def __init__(self, interval=50):
            self.interval = interval

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            """All subclasses should override this method, if they need any
            operations after each training iteration.

            Args:
                runner (Runner): The runner of the training process.
                batch_idx (int): The index of the current batch in the train loop.
                data_batch (dict or tuple or list, optional): Data from dataloader.
                outputs (dict, optional): Outputs from model.
            """
            if self.every_n_train_iters(runner, self.interval):
                assert torch.isfinite(outputs["loss"]), runner.logger.info("loss become infinite or NaN!")

    assert HOOKS.get("CheckInvalidLossHook") is CheckInvalidLossHook
    custom_hooks = [dict(type="CheckInvalidLossHook", interval=2, priority="ABOVE_NORMAL")]
    train, val = loaders()
    bridge = HookBridge(custom_hooks=custom_hooks)
    assert type(bridge.hooks[1]).__name__ == "CheckInvalidLossHook"  # ABOVE_NORMAL: after RuntimeInfoHook only
    make_trainer(tmp_path, bridge, max_epochs=1).fit(ToyModule(), train, val)

    class NaNModule(ToyModule):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            return loss * float("nan") if batch_idx == 1 else loss

    with pytest.raises(AssertionError):
        make_trainer(tmp_path, HookBridge(custom_hooks=custom_hooks), max_epochs=1).fit(NaNModule(), train, val)


def test_shipped_check_invalid_loss_hook_reports_nan(tmp_path, capsys):
    from lightning_hooks.hooks.check_invalid_loss_hook import CheckInvalidLossHook

    class NaNModule(ToyModule):
        def training_step(self, batch, batch_idx):
            return super().training_step(batch, batch_idx) * (float("nan") if batch_idx == 2 else 1.0)

    train, val = loaders()
    with pytest.raises(AssertionError, match="iteration 3"):
        make_trainer(tmp_path, HookBridge(custom_hooks=[CheckInvalidLossHook(interval=1)]), max_epochs=1).fit(
            NaNModule(), train, val
        )
    assert "loss become infinite or NaN!" in capsys.readouterr().out


def test_generic_override_fires_in_all_modes(tmp_path):
    seen = []

    class Generic(LHHook):
        def _after_iter(self, runner, batch_idx, data_batch=None, outputs=None, mode="train"):
            seen.append(mode)

    train, val = loaders()
    trainer = make_trainer(tmp_path, HookBridge(custom_hooks=[Generic()]), max_epochs=1)
    trainer.fit(ToyModule(), train, val)
    trainer.test(ToyModule(), val)
    assert seen.count("train") == 4 and seen.count("val") == 2 and seen.count("test") == 2


def test_accumulation_outputs_carry_unscaled_loss(tmp_path):
    losses = {}

    class Grab(LHHook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            losses.setdefault(runner.trainer.accumulate_grad_batches, []).append(float(outputs["loss"]))

    train, _val = loaders()
    for acc in (1, 2):
        make_trainer(
            tmp_path, HookBridge(custom_hooks=[Grab()]), max_epochs=1, accumulate_grad_batches=acc, limit_val_batches=0
        ).fit(ToyModule(), train)
    # First batch: same weights, so the same loss whatever the accumulation.
    assert losses[1][0] == pytest.approx(losses[2][0])
    _ = itertools, torch


def test_a_method_set_on_an_idle_hook_instance_is_dispatched_as_mmengine_calls_it():
    """CheckpointHook(by_epoch=True) is idle after each iteration, unless the instance has its own method."""
    from lightning_hooks.hooks import CheckpointHook
    from lightning_hooks.hooks.hook import dispatched_at

    hook = CheckpointHook(interval=1)
    assert not dispatched_at(hook, "after_train_iter")
    hook.after_train_iter = lambda runner, **kwargs: None
    assert dispatched_at(hook, "after_train_iter")
