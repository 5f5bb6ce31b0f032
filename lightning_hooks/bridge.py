"""``HookBridge``: one Lightning callback that runs MMEngine-style hooks.

It holds the priority-ordered hooks and turns Lightning's callback events into
MMEngine's mount points, with MMEngine's order and counters:

* ``before_run`` in ``setup`` (so ``after_load_checkpoint`` follows it, as in MMEngine);
* ``after_train_epoch`` right after the epoch's last ``after_train_iter``,
  *before* Lightning runs that epoch's validation (Lightning's own
  ``on_train_epoch_end`` comes after validation);
* ``after_val_epoch(metrics)`` and ``after_val`` in ``on_validation_end``,
  where the module's epoch-end logging is complete;
* ``after_run`` in ``teardown``, or in ``on_exception`` when the run fails;
* nothing during Lightning's sanity-check validation.

Iteration-based training (MMEngine's IterBasedTrainLoop) is used when the
Trainer is bounded by ``max_steps`` with ``max_epochs=-1``.
"""

from __future__ import annotations

import os
import os.path as osp
import time
import weakref
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Optional, Union

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from . import _lightning
from . import bridge_checks as checks
from ._version import __version__
from .checkpoint_io import save_through_trainer, wait_for_snapshot_copies
from .config import OnUnsupported, bridge_kwargs_from_mmengine_config
from .dispatch import HookList, hook_type_error
from .fileio import absolute_path
from .hooks.checkpoint_hook import CheckpointHook
from .hooks.hook import Hook
from .hooks.runtime_info_hook import TAKEN_NAMES, warn_taken_name
from .logging.log_processor import LogProcessor, build_log_processor
from .message_hub import MessageHub
from .registry import to_plain
from .runner import (
    RunnerView,
    check_train_sampler,
    close_log_file,
    get_logger,
    recount_by_optimizer_steps,
    recount_with_reloaded_data,
    sync_loop_state,
    warn_during_run,
)
from .state import UNBOUNDED, LoopState, RunContext

__all__ = ["DEFAULT_HOOKS", "RESUME_KEY", "HookBridge", "MMEngineConfigHookBridge", "merge_default_hooks", "use_hooks"]

#: Top-level checkpoint key with the bridge's resume information (``validation_pending``).
RESUME_KEY = "lightning_hooks"

#: MMEngine's default hooks, in MMEngine's order (read-only: pass ``default_hooks`` to change them).
DEFAULT_HOOKS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "runtime_info": MappingProxyType({"type": "RuntimeInfoHook"}),
        "timer": MappingProxyType({"type": "IterTimerHook"}),
        "sampler_seed": MappingProxyType({"type": "DistSamplerSeedHook"}),
        "logger": MappingProxyType({"type": "LoggerHook"}),
        "param_scheduler": MappingProxyType({"type": "ParamSchedulerHook"}),
        "checkpoint": MappingProxyType({"type": "CheckpointHook", "interval": 1}),
    }
)

HookCfg = Union[Hook, dict[str, Any]]

#: Lightning's per-iteration callback events that the bridge does not use: Lightning is told to skip them.
UNUSED_PER_ITERATION_EVENTS = (
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
)


def merge_default_hooks(default_hooks: Optional[Mapping[str, Optional[HookCfg]]]) -> dict[str, HookCfg]:
    """Merge the user's ``default_hooks`` into :data:`DEFAULT_HOOKS` exactly as MMEngine does.

    A value replaces the whole default entry (no argument-level merge) and keeps
    its position; ``None`` removes the entry; a new key is appended.
    """
    merged: dict[str, HookCfg] = {name: dict(cfg) for name, cfg in DEFAULT_HOOKS.items()}
    if default_hooks is None:
        return merged
    if not isinstance(default_hooks, Mapping):
        raise TypeError(f"default_hooks must be a dict of name -> hook config, got {type(default_hooks).__name__}")
    for name, cfg in default_hooks.items():
        if cfg is None:
            if name not in merged:
                valid = ", ".join(DEFAULT_HOOKS)
                raise KeyError(
                    f"default_hooks[{name!r}] is None, but {name!r} is not a default hook; "
                    f"None can only remove one of: {valid}"
                )
            del merged[name]
        else:
            merged[name] = cfg if isinstance(cfg, Hook) else to_plain(cfg)
    checks.warn_second_default(merged, DEFAULT_HOOKS)
    return merged


