"""Reading sharded checkpoint directories in one process: layout, restricted loading, atomic output."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
import torch.distributed.checkpoint as dcp

from lightning_hooks import sharded_checkpoint
from lightning_hooks.sharded_checkpoint import (
    META_FILENAME,
    consolidate_sharded_checkpoint,
    is_sharded_checkpoint,
    read_sharded_checkpoint,
    recover_directories,
    save_directory_atomically,
    temporary_directory,
)


def write_directory(path, extra_meta=None):
    """A directory laid out as ModelParallelStrategy + EMAHook write it (one process, no process group)."""
    weight, raw = torch.arange(6.0).view(2, 3), torch.full((2, 3), 7.0)
    state = {
        "state_dict": {"layer.weight": weight, "ema_state_dict.module.layer.weight": raw},
        "optimizer_0": {
            "state": {"layer.weight": {"step": torch.tensor(3.0)}},
            "param_groups": [{"lr": 0.1, "params": ["layer.weight"]}],
        },
    }
    dcp.save(state, checkpoint_id=str(path), no_dist=True)
    meta = {"meta": {"epoch": 2, "iter": 8}, "ema_state_dict": {"steps": torch.tensor(8)}, **(extra_meta or {})}
    torch.save(meta, os.path.join(path, META_FILENAME))
    return weight, raw


def test_directory_reads_back_in_mmengine_layout(tmp_path):
    weight, raw = write_directory(tmp_path / "epoch_2.pth")
    assert is_sharded_checkpoint(tmp_path / "epoch_2.pth")
    checkpoint = read_sharded_checkpoint(tmp_path / "epoch_2.pth")
    assert list(checkpoint["state_dict"]) == ["layer.weight"]
    assert torch.equal(checkpoint["state_dict"]["layer.weight"], weight)
    assert list(checkpoint["ema_state_dict"]) == ["steps", "module.layer.weight"]
    assert torch.equal(checkpoint["ema_state_dict"]["module.layer.weight"], raw)
    assert int(checkpoint["ema_state_dict"]["steps"]) == 8
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["lr"] == 0.1
    assert checkpoint["meta"] == {"epoch": 2, "iter": 8}


def test_consolidated_file_is_weights_only_and_keeps_only_the_keys_asked(tmp_path):
    write_directory(tmp_path / "d")
    target = tmp_path / "out" / "published.pth"
    consolidate_sharded_checkpoint(tmp_path / "d", target, keys=["meta", "state_dict"])
    loaded = torch.load(target, weights_only=True)
    assert list(loaded) == ["meta", "state_dict"]
    assert [p.name for p in target.parent.iterdir()] == ["published.pth"]  # no temporary file left


class Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickled_payload_in_the_index_is_refused_unless_trusted(tmp_path):
    directory = tmp_path / "d"
    write_directory(directory)
    with open(directory / ".metadata", "wb") as handle:
        pickle.dump(Boom(), handle)
    with pytest.raises(Exception, match=r"refusing to load (posix|os)\.system"):
        read_sharded_checkpoint(directory)


def _short_text(text):
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data  # SHORT_BINUNICODE


def dotted_system_call(marker):
    """A protocol-4 pickle calling ``torch.distributed.checkpoint.filesystem`` + ``os.system``: a dotted global."""
    return (
        b"\x80\x04"
        + _short_text("torch.distributed.checkpoint.filesystem")
        + _short_text("os.system")
        + b"\x93"  # STACK_GLOBAL
        + _short_text(f"touch {marker}")
        + b"\x85R."  # TUPLE1, REDUCE, STOP
    )


def _index_payload(path, payload):
    data = payload if isinstance(payload, bytes) else pickle.dumps(payload, protocol=4)
    (path / ".metadata").write_bytes(data)


def test_an_index_may_name_only_its_own_classes_exactly(tmp_path):
    """Neither a dotted name under an index module nor another function of ``torch.distributed.checkpoint``."""
    import torch.distributed.checkpoint.format_utils as format_utils

    directory, marker = tmp_path / "d", tmp_path / "ran"
    write_directory(directory)
    _index_payload(directory, dotted_system_call(marker))
    with pytest.raises(
        pickle.UnpicklingError, match=r"refusing to load torch\.distributed\.checkpoint\.filesystem\.os\.system"
    ):
        read_sharded_checkpoint(directory)
    assert not marker.exists()

    class LoadsAnotherFile:
        def __reduce__(self):
            return (format_utils.torch_save_to_dcp, (str(tmp_path / "other.pt"), str(tmp_path / "out")))

    _index_payload(directory, LoadsAnotherFile())
    with pytest.raises(pickle.UnpicklingError, match="torch_save_to_dcp"):
        read_sharded_checkpoint(directory)
    assert not (tmp_path / "out").exists()


def test_an_index_naming_a_shard_outside_its_directory_is_refused(tmp_path):
    from lightning_hooks.sharded_index import read_sharded_index

    directory = tmp_path / "d"
    write_directory(directory)
    metadata = read_sharded_index(str(directory))
    for info in metadata.storage_data.values():
        info.relative_path = "../elsewhere/" + info.relative_path
    _index_payload(directory, metadata)
    with pytest.raises(ValueError, match="outside its directory"):
        read_sharded_checkpoint(directory)


@pytest.mark.parametrize("payload", ["system", "outside"])
def test_auto_resume_reads_a_sharded_index_as_data_before_anything_unpickles_it(tmp_path, payload):
    """``last_checkpoint`` chosen for the user: a crafted index is a ResumeError, and its code never runs."""
    from lightning_hooks.errors import ResumeError
    from lightning_hooks.fileio import find_last_checkpoint
    from lightning_hooks.sharded_index import read_sharded_index

    directory, marker = tmp_path / "epoch_1.pth", tmp_path / "ran"
    write_directory(directory)
    (tmp_path / "last_checkpoint").write_text(str(directory))
    assert find_last_checkpoint(str(tmp_path)) == str(directory)  # a genuine index is fine
    if payload == "system":
        bad: object = dotted_system_call(marker)
    else:
        bad = read_sharded_index(str(directory))
        for info in bad.storage_data.values():
            info.relative_path = "/etc/" + info.relative_path
    _index_payload(directory, bad)
    with pytest.raises(ResumeError, match="cannot be loaded as data only"):
        find_last_checkpoint(str(tmp_path))
    assert not marker.exists()


def test_objects_in_meta_need_trust(tmp_path):
    directory = tmp_path / "d"
    write_directory(directory, extra_meta={"hyper_parameters": {"obj": Boom.__name__, "cls": Boom()}})
    with pytest.raises(pickle.UnpicklingError, match="trust=True"):
        read_sharded_checkpoint(directory)


def test_incomplete_directory_is_not_a_checkpoint(tmp_path):
    directory = tmp_path / "d"
    write_directory(directory)
    os.remove(directory / META_FILENAME)
    assert not is_sharded_checkpoint(directory)
    with pytest.raises(FileNotFoundError, match="not a complete sharded checkpoint"):
        read_sharded_checkpoint(directory)


# ------------------------------------------------------------------ directories count only when complete
def _writer(files: dict[str, bytes], fail_after: int = -1):
    def write(tmp: str) -> None:
        os.makedirs(tmp, exist_ok=True)
        for i, (name, data) in enumerate(files.items()):
            if i == fail_after:
                raise RuntimeError("killed mid-save")
            with open(os.path.join(tmp, name), "wb") as handle:
                handle.write(data)

    return write


def test_directory_appears_under_its_name_only_when_complete(tmp_path):
    calls: list[str] = []
    target = tmp_path / "epoch_1.pth"
    save_directory_atomically(
        target,
        _writer({"a": b"1", META_FILENAME: b"m"}),
        is_writer=True,
        barrier=lambda: calls.append("barrier"),
        after_write=lambda: calls.append(f"after_write sees {sorted(os.listdir(target))}"),
    )
    assert sorted(os.listdir(target)) == ["a", META_FILENAME]
    assert calls == ["barrier", f"after_write sees {['a', META_FILENAME]}", "barrier"]
    assert sorted(os.listdir(tmp_path)) == ["epoch_1.pth"]


def test_a_failed_rename_onto_the_old_directory_puts_the_old_copy_back(tmp_path, monkeypatch):
    """A re-save moves the old copy aside, then renames the new one onto the name: when that fails,
    the old copy gets its name back, the error is raised and nothing after the save runs."""
    target = tmp_path / "epoch_2.pth"
    save_directory_atomically(target, _writer({"a": b"old"}), True, lambda: None)
    real_rename = os.rename

    def rename(src, dst):
        if os.fspath(src) == temporary_directory(target):
            raise OSError(5, "Input/output error")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    after: list[int] = []
    with pytest.raises(OSError, match="Input/output error"):
        save_directory_atomically(target, _writer({"a": b"new"}), True, lambda: None, lambda: after.append(1))
    assert after == [] and (target / "a").read_bytes() == b"old"


def test_the_old_copy_is_deleted_only_after_the_new_directory_is_durable(tmp_path, monkeypatch):
    target = tmp_path / "epoch_2.pth"
    save_directory_atomically(target, _writer({"a": b"old"}), True, lambda: None)
    old_copy = tmp_path / ".epoch_2.pth.old"
    seen: list[bool] = []

    def fsync_dir(directory):
        seen.append(old_copy.exists())

    monkeypatch.setattr(sharded_checkpoint, "fsync_dir", fsync_dir)
    save_directory_atomically(target, _writer({"a": b"new"}), True, lambda: None)
    assert seen[-1] is True and not old_copy.exists()


def test_auto_resume_puts_back_a_directory_a_killed_re_save_left_aside(tmp_path):
    """Killed between the re-save's two renames: ``last_checkpoint`` names ``epoch_2.pth``, which is at
    ``.epoch_2.pth.old``. Auto-resume moves it back and resumes from it."""
    from lightning_hooks.fileio import find_last_checkpoint

    target = tmp_path / "epoch_2.pth"
    write_directory(tmp_path / ".epoch_2.pth.old")
    (tmp_path / "last_checkpoint").write_text(str(target))
    assert find_last_checkpoint(str(tmp_path)) == str(target)
    assert is_sharded_checkpoint(target) and not (tmp_path / ".epoch_2.pth.old").exists()


def test_a_crash_mid_save_keeps_the_previous_directory_and_the_next_save_cleans_up(tmp_path):
    target = tmp_path / "epoch_1.pth"
    save_directory_atomically(target, _writer({"a": b"old"}), True, lambda: None)
    after: list[int] = []
    with pytest.raises(RuntimeError, match="killed mid-save"):
        save_directory_atomically(
            target, _writer({"a": b"new", "b": b"new"}, fail_after=1), True, lambda: None, lambda: after.append(1)
        )
    assert after == []  # no rotation, no last_checkpoint for an incomplete save
    assert (target / "a").read_bytes() == b"old"
    assert os.path.isdir(temporary_directory(target))  # the half-written copy, under a name nothing points to
    save_directory_atomically(target, _writer({"c": b"new"}), True, lambda: None)
    assert sorted(os.listdir(target)) == ["c"]  # replaced whole, stale parts of the crashed save gone
    assert sorted(os.listdir(tmp_path)) == ["epoch_1.pth"]


def test_ranks_other_than_the_writer_never_rename_or_delete(tmp_path):
    target = tmp_path / "epoch_1.pth"
    save_directory_atomically(target, _writer({"a": b"1"}), is_writer=False, barrier=lambda: None)
    assert not target.exists() and os.path.isdir(temporary_directory(target))


# ------------------------------------------------------------------ refused strategies
def test_fsdp1_and_deepspeed_are_refused_before_the_first_batch_naming_what_to_use():
    from types import SimpleNamespace

    from lightning.pytorch.strategies import FSDPStrategy

    from lightning_hooks import CheckpointHook

    runner = SimpleNamespace(trainer=SimpleNamespace(strategy=FSDPStrategy()))
    with pytest.raises(RuntimeError, match=r"does not support FSDP1.*ModelParallelStrategy.*fully_shard"):
        CheckpointHook().before_run(runner)  # type: ignore[arg-type]


def test_stale_directories_are_removed_and_a_copy_moved_aside_is_restored(tmp_path):
    write_directory(tmp_path / ".epoch_1.pth.old")  # killed between the two renames of a re-save
    write_directory(tmp_path / "epoch_2.pth")
    write_directory(tmp_path / ".epoch_2.pth.old")  # killed after the second rename
    (tmp_path / ".epoch_3.pth.tmp").mkdir()  # killed mid-write
    (tmp_path / ".notes.tmp").mkdir()  # not a checkpoint name: left alone
    done = recover_directories(tmp_path, lambda name: name.startswith("epoch_"))
    assert sorted(done) == ["removed .epoch_2.pth.old", "removed .epoch_3.pth.tmp", "restored epoch_1.pth"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.tmp", "epoch_1.pth", "epoch_2.pth"]
    assert is_sharded_checkpoint(tmp_path / "epoch_1.pth")


def test_cli_publishes_and_inspects_a_sharded_directory(tmp_path, capsys):
    """``lightning-hooks publish`` consolidates a directory into one weights-only file next to it."""
    from lightning_hooks.cli import main

    weight, _raw = write_directory(tmp_path / "epoch_2.pth")
    assert main(["inspect", str(tmp_path / "epoch_2.pth")]) == 0
    report = capsys.readouterr().out
    assert "state_dict" in report and "ema_state_dict" in report
    assert main(["publish", str(tmp_path / "epoch_2.pth"), "--keys", "meta", "state_dict"]) == 0
    published = [p for p in tmp_path.iterdir() if p.is_file() and p.name.startswith("epoch_2-")]
    assert len(published) == 1 and published[0].suffix == ".pth"
    loaded = torch.load(published[0], weights_only=True)
    assert list(loaded) == ["meta", "state_dict"]
    assert loaded["meta"] == {"epoch": 2, "iter": 8}
    assert torch.equal(loaded["state_dict"]["layer.weight"], weight)


@pytest.mark.parametrize("command", ["inspect", "publish"])
def test_cli_refuses_untrusted_or_incomplete_directories_in_one_line(tmp_path, capsys, command):
    from lightning_hooks.cli import main

    untrusted = tmp_path / "epoch_1.pth"
    write_directory(untrusted, extra_meta={"hyper_parameters": {"cls": Boom()}})
    incomplete = tmp_path / "epoch_2.pth"
    incomplete.mkdir()
    for path, expected in ((untrusted, "--trust"), (incomplete, "not a complete sharded checkpoint")):
        status = main([command, str(path), *(["--keys", "state_dict"] if command == "publish" else [])])
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(err) == 1 and str(path) in err[0] and expected in err[0], err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("epoch_1-")]
