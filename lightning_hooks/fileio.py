"""Lightning-free file operations: atomic and durable writes, fsspec paths, streaming hashes.

Local files are written to a temporary file in the target directory, flushed,
``fsync``-ed and renamed onto their name (``os.replace``); the directory is
``fsync``-ed so the rename survives a power cut. Remote (fsspec) files are
written to a temporary name beside the target and moved onto it when complete.
This module imports neither Lightning nor the rest of the package, so the
command line tool can use it without starting Lightning.
"""

from __future__ import annotations

import errno
import hashlib
import os
import os.path as osp
import pickle
import re
import shutil
import uuid
import zipfile
from collections.abc import Callable
from typing import IO, Any, Optional

import fsspec  # type: ignore[import-untyped]
import torch

from .errors import ResumeError
from .sharded_index import SHARDED_INDEX_FILENAME, unsafe_index_reason

__all__ = [
    "SHARDED_INDEX_FILENAME",
    "SHARDED_META_FILENAME",
    "TEMP_FILE_RE",
    "absolute_path",
    "atomic_torch_save",
    "atomic_write_text",
    "check_weights_source",
    "find_last_checkpoint",
    "fsync_dir",
    "is_download_url",
    "is_local_path",
    "is_sharded_checkpoint",
    "join_path",
    "list_names",
    "path_exists",
    "path_in_directory",
    "pickle_sha256",
    "read_text",
    "read_weights",
    "remove_path",
    "remove_stale_temp_files",
    "restore_moved_aside",
    "temp_name",
]


def is_local_path(path: str) -> bool:
    """True for plain paths and ``file://`` URLs (fsspec's local filesystem)."""
    return "://" not in str(path) or str(path).startswith("file://")


def absolute_path(path: str) -> str:
    """A local path (or ``file://`` URL) as an absolute path, ``~`` expanded; any other URL unchanged.

    Files are named and recognised by these paths (``last_checkpoint``, the files a hook owns),
    so a run found from another directory, or given a relative path, is still the same run.
    """
    if not is_local_path(path):
        return str(path)
    return osp.abspath(osp.expanduser(_local(path)))


def _local(path: str) -> str:
    path = str(path)
    return path[len("file://") :] if path.startswith("file://") else path


def join_path(root: str, *parts: str) -> str:
    """Join path parts with ``/`` for URLs and ``os.path.join`` for local paths."""
    if is_local_path(root):
        return osp.join(root, *parts)
    return "/".join([str(root).rstrip("/"), *parts])


#: ``fsync`` errors that mean "directories cannot be synced here", not "the data did not reach the disk".
_FSYNC_UNSUPPORTED = frozenset({errno.EINVAL, errno.EBADF, errno.ENOTSUP, errno.EOPNOTSUPP})


def fsync_dir(directory: str) -> None:
    """Make a rename in ``directory`` durable.

    A no-op where directories cannot be opened or synced (some platforms and file
    systems); any other failure (``EIO``, ``ENOSPC``...) is raised, so that nothing
    is deleted on the strength of a rename that may not survive a crash.
    """
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def restore_moved_aside(path: str) -> bool:
    """Put back a sharded checkpoint directory a re-save moved aside, when the save died before replacing it.

    A re-save of ``<name>`` renames the complete old copy to ``.<name>.old``, then the
    new one onto ``<name>``; a kill between the two leaves only the old copy. Returns
    whether it was moved back (local paths; a symlink or an incomplete copy is left alone).
    """
    if not is_local_path(path):
        return False
    local = _local(path)
    old = osp.join(osp.dirname(local), f".{osp.basename(local)}.old")
    if osp.lexists(local) or osp.islink(old) or not is_sharded_checkpoint(old):
        return False
    os.rename(old, local)
    fsync_dir(osp.dirname(local) or ".")
    return True


#: Name of this package's temp files: ``.<target name>.<12 hex>.tmp`` next to the target.
TEMP_FILE_RE = re.compile(r"^\.(?P<target>.+)\.(?P<token>[0-9a-f]{12})\.tmp$")


def temp_name(target_name: str) -> str:
    """A fresh temp-file name for writing ``target_name`` (matches :data:`TEMP_FILE_RE`)."""
    return f".{target_name}.{uuid.uuid4().hex[:12]}.tmp"


