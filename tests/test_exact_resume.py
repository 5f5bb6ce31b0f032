"""Exact resume of validation-driven state: early stopping, plateau schedulers, best scores and EMA.

A regular checkpoint is written in ``after_train_epoch``/``after_train_iter``,
before that step's validation (MMEngine's moment). A run interrupted there, or
anywhere in that validation, must end exactly like the uninterrupted run: the
checkpoint records that its validation is still to come, and resuming runs it.
"""

from __future__ import annotations

import pytest
import torch
from ckpt_helpers import NO_DEFAULTS, files_in, run_mmengine_ckpt
from toy import ToyModule, loaders, make_trace_hook, make_trainer

from lightning_hooks import EarlyStoppingHook, EMAHook, Hook, HookBridge

# Best at validation 1, then no improvement of min_delta: EarlyStoppingHook (patience 2) stops after
# validation 3; ReduceLROnPlateau (patience 0) halves the lr at validations 2 and 3.
SCORES = [0.5, 0.4, 0.45, 0.3, 0.2, 0.6]
BATCHES = 4  # per epoch (toy.py: 12 samples, batch 3)


class PlateauModule(ToyModule):
    """Logs ``acc = SCORES[k]`` at the k-th validation (k from the global step, so it survives resume)."""

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        pass

    def on_validation_epoch_end(self) -> None:
        index = max(self.trainer.global_step // BATCHES - 1, 0)
        self.log("acc", SCORES[min(index, len(SCORES) - 1)])

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=0.05)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=0)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "acc"}}


class Killed(RuntimeError):
    """The stand-in for a SIGKILL (the real kills are in test_crash_kills.py)."""


