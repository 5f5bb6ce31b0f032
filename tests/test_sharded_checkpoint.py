"""Reading sharded checkpoint directories in one process: layout, restricted loading, atomic output."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
import torch.distributed.checkpoint as dcp

from lightning_hooks.sharded_checkpoint import (
    META_FILENAME,
    consolidate_sharded_checkpoint,
    is_sharded_checkpoint,
    read_sharded_checkpoint,
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
