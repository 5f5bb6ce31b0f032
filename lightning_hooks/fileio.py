"""Lightning-free file operations: atomic and durable writes, fsspec paths, streaming hashes.

Local files are written to a temporary file in the target directory, flushed,
``fsync``-ed and renamed onto their name (``os.replace``); the directory is
``fsync``-ed so the rename survives a power cut. Remote (fsspec) files are
written to a temporary name beside the target and moved onto it when complete.
This module imports neither Lightning nor the rest of the package, so the
command line tool can use it without starting Lightning.
"""

from __future__ import annotations

import hashlib
import os
import os.path as osp
import pickle
import tempfile
import uuid
from collections.abc import Callable
from typing import IO, Any, Optional

import fsspec  # type: ignore[import-untyped]
import torch

__all__ = [
    "atomic_torch_save",
    "atomic_write_text",
    "find_last_checkpoint",
    "is_local_path",
    "join_path",
    "path_exists",
    "pickle_sha256",
    "read_text",
    "remove_path",
]


def is_local_path(path: str) -> bool:
    """True for plain paths and ``file://`` URLs (fsspec's local filesystem)."""
    return "://" not in str(path) or str(path).startswith("file://")


def _local(path: str) -> str:
    path = str(path)
    return path[len("file://") :] if path.startswith("file://") else path


def join_path(root: str, *parts: str) -> str:
    """Join path parts with ``/`` for URLs and ``os.path.join`` for local paths."""
    if is_local_path(root):
        return osp.join(root, *parts)
    return "/".join([str(root).rstrip("/"), *parts])


def _fsync_dir(directory: str) -> None:
    """Make a rename in ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_local(path: str, write: Callable[[str], None], fsync: bool) -> None:
    """Run ``write(tmp_path)``, fsync the file, rename it onto ``path`` and fsync the directory."""
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{osp.basename(path)}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    if fsync:
        _fsync_dir(directory)


def _atomic_remote(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Write to a temporary name next to ``path`` on its fsspec filesystem, then move it onto ``path``."""
    fs, fs_path = fsspec.core.url_to_fs(str(path))
    parent = fs._parent(fs_path)
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent.rstrip('/')}/.{fs_path.rsplit('/', 1)[-1]}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with fs.open(tmp, "wb") as f:
            write(f)
        fs.mv(tmp, fs_path)
    except BaseException:
        try:
            if fs.exists(tmp):
                fs.rm(tmp)
        except Exception:
            pass
        raise


def atomic_torch_save(obj: Any, path: str, fsync: bool = True) -> None:
    """``torch.save(obj)`` to ``path`` atomically (and durably for local files with ``fsync``)."""
    if is_local_path(path):
        _atomic_local(_local(path), lambda tmp: torch.save(obj, tmp), fsync)
    else:
        _atomic_remote(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: str, text: str, fsync: bool = True) -> None:
    """Replace the text file ``path`` atomically (used for ``last_checkpoint``)."""
    data = text.encode("utf-8")

    def write_local(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    if is_local_path(path):
        _atomic_local(_local(path), write_local, fsync)
    else:
        _atomic_remote(path, lambda f: _write_bytes(f, data))


def _write_bytes(f: IO[bytes], data: bytes) -> None:
    f.write(data)


class _HashWriter:
    """A write-only file object that only feeds a SHA-256 (no copy of the data is kept)."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()

    def write(self, data: Any) -> int:
        self.sha.update(data)
        return len(data)


def pickle_sha256(obj: Any) -> str:
    """``sha256(pickle.dumps(obj)).hexdigest()`` without building the pickled bytes in memory.

    The pickler streams into the hash, so the digest is the same as MMEngine's
    (which materialises the whole pickle first).
    """
    writer = _HashWriter()
    pickle.Pickler(writer, protocol=pickle.DEFAULT_PROTOCOL).dump(obj)
    return writer.sha.hexdigest()


def remove_path(path: str) -> bool:
    """Delete a file (or a directory, as DeepSpeed writes) if it exists; True when something was removed."""
    fs, fs_path = fsspec.core.url_to_fs(str(path))
    if fs.isfile(fs_path):
        fs.rm(fs_path)
        return True
    if fs.isdir(fs_path):
        fs.rm(fs_path, recursive=True)
        return True
    return False


def path_exists(path: str) -> bool:
    """Whether ``path`` exists on its fsspec filesystem."""
    fs, fs_path = fsspec.core.url_to_fs(str(path))
    return bool(fs.exists(fs_path))


def read_text(path: str) -> str:
    """The content of a text file on any fsspec filesystem."""
    with fsspec.open(str(path), "r", encoding="utf-8") as f:
        return f.read()


def find_last_checkpoint(work_dir: str) -> Optional[str]:
    """The path written in ``<work_dir>/last_checkpoint`` when it names an existing file, else None."""
    marker = join_path(work_dir, "last_checkpoint")
    if not path_exists(marker):
        return None
    path = read_text(marker).strip()
    return path if path and path_exists(path) else None
