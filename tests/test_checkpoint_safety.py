"""Crash safety, write errors, remote filesystems, async saving and DDP for CheckpointHook.

Real processes, real files: a training process is SIGKILLed in the middle of
writing a 40 MB checkpoint; a real EFBIG error (file-size limit) stands in for a
full disk; ``memory://`` stands in for remote storage; DDP runs two gloo processes.
"""

from __future__ import annotations

import errno
import glob
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pytest
import torch
from ckpt_helpers import RAMP_SCORES, files_in, run_lightning, runtime_info, unhash
from ckpt_script import FSIZE_BALLAST, ShrinkFileLimit, train

from lightning_hooks import AtomicCheckpointIO, CheckpointWriteError
from lightning_hooks.fileio import atomic_torch_save

SCRIPT = str(Path(__file__).parent / "ckpt_script.py")
PYTHON = sys.executable


def _script(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def _loadable(path: str) -> bool:
    try:
        torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        return True
    except Exception:
        return False


@pytest.mark.slow
def test_sigkill_while_writing_leaves_only_loadable_checkpoints_and_resume_works(tmp_path):
    work_dir = str(tmp_path)
    proc = subprocess.Popen(
        [PYTHON, SCRIPT, "crash", work_dir, "40"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    killed_mid_write = False
    deadline = time.monotonic() + 90
    try:
        # Wait for two finished checkpoints, then kill the process while it writes the next one.
        while time.monotonic() < deadline and proc.poll() is None:
            done = glob.glob(os.path.join(work_dir, "epoch_*.pth"))
            partial = glob.glob(os.path.join(work_dir, ".*.pth.*.tmp"))
            if len(done) >= 2 and partial and os.path.getsize(partial[0]) > 0:
                os.kill(proc.pid, signal.SIGKILL)
                killed_mid_write = True
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None and not killed_mid_write:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert killed_mid_write, "the process was never caught in the middle of a write"
    checkpoints = glob.glob(os.path.join(work_dir, "*.pth"))
    assert checkpoints
    assert all(_loadable(p) for p in checkpoints), checkpoints
    with open(os.path.join(work_dir, "last_checkpoint")) as f:
        last = f.read()
    assert _loadable(last)
    resumed_epoch = torch.load(last, map_location="cpu", weights_only=False, mmap=True)["meta"]["epoch"]

    train(work_dir, resumed_epoch + 1, resume=True, extra_hooks=[])  # auto-resume from last_checkpoint
    with open(os.path.join(work_dir, "last_checkpoint")) as f:
        last = f.read()
    assert last.endswith(f"epoch_{resumed_epoch + 1}.pth")
    assert torch.load(last, weights_only=False, mmap=True)["meta"]["epoch"] == resumed_epoch + 1


def test_write_error_raises_clearly_and_deletes_nothing(tmp_path):
    """A real EFBIG (file-size limit, as on a full disk) at the third save, max_keep_ckpts=2.

    MMEngine deletes epoch_1.pth before writing epoch_3.pth; we delete only after a successful write.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        with pytest.raises(CheckpointWriteError, match=r"Could not write checkpoint .*epoch_3\.pth"):
            train(str(tmp_path), 4, resume=False, extra_hooks=[ShrinkFileLimit()], ballast=FSIZE_BALLAST)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert files_in(tmp_path) == ["best_acc_epoch_2.pth", "epoch_1.pth", "epoch_2.pth", "last_checkpoint"]
    assert all(_loadable(str(p)) for p in tmp_path.glob("*.pth"))
    assert (tmp_path / "last_checkpoint").read_text() == str(tmp_path / "epoch_2.pth")
    assert not list(tmp_path.glob(".*.tmp"))


def test_unwritable_out_dir_fails_at_start_naming_it(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where out_dir's parent should be")
    cfg = dict(type="CheckpointHook", interval=1, out_dir=str(blocker / "ckpts"))
    with pytest.raises(PermissionError, match="not_a_dir"):
        run_lightning(tmp_path / "work", cfg, RAMP_SCORES, max_epochs=1)


def test_failed_replace_keeps_previous_checkpoints(tmp_path):
    """A save that fails at the rename leaves the rotated-out file and last_checkpoint untouched."""
    cfg = dict(type="CheckpointHook", interval=1, max_keep_ckpts=1)
    run_lightning(tmp_path, cfg, RAMP_SCORES, max_epochs=1)
    (tmp_path / "epoch_2.pth").mkdir()  # the next save cannot replace a directory
    with pytest.raises(OSError, match=r"epoch_2\.pth"):
        run_lightning(tmp_path, cfg, RAMP_SCORES, max_epochs=2, resume=True)
    assert _loadable(str(tmp_path / "epoch_1.pth"))
    assert (tmp_path / "last_checkpoint").read_text() == str(tmp_path / "epoch_1.pth")
    assert not list(tmp_path.glob(".*.tmp"))


def test_memory_filesystem_out_dir_with_rotation_best_and_resume(tmp_path):
    fs = fsspec.filesystem("memory")
    root = "memory://lh_ckpt_test"
    if fs.exists(root):
        fs.rm(root, recursive=True)
    cfg = dict(type="CheckpointHook", interval=1, max_keep_ckpts=1, save_best="acc", out_dir=root)
    run_lightning(tmp_path / "exp", cfg, {"acc": [0.4, 0.3, 0.5, 0.1]}, max_epochs=3)
    names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"{root}/exp", detail=False))
    assert names == ["best_acc_epoch_3.pth", "epoch_3.pth"]
    marker = (tmp_path / "exp" / "last_checkpoint").read_text()
    assert marker == f"{root}/exp/epoch_3.pth"
    with fsspec.open(marker, "rb") as f:
        ckpt = torch.load(f, weights_only=False)
    assert ckpt["message_hub"]["runtime_info"]["keep_ckpt_ids"] == [3]
    _, bridge, _ = run_lightning(tmp_path / "exp", cfg, {"acc": [0.4, 0.3, 0.5, 0.1]}, max_epochs=4, resume=True)
    assert bridge.state.epoch == 4
    names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"{root}/exp", detail=False))
    assert names == ["best_acc_epoch_3.pth", "epoch_4.pth"]  # epoch_3 (resumed from) rotated once epoch_4 is durable
    fs.rm(root, recursive=True)


def test_async_save_gives_the_same_files_as_sync(tmp_path):
    cfg = dict(type="CheckpointHook", interval=1, max_keep_ckpts=2, save_best="acc")
    scores = {"acc": [0.4, 0.3, 0.5, 0.1]}
    run_lightning(tmp_path / "sync", cfg, scores)
    run_lightning(tmp_path / "async", {**cfg, "async_save": True}, scores)
    assert files_in(tmp_path / "async") == files_in(tmp_path / "sync")
    for name in files_in(tmp_path / "sync"):
        if name.endswith(".pth"):
            a = torch.load(tmp_path / "sync" / name, weights_only=False)
            b = torch.load(tmp_path / "async" / name, weights_only=False)
            assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
            assert (
                runtime_info(str(tmp_path / "async" / name))["keep_ckpt_ids"]
                == a["message_hub"]["runtime_info"]["keep_ckpt_ids"]
            )


def test_lightning_async_checkpoint_io_plugin_turns_on_async_saving(tmp_path):
    from lightning.pytorch.plugins.io import AsyncCheckpointIO

    cfg = dict(type="CheckpointHook", interval=1, max_keep_ckpts=1)
    _, bridge, _ = run_lightning(tmp_path, cfg, RAMP_SCORES, max_epochs=3, plugins=[AsyncCheckpointIO()])
    assert bridge.hooks[-1]._io.async_save
    assert files_in(tmp_path) == ["epoch_3.pth", "last_checkpoint"]


def test_async_writer_copies_before_returning_and_surfaces_errors(tmp_path):
    io = AtomicCheckpointIO(async_save=True)
    weights = torch.zeros(1000)
    order: list[str] = []
    io.save_checkpoint({"w": weights}, str(tmp_path / "a.pth"), {"after_write": lambda: order.append("a written")})
    weights += 1  # training goes on: the file must hold the values at save time
    io.save_checkpoint({"w": weights}, str(tmp_path / "b.pth"), {"after_write": lambda: order.append("b written")})
    io.wait()
    assert order == ["a written", "b written"]
    assert torch.equal(torch.load(tmp_path / "a.pth")["w"], torch.zeros(1000))
    assert torch.equal(torch.load(tmp_path / "b.pth")["w"], torch.ones(1000))
    (tmp_path / "c.pth").mkdir()
    io.save_checkpoint({"w": weights}, str(tmp_path / "c.pth"))
    with pytest.raises(OSError, match=r"c\.pth"):
        io.wait()
    io.teardown()


def test_atomic_save_never_exposes_a_partial_file(tmp_path):
    target = tmp_path / "x.pth"
    atomic_torch_save({"v": torch.arange(3)}, str(target))

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("serialisation failed half way")

    with pytest.raises(RuntimeError, match="half way"):
        atomic_torch_save({"v": torch.arange(10), "bad": Unpicklable()}, str(target))
    assert torch.equal(torch.load(target)["v"], torch.arange(3))
    assert os.listdir(tmp_path) == ["x.pth"]


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_ddp_two_processes_only_rank0_writes_and_decisions_agree(tmp_path):
    result = _script("ddp", str(tmp_path), timeout=80)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in records] == [2, 2]
    assert records[0]["files_written"] > 0 and records[1]["files_written"] == 0
    for key in ("best_score", "best_ckpt", "keep_ckpt_ids", "epoch"):
        assert records[0][key] == records[1][key], key
    assert records[0]["best_score"] == pytest.approx(0.4)  # rank 0's scores decide (rank 1 saw 0.9)
    assert files_in(tmp_path) == ["best_acc_epoch_4.pth", "epoch_4.pth", "last_checkpoint"]


def test_atomic_checkpoint_io_as_trainer_plugin(tmp_path):
    """The plugin makes the Trainer's own saves atomic; its async_save carries over to the hook's files."""
    cfg = dict(type="CheckpointHook", interval=1, max_keep_ckpts=1, published_keys=["meta", "state_dict"])
    plugin = AtomicCheckpointIO(async_save=True)
    trainer, bridge, _ = run_lightning(tmp_path, cfg, RAMP_SCORES, max_epochs=2, plugins=[plugin])
    assert bridge.hooks[-1]._io.async_save
    assert unhash(files_in(tmp_path)) == ["epoch_2-xxxxxxxx.pth", "epoch_2.pth", "last_checkpoint"]
    trainer.save_checkpoint(str(tmp_path / "manual.ckpt"))  # Lightning's own save through the plugin
    plugin.wait()
    assert _loadable(str(tmp_path / "manual.ckpt"))


# ----------------------------------------------------------------------------- fast_dev_run
def _snapshot(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in files_in(directory)}


@pytest.mark.parametrize("by_epoch", [True, False], ids=["by-epoch", "by-iter"])
def test_fast_dev_run_saves_rotates_and_removes_nothing(tmp_path, by_epoch):
    """A smoke test in a work_dir that holds a real run's checkpoints leaves them, and last_checkpoint, alone."""
    from log_toy import LineCatcher

    cfg = dict(type="CheckpointHook", interval=1, max_keep_ckpts=1, save_best="auto", by_epoch=by_epoch)
    length = dict(max_epochs=2) if by_epoch else dict(max_iters=4, val_interval=2)
    run_lightning(tmp_path, cfg, RAMP_SCORES, **length)
    before = _snapshot(tmp_path)
    assert "last_checkpoint" in before and any(name.startswith("best_") for name in before)

    catcher = LineCatcher()
    logger = logging.getLogger("lightning_hooks")
    logger.addHandler(catcher)
    try:  # a smaller max_keep_ckpts would trim the resumed ids, a new best would replace the old one
        run_lightning(
            tmp_path, {**cfg, "max_keep_ckpts": 0}, {"acc": [0.9] * 8}, **length, log_level="INFO", fast_dev_run=2
        )
    finally:
        logger.removeHandler(catcher)
    assert _snapshot(tmp_path) == before
    assert any(m.startswith("fast_dev_run: no checkpoint is saved") for m in catcher.messages)

    run_lightning(tmp_path / "plain", cfg, RAMP_SCORES, **length)  # the same hook saves outside fast_dev_run
    assert "last_checkpoint" in files_in(tmp_path / "plain")


def test_a_file_checkpoint_takes_the_name_of_an_earlier_sharded_one(tmp_path):
    """A run without ModelParallelStrategy in the work dir of one with it: ``epoch_3.pth`` is a directory
    there. The file replaces it (the directory is deleted once the file is durable); a directory that is
    not a sharded checkpoint is never touched."""
    from lightning_hooks.fileio import SHARDED_INDEX_FILENAME, SHARDED_META_FILENAME, atomic_torch_save

    sharded = tmp_path / "epoch_3.pth"
    sharded.mkdir()
    (sharded / SHARDED_META_FILENAME).write_bytes(b"meta")
    (sharded / SHARDED_INDEX_FILENAME).write_bytes(b"index")
    atomic_torch_save({"step": 3}, str(sharded))
    assert torch.load(sharded, weights_only=True) == {"step": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_3.pth"]  # nothing left aside
    other = tmp_path / "epoch_4.pth"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(OSError):
        atomic_torch_save({"step": 4}, str(other))
    assert (other / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_3.pth", "epoch_4.pth"]


def _failing_directory_fsync(monkeypatch, code: int) -> None:
    """``os.fsync`` of a directory fails with ``code``; files sync as usual."""
    import stat

    real = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(code, os.strerror(code))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize(("code", "raises"), [(errno.EIO, True), (errno.ENOSPC, True), (errno.EINVAL, False)])
def test_a_directory_fsync_fails_loudly_unless_the_file_system_cannot_sync_directories(
    tmp_path, monkeypatch, code, raises
):
    _failing_directory_fsync(monkeypatch, code)
    if raises:
        with pytest.raises(OSError, match=os.strerror(code)):
            atomic_torch_save({"step": 1}, str(tmp_path / "epoch_1.pth"))
    else:
        atomic_torch_save({"step": 1}, str(tmp_path / "epoch_1.pth"))
    assert torch.load(tmp_path / "epoch_1.pth", weights_only=True) == {"step": 1}  # renamed either way


def test_rotation_deletes_nothing_after_a_save_whose_rename_may_not_be_durable(tmp_path, monkeypatch):
    cfg = dict(type="CheckpointHook", interval=1, max_keep_ckpts=1)
    run_lightning(tmp_path, cfg, RAMP_SCORES, max_epochs=1)
    _failing_directory_fsync(monkeypatch, errno.EIO)
    with pytest.raises(CheckpointWriteError, match="Input/output error"):
        run_lightning(tmp_path, cfg, RAMP_SCORES, max_epochs=2, resume=True)
    assert {"epoch_1.pth", "epoch_2.pth"} <= set(files_in(tmp_path))
