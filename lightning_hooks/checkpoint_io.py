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
* **Asynchronous** (``async_save=True``): one background thread copies the
  tensors to host memory and writes. The caller copies only what training could
  change before its next optimizer step (buffers, which the forward pass updates,
  and anything not owned by an optimizer); the parameters and optimizer state of
  the optimizers given to :meth:`AtomicCheckpointIO.bind_optimizers` are copied in
  the background while the next forward and backward run (on a side CUDA stream
  for GPU tensors), and each of those optimizers' ``step`` waits, through a step
  pre-hook, only while that copy is unfinished. The snapshot therefore holds the
  values at save time. At most one save is in flight (the next save, a removal,
  a load or :meth:`~AtomicCheckpointIO.wait` waits for it), an error in the
  background is raised by the next call, and the ``after_write`` callback runs
  after the write, so rotation never races a save.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Optional

import fsspec  # type: ignore[import-untyped]
import torch
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO

from . import _lightning
from .errors import CheckpointWriteError, ResumeError
from .fileio import (
    atomic_torch_save,
    atomic_write_text,
    find_last_checkpoint,
    is_local_path,
    join_path,
    path_exists,
    pickle_sha256,
    read_text,
    remove_path,
)

__all__ = [
    "AtomicCheckpointIO",
    "CheckpointWriteError",
    "ResumeError",
    "arm_auto_resume",
    "atomic_torch_save",
    "atomic_write_text",
    "find_last_checkpoint",
    "is_local_path",
    "join_path",
    "path_exists",
    "pickle_sha256",
    "read_text",
    "remove_path",
    "save_through_trainer",
    "wait_for_snapshot_copies",
]

AFTER_WRITE = "after_write"


class _Snapshot:
    """The tensors of one async save that are copied in the background, and when that copy is done.

    ``slots`` are ``(container, key, tensor)``: the copy of ``tensor`` goes to ``container[key]``.
    """

    def __init__(self) -> None:
        self.slots: list[tuple[Any, Any, torch.Tensor]] = []
        self.copied = threading.Event()
        self.ready_event: Optional[Any] = None  # a CUDA event recorded on the saving stream, if any
        #: Host copies of CPU storages, by address: tensors that share a storage (tied weights, views)
        #: share it in the snapshot too, so the file is the one ``torch.save`` writes from the originals.
        self._storages: dict[int, Any] = {}
        #: Copies by original tensor object: one tensor found twice is one object in the file, as pickled.
        self._tensors: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def take(self, obj: Any, deferred: frozenset[int]) -> Any:
        """A copy of ``obj`` with host copies of its tensors; those in ``deferred`` are left for :meth:`copy`.

        Containers keep their types (an ``OrderedDict`` its ``_metadata``, a ``Counter`` or
        ``defaultdict`` its class); any other object is deep-copied now, so that later changes to
        it cannot reach the file.
        """
        if isinstance(obj, torch.Tensor):
            return self._copy_of(obj)
        if isinstance(obj, (dict, list)):
            copied = _empty_like(obj)
            items = obj.items() if isinstance(obj, dict) else enumerate(obj)
            for key, value in items:
                if deferred and isinstance(value, torch.Tensor) and _data_ptr(value) in deferred:
                    copied[key] = None
                    self.slots.append((copied, key, value))
                else:
                    copied[key] = self.take(value, deferred)
            return copied
        if isinstance(obj, tuple):
            values = [self.take(v, frozenset()) for v in obj]
            return type(obj)(*values) if hasattr(obj, "_fields") else type(obj)(values)
        if obj is None or isinstance(obj, _IMMUTABLE):
            return obj
        try:
            return copy.deepcopy(obj)
        except Exception:  # not copyable: written as it is when the writer pickles it
            return obj

    def _copy_of(self, tensor: torch.Tensor) -> torch.Tensor:
        """The snapshot's copy of ``tensor``: the same object each time the same tensor is met."""
        known = self._tensors.get(id(tensor))
        if known is None:  # the original is kept with its copy, so its id is not reused meanwhile
            known = self._tensors[id(tensor)] = (tensor, self._host_copy(tensor))
        return known[1]

    def _host_copy(self, tensor: torch.Tensor) -> torch.Tensor:
        """A host copy of ``tensor``; CPU tensors sharing a storage get views of one copied storage."""
        tensor = tensor.detach()
        if type(tensor) is not torch.Tensor or tensor.is_cuda or tensor.layout != torch.strided or tensor.is_meta:
            return tensor.to("cpu", copy=True)
        storage = tensor.untyped_storage()
        known = self._storages.get(storage.data_ptr())
        if known is None:  # the original storage is kept with its copy: its address cannot be reused meanwhile
            known = self._storages[storage.data_ptr()] = (storage, storage.clone())
        host = known[1]
        return torch.empty(0, dtype=tensor.dtype).set_(host, tensor.storage_offset(), tensor.size(), tensor.stride())

    def copy(self) -> None:
        """Copy the deferred tensors to host memory (runs in the writer thread), then signal ``copied``."""
        try:
            on_gpu = [t for _, _, t in self.slots if t.is_cuda]
            stream = torch.cuda.Stream(device=on_gpu[0].device) if on_gpu else None
            if stream is not None and self.ready_event is not None:
                stream.wait_event(self.ready_event)
            with torch.cuda.stream(stream) if stream is not None else _no_context():
                for container, key, tensor in self.slots:
                    if tensor.is_cuda:
                        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
                        container[key] = host.copy_(tensor.detach(), non_blocking=True)
                    else:
                        container[key] = self._copy_of(tensor)
            if stream is not None:
                stream.synchronize()
        finally:
            self.slots = []
            self._storages, self._tensors = {}, {}
            self.copied.set()


