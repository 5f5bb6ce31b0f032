"""Mount-point order and counters: MMEngine's Runner versus Trainer + HookBridge, on the same scenario."""

from __future__ import annotations

import pytest
from mmengine.hooks import Hook as MMHook
from toy import ToyModule, loaders, make_trace_hook, make_trainer, run_mmengine, run_mode

from lightning_hooks import Hook as LHHook
from lightning_hooks import HookBridge


def lightning_trace(tmp_path, trainer_kwargs, bridge_kwargs=None, mode="fit", extra_hooks=()):
    log: list = []
    bridge = HookBridge(custom_hooks=[make_trace_hook(LHHook, log), *extra_hooks], **(bridge_kwargs or {}))
    trainer = make_trainer(tmp_path / "lh", bridge, **trainer_kwargs)
    run_mode(trainer, ToyModule(), mode)
    return log


def mmengine_trace(tmp_path, mode="train", extra_hooks=(), **kwargs):
    log: list = []
    run_mmengine(tmp_path / "mm", [make_trace_hook(MMHook, log), *extra_hooks], mode=mode, **kwargs)
    return log


def assert_same(mm, lh):
    assert len(mm) > 0
    for i, (a, b) in enumerate(zip(mm, lh, strict=False)):
        assert a == b, (
            f"first difference at entry {i}: MMEngine {a} vs lightning_hooks {b}\ncontext MM {mm[max(0, i - 3) : i + 2]}\n LH {lh[max(0, i - 3) : i + 2]}"
        )
    assert len(mm) == len(lh), (
        f"MMEngine has {len(mm)} entries, lightning_hooks {len(lh)}: tail MM {mm[-3:]} LH {lh[-3:]}"
    )


def test_epoch_based_validate_every_epoch(tmp_path):
    mm = mmengine_trace(tmp_path, train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1))
    lh = lightning_trace(tmp_path, dict(max_epochs=2, check_val_every_n_epoch=1))
    assert ("before_save_checkpoint", 0, 4, None) in mm  # the default CheckpointHook saves every epoch
    assert_same(mm, lh)


def test_epoch_based_validate_every_two_epochs(tmp_path):
    mm = mmengine_trace(tmp_path, train_cfg=dict(by_epoch=True, max_epochs=4, val_interval=2))
    lh = lightning_trace(tmp_path, dict(max_epochs=4, check_val_every_n_epoch=2))
    assert sum(1 for e in mm if e[0] == "before_val") == 2
    assert_same(mm, lh)


def _iteration_based_traces(tmp_path, mm_hooks: tuple = (), lh_hooks: tuple = ()) -> tuple[list, list]:
    """(MMEngine's, ours): 12 iterations, validation and an iteration checkpoint every 4."""
    ckpt = dict(type="CheckpointHook", interval=4, by_epoch=False)
    mm = mmengine_trace(
        tmp_path,
        train_cfg=dict(by_epoch=False, max_iters=12, val_interval=4),
        default_hooks=dict(checkpoint=ckpt),
        extra_hooks=list(mm_hooks),
        infinite=True,
    )
    lh = lightning_trace(
        tmp_path,
        dict(max_steps=12, max_epochs=-1, val_check_interval=4, check_val_every_n_epoch=None),
        bridge_kwargs=dict(default_hooks=dict(checkpoint=ckpt)),
        extra_hooks=list(lh_hooks),
    )
    return mm, lh


def test_iteration_based_with_validation_interval(tmp_path):
    mm, lh = _iteration_based_traces(tmp_path)
    assert [e[0] for e in mm].count("before_train_epoch") == 1
    assert_same(mm, lh)


def test_gradient_accumulation_counts_batches(tmp_path):
    mm = mmengine_trace(
        tmp_path,
        train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), accumulative_counts=2),
    )
    lh = lightning_trace(tmp_path, dict(max_epochs=2, accumulate_grad_batches=2))
    assert_same(mm, lh)


@pytest.mark.parametrize("mode", ["val", "test"])
def test_standalone_validate_and_test(tmp_path, mode):
    mm = mmengine_trace(tmp_path, mode=mode)
    lh = lightning_trace(tmp_path, {}, mode="validate" if mode == "val" else "test")
    stages = [e[0] for e in mm]
    assert stages[0] == "before_run" and stages[-1] == "after_run"
    assert not any(s.startswith(("before_train", "after_train")) for s in stages)
    assert_same(mm, lh)


def test_last_epoch_validates_off_interval(tmp_path):
    """MMEngine validates after the last epoch whatever val_interval says (3 epochs, interval 2 → 2 and 3)."""
    mm = mmengine_trace(tmp_path, train_cfg=dict(by_epoch=True, max_epochs=3, val_interval=2))
    lh = lightning_trace(tmp_path, dict(max_epochs=3, check_val_every_n_epoch=2))
    assert [e[1] for e in mm if e[0] == "before_val"] == [2, 3]
    assert_same(mm, lh)


@pytest.mark.parametrize(
    "val_kwargs", [dict(val_check_interval=3), dict(val_check_interval=5, check_val_every_n_epoch=None)]
)
def test_last_epoch_validates_when_val_check_interval_misses_its_end(tmp_path, val_kwargs):
    """4 batches an epoch, 2 epochs: Lightning's own validations stay, and one follows the last epoch."""
    lh = lightning_trace(tmp_path, dict(max_epochs=2, **val_kwargs))
    stages = [e[0] for e in lh]
    last_epoch_end = len(stages) - 1 - stages[::-1].index("after_train_epoch")
    own = [3, 7] if val_kwargs["val_check_interval"] == 3 else [5]
    assert [e[2] for e in lh if e[0] == "before_val"] == [*own, 8]
    assert stages[last_epoch_end:].count("before_val") == 1


