"""Publishing a checkpoint as MMEngine's ``CheckpointHook(published_keys=...)`` does; Lightning-free.

A published checkpoint keeps only some top-level keys of a loaded checkpoint
(in the checkpoint's own order) and is written next to it as
``<path without extension>-<first 8 hex digits of sha256(pickle of the kept dict)>.pth``.
The hash is streamed into SHA-256 (no pickled copy in memory) and equals
MMEngine's ``sha256(pickle.dumps(kept))``; the file is written atomically.

:class:`~lightning_hooks.CheckpointHook` and the ``lightning-hooks publish``
command both call :func:`write_published`. Pickling a tensor embeds the address
of its storage, so two loads of one file publish under two names (in MMEngine
too): the hash tells copies apart, it is not a content checksum.
"""

from __future__ import annotations

import os.path as osp
from collections.abc import Collection, Mapping
from typing import Any

from .fileio import atomic_torch_save, pickle_sha256

__all__ = ["published_path", "write_published"]


def published_path(path: str, kept: Mapping[str, Any]) -> str:
    """MMEngine's published file name for ``kept`` (the checkpoint ``path`` reduced to some keys)."""
    stem = osp.splitext(path)[0]
    return f"{stem}-{pickle_sha256(dict(kept))[:8]}.pth"


def write_published(
    checkpoint: Mapping[str, Any], path: str, keys: Collection[str], fsync: bool = True
) -> tuple[str, list[str]]:
    """Keep ``keys`` of the loaded ``checkpoint`` (read from ``path``) and write the published copy.

    Keys asked for but absent are ignored, as in MMEngine (callers that want an
    error check first). Returns ``(published file, removed keys)``.
    """
    kept = {key: value for key, value in checkpoint.items() if key in keys}
    removed = [key for key in checkpoint if key not in keys]
    target = published_path(path, kept)
    atomic_torch_save(kept, target, fsync=fsync)
    return target, removed