#: Values a snapshot keeps as they are: they cannot change after the save.
_IMMUTABLE = (str, bytes, int, float, complex, bool, torch.dtype, torch.device, torch.Size)


def _empty_like(container: Any) -> Any:
    """An empty container of ``container``'s type to fill with the snapshot's values (a list: its length)."""
    if type(container) is list:
        return [None] * len(container)
    if type(container) is dict:
        return {}
    if isinstance(container, list):
        try:
            empty = copy.copy(container)  # a list subclass keeps its class
            empty[:] = [None] * len(container)
        except Exception:
            return [None] * len(container)
        return empty
    try:
        empty = copy.copy(container)  # keeps the class and its attributes (OrderedDict's _metadata, default_factory)
        empty.clear()
    except Exception:
        return OrderedDict() if isinstance(container, OrderedDict) else {}
    return empty


class _no_context:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def _data_ptr(tensor: torch.Tensor) -> Optional[int]:
    """The address of a plain tensor's data; None when empty or without storage (DTensor, meta)."""
    if type(tensor) not in (torch.Tensor, torch.nn.Parameter) or not tensor.numel() or tensor.is_meta:
        return None
    return int(tensor.data_ptr())


def _optimizer_tensor_ptrs(optimizers: Iterable[torch.optim.Optimizer]) -> frozenset[int]:
    """Data pointers of what an optimizer step overwrites: the parameters and the optimizer state."""
    ptrs: set[Optional[int]] = set()
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            ptrs.update(_data_ptr(p) for p in group["params"])
        for state in optimizer.state.values():
            ptrs.update(_data_ptr(v) for v in state.values() if isinstance(v, torch.Tensor))
    ptrs.discard(None)
    return frozenset(ptrs)  # type: ignore[arg-type]


#: Every AtomicCheckpointIO, for :func:`wait_for_snapshot_copies`.
_ALL_IOS: weakref.WeakSet[AtomicCheckpointIO] = weakref.WeakSet()