class CrashInValidation(Hook):
    """Stands in for a kill during the validation after step ``at`` (before any hook has seen its metrics)."""

    priority = "HIGHEST"

    def __init__(self, at: int, by_epoch: bool) -> None:
        self.at = at
        self.by_epoch = by_epoch

    def after_val_epoch(self, runner, metrics=None) -> None:
        if (runner.epoch if self.by_epoch else runner.iter // BATCHES) == self.at:
            raise Killed("killed during validation")


def fit(work_dir, by_epoch, async_save, steps, resume=False, extra=()):
    """Epochs (``by_epoch``) or validations of 4 iterations; returns (trace, trainer, bridge, module)."""
    log: list = []
    ckpt = dict(
        type="CheckpointHook", interval=1 if by_epoch else BATCHES, by_epoch=by_epoch, save_best="acc",
        max_keep_ckpts=2, async_save=async_save,
    )  # fmt: skip
    defaults = {**NO_DEFAULTS, "param_scheduler": dict(type="ParamSchedulerHook"), "checkpoint": ckpt}
    hooks = [
        make_trace_hook(Hook, log),
        EarlyStoppingHook(monitor="acc", patience=2, min_delta=0.05),
        EMAHook(momentum=0.2),
        *extra,
    ]
    bridge = HookBridge(
        default_hooks=defaults,
        custom_hooks=hooks,
        work_dir=str(work_dir),
        resume=resume,
        print_hooks_table=False,
        log_level="WARNING",
    )
    limits = (
        dict(max_epochs=steps)
        if by_epoch
        else dict(max_steps=steps * BATCHES, max_epochs=-1, val_check_interval=BATCHES, check_val_every_n_epoch=None)
    )
    trainer = make_trainer(work_dir, bridge, num_sanity_val_steps=0, **limits)
    module = PlateauModule()
    train, val = loaders()
    trainer.fit(module, train, val)
    return log, trainer, bridge, module


def _state(trainer, bridge, module):
    early = next(h for h in bridge.hooks if isinstance(h, EarlyStoppingHook))
    ema = next(h for h in bridge.hooks if isinstance(h, EMAHook))
    return {
        "weights": {k: v.clone() for k, v in module.state_dict().items()},
        "ema": {k: v.clone() for k, v in ema.ema_model.state_dict().items()},
        "lr": [g["lr"] for g in trainer.optimizers[0].param_groups],
        "plateau": {k: v for k, v in trainer.lr_scheduler_configs[0].scheduler.state_dict().items() if k != "_last_lr"},
        "early": (early.best_score, early.wait_count),
        "hub_best": bridge.message_hub.get_info("best_score"),
        "counters": (bridge.state.epoch, bridge.state.iter, trainer.global_step),
    }


def _assert_equal(a, b, path=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_equal(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_equal(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


CASES = [
    ("epoch", "sync", "stop"),
    ("epoch", "async", "crash"),
    ("iter", "sync", "crash"),
    ("iter", "async", "stop"),
]


@pytest.mark.parametrize(("mode", "saving", "interruption"), CASES)
def test_interrupted_after_step_2_ends_exactly_like_the_uninterrupted_run(tmp_path, mode, saving, interruption):
    """Step 2's validation brings EarlyStoppingHook to wait 1 and halves the lr; it must not be lost."""
    by_epoch, async_save = mode == "epoch", saving == "async"
    full_log, *full = fit(tmp_path / "full", by_epoch, async_save, steps=6)
    expected = _state(*full)
    assert expected["counters"][2] == 3 * BATCHES  # stopped early after step 3, as designed

    part = tmp_path / "part"
    if interruption == "stop":
        fit(part, by_epoch, async_save, steps=2)
    else:
        with pytest.raises(Killed):
            fit(part, by_epoch, async_save, steps=6, extra=[CrashInValidation(2, by_epoch)])
    resumed_log, *resumed = fit(part, by_epoch, async_save, steps=6, resume=True)
    _assert_equal(expected, _state(*resumed))
    assert files_in(part) == files_in(tmp_path / "full")
    # Mount points from step 2's validation on are the uninterrupted run's.
    start = next(i for i, e in enumerate(full_log) if e[0] == "before_val" and (e[1] == 2 or e[2] == 2 * BATCHES))
    tail = [e for e in resumed_log if e[0] not in ("before_run", "after_load_checkpoint", "before_train")]
    if not by_epoch:  # iteration-based training opens its one epoch again when it resumes
        tail = [e for e in tail if e[0] != "before_train_epoch"]
        expected_tail = [e for e in full_log[start:] if e[0] != "before_train_epoch"]
    else:
        expected_tail = full_log[start:]
    assert tail == expected_tail


@pytest.mark.parametrize("by_epoch", [True, False], ids=["epoch", "iteration"])
def test_training_longer_after_an_off_interval_final_validation(tmp_path, by_epoch):
    """A finished run whose last validation was off the interval (added because training ended) is
    resumed to train one step more: the pending validation runs, then only the new step trains.

    MMEngine trains only epoch 4 (iteration 16) here and writes only ``epoch_4.pth``
    (``iter_16.pth``); nothing may be trained twice.
    """
    log: list = []
    checkpoint = (
        dict(type="CheckpointHook", interval=1)
        if by_epoch
        else dict(type="CheckpointHook", interval=BATCHES, by_epoch=False)
    )
    limits = dict(max_epochs=3) if by_epoch else dict(max_epochs=-1, max_steps=3 * BATCHES)
    interval = (
        dict(check_val_every_n_epoch=1000) if by_epoch else dict(val_check_interval=1000, check_val_every_n_epoch=None)
    )

    def run(ckpt_path=None, **trainer_limits):
        bridge = HookBridge(
            default_hooks=dict(NO_DEFAULTS, checkpoint=checkpoint),
            custom_hooks=[make_trace_hook(Hook, log)],
            print_hooks_table=False,
        )
        trainer = make_trainer(tmp_path, bridge, num_sanity_val_steps=0, **interval, **trainer_limits)
        train, val = loaders()
        trainer.fit(ToyModule(), train, val, ckpt_path=ckpt_path)

    run(**limits)
    first = files_in(tmp_path)
    name, more = ("epoch_3.pth", dict(max_epochs=4)) if by_epoch else ("iter_12.pth", dict(max_epochs=-1, max_steps=16))
    assert name in first
    log.clear()
    run(ckpt_path=str(tmp_path / name), **more)

    new_files = sorted(set(files_in(tmp_path)) - set(first))
    assert new_files == (["epoch_4.pth"] if by_epoch else ["iter_16.pth"])

    # MMEngine's Runner, same settings: the same files before and after the resume.
    mm_dir = tmp_path / "mmengine"
    mm_limits = dict(max_epochs=3) if by_epoch else dict(max_iters=3 * BATCHES)
    mm_more = dict(max_epochs=4) if by_epoch else dict(max_iters=4 * BATCHES)
    run_mmengine_ckpt(mm_dir, checkpoint, {"acc": [1.0]}, val_interval=1000, **mm_limits)
    assert files_in(mm_dir) == first
    run_mmengine_ckpt(mm_dir, checkpoint, {"acc": [1.0]}, val_interval=1000, resume=True, **mm_more)
    assert sorted(set(files_in(mm_dir)) - set(first)) == new_files
    stages = [entry[0] for entry in log]
    assert stages.count("after_val_epoch") == 2  # the pending one, then the final one
    assert stages.count("after_train_iter") == BATCHES
    trained = [entry[2] for entry in log if entry[0] == "after_train_iter"]
    assert trained == list(range(3 * BATCHES, 4 * BATCHES))
