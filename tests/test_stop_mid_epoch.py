"""Training asked to stop in the middle of an epoch (``max_time``, a callback setting ``trainer.should_stop``).

Lightning then validates right after the batch that asked and ends the epoch and the fit. MMEngine
validates an epoch after its ``after_train_epoch``, under that epoch's number; the stopped epoch is
closed the same way, so its validation, its scalars and its best checkpoint are not filed under the
previous epoch. A resume from the stopped epoch's checkpoint runs that validation, then the next epoch.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from ckpt_helpers import ScoredModule, files_in, runtime_info
from lightning.pytorch.callbacks import Timer
from toy import loaders, make_trace_hook, make_trainer

from lightning_hooks import Hook, HookBridge

STOP_AT = 7  # optimizer steps: the 3rd of the 4 batches of epoch 2


class StopAt(pl.Callback):
    """Asks to stop after the batch that makes ``step`` optimizer steps (after the bridge, as Lightning's Timer)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            trainer.should_stop = True


def fit(work_dir: Path, scores: list[float], max_epochs: int, callbacks=(), resume=False, **trainer_kwargs):
    log: list = []
    bridge = HookBridge(
        default_hooks={
            "sampler_seed": None,
            "param_scheduler": None,
            "logger": dict(type="LoggerHook", interval=2),
            "checkpoint": dict(type="CheckpointHook", interval=1, save_best="acc"),
        },
        custom_hooks=[make_trace_hook(Hook, log)],
        work_dir=str(work_dir),
        resume=resume,
        print_hooks_table=False,
        log_level="WARNING",
    )
    trainer = make_trainer(
        work_dir,
        bridge,
        callbacks=[bridge, *callbacks],
        max_epochs=max_epochs,
        num_sanity_val_steps=0,
        **trainer_kwargs,
    )
    train, val = loaders()
    trainer.fit(ScoredModule({"acc": scores}), train, val)
    return log, trainer, bridge


def val_steps(work_dir: Path) -> list[tuple[int, float]]:
    """``(step, acc)`` of every validation line of ``scalars.json``."""
    (path,) = work_dir.glob("*/vis_data/scalars.json")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [(line["step"], line["acc"]) for line in lines if "acc" in line]


def after_stop(log: list) -> list[tuple]:
    """The mount points from the last training iteration on, without the evaluation batches."""
    last = max(i for i, entry in enumerate(log) if entry[0] == "after_train_iter")
    return [entry for entry in log[last:] if not entry[0].endswith("val_iter")]


def test_the_stopped_epoch_is_closed_before_its_validation_and_named_after_it(tmp_path):
    log, trainer, bridge = fit(tmp_path, [0.4, 0.6], max_epochs=3, callbacks=[StopAt(STOP_AT)])

    assert trainer.global_step == STOP_AT and bridge.runner.epoch == 2
    assert after_stop(log) == [
        ("after_train_iter", 1, STOP_AT - 1, 2),
        ("after_train_epoch", 1, STOP_AT, None),
        ("before_save_checkpoint", 1, STOP_AT, None),  # epoch_2.pth, before the validation
        ("before_val", 2, STOP_AT, None),
        ("before_val_epoch", 2, STOP_AT, None),
        ("after_val_epoch", 2, STOP_AT, None, ("acc",)),
        ("before_save_checkpoint", 2, STOP_AT, None),  # the new best
        ("before_save_checkpoint", 2, STOP_AT, None),  # epoch_2.pth again, holding the new best score
        ("after_val", 2, STOP_AT, None),
        ("after_train", 2, STOP_AT, None),
        ("after_run", 2, STOP_AT, None),
    ]
    assert val_steps(tmp_path) == [(1, pytest.approx(0.4)), (2, pytest.approx(0.6))]  # one per epoch, at its step
    assert files_in(tmp_path) == ["best_acc_epoch_2.pth", "epoch_1.pth", "epoch_2.pth", "last_checkpoint"]
    assert runtime_info(str(tmp_path / "best_acc_epoch_2.pth"))["best_score"] == pytest.approx(0.6)


def test_max_time_stops_the_same_way(tmp_path, monkeypatch):
    """Lightning's own Timer (``max_time``), its clock read as one second per optimizer step."""
    trainer_ref: list = []
    monkeypatch.setattr(Timer, "time_elapsed", lambda self, stage=None: float(trainer_ref[0].global_step))

    class Remember(pl.Callback):
        def setup(self, trainer, pl_module, stage) -> None:
            trainer_ref.append(trainer)

    log, trainer, _ = fit(tmp_path, [0.4, 0.6], max_epochs=3, callbacks=[Remember()], max_time={"seconds": STOP_AT})

    assert trainer.global_step == STOP_AT
    assert [entry[:2] for entry in after_stop(log)[:4]] == [
        ("after_train_iter", 1),
        ("after_train_epoch", 1),
        ("before_save_checkpoint", 1),
        ("before_val", 2),
    ]
    assert val_steps(tmp_path) == [(1, pytest.approx(0.4)), (2, pytest.approx(0.6))]


def test_a_resume_from_the_stopped_epoch_runs_its_validation_then_the_next_epoch(tmp_path):
    # No new best at the stop, so epoch_2.pth is the one written before the stop's validation.
    scores = [0.6, 0.4, 0.8]
    stopped_log, _, _ = fit(tmp_path, scores, max_epochs=3, callbacks=[StopAt(STOP_AT)])
    assert torch.load(tmp_path / "epoch_2.pth", weights_only=True)["lightning_hooks"]["validation_pending"] is True
    stopped_validation = [e for e in after_stop(stopped_log) if e[0] in ("before_val", "after_val_epoch")]

    log, trainer, bridge = fit(tmp_path, scores, max_epochs=3, resume=True)

    first_epoch = next(i for i, e in enumerate(log) if e[0] == "before_train_epoch")
    assert log[first_epoch] == ("before_train_epoch", 2, STOP_AT, None)
    before_it = [e for e in log[:first_epoch] if e[0] in ("before_val", "after_val_epoch")]
    assert before_it == stopped_validation  # the stop's validation again, under the same epoch
    assert trainer.global_step == bridge.runner.iter == STOP_AT + 4  # the stopped epoch's last batch is not run
    assert bridge.runner.epoch == 3
    assert files_in(tmp_path) == [
        "best_acc_epoch_3.pth",
        "epoch_1.pth",
        "epoch_2.pth",
        "epoch_3.pth",
        "last_checkpoint",
    ]


def test_a_loader_without_a_length_resumes_the_same_way(tmp_path):
    """The stopped epoch's end cannot be counted there; Lightning's last-batch flag carries it."""
    from test_logger_hook import StreamedModule

    def run(callbacks=(), resume=False):
        log: list = []
        bridge = HookBridge(
            default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1), logger=None),
            custom_hooks=[make_trace_hook(Hook, log)],
            work_dir=str(tmp_path),
            resume=resume,
            print_hooks_table=False,
            log_level="WARNING",
        )
        trainer = make_trainer(tmp_path, bridge, callbacks=[bridge, *callbacks], max_epochs=3, num_sanity_val_steps=0)
        trainer.fit(StreamedModule())
        return log, trainer, bridge

    run(callbacks=[StopAt(6)])  # the 2nd of the 4 batches of epoch 2
    assert torch.load(tmp_path / "epoch_2.pth", weights_only=True)["lightning_hooks"]["validation_pending"] is True
    log, trainer, bridge = run(resume=True)
    stages = [entry[0] for entry in log if entry[0] in ("before_val", "before_train_epoch")]
    assert stages[:2] == ["before_val", "before_train_epoch"]  # the stop's validation, then epoch 3
    assert trainer.global_step == bridge.runner.iter == 6 + 4
