"""MMEngine 0.10.7 ``tests/test_hooks/test_iter_timer_hook.py`` against :class:`IterTimerHook`.

``time`` is patched in the hook's module as upstream patches it in MMEngine's:
every call advances the clock by one second. ``runner.train_loop._iter += 1``
(how upstream moves the counter) is ``runner.iter += 1`` on the built runner's stand-in; the
counter writes on this package's runner are tested in ``test_runtime_info_hook.py``.
"""

from __future__ import annotations

from unittest.mock import patch

from lightning_hooks.hooks import IterTimerHook

from .suite_helpers import epoch_based, find_hook, run, runner_like

TIME = "lightning_hooks.hooks.iter_timer_hook.time"


class PatchedTime:
    count = 0

    @classmethod
    def time(cls) -> int:
        result = cls.count
        cls.count += 1
        return result


def test_before_iter(tmp_path):
    bridge, _ = run(tmp_path, epoch_based(tmp_path, max_epochs=1))
    runner, hook = bridge.runner, find_hook(bridge, IterTimerHook)
    with patch(TIME, PatchedTime):
        for mode in ("train", "val", "test"):
            hook._before_epoch(runner)
            hook._before_iter(runner, batch_idx=1, mode=mode)
            values, _ = runner.message_hub.get_scalar(f"{mode}/data_time").data
            assert list(values)[-1] == 1


def test_after_iter():
    # A built (not yet trained) runner of iter_based_cfg with max_iters=100; 4 validation and test batches.
    runner = runner_like(max_iters=100, val_dataloader=[0] * 4, test_dataloader=[0] * 4)
    hook = IterTimerHook()
    with patch(TIME, PatchedTime):
        hook.before_run(runner)
        hook._before_epoch(runner)
        for i in range(10):
            hook.before_train_iter(runner, i)
            hook.after_train_iter(runner, i)
            runner.iter += 1
        # 2 s per iteration, 90 iterations left.
        assert runner.message_hub.get_info("eta") == 180
        hook.after_train_epoch(runner)
        for i in range(2):
            hook.before_val_iter(runner, i)
            hook.after_val_iter(runner, batch_idx=i)
        assert runner.message_hub.get_info("eta") == 4
        for i in range(2, 4):
            hook.before_val_iter(runner, i)
            hook.after_val_iter(runner, batch_idx=i)
        hook.after_val_epoch(runner)
        assert runner.message_hub.get_info("eta") == 0
        for i in range(2):
            hook.before_test_iter(runner, i)
            hook.after_test_iter(runner, batch_idx=i)
        assert runner.message_hub.get_info("eta") == 4
        for i in range(2, 4):
            hook.before_test_iter(runner, i)
            hook.after_test_iter(runner, batch_idx=i)
        hook.after_test_epoch(runner)
        assert runner.message_hub.get_info("eta") == 0


def test_with_runner(tmp_path):
    cfg = epoch_based(tmp_path)
    cfg["trainer"]["check_val_every_n_epoch"] = 1_000_000  # disable validation
    with patch(TIME, PatchedTime):
        bridge, _ = run(tmp_path, cfg)
    values, _ = bridge.runner.message_hub.log_scalars["train/time"].data
    assert list(values) == [2] * 8
    assert bridge.runner.message_hub.runtime_info["eta"] == 0
