"""Sharded checkpoint directories (``torch.distributed.checkpoint``, as ModelParallelStrategy writes them).

Under ``ModelParallelStrategy`` a checkpoint is a *directory*: each rank writes
its shards of ``state_dict`` and of the optimizer states (``__<rank>_0.distcp``
files plus a ``.metadata`` index), and rank 0 writes everything else with
``torch.save`` to ``meta.pt`` (loops, callbacks, MMEngine's ``meta``,
``message_hub``...). EMAHook's average travels inside ``state_dict`` under
``ema_state_dict.module.*`` (only ``state_dict`` is written shard by shard).

:func:`read_sharded_checkpoint` reads such a directory in one process into one
ordinary checkpoint dict with MMEngine's layout (``state_dict``,
``ema_state_dict``, ``optimizer_states``, ``meta``, ...), and
:func:`consolidate_sharded_checkpoint` writes it (optionally only some
top-level keys) atomically to one file that loads with
``torch.load(path, weights_only=True)``. Both are free of Lightning and of any
process group: the CLI and CheckpointHook's publishing use the same code.

Trust: a directory's ``.metadata`` index is a pickle, and ``meta.pt`` a
``torch.save`` file. Both are read with restricted loaders (only the index's own
classes, shards inside the directory, ``weights_only=True``);
``trust=True`` lifts the restriction for files the caller vouches for.
"""

from __future__ import annotations

import io
import itertools
import os
import os.path as osp
import pickle
import shutil
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Optional

import torch

from .fileio import (
    SHARDED_INDEX_FILENAME,
    SHARDED_META_FILENAME,
    atomic_torch_save,
    fsync_dir,
    is_sharded_checkpoint,
)
from .sharded_index import read_sharded_index

__all__ = [
    "META_FILENAME",
    "SHARDED_EMA_PREFIX",
    "consolidate_sharded_checkpoint",
    "is_sharded_checkpoint",
    "load_sharded_entries",
    "read_sharded_checkpoint",
    "recover_directories",
    "save_directory_atomically",
    "temporary_directory",
]

#: Lightning's name for the file of a sharded checkpoint directory that holds everything but the shards.
META_FILENAME = SHARDED_META_FILENAME
#: Where EMAHook's ``ema_state_dict['module.*']`` shards live inside a sharded ``state_dict``.
SHARDED_EMA_PREFIX = "ema_state_dict."
_DCP_INDEX = SHARDED_INDEX_FILENAME


def load_sharded_entries(path: Any, tensors: Mapping[str, torch.Tensor]) -> None:
    """Read ``state_dict[<key>]`` of the sharded directory ``path`` into ``tensors`` in place (collective).

    Each rank reads only the parts of its own shards (DTensors) or the whole
    tensor (plain tensors). Every rank must call it with the same keys.
    """
    import torch.distributed.checkpoint as dcp

    dcp.load({"state_dict": dict(tensors)}, checkpoint_id=str(path))