def wait_for_snapshot_copies() -> None:
    """Block until the background copy of every async save in flight has all its tensors.

    An async save leaves the optimizers' tensors to be copied while training goes on, and
    only their optimizer step waits for that copy. Code that changes such a tensor in place
    at another time (EMAHook copying an average into the model for validation) calls this
    first, so that the change cannot leak into the snapshot. The writes are not waited for.
    """
    for io in list(_ALL_IOS):
        io.wait_copied()


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
        self._snapshot: Optional[_Snapshot] = None
        self._step_guards: dict[int, tuple[torch.optim.Optimizer, Any]] = {}
        self.files_written = 0  # by this process: 0 on every rank but global rank 0
        self.save_calls = 0
        #: Seconds optimizer steps waited for an async save's background copy (see :meth:`bind_optimizers`).
        self.step_wait_seconds = 0.0
        _ALL_IOS.add(self)

    def wait_copied(self) -> None:
        """Block until the save in flight (if any) has copied its tensors; its write may go on."""
        snapshot = self._snapshot
        if snapshot is not None:
            snapshot.copied.wait()

    def bind_optimizers(self, optimizers: Iterable[torch.optim.Optimizer]) -> None:
        """Copy these optimizers' parameters and state in the background during async saves.

        Each optimizer gets a step pre-hook that waits while such a copy is unfinished,
        so a step never changes a tensor before the snapshot has it.
        """
        for optimizer in optimizers:
            if id(optimizer) not in self._step_guards:
                handle = optimizer.register_step_pre_hook(self._before_step)
                self._step_guards[id(optimizer)] = (optimizer, handle)

    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        snapshot = self._snapshot
        if snapshot is not None and not snapshot.copied.is_set():
            start = time.perf_counter()
            snapshot.copied.wait()
            self.step_wait_seconds += time.perf_counter() - start

    # -- saving --------------------------------------------------------------------
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        """Write ``checkpoint`` to ``path``; then run ``storage_options['after_write']`` if given."""
        after_write = self._after_write(storage_options)
        self.save_calls += 1
        self.wait()
        if not self.async_save:
            self._write(checkpoint, str(path), after_write)
            return
        snapshot = _Snapshot()
        deferred = _optimizer_tensor_ptrs(optimizer for optimizer, _ in self._step_guards.values())
        host_copy = snapshot.take(checkpoint, deferred)
        if any(t.is_cuda for _, _, t in snapshot.slots):
            snapshot.ready_event = torch.cuda.Event()
            snapshot.ready_event.record()  # the values as the saving stream has them now
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lightning_hooks_ckpt")
        self._snapshot = snapshot
        try:
            self._pending = self._executor.submit(self._copy_and_write, snapshot, host_copy, str(path), after_write)
        except BaseException:
            snapshot.copied.set()
            raise

    def _copy_and_write(
        self, snapshot: _Snapshot, checkpoint: dict[str, Any], path: str, after_write: Optional[Callable[[], None]]
    ) -> None:
        snapshot.copy()
        self._write(checkpoint, path, after_write)

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
        """``torch.load`` from any fsspec path, after any save in flight has finished.

        ``weights_only=None`` means True: nothing is unpickled beyond tensors and
        plain types unless the caller passes ``weights_only=False`` by name
        (torch < 2.6 would default to full unpickling).
        """
        self.wait()
        fs, fs_path = fsspec.core.url_to_fs(str(path))
        if not fs.exists(fs_path):
            raise FileNotFoundError(f"Checkpoint file not found: {path}")
        with fs.open(fs_path, "rb") as f:
            return torch.load(f, map_location=map_location or "cpu", weights_only=weights_only is not False)

    def remove_checkpoint(self, path: Any) -> None:
        """Delete ``path`` (file or directory) if it exists, after any save in flight."""
        self.wait()
        remove_path(str(path))

    def teardown(self) -> None:
        """Wait for the last save, stop the writer thread and remove the optimizers' step pre-hooks."""
        try:
            self.wait()
        finally:
            guards, self._step_guards = self._step_guards, {}
            for _, handle in guards.values():
                handle.remove()
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None


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
    sharded = _lightning.sharded_save_kind(trainer)
    if sharded == "directory":
        _save_sharded_directory(trainer, filepath, after_write, checkpoint_io)
        return
    current = _lightning.strategy_checkpoint_io(trainer)
    if sharded == "file" and checkpoint_io is not None:
        # ModelParallelStrategy refuses storage_options: write synchronously, then run after_write.
        checkpoint_io.wait()
        checkpoint_io.async_save = False
        _lightning.save_with_checkpoint_io(trainer, filepath, checkpoint_io, None)
        if after_write is not None and trainer.is_global_zero:
            after_write()
        return
    if isinstance(current, AtomicCheckpointIO) and checkpoint_io is not None:
        current.wait()  # a save Lightning started through the plugin finishes first
        checkpoint_io.async_save = checkpoint_io.async_save or current.async_save
    elif isinstance(current, AtomicCheckpointIO):
        checkpoint_io = current
    elif checkpoint_io is not None and _lightning.writer_kind(current) == "async":
        checkpoint_io.async_save = True
    elif checkpoint_io is not None and _lightning.writer_kind(current) != "default":
        checkpoint_io = None  # a user plugin: respect it
    if checkpoint_io is None:
        # weights_only=False: a full checkpoint (optimizer and loop state too), stated explicitly.
        trainer.save_checkpoint(filepath, weights_only=False)
        if after_write is not None and trainer.is_global_zero:
            after_write()
        return
    options = {AFTER_WRITE: after_write} if after_write is not None else None
    if checkpoint_io.async_save and trainer.is_global_zero:
        # What the next optimizer step overwrites is copied in the background; the step waits for it.
        checkpoint_io.bind_optimizers(_lightning.unwrap_optimizer(o) for o in trainer.optimizers)
    calls_before = checkpoint_io.save_calls
    _lightning.save_with_checkpoint_io(trainer, filepath, checkpoint_io, options)
    if after_write is not None and trainer.is_global_zero and checkpoint_io.save_calls == calls_before:
        # The strategy wrote without the CheckpointIO plugin (DeepSpeed, sharded FSDP): it has returned.
        after_write()


