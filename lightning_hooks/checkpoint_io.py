"""Crash-safe checkpoint writing: atomic, durable, optionally asynchronous, on any fsspec filesystem.

:class:`AtomicCheckpointIO` is a Lightning ``CheckpointIO`` plugin. The
:class:`~lightning_hooks.CheckpointHook` hands it to ``trainer.save_checkpoint``
for its own saves (``trainer.save_checkpoint`` still builds the dict, so every
strategy works and only global rank 0 writes); it can also be given to a
Trainer directly (``Trainer(plugins=[AtomicCheckpointIO()])``).

What it guarantees, and MMEngine's writer (``torch.save`` into memory, then
``open(path, 'wb')``) does not:

* **Atomic.** A local checkpoint is written to a temporary file in the *target
  directory*, flushed and ``fsync``-ed, then renamed onto its name with
  ``os.replace`` (atomic on POSIX), and the directory is ``fsync``-ed so the
  rename itself survives a power cut. A crash mid-save leaves the previous file
  untouched and at worst a ``.<name>.*.tmp`` file, never a truncated checkpoint.
  (Lightning's own writer stages in ``$TMPDIR``, which is not atomic when that is
  another filesystem.)
* **Ordered.** ``storage_options={'after_write': fn}`` runs ``fn`` only once the
  file is durable; the hook rotates old files and updates ``last_checkpoint`` there.
* **Remote.** Any fsspec URL works (``s3://``, ``gs://``, ``memory://``...): the
  file is written to a temporary name in the target directory and moved onto its
  name when complete.
* **Asynchronous** (``async_save=True``): the caller is blocked only while the
  tensors are copied to host memory; one background thread writes. At most one
  save is in flight (the next save, a removal, a load or :meth:`wait` waits for
  it), an error in the background is raised by the next call, and the
  ``after_write`` callback runs after the write, so rotation never races a save.
"""

from __future__ import annotations

import hashlib
import os
import os.path as osp
import pickle
import tempfile
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any, Optional

import fsspec  # type: ignore[import-untyped]
import torch
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO

__all__ = [
    "AtomicCheckpointIO",
    "CheckpointWriteError",
    "arm_auto_resume",
    "atomic_torch_save",
    "atomic_write_text",
    "is_local_path",
    "join_path",
    "path_exists",
    "pickle_sha256",
    "read_text",
    "remove_path",
    "save_through_trainer",
]

AFTER_WRITE = "after_write"


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


def _to_host(obj: Any) -> Any:
    """A copy of ``obj`` whose tensors are detached host copies (the only blocking part of an async save)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, OrderedDict):
        return OrderedDict((k, _to_host(v)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _to_host(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_host(v) for v in obj]
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_to_host(v) for v in obj)
    return obj


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, permissions, ...); the message names the file.

    Nothing was replaced or deleted: the previous checkpoints are intact.
    """