def _set_nested(root: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    """``root[path[0]][path[1]]... = value``, creating dicts (str keys) and lists (int keys) on the way."""
    node: Any = root
    for key, following in itertools.pairwise(path):
        empty: Any = [] if isinstance(following, int) else {}
        if isinstance(node, list):
            while len(node) <= key:
                node.append(None)
            if node[key] is None:
                node[key] = empty
        elif key not in node:
            node[key] = empty
        node = node[key]
    last = path[-1]
    if isinstance(node, list):
        while len(node) <= last:
            node.append(None)
    node[last] = value


def _read_all(directory: str, trust: bool) -> dict[str, Any]:
    """Every entry of a DCP directory, full tensors, in this process (the index read restricted unless ``trust``)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import DefaultLoadPlanner, FileSystemReader
    from torch.distributed.checkpoint.metadata import StorageMeta, TensorStorageMetadata

    class _Reader(FileSystemReader):  # type: ignore[misc]
        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            if trust:
                return super().read_metadata(*args, **kwargs)
            metadata = read_sharded_index(directory)
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    class _Planner(DefaultLoadPlanner):  # type: ignore[misc]
        def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
            # Non-tensor entries (optimizer param_groups) are torch.save'd: weights_only unless trusted.
            obj = torch.load(value, weights_only=not trust)
            _set_nested(self.original_state_dict, tuple(self.mappings[read_item.dest_index.fqn]), obj)

    reader = _Reader(directory)
    metadata = reader.read_metadata()
    state: dict[str, Any] = {}
    for fqn, entry in metadata.state_dict_metadata.items():
        if isinstance(entry, TensorStorageMetadata):
            value: Any = torch.empty(entry.size, dtype=entry.properties.dtype)
        else:
            value = None  # filled by load_bytes
        path = (metadata.planner_data or {}).get(fqn, (fqn,))
        _set_nested(state, tuple(path), value)
    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, storage_reader=reader, planner=_Planner(), no_dist=True)
    return state


def read_sharded_checkpoint(path: Any, trust: bool = False) -> dict[str, Any]:
    """One ordinary checkpoint dict (MMEngine's layout) from a sharded directory, in this process alone.

    ``state_dict`` holds full tensors; EMAHook's shards go back to
    ``ema_state_dict['module.*']`` next to its ``steps``; ``optimizer_<k>``
    becomes ``optimizer_states[k]`` (keyed by parameter name, as
    ``get_optimizer_state_dict`` gives it). Everything else comes from ``meta.pt``.
    Memory: the whole model on this process.
    """
    directory = str(path)
    if not is_sharded_checkpoint(directory):
        raise FileNotFoundError(
            f"{directory!r} is not a complete sharded checkpoint directory (it needs {_DCP_INDEX} and {META_FILENAME})"
        )
    try:
        meta = torch.load(osp.join(directory, META_FILENAME), map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        raise pickle.UnpicklingError(
            f"{osp.join(directory, META_FILENAME)} holds objects that weights_only loading refuses ({exc}); "
            "pass trust=True (the CLI's --trust) only for checkpoints you trust"
        ) from exc
    return _mmengine_layout(_read_all(directory, trust), meta)


def _mmengine_layout(shards: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    state = shards.pop("state_dict", {})
    checkpoint: dict[str, Any] = {}
    model_state = {k: v for k, v in state.items() if not k.startswith(SHARDED_EMA_PREFIX)}
    ema_shards = {k[len(SHARDED_EMA_PREFIX) :]: v for k, v in state.items() if k.startswith(SHARDED_EMA_PREFIX)}
    optimizers = sorted(
        (k for k in shards if k.startswith("optimizer_") and k[len("optimizer_") :].isdigit()),
        key=lambda k: int(k[len("optimizer_") :]),
    )
    for key, value in meta.items():
        checkpoint[key] = value
    checkpoint["state_dict"] = model_state
    if optimizers:
        checkpoint["optimizer_states"] = [shards.pop(k) for k in optimizers]
    if ema_shards:
        ema = dict(checkpoint.get("ema_state_dict") or {})
        ema.update(ema_shards)
        checkpoint["ema_state_dict"] = ema
    checkpoint.update(shards)  # anything else written shard by shard
    return checkpoint


def consolidate_sharded_checkpoint(
    path: Any,
    out_path: Any,
    keys: Optional[Iterable[str]] = None,
    trust: bool = False,
) -> dict[str, Any]:
    """Write the sharded directory ``path`` as one ordinary checkpoint file ``out_path`` (atomically).

    ``keys`` keeps only those top-level keys (CheckpointHook's ``published_keys``);
    the file then loads with ``torch.load(out_path, weights_only=True)`` as long as
    the kept entries are tensors and plain types. Returns the written dict.
    """
    checkpoint = read_sharded_checkpoint(path, trust=trust)
    if keys is not None:
        wanted = list(keys)
        checkpoint = {k: checkpoint[k] for k in wanted if k in checkpoint}
    atomic_torch_save(checkpoint, str(out_path))
    return checkpoint


# -- writing a directory so that it counts only when complete -------------------------------------
def temporary_directory(path: Any) -> str:
    """Where the directory checkpoint ``path`` is written before it is renamed onto ``path``: ``.<name>.tmp``."""
    path = osp.abspath(str(path))
    return osp.join(osp.dirname(path), f".{osp.basename(path)}.tmp")


def _fsync_tree(directory: str) -> None:
    """fsync every file of ``directory`` and the directory itself (no-op where directories cannot be opened)."""
    for root, _, files in os.walk(directory):
        for name in files:
            with open(osp.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(root)


def _remove_any(path: str) -> None:
    if osp.isdir(path) and not osp.islink(path):
        shutil.rmtree(path)
    elif osp.lexists(path):
        os.remove(path)


def _replace_directory(tmp: str, path: str) -> Optional[str]:
    """Move the complete ``tmp`` onto ``path``; an existing ``path`` is moved aside first.

    Returns the moved-aside copy (``.<name>.old``), for the caller to delete once the
    rename is durable, or None. Between the two renames ``path`` is missing for an
    instant (POSIX has no atomic exchange of two directories); a failure there moves
    the old copy back, and a kill there is repaired by :func:`recover_directories` or
    by auto-resume (:func:`~lightning_hooks.fileio.restore_moved_aside`).
    """
    if not osp.lexists(path):
        os.rename(tmp, path)
        return None
    old = osp.join(osp.dirname(path), f".{osp.basename(path)}.old")
    _remove_any(old)
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        if not osp.lexists(path):
            os.rename(old, path)
        raise
    return old


def save_directory_atomically(
    path: Any,
    write: Callable[[str], None],
    is_writer: bool,
    barrier: Callable[[], None],
    after_write: Optional[Callable[[], None]] = None,
    fsync: bool = True,
) -> None:
    """Write a directory checkpoint to :func:`temporary_directory` and rename it onto ``path`` when complete.

    Collective: every rank calls it. ``write(tmp)`` writes the checkpoint into
    ``tmp`` on every rank and returns on each once the directory is complete (as
    ``trainer.save_checkpoint`` does). The writer (global rank 0, alone) removes
    a stale ``tmp`` left by a crash, then, once the directory is complete,
    fsyncs it, renames it onto ``path`` and runs ``after_write`` (rotation,
    ``last_checkpoint``). A crash at any point leaves every complete checkpoint
    under its name and at worst a ``.<name>.tmp`` directory, which no name or
    ``last_checkpoint`` points to.
    """
    final = osp.abspath(str(path))
    tmp = temporary_directory(final)
    if is_writer:
        os.makedirs(osp.dirname(final), exist_ok=True)
        _remove_any(tmp)
    barrier()  # nobody writes into tmp before the stale one is gone
    write(tmp)
    if is_writer:
        if fsync:
            _fsync_tree(tmp)
        old = _replace_directory(tmp, final)
        if fsync:
            fsync_dir(osp.dirname(final))
        if old is not None:  # deleted only once its replacement is durable
            _remove_any(old)
        if after_write is not None:
            after_write()
    barrier()  # every rank sees the checkpoint under its name when this returns


def recover_directories(directory: Any, is_ours: Callable[[str], bool]) -> list[str]:
    """Clean up after a writer killed mid-save in ``directory`` (local only); returns what was done.

    ``.<name>.tmp`` directories (a save that never completed) are removed. A
    ``.<name>.old`` directory is the previous complete copy of ``<name>`` moved
    aside during a re-save: it is removed when ``<name>`` exists and moved back
    onto ``<name>`` when the kill came between the two renames. Only names that
    satisfy ``is_ours`` and real directories (not symlinks) are touched.
    """
    root = str(directory)
    if "://" in root and not root.startswith("file://"):
        return []
    root = root[len("file://") :] if root.startswith("file://") else root
    done: list[str] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return done
    for entry in entries:
        name = entry.name
        if not (name.startswith(".") and name.endswith((".tmp", ".old"))):
            continue
        target = name[1:-4]
        if not target or not is_ours(target) or entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
            continue
        final = osp.join(root, target)
        if name.endswith(".old") and not osp.lexists(final) and is_sharded_checkpoint(entry.path):
            os.rename(entry.path, final)
            done.append(f"restored {target}")
        else:
            shutil.rmtree(entry.path, ignore_errors=True)
            done.append(f"removed {name}")
    return done
