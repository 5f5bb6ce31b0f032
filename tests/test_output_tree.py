"""One output tree: the hooks' files and Lightning's own output under the one directory the user named.

Each run happens in an empty temporary working directory, with Lightning's default logger
(``logger=True``: a TensorBoardLogger), as a user's Trainer has it.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from toy import ToyModule, loaders

from lightning_hooks import Hook, HookBridge


def fit(bridge: HookBridge, **trainer_kwargs) -> pl.Trainer:
    kwargs = dict(
        accelerator="cpu",
        max_epochs=2,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[bridge],
    )
    kwargs.update(trainer_kwargs)
    trainer = pl.Trainer(**kwargs)
    trainer.fit(ToyModule(), *loaders())
    return trainer


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_work_dir_alone_holds_the_hooks_files_and_lightnings_logs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bridge = HookBridge(work_dir="runs/exp1")
    trainer = fit(bridge)
    assert os.listdir(tmp_path) == ["runs"]  # nothing else in the current directory
    root = tmp_path / "runs" / "exp1"
    files = tree(root)
    assert {"epoch_1.pth", "epoch_2.pth", "last_checkpoint"} <= files
    timestamp = bridge.runtime.timestamp
    assert f"{timestamp}/{timestamp}.log" in files and f"{timestamp}/vis_data/scalars.json" in files
    events = [f for f in files if f.startswith("lightning_logs/version_0/events.out.tfevents.")]
    assert len(events) == 1  # Lightning's default TensorBoardLogger wrote under the same root
    assert trainer.default_root_dir == str(root) and trainer.logger.log_dir == str(
        root / "lightning_logs" / "version_0"
    )
    assert (root / events[0]).stat().st_size > 100  # it holds the run's scalars, not only a header


def test_default_root_dir_alone_is_the_root_of_everything(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fit(HookBridge(), default_root_dir="out")
    assert os.listdir(tmp_path) == ["out"]
    files = tree(tmp_path / "out")
    assert "epoch_2.pth" in files and "last_checkpoint" in files
    assert any(f.startswith("lightning_logs/version_0/events.out.tfevents.") for f in files)


def test_work_dir_and_default_root_dir_named_apart_are_kept_apart(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fit(HookBridge(work_dir="hooks"), default_root_dir="lightning")
    assert sorted(os.listdir(tmp_path)) == ["hooks", "lightning"]
    assert "epoch_2.pth" in tree(tmp_path / "hooks") and "lightning_logs" in os.listdir(tmp_path / "lightning")


def test_naming_no_directory_is_an_error_that_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"HookBridge\(work_dir=\.\.\.\) or Trainer\(default_root_dir=\.\.\.\)"):
        fit(HookBridge())
    assert os.listdir(tmp_path) == []


def test_explicit_current_directory_is_allowed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fit(HookBridge(work_dir="."), logger=False)
    assert {"epoch_2.pth", "last_checkpoint"} <= set(os.listdir(tmp_path))


class StopsAtOnce(Hook):
    """Ends the fit before its first batch (the warning comes from setup)."""

    def before_train(self, runner) -> None:
        runner.train_loop.stop_training = True


@pytest.mark.parametrize(
    ("trainer_kwargs", "checkpoint", "warned"),
    [
        ({}, dict(type="CheckpointHook", interval=1), True),
        ({}, dict(type="CheckpointHook", interval=5, by_epoch=False), True),
        ({}, dict(type="CheckpointHook", interval=1, max_keep_ckpts=3), False),
        ({"max_epochs": 20}, dict(type="CheckpointHook", interval=1), False),
        ({"max_steps": 40}, dict(type="CheckpointHook", interval=1), False),
    ],
    ids=["keeps-all", "keeps-all-iter", "rotates", "max_epochs-set", "max_steps-set"],
)
def test_warns_when_lightnings_1000_epochs_meet_a_checkpoint_hook_keeping_everything(
    tmp_path, messages, trainer_kwargs, checkpoint, warned
):
    bridge = HookBridge(work_dir=str(tmp_path), default_hooks=dict(checkpoint=checkpoint), custom_hooks=[StopsAtOnce()])
    kwargs = dict(logger=False, max_epochs=None)
    kwargs.update(trainer_kwargs)
    fit(bridge, **kwargs)
    found = [m for m in messages.warnings() if "Lightning's default when Trainer(max_epochs=...) is not set" in m]
    assert len(found) == (1 if warned else 0), messages.warnings()
    if warned:
        assert "runs 1000 epochs" in found[0] and "max_keep_ckpts=-1" in found[0]


# ----------------------------------------------------------------------------- paths as users write them
def test_a_relative_or_home_out_dir_rotates_and_resumes_as_an_absolute_one(tmp_path, monkeypatch):
    """``out_dir='ckpts'`` (and ``'~/ckpts'``) name the hook's own files: rotation, best replacement and
    publishing act on them, and ``last_checkpoint`` holds an absolute path, found from any directory."""
    from ckpt_helpers import RAMP_SCORES, files_in, run_lightning

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for out_dir, root in (("ckpts", tmp_path / "ckpts"), ("~/ckpts", tmp_path / "home" / "ckpts")):
        cfg = dict(type="CheckpointHook", interval=1, max_keep_ckpts=1, save_best="acc", out_dir=out_dir)
        run_lightning("exp", cfg, RAMP_SCORES, max_epochs=3)
        assert files_in(root / "exp") == ["best_acc_epoch_3.pth", "epoch_3.pth"]
        assert (tmp_path / "exp" / "last_checkpoint").read_text() == str(root / "exp" / "epoch_3.pth")
    assert not (tmp_path / "~").exists()


def test_a_file_url_out_dir_is_the_local_directory(tmp_path, monkeypatch):
    from ckpt_helpers import RAMP_SCORES, files_in, run_lightning

    monkeypatch.chdir(tmp_path)
    cfg = dict(type="CheckpointHook", interval=1, max_keep_ckpts=1, out_dir=f"file://{tmp_path}/out")
    run_lightning(tmp_path / "exp", cfg, RAMP_SCORES, max_epochs=2)
    assert files_in(tmp_path / "out" / "exp") == ["epoch_2.pth"]
    assert not (tmp_path / "file:").exists()  # nothing made under a literal 'file:' directory


def test_a_relative_ckpt_path_resumes_as_the_absolute_one(tmp_path, monkeypatch):
    """The resume point is recognised as one of the hook's files whichever way its path is written."""
    from ckpt_helpers import files_in, run_lightning

    monkeypatch.chdir(tmp_path)
    cfg = dict(type="CheckpointHook", interval=1, save_best="acc", max_keep_ckpts=5)
    scores = {"acc": [0.1 * i for i in range(1, 20)]}  # every validation a new best
    results = []
    for name, path in (("absolute", str(tmp_path / "absolute" / "epoch_2.pth")), ("relative", "relative/epoch_2.pth")):
        run_lightning(tmp_path / name, cfg, scores, max_epochs=2, val_check_interval=0.5)
        run_lightning(tmp_path / name, cfg, scores, max_epochs=3, val_check_interval=0.5, ckpt_path=path)
        results.append(
            (files_in(tmp_path / name), torch.load(tmp_path / name / "epoch_2.pth", weights_only=True)["meta"])
        )
    assert results[0] == results[1]


def test_a_home_logger_out_dir_copies_the_logs_under_home(tmp_path, monkeypatch):
    """LoggerHook(out_dir='~/logs') copies to $HOME/logs, as CheckpointHook's out_dir does, not to a './~'."""
    from toy import make_trainer

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    bridge = HookBridge(
        default_hooks=dict(checkpoint=None, logger=dict(type="LoggerHook", interval=1, out_dir="~/logs")),
        work_dir=str(tmp_path / "exp"),
        print_hooks_table=False,
    )
    make_trainer(tmp_path, bridge, max_epochs=1).fit(ToyModule(), loaders()[0])
    assert list((tmp_path / "home" / "logs" / "exp").rglob("scalars.json"))
    assert not (tmp_path / "~").exists()
