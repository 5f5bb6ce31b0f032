"""CheckpointHook: MMEngine's checkpoint hook, with crash-safe writes and exact resume.

Same arguments, defaults, file names, counters, best-checkpoint rules,
``max_keep_ckpts`` bookkeeping (kept in the message hub, so it survives resume)
and publishing as MMEngine 0.10's ``CheckpointHook``. The files are Lightning
checkpoints written through ``trainer.save_checkpoint`` (every strategy; only
global rank 0 writes), carrying MMEngine's ``meta`` and ``message_hub`` keys.

Deliberate differences, each a fix (see docs/hooks/checkpoint_hook.md):

* every file is written atomically and durably (temp file in the target
  directory, fsync, rename, fsync of the directory);
* old regular checkpoints and the previous best are deleted only once the new
  file is on disk, and ``last_checkpoint`` is replaced (atomically) last;
* the checkpoint this run resumed from is never deleted (``keep_resumed``);
* ``save_best`` during a standalone ``trainer.validate`` is skipped instead of
  crashing; a ``save_best`` metric that validation does not report raises a
  ``KeyError`` naming the metrics it does report;
* ``out_dir`` may be any fsspec URL; ``async_save=True`` copies and writes in the
  background, blocking training only for what its next optimizer step would change
  before the copy has it;
* publishing hashes the pickle while streaming it (no second in-memory copy).
"""

from __future__ import annotations

import math
import operator
import os
import os.path as osp
import pickle
import re
import string
import threading
import warnings
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from math import inf
from typing import TYPE_CHECKING, Any, Optional, Union

from ..arguments import check_flags
from ..checkpoint_io import AtomicCheckpointIO
from ..errors import CheckpointConfigError
from ..fileio import (
    absolute_path,
    atomic_write_text,
    is_local_path,
    join_path,
    list_names,
    path_exists,
    path_in_directory,
    remove_path,
    remove_stale_temp_files,
)
from ..publishing import write_published
from ..registry import HOOKS
from ..rules import DEFAULT_GREATER_KEYS, DEFAULT_LESS_KEYS, infer_rule
from ..runner import warn_during_run
from ..sharded_checkpoint import is_sharded_checkpoint, read_sharded_checkpoint, recover_directories
from .hook import DATA_BATCH, Hook

if TYPE_CHECKING:
    from ..runner import RunnerView

__all__ = ["CheckpointConfigError", "CheckpointHook"]


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _format_fields(template: str) -> int:
    """Number of replacement fields (``{}``, ``{:03d}``...) in a ``str.format`` template; -1 if malformed."""
    try:
        return sum(1 for _, field, _, _ in string.Formatter().parse(template) if field is not None)
    except ValueError:
        return -1


def _as_key_tuple(keys: Any, name: str) -> Sequence[str]:
    """MMEngine's handling of greater_keys / less_keys: a str becomes a 1-tuple, lists and tuples stay."""
    if not isinstance(keys, (list, tuple)):
        keys = (keys,)
    if not all(isinstance(k, str) for k in keys):
        raise CheckpointConfigError(f"{name} must be a str or a list/tuple of str, got {keys!r}")
    return keys


#: Strategies that write their own checkpoint layout, which CheckpointHook cannot make atomic or rotate safely.
_REFUSED_STRATEGIES = {
    "FSDPStrategy": "FSDP1 (strategy='fsdp')",
    "DeepSpeedStrategy": "DeepSpeed",
    "XLAFSDPStrategy": "XLA FSDP",
}


def _check_strategy(runner: RunnerView) -> None:
    """Refuse FSDP1, DeepSpeed and XLA FSDP before the first batch, naming what to use instead."""
    strategy = getattr(getattr(runner, "trainer", None), "strategy", None)
    name = _REFUSED_STRATEGIES.get(type(strategy).__name__)
    if name is not None:
        raise RuntimeError(
            f"CheckpointHook does not support {name}: it writes its own checkpoint layout, which CheckpointHook "
            "cannot write under a temporary name, rotate or publish. For sharded training use Lightning's "
            "ModelParallelStrategy with torch.distributed.fsdp.fully_shard (FSDP2) in configure_model; "
            "otherwise strategy='ddp'."
        )


