"""Crash windows, made deterministic: a write that fails at the worst moment stands in for a SIGKILL there.

After it, the directory must hold a readable resume point, ``last_checkpoint``
must name an existing file, every best file the resume point names must exist,
and auto-resume must end like the uninterrupted run. (Real SIGKILLs at random
moments: ``test_crash_kills.py``.)
"""

from __future__ import annotations

import os

import pytest
import torch
from ckpt_helpers import files_in, run_lightning

import lightning_hooks.checkpoint_io as checkpoint_io
import lightning_hooks.hooks.checkpoint_hook as checkpoint_hook


class Killed(RuntimeError):
    pass


def _resume_point(work_dir) -> tuple[str, dict]:
    """The file ``last_checkpoint`` names (it must exist and load as data) and its runtime_info."""
    with open(os.path.join(work_dir, "last_checkpoint")) as f:
        path = f.read()
    assert os.path.isfile(path), f"last_checkpoint names {path}, which does not exist"
    return path, torch.load(path, weights_only=True)["message_hub"]["runtime_info"]


def test_kill_between_new_file_and_last_checkpoint_keeps_the_old_resume_point(tmp_path, monkeypatch):
    """max_keep_ckpts=1: rotating before last_checkpoint is rewritten would lose every resume point."""
    real = checkpoint_hook.atomic_write_text
    calls = []

    def write_text(path, text, fsync=True):
        calls.append(text)
        if len(calls) == 2:  # epoch_2.pth is durable; last_checkpoint still names epoch_1.pth
            raise Killed("killed before last_checkpoint was rewritten")
        real(path, text, fsync=fsync)

    monkeypatch.setattr(checkpoint_hook, "atomic_write_text", write_text)
    cfg = dict(type="CheckpointHook", interval=1, max_keep_ckpts=1)
    with pytest.raises(Killed):
        run_lightning(tmp_path, cfg, {"acc": [0.1]}, max_epochs=3)
    path, _ = _resume_point(tmp_path)
    assert path.endswith("epoch_1.pth")
    monkeypatch.setattr(checkpoint_hook, "atomic_write_text", real)
    _, bridge, _ = run_lightning(tmp_path, cfg, {"acc": [0.1]}, max_epochs=3, resume=True)
    assert bridge.state.epoch == 3 and files_in(tmp_path) == ["epoch_3.pth", "last_checkpoint"]


@pytest.mark.parametrize("async_save", [False, True])
def test_kill_during_the_resave_after_a_new_best_keeps_the_best_file_the_resume_point_names(
    tmp_path, monkeypatch, async_save
):
    """The previous best file may go only once a resume point no longer names it."""
    scores = {"acc": [0.1, 0.5, 0.2]}
    cfg = dict(type="CheckpointHook", interval=1, max_keep_ckpts=2, save_best="acc", async_save=async_save)
    run_lightning(tmp_path / "full", cfg, scores, max_epochs=3)

    real = checkpoint_io.atomic_torch_save
    writes: list[str] = []

    def torch_save(obj, path, fsync=True):
        writes.append(os.path.basename(path))
        if writes.count("epoch_2.pth") == 2:  # the re-save of epoch_2.pth after its new best
            raise Killed("killed during the re-save")
        real(obj, path, fsync=fsync)

    monkeypatch.setattr(checkpoint_io, "atomic_torch_save", torch_save)
    part = tmp_path / "part"
    with pytest.raises(Exception, match="killed during the re-save"):
        run_lightning(part, cfg, scores, max_epochs=3)
    path, info = _resume_point(part)
    assert path.endswith("epoch_2.pth")
    assert os.path.isfile(info["best_ckpt"]), f"the resume point names {info['best_ckpt']}, which was deleted"
    monkeypatch.setattr(checkpoint_io, "atomic_torch_save", real)
    run_lightning(part, cfg, scores, max_epochs=3, resume=True)
    assert files_in(part) == files_in(tmp_path / "full")
    _, info = _resume_point(part)
    assert info["best_score"] == 0.5 and info["best_ckpt"].endswith("best_acc_epoch_2.pth")
    assert not list(part.glob(".*.tmp"))


@pytest.mark.parametrize("async_save", [False, True])
def test_kill_after_last_checkpoint_before_the_deletions_leaves_nothing_behind(tmp_path, monkeypatch, async_save):
    """The rotation's deletions are the last step; a kill there leaves files no resume point names.

    The resumed run removes exactly those (older regular files, older best files) and ends with the
    uninterrupted run's files.
    """
    scores = {"acc": [0.1, 0.2, 0.3, 0.4]}
    cfg = dict(type="CheckpointHook", interval=1, max_keep_ckpts=1, save_best="acc", async_save=async_save)
    run_lightning(tmp_path / "full", cfg, scores, max_epochs=4)

    real = checkpoint_hook.remove_path

    def remove_path(path):
        if os.path.basename(path) == "epoch_2.pth":  # epoch_3.pth and last_checkpoint are durable
            raise Killed("killed before the rotation's deletions")
        return real(path)

    monkeypatch.setattr(checkpoint_hook, "remove_path", remove_path)
    part = tmp_path / "part"
    with pytest.raises(Exception, match="killed before the rotation"):
        run_lightning(part, cfg, scores, max_epochs=4)
    path, info = _resume_point(part)
    assert path.endswith("epoch_3.pth") and os.path.isfile(info["best_ckpt"])
    assert "epoch_2.pth" in files_in(part) and "best_acc_epoch_2.pth" in files_in(part)  # the leftovers
    monkeypatch.setattr(checkpoint_hook, "remove_path", real)
    run_lightning(part, cfg, scores, max_epochs=4, resume=True)
    assert files_in(part) == files_in(tmp_path / "full") == ["best_acc_epoch_4.pth", "epoch_4.pth", "last_checkpoint"]


def test_a_remote_out_dir_is_cleaned_after_a_kill_before_the_deletions_too(tmp_path, monkeypatch):
    """The same window with ``out_dir='memory://...'``: the resumed run removes the leftovers there."""
    import uuid

    import fsspec

    out_dir = f"memory://crash-{uuid.uuid4().hex[:8]}"
    scores = {"acc": [0.1, 0.2, 0.3, 0.4]}
    cfg = dict(type="CheckpointHook", interval=1, max_keep_ckpts=1, save_best="acc", out_dir=out_dir)
    fs = fsspec.filesystem("memory")

    def remote_files() -> list[str]:
        return sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"{out_dir}/part", detail=False) if p.endswith(".pth"))

    real = checkpoint_hook.remove_path

    def remove_path(path):
        if str(path).endswith("/epoch_2.pth"):  # epoch_3.pth and last_checkpoint are durable
            raise Killed("killed before the rotation's deletions")
        return real(path)

    monkeypatch.setattr(checkpoint_hook, "remove_path", remove_path)
    with pytest.raises(Exception, match="killed before the rotation"):
        run_lightning(tmp_path / "part", cfg, scores, max_epochs=4)
    assert remote_files() == ["best_acc_epoch_2.pth", "epoch_2.pth", "epoch_3.pth"]  # epoch_2.pth: a leftover
    monkeypatch.setattr(checkpoint_hook, "remove_path", real)
    run_lightning(tmp_path / "part", cfg, scores, max_epochs=4, resume=True)
    assert remote_files() == ["best_acc_epoch_4.pth", "epoch_4.pth"]