def _save_sharded_directory(
    trainer: Any,
    filepath: str,
    after_write: Optional[Callable[[], None]],
    checkpoint_io: Optional[AtomicCheckpointIO],
) -> None:
    """A sharded directory checkpoint (ModelParallelStrategy): written under a temporary name, renamed when complete."""
    from .sharded_checkpoint import save_directory_atomically

    if not is_local_path(filepath):
        raise ValueError(
            f"ModelParallelStrategy writes sharded checkpoint directories on a local (or mounted) filesystem; "
            f"{filepath!r} is a URL. Use a local out_dir, or ModelParallelStrategy(save_distributed_checkpoint=False) "
            "for one full-state file."
        )
    if checkpoint_io is not None and checkpoint_io.async_save and not getattr(checkpoint_io, "_sync_noted", False):
        checkpoint_io._sync_noted = True  # type: ignore[attr-defined]
        logging.getLogger("lightning_hooks").warning(
            "async_save is not used for sharded checkpoint directories: every rank writes its shards "
            "synchronously (ModelParallelStrategy)."
        )
    strategy = trainer.strategy
    save_directory_atomically(
        filepath,
        write=lambda tmp: trainer.save_checkpoint(tmp, weights_only=False),
        is_writer=trainer.is_global_zero,
        barrier=strategy.barrier,
        after_write=after_write,
        fsync=checkpoint_io.fsync if checkpoint_io is not None else True,
    )


def arm_auto_resume(trainer: Any, work_dir: str, logger: Any) -> Callable[[], Optional[str]]:
    """MMEngine's ``resume=True``: make this ``fit`` resume from ``<work_dir>/last_checkpoint``.

    Lightning chooses ``ckpt_path`` before any callback runs, so the choice is made
    where Lightning loads it (:func:`lightning_hooks._lightning.intercept_resume_start`):
    when ``fit`` was given no path, the path is read on rank 0 and broadcast. Without
    a ``last_checkpoint`` the run starts fresh with a log line, as in MMEngine.

    Returns that choice: the checkpoint ``last_checkpoint`` names, or None. It is read once, by
    its first call (collective: every rank calls it) or at Lightning's load, whichever comes
    first, so a hook that asks in ``before_run`` learns the checkpoint Lightning then loads.
    """
    chosen: list[Optional[str]] = []

    def last_checkpoint() -> Optional[str]:
        if chosen:
            return chosen[0]
        found: tuple[Optional[str], Optional[str]] = (None, None)
        if trainer.is_global_zero:
            try:
                found = (find_last_checkpoint(work_dir), None)
            except ResumeError as exc:
                found = (None, str(exc))
        checkpoint_path, error = trainer.strategy.broadcast(found, src=0)
        if error is not None:  # raised on every rank, so no rank waits for another
            raise ResumeError(error)
        if checkpoint_path is None:
            logger.info(f"Did not find last_checkpoint to be resumed in {work_dir}: starting from scratch.")
        else:
            logger.info(f"Auto resumed from the latest checkpoint {checkpoint_path}.")
        chosen.append(checkpoint_path)
        return checkpoint_path

    def choose_path(checkpoint_path: Optional[Any]) -> Optional[Any]:
        return checkpoint_path if checkpoint_path is not None else last_checkpoint()

    # The file was chosen by us, not the user: it is loaded as data only unless fit says otherwise.
    _lightning.intercept_resume_start(trainer, choose_path, chosen_weights_only=True)
    return last_checkpoint