@HOOKS.register_module()
class CheckpointHook(Hook):
    """Save checkpoints periodically, keep the best ones, rotate old ones, publish at the end.

    Args:
        interval: saving period in epochs (``by_epoch``) or iterations; -1 means never
            (only the last one, with ``save_last``).
        by_epoch: save in ``after_train_epoch`` (True) or ``after_train_iter`` (False).
        save_optimizer: keep the optimizer state in regular checkpoints.
        save_param_scheduler: keep the LR scheduler state in regular checkpoints.
        out_dir: root directory (local path or fsspec URL); files go to
            ``<out_dir>/<basename of work_dir>``. Default: the work dir.
        max_keep_ckpts: keep only the newest N regular checkpoints (<= 0: keep all).
        save_last: always save at the last epoch or iteration.
        save_best: metric name(s) whose best value gets a ``best_<key>_<epoch|iter>_<k>.pth``
            file, or ``'auto'`` for the first reported metric.
        rule: ``'greater'``, ``'less'``, or a list (one per ``save_best`` key, or one for all);
            None infers it from the key name.
        greater_keys: names inferred as 'greater' (MMEngine's list by default).
        less_keys: names inferred as 'less' (``['loss']`` by default).
        file_client_args: deprecated in MMEngine; kept for compatibility (ignored, warns).
        filename_tmpl: file name with one ``{}`` (default ``epoch_{}.pth`` / ``iter_{}.pth``).
        backend_args: accepted for MMEngine compatibility; storage is chosen by ``out_dir``'s
            fsspec URL (credentials as fsspec reads them, e.g. from the environment).
        published_keys: after training, write ``<stem>-<sha8>.pth`` copies of the last and
            best checkpoints holding only these top-level keys.
        save_begin: first epoch or iteration to save (then every ``interval``).
        async_save: write checkpoints in a background thread (also turned on by Lightning's
            ``AsyncCheckpointIO`` plugin); the parameters and optimizer state are copied while
            the next forward and backward run, and the optimizer's step waits only for what is
            not copied yet.
        fsync: flush files and directories to disk before a save counts as done.
        keep_resumed: keep the checkpoint this ``fit`` resumed from until a newer regular
            checkpoint is durable; then it is rotated as usual. False: no extra protection.
        resume: MMEngine's auto-resume from the hook (as ``HookBridge(resume=True)``): a ``fit``
            given no ``ckpt_path`` resumes from ``<work_dir>/last_checkpoint`` when it exists.

    Any other keyword is a ``TypeError`` naming the closest valid one (MMEngine forwards
    extra keywords to ``runner.save_checkpoint``, which accepts none of them, and fails
    at the first save).
    """

    priority = "VERY_LOW"

    rule_map: dict[str, Callable[[Any, Any], bool]] = {"greater": operator.gt, "less": operator.lt}
    init_value_map: dict[str, float] = {"greater": -inf, "less": inf}
    _default_greater_keys = list(DEFAULT_GREATER_KEYS)
    _default_less_keys = list(DEFAULT_LESS_KEYS)

    def __init__(
        self,
        interval: int = -1,
        by_epoch: bool = True,
        save_optimizer: bool = True,
        save_param_scheduler: bool = True,
        out_dir: Optional[str] = None,
        max_keep_ckpts: int = -1,
        save_last: bool = True,
        save_best: Union[str, list[str], None] = None,
        rule: Union[str, list[str], None] = None,
        greater_keys: Optional[Sequence[str]] = None,
        less_keys: Optional[Sequence[str]] = None,
        file_client_args: Optional[dict] = None,
        filename_tmpl: Optional[str] = None,
        backend_args: Optional[dict] = None,
        published_keys: Union[str, list[str], None] = None,
        save_begin: int = 0,
        async_save: bool = False,
        fsync: bool = True,
        keep_resumed: bool = True,
        resume: bool = False,
    ) -> None:
        check_flags(
            "CheckpointHook",
            by_epoch=by_epoch,
            save_optimizer=save_optimizer,
            save_param_scheduler=save_param_scheduler,
            save_last=save_last,
            async_save=async_save,
            fsync=fsync,
            keep_resumed=keep_resumed,
            resume=resume,
        )
        for int_name, int_value in (("max_keep_ckpts", max_keep_ckpts), ("save_begin", save_begin)):
            if isinstance(int_value, bool) or not isinstance(int_value, int):
                raise TypeError(f"CheckpointHook: {int_name} must be an int, got {int_value!r}")
        if out_dir is not None and not isinstance(out_dir, (str, os.PathLike)):
            raise TypeError(f"CheckpointHook: out_dir must be a path or fsspec URL (str) or None, got {out_dir!r}")
        for name, value in (("file_client_args", file_client_args), ("backend_args", backend_args)):
            if value is not None and not isinstance(value, dict):
                raise TypeError(f"CheckpointHook: {name} must be a dict or None, got {value!r}")
        if filename_tmpl is not None and not isinstance(filename_tmpl, str):
            raise TypeError(
                f"CheckpointHook: filename_tmpl must be a str with one '{{}}' or None, got {filename_tmpl!r}"
            )
        if file_client_args is not None and backend_args is not None:
            raise ValueError('"file_client_args" and "backend_args" cannot be set at the same time.')
        if file_client_args is not None:
            warnings.warn(
                '"file_client_args" will be deprecated in future. Please use "backend_args" instead', stacklevel=2
            )
        for name, value in (("file_client_args", file_client_args), ("backend_args", backend_args)):
            if value:
                warnings.warn(
                    f"CheckpointHook does not use {name}={value!r}: storage is chosen by out_dir's fsspec URL, "
                    "with the credentials fsspec finds itself (environment, its configuration files)",
                    UserWarning,
                    stacklevel=2,
                )
        if save_best is None:
            unused = [n for n, v in (("rule", rule), ("greater_keys", greater_keys), ("less_keys", less_keys)) if v]
            if unused:
                warnings.warn(
                    f"CheckpointHook: {', '.join(unused)} only apply with save_best, which is not set",
                    UserWarning,
                    stacklevel=2,
                )
        if save_begin < 0:
            raise ValueError(f"save_begin should not be less than 0, but got {save_begin}")
        if not isinstance(interval, int) or isinstance(interval, bool):
            raise TypeError(f"interval must be an int (epochs or iterations; -1 = never), got {interval!r}")
        self.interval = interval
        self.by_epoch = by_epoch
        self.save_optimizer = save_optimizer
        self.save_param_scheduler = save_param_scheduler
        self._out_dir_arg = None if out_dir is None else str(out_dir)
        self.out_dir: str = self._out_dir_arg  # type: ignore[assignment]  # resolved in before_train
        self.max_keep_ckpts = max_keep_ckpts
        self.save_last = save_last
        self.file_client_args = file_client_args
        self.backend_args = backend_args
        self.filename_tmpl = filename_tmpl or ("epoch_{}.pth" if by_epoch else "iter_{}.pth")
        if _format_fields(self.filename_tmpl) != 1:
            raise CheckpointConfigError(
                f"filename_tmpl must contain exactly one replacement field such as '{{}}', got {self.filename_tmpl!r}"
            )
        if "/" in self.filename_tmpl or "\\" in self.filename_tmpl:
            raise CheckpointConfigError(
                f"filename_tmpl {self.filename_tmpl!r} has a directory part: it names a file of the checkpoint "
                "directory (the hook rotates, publishes and resumes only its own files there). To save elsewhere, "
                "set out_dir (checkpoints then go to <out_dir>/<basename of work_dir>)."
            )
        self.save_best = self._check_save_best(save_best)
        rules = self._check_rule(rule, self.save_best)
        self.greater_keys = (
            self._default_greater_keys if greater_keys is None else _as_key_tuple(greater_keys, "greater_keys")
        )
        self.less_keys = self._default_less_keys if less_keys is None else _as_key_tuple(less_keys, "less_keys")
        if self.save_best is not None:
            self.is_better_than: dict[str, Callable[[Any, Any], bool]] = {}
            self._init_rule(rules, self.save_best)
            if len(self.key_indicators) == 1:
                self.best_ckpt_path: Optional[str] = None
            else:
                self.best_ckpt_path_dict: dict[str, Optional[str]] = {}
        self.published_keys = self._check_published_keys(published_keys)
        self.save_begin = save_begin
        self.keep_resumed = keep_resumed
        self.resume = resume
        self.last_ckpt: Optional[str] = None
        #: ``runner.iter`` at the latest end of a training epoch (by-epoch saving), or None before one.
        self._epoch_end_iter: Optional[int] = None
        self.keep_ckpt_ids: deque = deque()
        self._io = AtomicCheckpointIO(fsync=fsync, async_save=async_save)
        self._warned_standalone = False
        self._names = _NamePatterns(self.filename_tmpl)
        # Crash-window bookkeeping (see _save_checkpoint_with_step and docs/trust.md).
        self._lock = threading.Lock()
        self._pending_removals: list[str] = []  # deleted once no durable resume point needs them
        #: Lightning's ``fast_dev_run`` in this fit: nothing is saved, rotated or removed.
        self._dev_run = False
        #: Whether a validation ran during this fit (else ``save_best`` had nothing to compare).
        self._validated = False
        self._resume_point_bests: set[str] = set()  # best files named by the durable resume point
        self._newer_regular_durable = False  # a regular checkpoint of this fit is durable

    # ------------------------------------------------------------------ validation of arguments
    def __getstate__(self) -> dict[str, Any]:
        """The hook without its lock, so that it can be pickled (``strategy='ddp_spawn'`` pickles the callbacks)."""
        state = self.__dict__.copy()
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @staticmethod
    def _check_save_best(save_best: Any) -> Optional[list[str]]:
        if save_best is None:
            return None
        if isinstance(save_best, str):
            return [save_best]
        if not _is_str_list(save_best):
            raise CheckpointConfigError(
                f'"save_best" should be a str or list of str or None, but got {type(save_best)} ({save_best!r})'
            )
        if "auto" in save_best and len(save_best) != 1:
            raise CheckpointConfigError(f'Only support one "auto" in "save_best" list, got {save_best!r}.')
        if len(save_best) != len(set(save_best)):
            raise CheckpointConfigError(f'Find duplicate element in "save_best": {save_best!r}.')
        return list(save_best)

    @staticmethod
    def _check_rule(rule: Any, save_best: Optional[list[str]]) -> list[Optional[str]]:
        if rule is None or isinstance(rule, str):
            return [rule]
        if not _is_str_list(rule):
            raise CheckpointConfigError(
                f"\"rule\" should be a str or list of str or None ('greater'/'less'), but got {type(rule)} ({rule!r})"
            )
        n_keys = len(save_best) if save_best is not None else 1
        if len(rule) not in (1, n_keys):
            raise CheckpointConfigError(
                f'Number of "rule" must be 1 or the same as number of "save_best" ({n_keys}), but got {len(rule)}.'
            )
        return list(rule)

    @staticmethod
    def _check_published_keys(published_keys: Any) -> Optional[list[str]]:
        if published_keys is None:
            return None
        if isinstance(published_keys, str):
            return [published_keys]
        if not (isinstance(published_keys, (list, tuple)) and all(isinstance(k, str) for k in published_keys)):
            raise TypeError(
                f'"published_keys" should be a str or a sequence of str or None, but got {type(published_keys)}'
            )
        if len(published_keys) != len(set(published_keys)):
            raise CheckpointConfigError(f'Find duplicate elements in "published_keys": {list(published_keys)!r}.')
        return list(published_keys)

    def _init_rule(self, rules: list[Optional[str]], key_indicators: list[str]) -> None:
        """Pick each key's comparison ('greater' or 'less'), inferring it from the name when not given.

        Case-insensitive, in MMEngine's order: exact greater key, exact less key,
        greater key as substring, less key as substring; otherwise ValueError.
        """
        if len(rules) == 1:
            rules = rules * len(key_indicators)
        self.rules: list[Optional[str]] = []
        for rule, key in zip(rules, key_indicators, strict=True):
            if rule is not None and rule not in self.rule_map:
                raise KeyError(f"rule must be greater, less or None, but got {rule}.")
            if rule is None and key != "auto":
                rule = infer_rule(key, self.greater_keys, self.less_keys)
            if rule is not None:
                self.is_better_than[key] = self.rule_map[rule]
            self.rules.append(rule)
        self.key_indicators = key_indicators

    # ------------------------------------------------------------------ paths this hook owns
    def _join(self, *parts: str) -> str:
        return join_path(self.out_dir, *parts)

    def _regular_path(self, step: int) -> str:
        return self._join(self.filename_tmpl.format(step))

    def owns(self, path: Any, kinds: tuple[str, ...] = ("regular", "best")) -> bool:
        """Whether ``path`` is one of this hook's files: directly in ``out_dir`` and named as it names them.

        ``kinds`` selects the names: ``'regular'`` (``filename_tmpl``), ``'best'``
        (``best_<key>_<regular name>``), ``'published'`` (``<stem>-<8 hex>.pth``).
        Symlinks, ``..`` that leaves the directory, relative paths and other names are not ours.
        """
        if not isinstance(path, str) or not path_in_directory(path, self.out_dir):
            return False
        name = path.replace("\\", "/").rsplit("/", 1)[-1]
        return self._names.kind(name) in kinds

    def _trusted_hub_path(self, runner: RunnerView, key: str, kinds: tuple[str, ...]) -> Optional[str]:
        """``runtime_info[key]`` when it names one of this hook's files; otherwise it is dropped with a warning.

        A checkpoint is data: a path in it is acted upon (deleted, published,
        loaded) only when it is ours. Dropping it from the hub keeps later
        checkpoints from carrying it on.
        """
        hub = runner.message_hub
        value = hub.get_info(key)
        if value is None or self.owns(value, kinds):
            return value
        hub.pop_info(key)
        _warn(
            runner,
            f"CheckpointHook ignores {key}={value!r} from the resumed checkpoint: it is not one of this hook's "
            f"files in {self.out_dir}. Nothing at that path will be deleted, published or loaded.",
        )
        return None

    def _trusted_keep_ids(self, runner: RunnerView) -> list[int]:
        """``keep_ckpt_ids`` from the hub, keeping only non-negative ints (a crafted entry is dropped with a warning)."""
        hub = runner.message_hub
        raw = hub.get_info("keep_ckpt_ids") or []
        ids = (
            [i for i in raw if isinstance(i, int) and not isinstance(i, bool) and i >= 0]
            if isinstance(raw, list)
            else []
        )
        if not isinstance(raw, list) or len(ids) != len(raw):
            _warn(runner, f"CheckpointHook ignores invalid keep_ckpt_ids entries {raw!r} from the resumed checkpoint.")
            hub.update_info("keep_ckpt_ids", ids)
        return ids

    def _trusted_best_score(self, runner: RunnerView, key: str) -> None:
        """Drop a best score that is not a real number (a crafted one would break every comparison)."""
        hub = runner.message_hub
        if key not in hub.runtime_info:
            return
        value = hub.get_info(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
            return
        hub.pop_info(key)
        _warn(runner, f"CheckpointHook ignores {key}={value!r} from the resumed checkpoint: not a number.")

    def _protected(self, runner: RunnerView, path: str) -> bool:
        """With ``keep_resumed``, the resumed-from checkpoint stays until a newer regular one is durable."""
        resumed = getattr(runner, "resumed_from", None)
        if not self.keep_resumed or resumed is None or self._newer_regular_durable:
            return False
        if is_local_path(path) and is_local_path(resumed):
            return osp.realpath(path) == osp.realpath(resumed)
        return str(path) == str(resumed)

    def _remove(self, runner: RunnerView, path: str) -> bool:
        """Delete one of this hook's files (rank 0 callers only); True if removed.

        A path that is not ours is never deleted (warning); the resumed-from file
        waits (see :meth:`_protected`).
        """
        if not self.owns(path):
            _warn(runner, f"CheckpointHook does not delete {path!r}: it is not one of its files in {self.out_dir}.")
            return False
        if self._protected(runner, path):
            with self._lock:
                self._pending_removals.append(path)
            return False
        return remove_path(path)

    def _queue_removal(self, path: Optional[str]) -> None:
        if path is not None:
            with self._lock:
                if path not in self._pending_removals:
                    self._pending_removals.append(path)

    def _flush_removals(self, runner: RunnerView, keep: Sequence[Optional[str]] = ()) -> None:
        """Delete the queued files that no durable resume point names (rank 0; after a durable write).

        ``keep``: files the latest state still uses (the current best files).
        """
        if runner.rank != 0:
            with self._lock:
                self._pending_removals.clear()
            return
        with self._lock:
            needed = self._resume_point_bests | {p for p in keep if p is not None}
            ready = [p for p in self._pending_removals if p not in needed]
            self._pending_removals = [p for p in self._pending_removals if p in needed]
        for path in ready:
            if self._remove(runner, path) and self._names.kind(osp.basename(path)) == "best":
                runner.logger.info(f"The previous best checkpoint {path} is removed")

    def _current_bests(self) -> list[Optional[str]]:
        if self.save_best is None:
            return []
        if len(self.key_indicators) == 1:
            return [self.best_ckpt_path]
        return list(self.best_ckpt_path_dict.values())

    def _write_last_checkpoint(self, runner: RunnerView, ckpt_path: str) -> None:
        """Point ``<work_dir>/last_checkpoint`` at ``ckpt_path`` (atomic, durable; rank 0)."""
        atomic_write_text(join_path(runner.work_dir, "last_checkpoint"), ckpt_path, fsync=self._io.fsync)

    def _is_our_temp_target(self, name: str) -> bool:
        return name == "last_checkpoint" or self._names.kind(name) is not None

    def _remove_stale_temp_files(self, runner: RunnerView) -> None:
        """Remove temp files that killed writes of this hook left in out_dir and the work dir (rank 0)."""
        if runner.rank != 0:
            return
        directories = {self.out_dir, runner.work_dir}
        for directory in sorted(directories):
            removed = remove_stale_temp_files(directory, self._is_our_temp_target)
            if removed:
                runner.logger.info(f"Removed {len(removed)} unfinished checkpoint temp file(s) in {directory}.")
            recovered = recover_directories(directory, self._is_our_temp_target)  # sharded checkpoint directories
            if recovered:
                runner.logger.info(f"Unfinished sharded checkpoint directories in {directory}: {', '.join(recovered)}.")

    def _check_writable(self, runner: RunnerView) -> None:
        """Fail at the start of training, naming out_dir, when it cannot be written (local paths)."""
        if runner.rank != 0 or not is_local_path(self.out_dir):
            return
        try:
            os.makedirs(self.out_dir, exist_ok=True)
        except OSError as exc:
            raise PermissionError(f"CheckpointHook cannot create out_dir {self.out_dir!r}: {exc}") from exc
        if not os.access(self.out_dir, os.W_OK | os.X_OK):
            raise PermissionError(f"CheckpointHook cannot write to out_dir {self.out_dir!r} (permission denied)")

    # ------------------------------------------------------------------ mount points
    def before_run(self, runner: RunnerView) -> None:
        """Refuse strategies whose checkpoints cannot be written atomically; with ``resume``, auto-resume."""
        _check_strategy(runner)
        if self.resume and runner.train_loop is not None:
            runner.auto_resume()

    def before_train(self, runner: RunnerView) -> None:
        """Resolve out_dir, clean up killed writes, and restore best paths and kept ids from the resumed hub.

        Every path read from the hub is checked (:meth:`owns`) before it is kept.
        """
        out_root = None if self._out_dir_arg is None else absolute_path(self._out_dir_arg)
        if out_root is None or out_root == runner.work_dir:
            self.out_dir = runner.work_dir
        else:  # a local out_dir is absolute: the files are named, owned and resumed by that path
            self.out_dir = join_path(out_root, osp.basename(runner.work_dir.rstrip(osp.sep)))
        self._validated = False
        # Resumed from this hook's own checkpoint, saved by epoch in after_train_epoch: training starts at
        # that epoch's end, so a validation at a later iteration runs inside the next epoch.
        resumed_at_epoch_end = self.by_epoch and self._resume_point_step(runner) is not None
        self._epoch_end_iter = runner.iter if resumed_at_epoch_end else None
        self._dev_run = bool(getattr(runner, "fast_dev_run", False))
        if self._dev_run:
            runner.logger.info(
                f"fast_dev_run: no checkpoint is saved, rotated or removed in {self.out_dir} by this fit "
                "(as Lightning's ModelCheckpoint); last_checkpoint is left as it is."
            )
            return
        self._check_writable(runner)
        self._remove_stale_temp_files(runner)
        runner.logger.info(f"Checkpoints will be saved to {self.out_dir}.")
        self._pending_removals = []
        self._newer_regular_durable = False
        # The resumed run's last regular checkpoint: a new best at the pending validation a resume
        # runs first re-saves it, as the uninterrupted run does (MMEngine's resume starts with None).
        self.last_ckpt = self._trusted_hub_path(runner, "last_ckpt", ("regular",))
        if self.save_best is not None:
            if len(self.key_indicators) == 1:
                self._trusted_best_score(runner, "best_score")
                self.best_ckpt_path = self._trusted_hub_path(runner, "best_ckpt", ("best",))
            else:
                for key in self.key_indicators:
                    self._trusted_best_score(runner, f"best_score_{key}")
                    self.best_ckpt_path_dict[key] = self._trusted_hub_path(runner, f"best_ckpt_{key}", ("best",))
        self._resume_point_bests = {p for p in self._current_bests() if p is not None}
        if self.max_keep_ckpts > 0:
            keep_ckpt_ids = self._trusted_keep_ids(runner)
            while len(keep_ckpt_ids) > self.max_keep_ckpts:  # MMEngine's trimming after a smaller max_keep_ckpts
                step = keep_ckpt_ids.pop(0)
                if runner.rank == 0:
                    self._remove(runner, self._regular_path(step))
            self.keep_ckpt_ids = deque(keep_ckpt_ids)
        if runner.rank == 0 and getattr(runner, "resume", False):
            self._remove_rotation_leftovers(runner)

    def _remove_rotation_leftovers(self, runner: RunnerView) -> None:
        """Delete what the run that wrote the resume point was rotating when it was killed (any out_dir).

        A kill after ``last_checkpoint`` is durable but before the rotation's deletions
        leaves files that no resume point names: regular checkpoints older than every
        kept id, and best files of a key older than that key's current best. They are
        exactly the files that run was deleting; newer files (a killed run's future)
        are left alone. Only a resume point of this directory that its rotation records
        as the newest kept file says so, and only an existing best file replaces older
        ones: resuming another run's checkpoint removes nothing.
        """
        step = self._resume_point_step(runner)
        if step is None:
            return
        names = list_names(self.out_dir)
        leftovers: list[str] = []
        if self.max_keep_ckpts > 0 and self.keep_ckpt_ids and max(self.keep_ckpt_ids) == step:
            oldest = min(self.keep_ckpt_ids)
            steps = {name: self._names.regular_step(name) for name in names}
            leftovers += [name for name, step in steps.items() if step is not None and step < oldest]
        for best in self._current_bests():
            if best is None or not path_exists(best):
                continue
            prefix_step = self._names.best_prefix_and_step(osp.basename(best))
            if prefix_step is None:
                continue
            prefix, step = prefix_step
            for name in names:
                other = self._names.best_prefix_and_step(name)
                if other is not None and other[0] == prefix and other[1] < step:
                    leftovers.append(name)
        for name in sorted(set(leftovers)):
            if self._remove(runner, self._join(name)):
                runner.logger.info(f"Removed {name}: the run that wrote the resume point was rotating it out.")

    def _resume_point_step(self, runner: RunnerView) -> Optional[int]:
        """The step of the checkpoint this fit resumed from when it is one of this hook's regular files here."""
        resumed = getattr(runner, "resumed_from", None)
        if resumed is None or not self.owns(resumed, ("regular",)):
            return None
        return self._names.regular_step(osp.basename(resumed))

    def after_train_epoch(self, runner: RunnerView) -> None:
        if not self.by_epoch or self._dev_run:
            return
        self._epoch_end_iter = runner.iter
        if self.every_n_epochs(runner, self.interval, self.save_begin) or (
            self.save_last and self.is_last_train_epoch(runner)
        ):
            runner.logger.info(f"Saving checkpoint at {runner.epoch + 1} epochs")
            self._save_checkpoint(runner)

    def idle_stages(self) -> frozenset[str]:
        """``after_train_iter`` when saving by epoch (unless a subclass gives its own)."""
        if self.by_epoch and type(self).after_train_iter is CheckpointHook.after_train_iter:
            return frozenset({"after_train_iter"})
        return frozenset()

    def after_train_iter(
        self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Optional[dict] = None
    ) -> None:
        if self.by_epoch or self._dev_run:
            return
        if self.every_n_train_iters(runner, self.interval, self.save_begin) or (
            self.save_last and self.is_last_train_iter(runner)
        ):
            runner.logger.info(f"Saving checkpoint at {runner.iter + 1} iterations")
            self._save_checkpoint(runner)

    def after_val_epoch(self, runner: RunnerView, metrics: Optional[dict[str, Any]] = None) -> None:
        if runner.train_loop is not None:
            self._validated = True
            if self._dev_run:
                return
        if not metrics:
            runner.logger.warning(
                "Since `metrics` is an empty dict, the behavior to save the best checkpoint will be skipped in "
                "this evaluation."
            )
            return
        self._save_best_checkpoint(runner, metrics)

    def after_train(self, runner: RunnerView) -> None:
        """Wait for the last write, then publish (rank 0) when ``published_keys`` is set."""
        self._io.wait()
        self._flush_removals(runner, keep=self._current_bests())
        if self.save_best is not None and not self._validated and not self._dev_run and runner.rank == 0:
            _warn(
                runner,
                f"CheckpointHook(save_best={_shown(self.save_best)!r}) saved no best checkpoint: no validation ran in "
                "this fit. Give the Trainer validation data (a val_dataloader, limit_val_batches above 0), or "
                "leave save_best unset.",
            )
        if self.published_keys is None or self._dev_run:
            return
        if self.save_last and self.last_ckpt is not None:
            self._publish_model(runner, self.last_ckpt)
        for best_ckpt in self._current_bests():
            if best_ckpt is not None:  # MMEngine would crash on a key that never improved
                self._publish_model(runner, best_ckpt)

    def after_run(self, runner: RunnerView) -> None:
        """Finish the background save, if any (its error is raised here)."""
        self._io.teardown()

    # ------------------------------------------------------------------ regular checkpoints
    def _save_checkpoint(self, runner: RunnerView) -> None:
        if self.by_epoch:
            step = runner.epoch + 1
            meta = {"epoch": step, "iter": runner.iter}
        else:
            step = runner.iter + 1
            meta = {"epoch": runner.epoch, "iter": step}
        self._save_checkpoint_with_step(runner, step, meta)

    def _save_checkpoint_with_step(self, runner: RunnerView, step: int, meta: dict[str, Any]) -> None:
        """Save ``filename_tmpl.format(step)``; then ``last_checkpoint``; then, only then, rotate.

        As in MMEngine the kept ids are updated before the save (the file records
        itself in ``keep_ckpt_ids``). On disk the order is: the new file is durable,
        ``last_checkpoint`` names it (durable), and only then are the evicted regular
        file and any best file no longer named by this new resume point deleted.
        A kill at any instant leaves a readable resume point whose best files exist.
        """
        evicted: list[str] = []  # this save's rotation: deleted by this save's after_write only
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            while len(self.keep_ckpt_ids) >= self.max_keep_ckpts:
                evicted.append(self._regular_path(self.keep_ckpt_ids.popleft()))
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self._join(filename)
        runner.message_hub.update_info("last_ckpt", self.last_ckpt)
        last_ckpt = self.last_ckpt
        bests = [p for p in self._current_bests() if p is not None]

        def after_write() -> None:
            if runner.rank != 0:
                return
            self._write_last_checkpoint(runner, last_ckpt)
            with self._lock:
                self._resume_point_bests = set(bests)
                self._newer_regular_durable = True
            for path in evicted:
                if path != last_ckpt:
                    self._remove(runner, path)
            self._flush_removals(runner, keep=bests)

        runner.save_checkpoint(
            self.out_dir,
            filename,
            meta=meta,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            checkpoint_io=self._io,
            after_write=after_write,
        )

    # ------------------------------------------------------------------ best checkpoints
    def _check_metrics_present(self, metrics: dict[str, Any]) -> None:
        missing = [k for k in self.key_indicators if k != "auto" and k not in metrics]
        if missing:
            raise KeyError(
                f"CheckpointHook(save_best={self.save_best!r}): validation did not report {missing}; "
                f"the reported metrics are {sorted(metrics)}. Log the metric in validation "
                f"(self.log(name, value)) or choose one of those names."
            )

    def _save_best_checkpoint(self, runner: RunnerView, metrics: dict[str, Any]) -> None:
        """MMEngine's best logic on the metrics every rank sees (the bridge gives all ranks rank 0's)."""
        if not self.save_best:
            return
        self._check_metrics_present(metrics)
        if runner.train_loop is None or self.out_dir is None:
            if not self._warned_standalone:
                self._warned_standalone = True
                runner.logger.info("save_best is skipped outside training (standalone validation).")
            return
        if self.by_epoch:
            ckpt_filename = self.filename_tmpl.format(runner.epoch)
            cur_type, cur_time = "epoch", runner.epoch
        else:
            ckpt_filename = self.filename_tmpl.format(runner.iter)
            cur_type, cur_time = "iter", runner.iter
        meta = {"epoch": runner.epoch, "iter": runner.iter}
        if "auto" in self.key_indicators:
            self._init_rule(self.rules, [next(iter(metrics))])
            self._log_auto_choice(runner, list(metrics))
        best_ckpt_updated = False
        for key, rule in zip(self.key_indicators, self.rules, strict=True):
            if self._update_best(runner, key, rule, metrics[key], ckpt_filename, meta, cur_time, cur_type):
                best_ckpt_updated = True
        # Re-save the regular checkpoint of this step so that it records the new best (MMEngine does).
        # Not for a validation inside an epoch (Lightning's val_check_interval): by epoch, this step
        # has no name of its own, and epoch_<n>.pth would get a later state; the epoch's end records it.
        if best_ckpt_updated and self.last_ckpt is not None and not self._inside_epoch(runner):
            self._resave_after_stage(runner, cur_time, meta)

    def _inside_epoch(self, runner: RunnerView) -> bool:
        """Whether, saving by epoch, this validation runs inside a training epoch rather than at its end."""
        return self.by_epoch and self._epoch_end_iter is not None and runner.iter != self._epoch_end_iter

    def _log_auto_choice(self, runner: RunnerView, reported: list[str]) -> None:
        """Say once, at the first validation, which metric ``save_best='auto'`` took and how it compares."""
        key, rule = self.key_indicators[0], self.rules[0]
        better = "higher" if rule == "greater" else "lower"
        runner.logger.info(
            f"save_best='auto' chose {key!r}, the first metric of this validation ({', '.join(reported)}), "
            f"with rule {rule!r}: a {better} value is better. Name the metric in save_best to choose another."
        )

    def _resave_after_stage(self, runner: RunnerView, step: int, meta: dict[str, Any]) -> None:
        """MMEngine's re-save after a new best, once every hook's ``after_val_epoch`` has run.

        MMEngine re-saves inside this hook's ``after_val_epoch`` (priority VERY_LOW), so
        the file misses what later hooks do with the same metrics (EarlyStoppingHook,
        LOWEST). Waiting for the end of the mount point puts the whole validation into
        the file; the mount points seen by hooks are in MMEngine's order all the same.
        """

        def resave() -> None:
            self._save_checkpoint_with_step(runner, step, meta)

        defer = getattr(runner, "call_after_stage", None)
        if callable(defer):
            defer(resave)
        else:
            resave()

    def _update_best(
        self,
        runner: RunnerView,
        key: str,
        rule: Optional[str],
        key_score: Any,
        ckpt_filename: str,
        meta: dict[str, Any],
        cur_time: int,
        cur_type: str,
    ) -> bool:
        """Save ``best_<key>_<ckpt_filename>`` when ``key_score`` strictly beats the recorded best.

        The previous best file is queued, not deleted: it goes once no durable
        resume point names it (after the regular re-save in :meth:`after_val`).
        """
        single = len(self.key_indicators) == 1
        score_key = "best_score" if single else f"best_score_{key}"
        ckpt_key = "best_ckpt" if single else f"best_ckpt_{key}"
        previous = self.best_ckpt_path if single else self.best_ckpt_path_dict.get(key)
        hub = runner.message_hub
        best_score = hub.get_info(score_key) if score_key in hub.runtime_info else self.init_value_map[str(rule)]
        if key_score is None or not self.is_better_than[key](key_score, best_score):
            return False
        hub.update_info(score_key, key_score)
        best_name = f"best_{key}_{ckpt_filename}".replace("/", "_")
        best_path = self._join(best_name)
        if single:
            self.best_ckpt_path = best_path
        else:
            self.best_ckpt_path_dict[key] = best_path
        hub.update_info(ckpt_key, best_path)
        if previous and previous != best_path:
            self._queue_removal(previous)
        bests = self._current_bests()

        def after_write() -> None:
            self._flush_removals(runner, keep=bests)

        runner.save_checkpoint(
            self.out_dir,
            best_name,
            meta=meta,
            save_optimizer=False,
            save_param_scheduler=False,
            checkpoint_io=self._io,
            after_write=after_write,
        )
        runner.logger.info(
            f"The best checkpoint with {key_score:0.4f} {key} at {cur_time} {cur_type} is saved to {best_name}."
        )
        return True

    # ------------------------------------------------------------------ publishing
    def _publish_model(self, runner: RunnerView, ckpt_path: str) -> None:
        """Write ``<stem>-<sha256(pickle of the filtered dict)[:8]>.pth`` with only ``published_keys`` (rank 0).

        Only this hook's own files are published, and they are read with
        ``weights_only=True``: publishing never unpickles code.
        """
        if runner.rank != 0:
            return
        assert self.published_keys is not None
        if not self.owns(ckpt_path):
            _warn(runner, f"CheckpointHook does not publish {ckpt_path!r}: it is not one of its files.")
            return
        try:
            if is_sharded_checkpoint(ckpt_path):  # a directory (ModelParallelStrategy): consolidated into one file
                checkpoint = read_sharded_checkpoint(ckpt_path)
            else:
                checkpoint = self._io.load_checkpoint(ckpt_path, weights_only=True)
        except pickle.UnpicklingError as exc:
            raise pickle.UnpicklingError(
                f"CheckpointHook does not publish {ckpt_path}: it holds more than tensors and plain data "
                "(weights_only=True refused it), so it is not the file this hook wrote. Nothing was unpickled."
            ) from exc
        keys = self._published_keys_of(runner, checkpoint, ckpt_path)
        final_path, removed = write_published(checkpoint, ckpt_path, keys, fsync=self._io.fsync)
        if removed:
            runner.logger.info(
                f"Key {removed} will be removed because they are not found in published_keys. "
                f"If you want to keep them, please set `{removed}` in published_keys"
            )
        runner.logger.info(f"The checkpoint ({ckpt_path}) is published to {final_path}.")

    def _published_keys_of(self, runner: RunnerView, checkpoint: Mapping[str, Any], ckpt_path: str) -> list[str]:
        """``published_keys`` as this checkpoint holds them: MMEngine's ``optimizer`` and
        ``param_schedulers`` are Lightning's ``optimizer_states`` and ``lr_schedulers``; a key it does
        not hold is named in a warning (MMEngine leaves it out without a word)."""
        assert self.published_keys is not None
        keys, missing = [], []
        for key in self.published_keys:
            held = key if key in checkpoint else _LIGHTNING_KEYS.get(key)
            if held is not None and held in checkpoint:
                keys.append(held)
            else:
                missing.append(key)
        if missing:
            _warn(
                runner,
                f"published_keys {missing} are not in {ckpt_path}, so the published file leaves them out; "
                f"the checkpoint holds {list(checkpoint)}",
            )
        return keys


# ---------------------------------------------------------------------- helpers
#: MMEngine's checkpoint keys and where a Lightning checkpoint holds the same state.
_LIGHTNING_KEYS = {"optimizer": "optimizer_states", "param_schedulers": "lr_schedulers"}


def _shown(keys: list[str]) -> Union[str, list[str]]:
    """``save_best`` as the user is likely to have written it: a single key as a string."""
    return keys[0] if len(keys) == 1 else keys


def _warn(runner: RunnerView, message: str) -> None:
    """A warning both in the run's log and as a Python warning, at the caller of the hook's method."""
    warn_during_run(runner.logger, message, stacklevel=3)


class _NamePatterns:
    """The file names this hook writes, as regular expressions built from ``filename_tmpl``.

    ``kind(name)`` is ``'regular'`` (``epoch_3.pth``), ``'best'``
    (``best_acc_epoch_3.pth``), ``'published'`` (``epoch_3-1a2b3c4d.pth``) or None.
    """

    def __init__(self, filename_tmpl: str) -> None:
        regular = _template_regex(filename_tmpl)
        best_tail = _template_regex(filename_tmpl.replace("/", "_"))
        self._regular = re.compile(f"^{regular}$")
        self._best = re.compile(f"^(?P<prefix>best_.+_){best_tail}$")
        self._published = re.compile(r"^(?P<stem>.+)-[0-9a-f]{8}\.pth$")

    def regular_step(self, name: str) -> Optional[int]:
        """The step of a regular checkpoint's name (``epoch_3.pth`` -> 3), or None."""
        match = self._regular.match(name)
        return int(match.group("step")) if match else None

    def best_prefix_and_step(self, name: str) -> Optional[tuple[str, int]]:
        """``('best_acc_', 3)`` for ``best_acc_epoch_3.pth``; None for other names."""
        match = self._best.match(name)
        return (match.group("prefix"), int(match.group("step"))) if match else None

    def kind(self, name: str) -> Optional[str]:
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            return None
        if self._regular.match(name):
            return "regular"
        if self._best.match(name):
            return "best"
        published = self._published.match(name)
        if published and self.kind(published.group("stem") + ".pth") in ("regular", "best"):
            return "published"
        return None


def _template_regex(template: str) -> str:
    """A regex matching ``template.format(n)`` for any non-negative int ``n``."""
    parts = []
    for literal, field, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(r"(?P<step>\d+)")
    return "".join(parts)
