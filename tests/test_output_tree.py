"""One output tree: the hooks' files and Lightning's own output under the one directory the user named.

Each run happens in an empty temporary working directory, with Lightning's default logger
(``logger=True``: a TensorBoardLogger), as a user's Trainer has it.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl
import pytest
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