def _create_new(path: str) -> None:
    """Create ``path`` (it must not exist) with mode 0666 minus the umask, as ``open()`` and ``torch.save`` do."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(fd)


def _atomic_local(path: str, write: Callable[[str], None], fsync: bool) -> None:
    """Run ``write(tmp_path)``, fsync the file, rename it onto ``path`` and fsync the directory.

    The temp file is created with the process umask (``0644`` under umask 022),
    so the final file has the permissions ``torch.save`` would give it.
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = osp.join(directory, temp_name(osp.basename(path)))
    _create_new(tmp)
    old_directory = None
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        old_directory = _move_aside_sharded(path)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if old_directory is not None and not osp.lexists(path):
            os.rename(old_directory, path)  # the save failed: the old checkpoint keeps its name
        raise
    if fsync:
        fsync_dir(directory)
    if old_directory is not None:  # deleted only once its replacement is durable
        shutil.rmtree(old_directory, ignore_errors=True)


def _move_aside_sharded(path: str) -> Optional[str]:
    """A sharded checkpoint directory of the same name (an earlier run with ModelParallelStrategy) is
    renamed to ``.<name>.old`` so the file can take its name; returns that name, or None. Any other
    directory there is left alone (the rename onto it then fails, naming it)."""
    if osp.islink(path) or not is_sharded_checkpoint(path):
        return None
    old = osp.join(osp.dirname(path), f".{osp.basename(path)}.old")
    if osp.isdir(old) and not osp.islink(old):
        shutil.rmtree(old)
    os.rename(path, old)
    return old


