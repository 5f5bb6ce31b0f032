"""MMEngine 0.10.7 ``tests/test_hooks/test_sampler_seed_hook.py`` against :class:`DistSamplerSeedHook`."""

from __future__ import annotations

from unittest.mock import MagicMock

from lightning_hooks.hooks import DistSamplerSeedHook

from .suite_helpers import epoch_based, run


def test_before_train_epoch():
    hook = DistSamplerSeedHook()
    runner = MagicMock()
    runner.epoch = 1
    hook.before_train_epoch(runner)
    runner.train_loop.dataloader.sampler.set_epoch.assert_called()
    runner.train_loop.dataloader = MagicMock(spec_set=["batch_sampler"])
    hook.before_train_epoch(runner)
    runner.train_loop.dataloader.batch_sampler.sampler.set_epoch.assert_called()


def test_with_runner(tmp_path):
    _, trainer = run(tmp_path, epoch_based(tmp_path, [dict(type="DistSamplerSeedHook")]))
    assert trainer.current_epoch == 2
