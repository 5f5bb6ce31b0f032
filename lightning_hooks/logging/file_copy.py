"""Copying log files to ``out_dir`` (a local path or any fsspec URL), as LoggerHook's ``after_run`` does."""

from __future__ import annotations

import os
import os.path as osp
from collections.abc import Iterator
from typing import Any, Optional, Union

from ..fileio import absolute_path, atomic_write_text, is_local_path

__all__ = ["copy_logs", "iter_log_files", "join_out_dir"]


def join_out_dir(out_dir: str, name: str) -> str:
    """``out_dir/name`` for local paths and URLs alike (URLs always use '/')."""
    if "://" in out_dir:
        return out_dir.rstrip("/") + "/" + name.replace(os.sep, "/")
    return osp.join(out_dir, name)


def iter_log_files(log_dir: str, suffixes: Union[str, tuple[str, ...]]) -> Iterator[str]:
    """Paths under ``log_dir`` (recursive, relative to it, sorted) ending with one of ``suffixes``."""
    ends = (suffixes,) if isinstance(suffixes, str) else tuple(suffixes)
    found = []
    for root, _, files in os.walk(log_dir):
        for name in files:
            if name.endswith(ends):
                found.append(osp.relpath(osp.join(root, name), log_dir))
    yield from sorted(found)


def copy_logs(
    log_dir: str,
    out_dir: str,
    suffixes: Union[str, tuple[str, ...]],
    storage_options: Optional[dict[str, Any]] = None,
) -> list[tuple[str, str]]:
    """Copy matching files as text to ``out_dir``; returns ``(local, remote)`` pairs.

    ``storage_options`` go to fsspec (credentials, endpoints) for URLs. A local copy is
    written to a temporary name, made durable and renamed into place, so that a symlink
    already at the destination is replaced rather than followed, and a local file
    deleted afterwards (``keep_local=False``) has a complete copy.
    """
    import fsspec  # type: ignore[import-untyped]

    copied = []
    if is_local_path(out_dir):
        out_dir = absolute_path(out_dir)  # '~' and 'file://' as CheckpointHook takes them
    for relative in iter_log_files(log_dir, suffixes):
        local = osp.join(log_dir, relative)
        remote = join_out_dir(out_dir, relative)
        with open(local, encoding="utf-8") as source:
            text = source.read()
        if is_local_path(remote) and not storage_options:
            atomic_write_text(remote, text)
        else:
            fs, path = fsspec.core.url_to_fs(remote, **(storage_options or {}))
            parent = path.rsplit("/", 1)[0] if "/" in path else ""
            if parent:
                fs.makedirs(parent, exist_ok=True)
            with fs.open(path, "w", encoding="utf-8") as target:
                target.write(text)
        copied.append((local, remote))
    return copied