class AtomicCheckpointIO(CheckpointIO):
    """Lightning ``CheckpointIO`` that writes atomically and durably, optionally in the background.

    Args:
        fsync: flush file and directory to disk before the rename counts as done.
        async_save: write in a background thread; the caller only waits for the
            copy of the tensors to host memory (and for the previous save, if
            one is still running).

    ``storage_options`` accepts one key, ``'after_write'``: a callable run once
    the file is safely on disk (in the writer thread when asynchronous).
    """

    def __init__(self, fsync: bool = True, async_save: bool = False) -> None:
        self.fsync = bool(fsync)
        self.async_save = bool(async_save)
        self._executor: Optional[ThreadPoolExecutor] = None
        self._pending: Optional[Future] = None
        self.files_written = 0  # by this process: 0 on every rank but global rank 0
        self.save_calls = 0

    # -- saving --------------------------------------------------------------------
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        """Write ``checkpoint`` to ``path``; then run ``storage_options['after_write']`` if given."""
        after_write = self._after_write(storage_options)
        self.save_calls += 1
        self.wait()
        if not self.async_save:
            self._write(checkpoint, str(path), after_write)
            return
        host_copy = _to_host(checkpoint)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lightning_hooks_ckpt")
        self._pending = self._executor.submit(self._write, host_copy, str(path), after_write)

    @staticmethod
    def _after_write(storage_options: Optional[Any]) -> Optional[Callable[[], None]]:
        if storage_options is None:
            return None
        if not isinstance(storage_options, dict) or set(storage_options) - {AFTER_WRITE}:
            raise TypeError(
                f"AtomicCheckpointIO accepts storage_options={{'{AFTER_WRITE}': callable}} or None, "
                f"got {storage_options!r}"
            )
        after_write = storage_options.get(AFTER_WRITE)
        if after_write is not None and not callable(after_write):
            raise TypeError(f"storage_options['{AFTER_WRITE}'] must be callable, got {after_write!r}")
        return after_write

    def _write(self, checkpoint: dict[str, Any], path: str, after_write: Optional[Callable[[], None]]) -> None:
        try:
            atomic_torch_save(checkpoint, path, fsync=self.fsync)
        except (OSError, RuntimeError) as exc:  # torch's zip writer reports I/O errors as RuntimeError
            raise CheckpointWriteError(f"Could not write checkpoint {path!r}: {exc}") from exc
        self.files_written += 1
        if after_write is not None:
            after_write()

    def wait(self) -> None:
        """Block until the save in flight (if any) is on disk; re-raise its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    @property
    def busy(self) -> bool:
        """Whether a background save is still running."""
        return self._pending is not None and not self._pending.done()

    # -- loading and removing -------------------------------------------------------
    def load_checkpoint(
        self, path: Any, map_location: Optional[Any] = None, weights_only: Optional[bool] = None
    ) -> dict[str, Any]:
        """``torch.load`` from any fsspec path, after any save in flight has finished."""
        self.wait()
        fs, fs_path = fsspec.core.url_to_fs(str(path))
        if not fs.exists(fs_path):
            raise FileNotFoundError(f"Checkpoint file not found: {path}")
        with fs.open(fs_path, "rb") as f:
            return torch.load(f, map_location=map_location or "cpu", weights_only=weights_only)

    def remove_checkpoint(self, path: Any) -> None:
        """Delete ``path`` (file or directory) if it exists, after any save in flight."""
        self.wait()
        remove_path(str(path))

    def teardown(self) -> None:
        """Wait for the last save and stop the writer thread."""
        try:
            self.wait()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None


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


def save_through_trainer(
    trainer: Any,
    filepath: str,
    checkpoint_io: Optional[AtomicCheckpointIO] = None,
    after_write: Optional[Callable[[], None]] = None,
) -> None:
    """``trainer.save_checkpoint(filepath)`` written by ``checkpoint_io``, then ``after_write`` on rank 0.

    ``trainer.save_checkpoint`` builds the dict (every strategy, collective under
    DDP) and only global rank 0 writes. ``checkpoint_io`` replaces the strategy's
    writer for this one save when that writer is Lightning's default
    ``TorchCheckpointIO`` or an :class:`AtomicCheckpointIO` plugin (whose ``async_save`` it
    adopts); Lightning's ``AsyncCheckpointIO`` is taken as a request
    for asynchronous saving and is replaced by ``checkpoint_io`` in async mode, so
    rotation stays ordered after the write. Any other user plugin is kept; then
    ``after_write`` runs once ``save_checkpoint`` has returned.
    """
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
    from lightning.pytorch.plugins.io.async_plugin import AsyncCheckpointIO

    strategy = trainer.strategy
    current = strategy.checkpoint_io
    if isinstance(current, AtomicCheckpointIO) and checkpoint_io is not None:
        current.wait()  # a save Lightning started through the plugin finishes first
        checkpoint_io.async_save = checkpoint_io.async_save or current.async_save
    elif isinstance(current, AtomicCheckpointIO):
        checkpoint_io = current
    elif checkpoint_io is not None and isinstance(current, AsyncCheckpointIO):
        checkpoint_io.async_save = True
    elif checkpoint_io is not None and type(current) is not TorchCheckpointIO:
        checkpoint_io = None  # a user plugin: respect it
    if checkpoint_io is None:
        trainer.save_checkpoint(filepath, weights_only=False)
        if after_write is not None and trainer.is_global_zero:
            after_write()
        return
    options = {AFTER_WRITE: after_write} if after_write is not None else None
    calls_before = checkpoint_io.save_calls
    strategy.checkpoint_io = checkpoint_io
    try:
        trainer.save_checkpoint(filepath, weights_only=False, storage_options=options)
    finally:
        strategy.checkpoint_io = current
    if after_write is not None and trainer.is_global_zero and checkpoint_io.save_calls == calls_before:
        # The strategy wrote without the CheckpointIO plugin (DeepSpeed, sharded FSDP): it has returned.
        after_write()


def find_last_checkpoint(work_dir: str) -> Optional[str]:
    """The path written in ``<work_dir>/last_checkpoint`` when it names an existing file, else None."""
    marker = join_path(work_dir, "last_checkpoint")
    if not path_exists(marker):
        return None
    path = read_text(marker).strip()
    return path if path and path_exists(path) else None


def arm_auto_resume(trainer: Any, work_dir: str, logger: Any) -> None:
    """MMEngine's ``resume=True``: make this ``fit`` resume from ``<work_dir>/last_checkpoint``.

    Lightning chooses ``ckpt_path`` before any callback runs, so the choice is made
    where Lightning loads it: the checkpoint connector's next ``resume_start`` (it
    runs right after ``setup`` on every rank) gets the path when ``fit`` was given
    none. The path is read on rank 0 and broadcast. Without a ``last_checkpoint``
    the run starts fresh with a log line, as in MMEngine.
    """
    connector = trainer._checkpoint_connector
    if "resume_start" in vars(connector):  # armed by an earlier run that never loaded
        del connector.resume_start
    original = connector.resume_start

    def resume_start(checkpoint_path: Optional[Any] = None, weights_only: Optional[bool] = None) -> None:
        del connector.resume_start  # one call only
        if checkpoint_path is None:
            found = find_last_checkpoint(work_dir) if trainer.is_global_zero else None
            checkpoint_path = trainer.strategy.broadcast(found, src=0)
            if checkpoint_path is None:
                logger.info("Did not find last_checkpoint to be resumed.")
            else:
                logger.info(f"Auto resumed from the latest checkpoint {checkpoint_path}.")
        original(checkpoint_path, weights_only)

    connector.resume_start = resume_start