def _atomic_remote(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Write to a temporary name next to ``path`` on its fsspec filesystem, then move it onto ``path``."""
    fs, fs_path = fsspec.core.url_to_fs(str(path))
    parent = fs._parent(fs_path)
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent.rstrip('/')}/{temp_name(fs_path.rsplit('/', 1)[-1])}"
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
        _atomic_local(_local(path), lambda tmp: _torch_save_to_file(obj, tmp), fsync)
    else:
        _atomic_remote(path, lambda f: torch.save(obj, f))


def _torch_save_to_file(obj: Any, path: str) -> None:
    """``torch.save`` through a file object: the archive inside is named ``archive``, as for remote
    files and MMEngine's in-memory writer, not after the random temp file, so that equal
    checkpoints give equal bytes."""
    with open(path, "wb") as f:
        torch.save(obj, f)


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


def list_names(directory: str) -> list[str]:
    """The names of the entries of ``directory`` (local or any fsspec URL); empty when it cannot be listed."""
    if is_local_path(directory):
        try:
            return os.listdir(_local(directory))
        except OSError:
            return []
    fs, fs_path = fsspec.core.url_to_fs(str(directory))
    try:
        entries = fs.ls(fs_path, detail=False)
    except (OSError, ValueError):
        return []
    return [str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in entries]


def read_text(path: str) -> str:
    """The content of a text file on any fsspec filesystem."""
    with fsspec.open(str(path), "r", encoding="utf-8") as f:
        return f.read()


#: MMEngine's model-zoo schemes, resolved there through its own name tables (and pavi, its cloud).
_MMENGINE_ZOO_SCHEMES = ("open-mmlab://", "openmmlab://", "torchvision://", "modelzoo://", "mmcls://", "pavi://")


def is_download_url(source: str) -> bool:
    """Whether ``source`` is an ``http://`` or ``https://`` URL (downloaded into torch's hub cache)."""
    return str(source).startswith(("http://", "https://"))


def check_weights_source(source: str) -> None:
    """Refuse MMEngine's model-zoo names (``open-mmlab://``, ``torchvision://``...), with the reason."""
    if str(source).startswith(_MMENGINE_ZOO_SCHEMES):
        scheme = str(source).split("://", 1)[0]
        raise ValueError(
            f"{source!r}: {scheme}:// names a checkpoint through MMEngine's model-zoo tables, which this "
            "package does not have; give its https:// URL or a local file instead"
        )


def read_weights(source: str) -> Any:
    """The object stored at ``source``, loaded on the CPU with ``torch.load(weights_only=True)``.

    ``source`` is what MMEngine's ``load_from`` accepts: a local path (``~`` expanded), an
    ``http(s)://`` URL, downloaded once into torch's hub cache (``$TORCH_HOME/hub/checkpoints``,
    where MMEngine keeps it too), or any fsspec URL (``s3://``, ``memory://``...). MMEngine's
    model-zoo names (``open-mmlab://``, ``torchvision://``...) are refused with the reason.
    """
    source = str(source)
    check_weights_source(source)
    if is_download_url(source):
        return torch.hub.load_state_dict_from_url(source, map_location="cpu", progress=False, weights_only=True)
    if not is_local_path(source):
        with fsspec.open(source, "rb") as f:
            return torch.load(f, map_location="cpu", weights_only=True)
    return torch.load(osp.expanduser(_local(source)), map_location="cpu", weights_only=True)


def path_in_directory(path: Any, directory: str) -> bool:
    """Whether ``path`` names an entry directly inside ``directory``, after resolving symlinks and ``..``.

    Local paths must be absolute and must not be symlinks themselves; their
    parent must resolve (``realpath``) to ``directory``'s real path. Remote
    (fsspec URL) paths must be exactly ``<directory>/<name>`` with a plain name.
    Anything else, including non-strings, is outside.
    """
    if not isinstance(path, str) or not path or "\x00" in path:
        return False
    if is_local_path(directory):
        if not is_local_path(path):
            return False
        local = _local(path)
        if not osp.isabs(local) or osp.islink(local):
            return False
        real_dir = osp.realpath(_local(directory))
        return osp.realpath(osp.dirname(local)) == real_dir and osp.realpath(local) == osp.join(
            real_dir, osp.basename(local)
        )
    name = path.rsplit("/", 1)[-1]
    return name not in ("", ".", "..") and path == join_path(directory, name)


def remove_stale_temp_files(directory: str, is_ours: Callable[[str], bool]) -> list[str]:
    """Delete this package's leftover temp files in ``directory`` (local only); returns the names removed.

    Only regular files (not symlinks) named like :func:`temp_name` whose target
    name satisfies ``is_ours`` are removed: the temp files of a writer that was
    killed. Other files, other patterns and subdirectories are never touched.
    """
    if not is_local_path(directory):
        return []
    removed: list[str] = []
    try:
        entries = list(os.scandir(_local(directory)))
    except OSError:
        return removed
    for entry in entries:
        match = TEMP_FILE_RE.match(entry.name)
        if match is None or not is_ours(match.group("target")):
            continue
        if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
            continue
        try:
            os.remove(entry.path)
            removed.append(entry.name)
        except OSError:
            pass
    return removed


#: Lightning's name for the file of a sharded checkpoint directory that holds everything but the shards.
SHARDED_META_FILENAME = "meta.pt"


def is_sharded_checkpoint(path: Any) -> bool:
    """Whether ``path`` is a complete sharded checkpoint directory (its index and ``meta.pt`` exist)."""
    path = str(path)
    return (
        osp.isdir(path)
        and osp.isfile(osp.join(path, SHARDED_META_FILENAME))
        and osp.isfile(osp.join(path, SHARDED_INDEX_FILENAME))
    )


def _unreadable_reason(path: str) -> Optional[str]:
    """Why ``path`` cannot be a resume point (missing, not a file, unreadable, not a checkpoint), or None."""
    if not is_local_path(path):
        return None if path_exists(path) else "it does not exist"
    local = _local(path)
    if not osp.exists(local):
        return "it does not exist"
    if osp.isdir(local) and not osp.islink(local):
        # A sharded checkpoint (ModelParallelStrategy) is a directory, renamed into place once complete.
        if not is_sharded_checkpoint(local):
            return "it is a directory but not a complete sharded checkpoint"
        unsafe = unsafe_index_reason(local)  # read as data here: the strategy's reader unpickles it freely
        return None if unsafe is None else f"it cannot be loaded as data only ({unsafe})"
    if not osp.isfile(local):
        return "it is not a file"
    try:
        with open(local, "rb"):
            pass
    except OSError as exc:
        return f"it cannot be opened ({exc.strerror or exc})"
    if not zipfile.is_zipfile(local):
        return "it is not a complete torch checkpoint (truncated or another format)"
    return None


def find_last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint named by ``<work_dir>/last_checkpoint``; None when there is no ``last_checkpoint``.

    Raises :class:`~lightning_hooks.errors.ResumeError`, naming both files, when
    ``last_checkpoint`` names a file that is missing or unreadable: resuming silently
    from scratch would overwrite the old run's checkpoints (MMEngine raises
    ``FileNotFoundError`` too).
    """
    marker = join_path(work_dir, "last_checkpoint")
    if not path_exists(marker):
        return None
    try:
        path = read_text(marker).strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ResumeError(f"Cannot resume: {marker} cannot be read ({exc}).") from exc
    if not path:
        raise ResumeError(f"Cannot resume: {marker} is empty; it should name the checkpoint to resume from.")
    reason = _unreadable_reason(path)
    if reason is not None and restore_moved_aside(path):
        reason = _unreadable_reason(path)
    if reason is not None:
        raise ResumeError(
            f"Cannot resume: {marker} names {path}, but {reason}. Nothing was trained or overwritten. "
            f"Pass fit(ckpt_path=...) with another checkpoint, or remove {marker} to start from scratch."
        )
    return path