def test_last_iteration_validates_off_interval(tmp_path):
    ckpt = dict(type="CheckpointHook", interval=4, by_epoch=False)
    mm = mmengine_trace(
        tmp_path,
        train_cfg=dict(by_epoch=False, max_iters=10, val_interval=4),
        default_hooks=dict(checkpoint=ckpt),
        infinite=True,
    )
    lh = lightning_trace(
        tmp_path,
        dict(max_steps=10, max_epochs=-1, val_check_interval=4, check_val_every_n_epoch=None),
        bridge_kwargs=dict(default_hooks=dict(checkpoint=ckpt)),
    )
    assert [e[2] for e in mm if e[0] == "before_val"] == [4, 8, 10]
    assert_same(mm, lh)


def test_sanity_check_fires_nothing_and_lightning_order_is_not_mmengine(tmp_path):
    """Without the bridge's reordering the epoch's validation would come before after_train_epoch."""
    lh = lightning_trace(tmp_path, dict(max_epochs=1, num_sanity_val_steps=2))
    stages = [e[0] for e in lh]
    assert stages.index("after_train_epoch") < stages.index("before_val")
    assert stages.count("before_val") == 1  # the sanity check fired nothing


def test_after_run_fires_when_training_fails(tmp_path):
    log: list = []

    class Boom(LHHook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if runner.iter == 2:
                raise RuntimeError("boom")

    bridge = HookBridge(custom_hooks=[make_trace_hook(LHHook, log), Boom()])
    trainer = make_trainer(tmp_path, bridge, max_epochs=1)
    train, val = loaders()
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(ToyModule(), train, val)
    assert log[-1][0] == "after_run"
    assert [e[0] for e in log].count("after_run") == 1


def _stops_at(base: type, iteration: int) -> object:
    """A hook asking ``runner.train_loop.stop_training`` after iteration ``iteration`` (1-based, global)."""

    class StopsTraining(base):  # type: ignore[misc, valid-type]
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            if runner.iter + 1 == iteration:
                runner.train_loop.stop_training = True

    return StopsTraining()


def test_stop_training_inside_an_epoch_finishes_the_epoch_and_its_validation(tmp_path):
    """MMEngine's epoch-based loop reads ``stop_training`` between epochs: the epoch, and its
    validation, run to the end. (``trainer.should_stop`` set directly stops at once, Lightning's way.)"""
    train_cfg = dict(by_epoch=True, max_epochs=4, val_interval=1)
    mm = mmengine_trace(tmp_path, train_cfg=train_cfg, extra_hooks=[_stops_at(MMHook, 6)])
    lh = lightning_trace(tmp_path, dict(max_epochs=4), extra_hooks=[_stops_at(LHHook, 6)])
    assert ("after_train_epoch", 1, 8, None) in mm and ("before_train_epoch", 2, 8, None) not in mm
    assert_same(mm, lh)


def test_stop_training_in_iteration_based_training_stops_after_that_iteration(tmp_path):
    mm, lh = _iteration_based_traces(tmp_path, (_stops_at(MMHook, 6),), (_stops_at(LHHook, 6),))
    assert not any(entry[0] == "before_train_iter" and entry[2] == 6 for entry in mm)
    assert_same(mm, lh)


def _loop_kind_hook(base: type, log: list) -> object:
    """Records, as mmpretrain's PreciseBNHook decides its unit, which MMEngine loop ``runner.train_loop`` is."""
    from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

    def record(stage: str, runner: object) -> None:
        loop = runner.train_loop  # type: ignore[attr-defined]
        log.append((stage, isinstance(loop, EpochBasedTrainLoop), isinstance(loop, IterBasedTrainLoop)))

    class LoopKind(base):  # type: ignore[valid-type, misc]
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            record("after_train_iter", runner)

        def after_train_epoch(self, runner):
            record("after_train_epoch", runner)

    return LoopKind()


def test_train_loop_is_an_instance_of_mmengines_loop_of_its_kind(tmp_path):
    """Hooks that pick their unit with isinstance(runner.train_loop, EpochBasedTrainLoop/IterBasedTrainLoop)
    (mmpretrain's PreciseBNHook) act as under MMEngine's Runner, epoch- and iteration-based."""
    mm_epoch: list = []
    lh_epoch: list = []
    mmengine_trace(tmp_path / "epoch", extra_hooks=[_loop_kind_hook(MMHook, mm_epoch)])
    lightning_trace(tmp_path / "epoch", dict(max_epochs=2), extra_hooks=[_loop_kind_hook(LHHook, lh_epoch)])
    assert ("after_train_epoch", True, False) in mm_epoch
    assert lh_epoch == mm_epoch
    mm_iter: list = []
    lh_iter: list = []
    _iteration_based_traces(
        tmp_path / "iter", mm_hooks=(_loop_kind_hook(MMHook, mm_iter),), lh_hooks=(_loop_kind_hook(LHHook, lh_iter),)
    )
    assert ("after_train_iter", False, True) in mm_iter
    assert lh_iter == mm_iter