class HookBridge(Callback):
    """Run MMEngine-style hooks inside a Lightning ``Trainer``.

    Args:
        default_hooks: overrides of the default hooks (``runtime_info``, ``timer``,
            ``sampler_seed``, ``logger``, ``param_scheduler``, ``checkpoint``),
            merged as MMEngine merges them: a value replaces the whole entry,
            ``None`` removes it, a new key adds a hook.
        custom_hooks: more hooks, as config dicts (``dict(type='EMAHook', priority='NORMAL')``)
            or Hook instances; their default priority is the class's (``NORMAL``).
        work_dir: the root of the run's output: checkpoints, ``last_checkpoint``, ``<timestamp>/`` logs,
            and Lightning's own output (its default logger and ``default_root_dir``) unless
            ``Trainer(default_root_dir=...)`` names another directory. Defaults to the Trainer's
            ``default_root_dir``; naming neither is an error (nothing is written into the current
            directory unless you name it, e.g. ``work_dir='.'``).
        experiment_name: prefix of the experiment name (``<name>_<timestamp>``).
        resume: MMEngine-style auto-resume from ``<work_dir>/last_checkpoint`` when ``fit``
            gets no ``ckpt_path``.
        log_level: level of the package logger.
        print_hooks_table: log the per-stage hooks table at the start of each run.
        validate_at_end: validate after the last epoch or iteration even when it is
            off the validation interval, as MMEngine's loops do (Lightning would not).
        log_processor: arguments of :class:`~lightning_hooks.logging.LogProcessor`
            (``window_size``, ``by_epoch``, ``custom_cfg``...), which formats LoggerHook's lines.
    """

    def __init__(
        self,
        default_hooks: Optional[dict[str, Any]] = None,
        custom_hooks: Optional[list[Any]] = None,
        work_dir: Optional[str] = None,
        experiment_name: Optional[str] = None,
        resume: bool = False,
        log_level: Union[str, int] = "INFO",
        print_hooks_table: bool = True,
        validate_at_end: bool = True,
        log_processor: Optional[Union[dict[str, Any], LogProcessor]] = None,
    ) -> None:
        super().__init__()
        checks.check_arguments(work_dir, experiment_name, resume, print_hooks_table, validate_at_end)
        self.work_dir = os.fspath(work_dir) if work_dir is not None else None
        self.experiment_name_prefix = experiment_name
        self.resume = resume
        self.log_level = checks.check_log_level(log_level)
        self.print_hooks_table = print_hooks_table
        self.validate_at_end = validate_at_end
        self._restore_val: dict[str, Any] = {}
        self.hook_list = HookList()
        for cfg in merge_default_hooks(default_hooks).values():
            self.hook_list.register(cfg)
        if custom_hooks is not None:
            if isinstance(custom_hooks, (Hook, Mapping, str)) or not isinstance(custom_hooks, Sequence):
                raise TypeError(
                    f"custom_hooks must be a list of hook configs or Hook instances, got {custom_hooks!r}; "
                    "e.g. custom_hooks=[dict(type='EMAHook')]"
                )
            for cfg in custom_hooks:
                self.hook_list.register(cfg)
        checks.refuse_second_ema(self.hook_list)
        self.hook_list.resolve_all()
        self.state = LoopState()
        self.message_hub: Optional[MessageHub] = None
        #: Each Trainer's message hub (see :meth:`_hub_for`); ``message_hub`` is the current run's.
        self._hubs: weakref.WeakKeyDictionary[pl.Trainer, MessageHub] = weakref.WeakKeyDictionary()
        self._log_processor_given = log_processor is not None
        #: This run's context (work dir, timestamp, names, message hub, log processor, resume), typed.
        self.runtime = RunContext(log_processor=build_log_processor(log_processor))
        self.runner: Optional[RunnerView] = None
        self._stage: Optional[str] = None
        self._run_open = False
        self._training_started = False
        #: Lightning's max_steps while a resume runs the validation pending after the last iteration.
        self._max_steps_after_pending: Optional[int] = None
        self._epoch_closed = True
        self._pending_save: Optional[dict[str, Any]] = None
        self._batch_end_counters: Optional[tuple[int, int]] = None
        self._resuming_before_validation = False
        self._resuming_after_epoch_end = True
        self._resuming_stop = False
        self._resuming_epoch_end = False
        #: True while an epoch stopped early is closed before its validation (see on_validation_start).
        self._closing_stopped_epoch = False
        self._step_values_seen: dict[str, Any] = {}  # the last self.log tensor seen per key (see _lightning)
        # Whether self.log values may come after on_train_batch_end here, and the names already named
        self._late_logging = False
        self._late_names_said: set[str] = set()
        self._wait_for_copies = False  # before each training batch (manual optimization)
        #: Manual optimization with ``max_steps``: ``(global_step, batches done)`` when this fit's training
        #: started, from which ``max_iters`` is counted (see :meth:`_recount_by_optimizer_steps`); else None.
        self._steps_counted_from: Optional[tuple[int, int]] = None
        self._named_twice: set[str] = set()  # keys given by training_step's dict and self.log, already reported
        self._taken_said: set[str] = set()  # training names shared with the default hooks', already reported
        self._check_logged_names = False  # check this epoch's self.log names at the next logged batch
        self._step_only_said: set[str] = set()  # evaluation values logged on step only, already reported
        #: Per epoch: whether a batch ends the epoch, and its ``self.log`` values (see _lightning).
        self._epoch_bound: Optional[_lightning.TrainBatchEndReader] = None
        #: The batch index hooks see in evaluation, counted over all of the epoch's dataloaders.
        self._eval_index = _lightning.EvalBatchIndex()
        # Lightning calls these every iteration; no MMEngine mount point corresponds to them.
        _lightning.skip_callback_events(self, UNUSED_PER_ITERATION_EVENTS)

    @classmethod
    def from_mmengine_config(
        cls,
        path_or_dict: Union[str, os.PathLike[str], Mapping[str, Any]],
        on_unsupported: OnUnsupported = "error",
        **overrides: Any,
    ) -> HookBridge:
        """Build a bridge from an MMEngine config's ``default_hooks``/``custom_hooks`` (``_base_`` merged).

        Hooks this package cannot run are reported by name with the reason (an error, or a
        warning with ``on_unsupported='warn'``); ``overrides`` win over the config. See
        :mod:`lightning_hooks.config`.

        Reading a config can execute code, as in MMEngine: a ``.py`` config, every ``.py``
        file among its ``_base_`` files (also the ``.py`` bases of a YAML or JSON config),
        and the modules ``custom_imports`` lists are run. Read only configs you trust; a
        YAML/JSON config with only YAML/JSON bases and no ``custom_imports`` is data.
        """
        kwargs = bridge_kwargs_from_mmengine_config(path_or_dict, on_unsupported)
        kwargs.update(overrides)
        return cls(**kwargs)

    # ------------------------------------------------------------------ public helpers
    @property
    def hooks(self) -> list[Hook]:
        """The hooks in execution order."""
        return self.hook_list.hooks

    def register_hook(self, hook: HookCfg, priority: Any = None) -> Hook:
        """Add a hook (config dict or instance) in priority order."""
        built = self.hook_list.register(hook, priority)
        try:
            checks.refuse_second_ema(self.hook_list)
        except ValueError:
            self.hook_list.remove(built)
            raise
        self.hook_list.resolve_all()
        return built

    def get_hooks_info(self) -> str:
        """MMEngine's per-stage table of the hooks."""
        return self.hook_list.get_hooks_info()

    def call_hook(self, fn_name: str, **kwargs: Any) -> None:
        """Fire a mount point (standard or custom) on the hooks, in priority order."""
        if self.runner is None:
            raise RuntimeError("call_hook needs a running Trainer: call it from inside fit/validate/test")
        self.hook_list.call(fn_name, self.runner, kwargs)

    def _call(self, stage: str, **kwargs: Any) -> None:
        self.hook_list.call(stage, self.runner, kwargs)
        if self.runtime.after_stage:
            self._run_after_stage()

    def _run_after_stage(self) -> None:
        """Run what hooks asked to do once every hook finished the mount point (``runner.call_after_stage``)."""
        pending, self.runtime.after_stage = self.runtime.after_stage, []
        for fn in pending:
            fn()

    # ------------------------------------------------------------------ run lifecycle
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        stage = getattr(stage, "value", stage)  # TrainerFn is a str enum; str() would give 'TrainerFn.FITTING'
        if stage not in ("fit", "validate", "test") or _lightning.tuner_trial(trainer):
            # predict has no MMEngine loop. Lightning's Tuner searches with callbacks of its own in a
            # fit, validate or test it then ends. Neither is a run of the hooks (no log directory, no
            # mount points), and a checkpoint loaded there is not a resume.
            self._stage, self.runner = None, None
            return
        self._stage = stage
        _lightning.load_sharded_directories_without_optimizer_state(trainer)
        if stage == "fit":
            checks.refuse_overlapping_callbacks(trainer, self.hook_list)
        self._prepare_runtime(trainer)
        try:
            self.runner = RunnerView(trainer, self.hook_list, self.state, self.runtime, self.save_checkpoint)
            if stage == "fit":
                self._configure_train_loop(trainer)
                sync_loop_state(self.state, trainer)  # max_epochs for before_run, as MMEngine's hooks see it
                checks.warn_overlapping_callbacks(trainer, self.hook_list)
                checks.warn_implicit_max_epochs(trainer, self.hook_list)
                hook_resumes = any(
                    isinstance(h, CheckpointHook) and h.resume for h in self.hook_list.find(CheckpointHook)
                )
                if self.resume or hook_resumes:
                    # Armed before before_run (CheckpointHook's resume too), so every hook there knows it.
                    self.runner.auto_resume()
            if self.print_hooks_table:
                self.runner.logger.info("Hooks will be executed in the following order:\n" + self.get_hooks_info())
        except BaseException:
            close_log_file(self.runtime.log_file)  # no run is open yet: on_exception will not close it
            raise
        self._run_open = True
        self._training_started = False
        self._call("before_run")

    def _prepare_runtime(self, trainer: pl.Trainer) -> None:
        """Work dir, timestamp (rank 0's), experiment name, message hub and log file for this run."""
        work_dir = self._output_root(trainer)
        timestamp = trainer.strategy.broadcast(time.strftime("%Y%m%d_%H%M%S", time.localtime()), src=0)
        name = f"{self.experiment_name_prefix}_{timestamp}" if self.experiment_name_prefix else timestamp
        self.message_hub = self._hub_for(trainer, name)
        log_file = osp.join(work_dir, timestamp, f"{timestamp}.log")
        run = self.runtime
        run.work_dir, run.timestamp, run.experiment_name = work_dir, timestamp, name
        run.message_hub, run.log_file, run.resume = self.message_hub, log_file, False
        run.auto_resume = None
        if trainer.is_global_zero:
            os.makedirs(work_dir, exist_ok=True)
        get_logger(trainer.global_rank, log_file, self.log_level)

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (spawned processes, deep copies), also after a ``fit``: the map of Trainers to hubs
        (weak references) and the runner view of the last run (a view of its Trainer; each run makes
        its own) stay behind; ``message_hub`` goes along."""
        state = self.__dict__.copy()
        state["_hubs"] = None
        state["runner"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._hubs = weakref.WeakKeyDictionary()

    def _hub_for(self, trainer: pl.Trainer, name: str) -> MessageHub:
        """The message hub of ``trainer``'s runs, made current; a new one for a Trainer's first run.

        A Trainer's second ``fit`` continues its loops, and its ``validate``/``test`` follow its
        training: they go on with its hub (best scores, kept checkpoints, histories). A new Trainer
        starts its counters at 0, as a new MMEngine Runner does, and with an empty hub, as that Runner
        does: another run's best score or checkpoint list must not decide what this one saves or
        deletes. A resumed run then gets the checkpoint's hub.
        """
        hub = self._hubs.get(trainer)
        if hub is None:
            hub = self._hubs[trainer] = MessageHub(name)
        else:
            hub.make_current()
        return hub

    def _configure_train_loop(self, trainer: pl.Trainer) -> None:
        """Choose epoch- or iteration-based counting from the Trainer's limits."""
        state = self.state
        state.by_epoch = not (trainer.max_epochs == -1 and trainer.max_steps is not None and trainer.max_steps > 0)
        state.has_train_loop = True
        state.iter_epoch_started = False
        if not self._log_processor_given:
            # MMEngine's configs pair IterBasedTrainLoop with LogProcessor(by_epoch=False); without an
            # explicit log_processor, follow the loop the Trainer's limits select.
            self.runtime.log_processor = build_log_processor({"by_epoch": state.by_epoch})
        self.runtime.resume = _lightning.requested_ckpt_path(trainer) is not None

    def _output_root(self, trainer: pl.Trainer) -> str:
        """The one directory this run writes under: ``work_dir``, else the Trainer's ``default_root_dir``.

        With ``work_dir`` given and no ``default_root_dir``, Lightning's own default output (its
        default logger, ``default_root_dir``) moves under ``work_dir`` too: one tree. Naming
        neither is an error, before anything is written: MMEngine's Runner requires a
        ``work_dir`` as well, and Lightning would otherwise fill the current directory.
        """
        named_root = _lightning.default_root_dir_named(trainer)
        if self.work_dir is not None:
            root = absolute_path(self.work_dir)
            if not named_root:
                left = _lightning.move_default_outputs(trainer, root)
                if left and trainer.is_global_zero:
                    get_logger().warning(
                        f"Lightning's default {', '.join(left)} had already written to {os.getcwd()}; it stays "
                        f"there. Pass Trainer(default_root_dir={self.work_dir!r}) to keep one output tree."
                    )
            return root
        if named_root:
            return osp.abspath(trainer.default_root_dir)
        _lightning.discard_default_outputs(trainer)
        raise ValueError(
            "HookBridge needs a directory for this run's checkpoints and logs, and none was named: pass "
            "HookBridge(work_dir=...) or Trainer(default_root_dir=...); Lightning's own logs go there too. "
            "Nothing is written into the current directory unless you name it (work_dir='.')."
        )

    def _close_run(self) -> None:
        if not self._run_open:
            return
        self._run_open = False
        if self.runner is not None:
            self.runner.optim_wrapper.release()
        try:
            self._call("after_run")
        finally:
            self.runtime.auto_resume = None  # this run's choice; a closure, which would keep the bridge from pickling
            close_log_file(self.runtime.log_file)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        try:
            if self._run_open and trainer.world_size > 1:
                # The bridge's last collective is a broadcast (the final evaluation's metrics);
                # a gloo process that exits right after a broadcast can abort (SIGABRT).
                # Meeting in a barrier first ends every rank's collectives together.
                trainer.strategy.barrier("lightning_hooks.teardown")
        finally:
            self._close_run()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # Lightning skips on_train_end and teardown on errors; MMEngine-style cleanup still runs.
        self._restore_max_steps(trainer)
        self._end_after_pending_validation(trainer)
        try:
            self._close_run()
        except Exception as secondary:  # never mask the original error
            get_logger().error(f"after_run failed while handling {exception!r}: {secondary!r}")

    # ------------------------------------------------------------------ training
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._run_open:
            _lightning.reload_train_data_after_restore(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._run_open and self._stage == "fit" and not self._training_started:
            self._train_nothing(trainer)

    def _train_nothing(self, trainer: pl.Trainer) -> None:
        """Lightning skipped its training loop (a resumed run that had already ended, no training batches).
        MMEngine's loops still call ``before_train`` and ``after_train`` (CheckpointHook publishes there),
        with the restored counters, and the iteration-based loop its one training epoch around them."""
        sync_loop_state(self.state, trainer)
        self._call("before_train")
        if not self.state.by_epoch:
            self._call("before_train_epoch")
            self._call("after_train_epoch")
        self._call("after_train")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._training_started = True
        self._epoch_bound = None
        self._late_logging = _lightning.logs_after_callback_batch_end(trainer, self)
        # Manual optimization: the batch may change parameters before (or without) an optimizer step,
        # which is all an async save's background copy otherwise waits for.
        self._wait_for_copies = not pl_module.automatic_optimization
        check_train_sampler(trainer.train_dataloader)
        sync_loop_state(self.state, trainer, max_steps=self._max_steps_after_pending)
        self._steps_counted_from = None
        if not pl_module.automatic_optimization and trainer.max_steps and trainer.max_steps > 0:
            # max_steps counts every optimizer step the module takes: until a batch has shown how
            # many it takes, each of its optimizers is taken to step once per batch.
            self._steps_counted_from = (trainer.global_step, self.state.iter)
            recount_by_optimizer_steps(self.state, trainer, self.state.iter, max(len(trainer.optimizers), 1))
        self.state.epoch_running = self.state.stop_requested = False
        if self.state.by_epoch and _lightning.restarts_inside_epoch(trainer):
            # Lightning calls no on_train_epoch_start for this epoch: it is open (its after_train_epoch
            # is to come, which a checkpoint saved in it records), and a stop asked before it ends waits.
            self.state.epoch_running = True
            self._epoch_closed = False
        self.state.max_steps_before_stop = None
        checks.warn_shared_validation_steps(trainer, self.hook_list, self.state.by_epoch)
        checks.warn_steps_shortened_by_epoch_ends(trainer, self.state.by_epoch)
        pending_validation = self._resuming_before_validation
        if self._resuming_before_validation:
            # The checkpoint was written in after_train_epoch/after_train_iter, before that step's
            # validation; Lightning runs that validation first. The epoch's after_train_epoch has run.
            self._resuming_before_validation = False
            # Lightning runs a restarted validation only when its interval says so; a final
            # validation the bridge added off the interval needs the same one-time relaxation.
            if self.validate_at_end:
                self._restore_val.update(_lightning.validate_after_this_batch(trainer, self.state.by_epoch))
            if self.state.by_epoch and self._resuming_after_epoch_end:
                self.state.epoch += 1
                self._epoch_closed = True
        if self._resuming_stop:
            self._resume_stop(trainer, pending_validation)
        self._call("before_train")
        if self._resuming_epoch_end:
            # Saved in the epoch's last batch, before its after_train_epoch (an iteration checkpoint):
            # Lightning resumes after that batch, so the epoch is closed first, as the saving run did.
            self._resuming_epoch_end = False
            if self.state.by_epoch:
                next_epoch_running = not pending_validation and _lightning.restarts_inside_epoch(trainer)
                if not pending_validation:  # the loop state counts the epoch finished already (no validation)
                    self.state.epoch -= 1
                self.state.epoch_running = True
                self._close_train_epoch()
                if next_epoch_running:
                    # Lightning runs the next epoch as a restarted one, without on_train_epoch_start:
                    # it starts here, as it did right after the save.
                    self._epoch_closed = False
                    self.state.epoch_running = True
                    self._call("before_train_epoch")
        self.hook_list.refresh()  # hooks know their settings for this fit now (see Hook.idle_stages)

    def _resume_stop(self, trainer: pl.Trainer, pending_validation: bool) -> None:
        """The interrupted run had been asked to stop (``runner.train_loop.stop_training``): stop where it
        would have. Epoch-based, after the epoch whose validation is pending (it ends first, as then);
        otherwise at once, before another epoch or iteration."""
        self._resuming_stop = False
        self.state.stop_requested = True
        if pending_validation and self.state.by_epoch:
            self.state.epoch_running = True  # applied when Lightning ends the epoch, after that validation
        else:
            trainer.should_stop = True

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_bound = None
        if self.runner is not None:
            self.runner.optim_wrapper.hold_for_epoch()
        if self.state.by_epoch:
            self._epoch_closed = False
            self.state.epoch_running = True
            if _lightning.reloads_train_data(trainer):
                recount_with_reloaded_data(self.state, trainer)
            self._call("before_train_epoch")
        elif not self.state.iter_epoch_started:
            self.state.iter_epoch_started = True
            self._call("before_train_epoch")

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # Per iteration the hooks are called here, as HookList.call calls them but with the keywords
        # spelled out: no frame for the loop and no dict to unpack (see HookList.tables).
        if self._late_logging or self._wait_for_copies:
            self._before_batch()
        state = self.state
        runner = self.runner
        index = batch_idx if state.by_epoch else state.iter
        hooks = self.hook_list
        method = None
        try:
            for method in hooks.tables.get("before_train_iter") or hooks.table("before_train_iter"):
                method(runner, batch_idx=index, data_batch=batch)
        except TypeError as exc:
            raise hook_type_error(exc, method) from exc
        if self.runtime.after_stage:
            self._run_after_stage()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        state = self.state
        reader = self._epoch_bound
        if reader is None:  # bound at the epoch's first batch, once its data and loops are set up
            reader = self._epoch_bound = self._bind_epoch(trainer)
            self._check_logged_names = True
            if isinstance(outputs, Mapping):
                self._check_taken_names(outputs)  # training_step's keys, once an epoch
        self._batch_end_counters = (state.epoch, state.iter)  # for a save in the hooks below
        try:
            if type(outputs) is dict and trainer.accumulate_grad_batches == 1:  # the usual case, without a call
                step_outputs: Any = outputs
            elif type(outputs) is torch.Tensor:
                step_outputs = {"loss": outputs.detach()}
            else:
                step_outputs = self._train_outputs(trainer, pl_module, outputs)
            progress = reader.progress  # reader.ends_epoch(), inline: no call per batch
            ends_epoch = progress.current.ready == reader.batches or progress.is_last_batch
            if ends_epoch and state.max_iters == UNBOUNDED and state.by_epoch and state.epoch + 1 == state.max_epochs:
                state.max_iters = state.iter + 1  # a loader without a length: the last iteration is this one
            if self._steps_counted_from is not None:
                self._recount_by_optimizer_steps(trainer)
            if reader.results:  # the module logged something with self.log
                logged = reader.logged()
                if logged:
                    step_outputs = self._with_logged_values(step_outputs, logged)
            runner = self.runner
            index = batch_idx if state.by_epoch else state.iter
            hooks = self.hook_list
            method = None
            try:  # as in on_train_batch_start
                for method in hooks.tables.get("after_train_iter") or hooks.table("after_train_iter"):
                    method(runner, batch_idx=index, data_batch=batch, outputs=step_outputs)
            except TypeError as exc:
                raise hook_type_error(exc, method) from exc
            if self.runtime.after_stage:
                self._run_after_stage()
            state.iter += 1
            if state.by_epoch and ends_epoch:
                self._close_train_epoch()
        finally:
            self._batch_end_counters = None
        # Training can only be finished once its last epoch closed or its last iteration ran.
        if (self._epoch_closed or state.iter == state.max_iters) and self._training_finished():
            if self._final_validation_added():
                self._ensure_final_validation(trainer)

    def _recount_by_optimizer_steps(self, trainer: pl.Trainer) -> None:
        """Manual optimization with ``max_steps``: ``max_iters`` at the optimizer steps per batch seen so far
        in this fit (see :func:`~lightning_hooks.runner.recount_by_optimizer_steps`); called once the
        batch's steps are taken, before its ``after_train_iter``."""
        assert self._steps_counted_from is not None
        first_step, first_batch = self._steps_counted_from
        batches_done = self.state.iter + 1
        steps, batches = trainer.global_step - first_step, batches_done - first_batch
        rate = steps / batches if steps > 0 else max(len(trainer.optimizers), 1)
        recount_by_optimizer_steps(self.state, trainer, batches_done, rate)

    def _before_batch(self) -> None:
        """What only some fits need before a training batch (see :meth:`on_train_start`)."""
        if self._late_logging:
            self._set_aside_late_values()
        if self._wait_for_copies:
            wait_for_snapshot_copies()

    def _set_aside_late_values(self) -> None:
        """Values logged after this callback's ``on_train_batch_end`` of the previous batch are not this batch's.

        Lightning calls callbacks' ``on_train_batch_end`` before the module's, so what the module
        (or a later callback) logs there came after ``after_train_iter`` read the batch. It is
        marked as seen, not passed on with the next batch, and its names are said once.
        """
        reader = self._epoch_bound
        if reader is None or not reader.results:
            return
        late = sorted(set(reader.logged()) - self._late_names_said)
        if late and self.runner is not None:
            self._late_names_said.update(late)
            warn_during_run(
                self.runner.logger,
                f"self.log values logged in on_train_batch_end after HookBridge's own ({', '.join(late)}), by the "
                "LightningModule or a callback listed after HookBridge, come after the hooks' after_train_iter "
                "(Lightning calls callbacks first): LoggerHook and the other hooks do not get them. Log them in "
                "training_step, or from a callback listed before HookBridge. Lightning's loggers still get them.",
            )

    def _bind_epoch(self, trainer: pl.Trainer) -> _lightning.TrainBatchEndReader:
        """Whether a batch ends the epoch, and its ``self.log`` values: bound once per epoch to Lightning's objects."""
        return _lightning.TrainBatchEndReader(
            trainer, self._step_values_seen, self.runtime.lightning_logged_names.training
        )

    def _validation_follows(self, trainer: pl.Trainer) -> bool:
        """Whether Lightning validates right after the batch whose ``on_train_batch_end`` is running.

        Asked only when a checkpoint is written there: a checkpoint written before
        that validation is marked so, and a resume from it runs the validation first.
        """
        if self._batch_end_counters is None or not trainer.enable_validation:
            return False
        if _lightning.validation_follows_batch(trainer):
            return True
        if not self._final_validation_added():
            return False
        epoch, iteration = self._batch_end_counters
        if self.state.by_epoch:
            return _lightning.train_epoch_batches_reached(trainer) and epoch + 1 == self.state.max_epochs
        return iteration + 1 == self.state.max_iters

    def _final_validation_added(self) -> bool:
        """Whether the bridge validates after the last epoch or iteration: ``validate_at_end``, unless that
        step comes before ``val_begin`` (MMEngine's loops never validate before it, the last step included)."""
        if not self.validate_at_end:
            return False
        state = self.state
        last = state.max_epochs if state.by_epoch else state.max_iters
        return self.runner is None or last < 0 or last >= self.runner.val_begin

    def _training_finished(self) -> bool:
        state = self.state
        if state.by_epoch:
            return self._epoch_closed and state.epoch == state.max_epochs
        return state.iter == state.max_iters

    def _ensure_final_validation(self, trainer: pl.Trainer) -> None:
        """Validate after the last epoch/iteration whatever the interval, as MMEngine's loops do.

        Lightning decides right after this hook whether to validate; the interval
        it reads is relaxed for this one decision and restored when validation
        starts (or when training ends).
        """
        if not trainer.enable_validation:
            return
        self._restore_val.update(_lightning.validate_after_this_batch(trainer, self.state.by_epoch))

    def _restore_val_settings(self, trainer: pl.Trainer) -> None:
        _lightning.restore_trainer_attributes(trainer, self._restore_val)
        self._restore_val.clear()

    @staticmethod
    def _train_outputs(trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any) -> Any:
        """``training_step``'s result as MMEngine's ``log_vars``: a dict whose ``loss`` is not divided by accumulation."""
        if type(outputs) is torch.Tensor or isinstance(outputs, torch.Tensor):
            return {"loss": outputs.detach()}
        if type(outputs) is dict or isinstance(outputs, Mapping):
            accumulate = trainer.accumulate_grad_batches
            loss = outputs.get("loss")
            if accumulate > 1 and isinstance(loss, torch.Tensor) and pl_module.automatic_optimization:
                outputs = dict(outputs)
                outputs["loss"] = loss * accumulate
        return outputs

    def _with_logged_values(self, outputs: Any, logged: dict[str, torch.Tensor]) -> dict[str, Any]:
        """``training_step``'s dict plus the step values logged with ``self.log`` in this batch.

        This is MMEngine's ``log_vars``: RuntimeInfoHook records each entry as ``train/<name>``,
        so it reaches the log lines, ``scalars.json`` and every backend. A name that is both a key
        of ``training_step``'s dict and a ``self.log`` name keeps the dict's value (one value per
        iteration in the message hub); the first time, a log line says so.
        """
        merged: dict[str, Any] = dict(outputs) if isinstance(outputs, Mapping) else {}
        if self._check_logged_names:  # once an epoch, as training_step's keys
            self._check_logged_names = False
            self._check_taken_names(logged)
        for name, value in logged.items():
            if name not in merged:
                merged[name] = value
            elif name not in self._named_twice:
                self._named_twice.add(name)
                get_logger().info(
                    f"{name!r} is both a key of training_step's output and a self.log name: hooks and the "
                    f"message hub (train/{name}) get training_step's value; self.log's still goes to "
                    "Lightning's loggers"
                )
        return merged

    def _check_taken_names(self, names: Any) -> None:
        """Warn once per name about a training value named like one the default hooks write (``time``, ``lr``...)."""
        taken = TAKEN_NAMES["train"]
        for name in sorted(n for n in names if n in taken and n not in self._taken_said):
            self._taken_said.add(name)
            warn_taken_name(get_logger(), "train", name)

    def _close_train_epoch(self) -> None:
        """``after_train_epoch``, then the epoch counter moves on (MMEngine's ``_epoch += 1``)."""
        self._epoch_closed = True
        self._call("after_train_epoch")
        self.state.epoch += 1

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._late_logging:
            self._set_aside_late_values()  # the epoch's last batch
        # An epoch cut short (max_steps, should_stop mid-epoch) still gets its after_train_epoch.
        if self.state.by_epoch and not self._epoch_closed:
            self._close_train_epoch()
        self._apply_stop_after_epoch(trainer)

    def _restore_max_steps(self, trainer: pl.Trainer) -> None:
        """The Trainer's own ``max_steps`` again, after a stop asked inside an iteration replaced it."""
        if self.state.max_steps_before_stop is not None:
            _lightning.restore_max_steps(trainer, self.state.max_steps_before_stop)
            self.state.max_steps_before_stop = None

    def _apply_stop_after_epoch(self, trainer: pl.Trainer) -> None:
        """A ``runner.train_loop.stop_training`` asked during the epoch takes effect now, as MMEngine's
        epoch-based loop reads it between epochs (see :class:`~lightning_hooks.runner.TrainLoopView`)."""
        state = self.state
        if state.epoch_running and state.stop_requested:
            trainer.should_stop = True
        state.epoch_running = False

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end_after_pending_validation(trainer)
        self._restore_val_settings(trainer)
        if self.state.max_steps_before_stop is not None:
            get_logger().info(
                f"runner.train_loop.stop_training: training ended after iteration {self.state.iter} "
                f"(Lightning reports it as max_steps={trainer.global_step} reached)"
            )
        self._restore_max_steps(trainer)
        if self.runner is not None:
            self.runner.optim_wrapper.release()
        if not self.state.by_epoch:
            self._call("after_train_epoch")
        self._call("after_train")

    # ------------------------------------------------------------------ validation and test
    def _evaluating(self, trainer: pl.Trainer) -> bool:
        return self._run_open and not trainer.sanity_checking

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Callbacks may swap weights into the model in place for validation (Lightning's WeightAveraging):
        # an async save's background copy of them finishes first.
        wait_for_snapshot_copies()
        self._restore_val_settings(trainer)
        if self._evaluating(trainer):
            if self._epoch_stops_here(trainer):
                self._close_stopped_epoch()
            self._call("before_val")

    def _epoch_stops_here(self, trainer: pl.Trainer) -> bool:
        """Whether this validation ends a training epoch cut short by ``trainer.should_stop``."""
        return (
            self._stage == "fit"
            and self.state.by_epoch
            and not self._epoch_closed
            and _lightning.validation_ends_training(trainer)
        )

    def _close_stopped_epoch(self) -> None:
        """``after_train_epoch`` before the validation Lightning runs when asked to stop mid-epoch.

        The epoch ends right after that validation, so it is validated as a finished epoch is in
        MMEngine: after ``after_train_epoch`` (a checkpoint of the epoch is written first) and
        under the epoch's number, not under the previous one's.
        """
        self._closing_stopped_epoch = True
        try:
            self._close_train_epoch()
        finally:
            self._closing_stopped_epoch = False

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._eval_index.reset()
        if self._evaluating(trainer):
            self._call("before_val_epoch")

    def on_validation_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self._evaluating(trainer):
            self._call("before_val_iter", batch_idx=self._eval_index(batch_idx, dataloader_idx), data_batch=batch)

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._evaluating(trainer):
            index = self._eval_index(batch_idx, dataloader_idx)
            self._call("after_val_iter", batch_idx=index, data_batch=batch, outputs=outputs)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._evaluating(trainer):
            self._call_after_eval_epoch(trainer, "after_val_epoch")
            self._call("after_val")
        self._end_after_pending_validation(trainer)

    def _end_after_pending_validation(self, trainer: pl.Trainer) -> None:
        """The Trainer's own ``max_steps`` again once the validation pending after the last iteration has
        run: Lightning then finds training done, as the interrupted run would have been."""
        if self._max_steps_after_pending is not None:
            _lightning.restore_max_steps(trainer, self._max_steps_after_pending)
            self._max_steps_after_pending = None

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._run_open:
            self._call("before_test")

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._eval_index.reset()
        if self._run_open:
            self._call("before_test_epoch")

    def on_test_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self._run_open:
            self._call("before_test_iter", batch_idx=self._eval_index(batch_idx, dataloader_idx), data_batch=batch)

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._run_open:
            index = self._eval_index(batch_idx, dataloader_idx)
            self._call("after_test_iter", batch_idx=index, data_batch=batch, outputs=outputs)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._run_open:
            self._call_after_eval_epoch(trainer, "after_test_epoch")
            self._call("after_test")

    def _call_after_eval_epoch(self, trainer: pl.Trainer, stage: str) -> None:
        """``after_val_epoch``/``after_test_epoch`` with the loop's metrics; meanwhile the names
        Lightning logs to its own loggers are the evaluation's (see :class:`~lightning_hooks.state.LightningLoggedNames`)."""
        names = self.runtime.lightning_logged_names
        step_only: set[str] = set()
        metrics = self._shared_metrics(trainer, names.evaluation, step_only)
        if trainer.is_global_zero:
            self._warn_step_only_evaluation_values(step_only)
        names.evaluating = True
        try:
            self._call(stage, metrics=metrics)
        finally:
            names.evaluating = False

    def _warn_step_only_evaluation_values(self, names: set[str]) -> None:
        """Once per name: an evaluation value logged with ``on_epoch=False`` has no epoch value for the hooks."""
        new = sorted(names - self._step_only_said)
        if not new:
            return
        self._step_only_said.update(new)
        warn_during_run(
            get_logger(),
            f"Evaluation values logged with on_epoch=False ({', '.join(new)}) have no epoch value: the hooks get "
            "the evaluation's epoch-level metrics (after_val_epoch/after_test_epoch, LoggerHook's line), as "
            "MMEngine's evaluator gives them, so these reach only Lightning's loggers. Log them with on_epoch=True "
            "for the hooks.",
        )

    @staticmethod
    def _shared_metrics(
        trainer: pl.Trainer, lightning_logged: Optional[set[str]] = None, step_only: Optional[set[str]] = None
    ) -> dict[str, Any]:
        """The evaluation metrics as global rank 0 has them, on every rank (MMEngine's evaluator broadcasts too).

        A metric logged on rank 0 only (``rank_zero_only=True``) or with values that
        differ between ranks then leads every rank to the same decisions, so no
        hook waits in a collective that another rank skips. ``lightning_logged`` receives the
        names Lightning writes to its own loggers (on this rank).
        """
        metrics = _lightning.evaluation_epoch_metrics(trainer, lightning_logged, step_only)
        if trainer.world_size > 1:
            metrics = trainer.strategy.broadcast(metrics, src=0)
        return metrics

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_meta(self) -> dict[str, Any]:
        """MMEngine's ``meta`` for a checkpoint Lightning writes now (ModelCheckpoint, ``trainer.save_checkpoint``).

        ``epoch`` and ``iter`` are the finished epochs and iterations of the state it holds, as in the
        hooks' own file of that state: MMEngine's resume reads them back (``train_loop._epoch =
        meta['epoch']``). Lightning saves between the bridge's mount points, where the counters already
        count the epoch or iteration that ended; ``runner.save_checkpoint``, called inside one, adds
        MMEngine's ``+ 1`` itself.
        """
        return {"epoch": self.state.epoch, "iter": self.state.iter}

    def save_checkpoint(
        self,
        filepath: str,
        meta: Optional[dict[str, Any]] = None,
        save_optimizer: bool = True,
        save_param_scheduler: bool = True,
        checkpoint_io: Any = None,
        after_write: Any = None,
    ) -> None:
        """Write a checkpoint through ``trainer.save_checkpoint`` with the given meta and contents.

        ``checkpoint_io`` (an :class:`~lightning_hooks.checkpoint_io.AtomicCheckpointIO`) writes
        it; ``after_write`` runs on rank 0 once the file is safely on disk.
        """
        if self.runner is None:
            raise RuntimeError("save_checkpoint needs a running Trainer")
        self._pending_save = {
            "meta": meta,
            "save_optimizer": save_optimizer,
            "save_param_scheduler": save_param_scheduler,
        }
        try:
            save_through_trainer(self.runner.trainer, filepath, checkpoint_io, after_write)
        finally:
            self._pending_save = None

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        pending = self._pending_save or {}
        meta = dict(pending["meta"]) if pending.get("meta") is not None else self.checkpoint_meta()
        if pending and not pending.get("save_optimizer", True):
            checkpoint.pop("optimizer_states", None)
        if pending and not pending.get("save_param_scheduler", True):
            checkpoint.pop("lr_schedulers", None)
        runner = self.runner
        meta.update(
            seed=runner.seed if runner is not None else None,
            experiment_name=self.runtime.experiment_name or None,
            time=time.strftime("%Y%m%d_%H%M%S", time.localtime()),
            lightning_hooks_version=__version__,
        )
        checkpoint["meta"] = meta
        val_pending = self._stage == "fit" and not trainer.validating and self._validation_follows(trainer)
        stopped = self._closing_stopped_epoch
        checkpoint[RESUME_KEY] = {
            "validation_pending": bool((val_pending or stopped) and "loops" in checkpoint),
            # whether that validation follows the epoch's end (else it runs inside the epoch)
            "epoch_closed": bool(self._epoch_closed or stopped),
            # a hook asked to stop (runner.train_loop.stop_training): a resume stops where this run would
            "stop_requested": bool(self.state.stop_requested),
            # saved in the epoch's last batch before after_train_epoch (an iteration checkpoint): a
            # resume closes the epoch first, as this run does right after the save
            "epoch_ends_here": bool(
                self.state.by_epoch
                and not self._epoch_closed
                and self._batch_end_counters is not None
                and _lightning.train_epoch_batches_reached(trainer)
            ),
        }
        if stopped and "loops" in checkpoint:
            # Saved in after_train_epoch of an epoch stopped early, before its validation: a resume
            # runs that validation, then the next epoch.
            _lightning.mark_stopped_epoch_validation_pending(checkpoint["loops"], trainer.num_training_batches)
        elif val_pending and "loops" in checkpoint:
            # Saved before this step's validation: a resume runs that validation first, so every
            # hook's reaction to it (best scores, early stopping, plateau schedulers) is exact.
            _lightning.mark_validation_pending(checkpoint["loops"])
        elif self.state.by_epoch and self._epoch_closed and "loops" in checkpoint:
            # Saved between our after_train_epoch and Lightning's end of the epoch: record the epoch
            # as finished, so fit(ckpt_path=...) starts the next epoch like MMEngine's resume does.
            _lightning.mark_epoch_finished(checkpoint["loops"])
        if self.message_hub is not None:
            checkpoint["message_hub"] = self.message_hub.state_dict()
        if self.runner is not None:
            self._call("before_save_checkpoint", checkpoint=checkpoint)

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self.runner is None:
            return
        resuming = self._stage == "fit"
        self.runtime.resume = resuming
        marker = checkpoint.get(RESUME_KEY)
        self._resuming_before_validation = (
            resuming and isinstance(marker, Mapping) and marker.get("validation_pending") is True
        )
        # Files of earlier versions do not say; their pending validations followed an epoch's end.
        self._resuming_after_epoch_end = not isinstance(marker, Mapping) or marker.get("epoch_closed", True) is True
        self._resuming_stop = resuming and isinstance(marker, Mapping) and marker.get("stop_requested") is True
        # Saved in the epoch's last batch before its after_train_epoch and before a validation: Lightning
        # resumes after that batch, so the epoch is closed first (whether or not this fit validates).
        self._resuming_epoch_end = (
            resuming
            and not self._resuming_after_epoch_end
            and isinstance(marker, Mapping)
            and marker.get("epoch_ends_here") is True
        )
        if self._resuming_before_validation and not self.state.by_epoch:
            self._max_steps_after_pending = _lightning.step_past_a_finished_run(trainer, checkpoint)
        if self._resuming_before_validation and not _lightning.fit_validates(trainer) and "loops" in checkpoint:
            # Saved before a validation this fit will not run: it goes on with the next epoch or batch.
            finish_epoch = self.state.by_epoch and (self._resuming_after_epoch_end or self._resuming_epoch_end)
            _lightning.drop_pending_validation(checkpoint["loops"], finish_epoch)
            self._resuming_before_validation = False
        if self.hook_list.table("after_load_checkpoint"):
            before = _identity(checkpoint.get("state_dict"))
            self._call("after_load_checkpoint", checkpoint=checkpoint)
            # Lightning loads the weights before callbacks see the checkpoint; MMEngine's hooks run
            # first and may rewrite state_dict (EMAHook does). Re-load what they left.
            if "state_dict" in checkpoint and _identity(checkpoint["state_dict"]) != before:
                pl_module.load_state_dict(checkpoint["state_dict"], strict=False)
        if resuming and self.message_hub is not None and "message_hub" in checkpoint:
            self.message_hub.load_state_dict(checkpoint["message_hub"])
        if resuming and "ema_state_dict" in checkpoint:
            checks.warn_ema_checkpoint_without_ema(self.hook_list)
        if resuming and RESUME_KEY in checkpoint:
            checks.fill_dropped_training_state(checkpoint)

    def state_dict(self) -> dict[str, Any]:
        """Plain-type state of every hook that has a ``state_dict`` method."""
        return {"hooks": {key: hook.state_dict() for key, hook in self._stateful_hooks().items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        hooks = self._stateful_hooks()
        for key, hook_state in state_dict.get("hooks", {}).items():
            if key in hooks:
                hooks[key].load_state_dict(hook_state)

    def _stateful_hooks(self) -> dict[str, Any]:
        """Hooks with state, keyed ``ClassName`` (``ClassName#k`` for the k-th repeat)."""
        keyed: dict[str, Any] = {}
        for hook in self.hook_list:
            if callable(getattr(hook, "state_dict", None)) and callable(getattr(hook, "load_state_dict", None)):
                base = type(hook).__name__
                key, k = base, 1
                while key in keyed:
                    key, k = f"{base}#{k}", k + 1
                keyed[key] = hook
        return keyed

    def __repr__(self) -> str:
        names = ", ".join(type(h).__name__ for h in self.hook_list)
        return f"HookBridge(hooks=[{names}])"


def _identity(state_dict: Any) -> Any:
    """What changes when a hook edits ``state_dict``: the dict, its entries, and each tensor's in-place
    version counter (``zero_()``, ``copy_()``, slice assignment keep the tensor but bump ``_version``)."""
    if not isinstance(state_dict, Mapping):
        return id(state_dict)
    return (
        id(state_dict),
        tuple((k, id(v), v._version if isinstance(v, torch.Tensor) else None) for k, v in state_dict.items()),
    )


def use_hooks(*hooks: HookCfg, runtime_info: bool = True, **bridge_kwargs: Any) -> HookBridge:
    """A bridge running just the given hooks: the way to use one hook on its own.

    ``Trainer(default_root_dir="work_dirs/ema", callbacks=[use_hooks(EMAHook(momentum=1e-3))])``
    runs the EMA hook and nothing else from MMEngine's defaults, except
    RuntimeInfoHook (it keeps the message hub that LoggerHook, CheckpointHook and
    others read); pass ``runtime_info=False`` to drop it too. As every bridge, it
    needs a directory: the Trainer's ``default_root_dir`` or ``work_dir=...``.
    """
    defaults: dict[str, Any] = {name: None for name in DEFAULT_HOOKS if not (runtime_info and name == "runtime_info")}
    return HookBridge(default_hooks=defaults, custom_hooks=list(hooks), **bridge_kwargs)


class MMEngineConfigHookBridge(HookBridge):
    """A :class:`HookBridge` whose hooks come from an MMEngine config file.

    For tools that build callbacks from a class and its arguments, such as LightningCLI::

        trainer:
          callbacks:
            - class_path: lightning_hooks.MMEngineConfigHookBridge
              init_args: {config: configs/my_cfg.py, on_unsupported: warn}

    (Hydra can call ``lightning_hooks.HookBridge.from_mmengine_config`` directly as ``_target_``.)

    Args:
        config: an MMEngine config file (``.py``, ``.json``, ``.yaml``); ``_base_`` files are merged
            as MMEngine merges them.
        on_unsupported: ``'error'`` raises listing the hooks this package cannot run; ``'warn'``
            leaves them out with a warning listing them.
        work_dir: overrides the config's ``work_dir``.
        experiment_name: overrides the config's ``experiment_name``.

    Reading the config can execute code (a ``.py`` config or ``.py`` base, ``custom_imports``):
    see :meth:`HookBridge.from_mmengine_config`.
    """

    def __init__(
        self,
        config: str,
        on_unsupported: OnUnsupported = "error",
        work_dir: Optional[str] = None,
        experiment_name: Optional[str] = None,
    ) -> None:
        kwargs = bridge_kwargs_from_mmengine_config(config, on_unsupported)
        overrides = {"work_dir": work_dir, "experiment_name": experiment_name}
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        super().__init__(**kwargs)
        self.config_path = os.fspath(config)
