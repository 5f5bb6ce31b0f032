"""The ``runner`` view that hooks receive: MMEngine's Runner attributes over a Lightning Trainer.

Hooks read counters, directories, the logger, the message hub, the model, the
optimizers, the schedulers and the dataloaders from here and never touch
Lightning's internals. Counters follow MMEngine's conventions (see
:class:`LoopState`), not Lightning's.
"""

from __future__ import annotations

import logging
import math
import os
import os.path as osp
import sys
import time
import warnings
from abc import ABCMeta
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from functools import partial
from operator import attrgetter
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Optional, Union

import torch

from . import _lightning
from .checkpoint_io import arm_auto_resume
from .errors import UnsupportedSamplerError
from .fileio import absolute_path, join_path
from .message_hub import MessageHub
from .state import UNBOUNDED, LoopState, RunContext

if TYPE_CHECKING:
    import lightning.pytorch as pl

    from .dispatch import HookList

__all__ = [
    "EpochBasedTrainLoopView",
    "IterBasedTrainLoopView",
    "LoaderView",
    "LoopState",
    "OptimWrapperView",
    "OptimizerView",
    "RunContext",
    "RunnerView",
    "TrainLoopView",
    "check_train_sampler",
    "get_logger",
    "recount_by_optimizer_steps",
    "recount_with_reloaded_data",
    "register_loop_views",
    "sync_loop_state",
]

LOGGER_NAME = "lightning_hooks"
_FORMAT = "%(asctime)s - lightning_hooks - %(levelname)s - %(message)s"
_DATEFMT = "%m/%d %H:%M:%S"


class _RunFormatter(logging.Formatter):
    """MMEngine's line format, shared by the terminal and the log file: a record is formatted once.

    The text is kept on the record for the next handler, and the date string is reused
    within one second (the format shows no finer time), so a line costs one format.
    """

    def __init__(self) -> None:
        super().__init__(_FORMAT, _DATEFMT)
        self._date: tuple[int, str] = (-1, "")  # (second, its date string), replaced as one object

    def formatTime(self, record: logging.LogRecord, datefmt: Optional[str] = None) -> str:
        if datefmt == _DATEFMT:
            return self.date_text(record.created)
        return super().formatTime(record, datefmt)

    def date_text(self, created: float) -> str:
        """``formatTime``'s text for a record created at ``created`` (``time.time()``), with our date format."""
        second = int(created)
        cached = self._date
        if cached[0] == second:
            return cached[1]
        date = time.strftime(_DATEFMT, self.converter(created))
        self._date = (second, date)
        return date

    def format(self, record: logging.LogRecord) -> str:
        cached = record.__dict__.get("_lh_text")
        if cached is not None and record.__dict__.get("_lh_formatter") is self:
            return cached
        text = super().format(record)
        record._lh_text, record._lh_formatter = text, self  # type: ignore[attr-defined]
        return text


_LINE_FORMATTER = _RunFormatter()


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time (pytest capture, notebooks)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


#: The methods a record goes through, as the classes hold them now, in one call that runs in C:
#: the logger's ``info`` and ``handle``; the handlers' ``handle``, ``emit``, ``format`` and ``flush``
#: (looked up on the classes used, so a patch on any of their bases is seen); the formatters' ``format``
#: (``_RunFormatter.format`` calls ``logging.Formatter.format``).
_logging_classes = partial(
    attrgetter(
        *(f"Logger.{name}" for name in ("info", "handle")),
        *(f"{kind}.{name}" for kind in ("Stdout", "File") for name in ("handle", "emit", "format", "flush")),
        "RunFormatter.format",
        "Formatter.format",
    ),
    SimpleNamespace(
        Logger=logging.Logger,
        Stdout=_StdoutHandler,
        File=logging.FileHandler,
        RunFormatter=_RunFormatter,
        Formatter=logging.Formatter,
    ),
)


#: As the classes held them when this module was imported: a patched method sends lines through logging.
_LOGGING_CLASSES = _logging_classes()


def _own_handlers(logger: logging.Logger) -> Optional[list[logging.Handler]]:
    """The logger's handlers when every one is the bridge's own, untouched; None otherwise.

    Own means: the stdout handler or an open log file handler that :func:`get_logger` added,
    with the shared formatter, no filters and no method replaced on the instance or the class.
    """
    handlers = logger.handlers
    if _logging_classes() != _LOGGING_CLASSES:
        return None
    for handler in handlers:
        attributes = handler.__dict__
        kind = type(handler)
        if kind is _StdoutHandler:
            if not attributes.get("_lh_stream"):
                return None
        elif kind is not logging.FileHandler or "_lh_file" not in attributes or attributes.get("stream") is None:
            return None
        filters = attributes.get("filters")
        if (
            (filters and (len(filters) != 1 or type(filters[0]) is not _OnceEachWarning))  # it passes INFO
            or attributes.get("formatter") is not _LINE_FORMATTER
            or "emit" in attributes  # a method replaced on the instance (probing a few names is
            or "handle" in attributes  # cheaper than a set operation over the whole dict)
            or "format" in attributes
            or "flush" in attributes
            or "filter" in attributes
        ):
            return None
    return handlers


def sync_loop_state(state: LoopState, trainer: pl.Trainer, max_steps: Optional[int] = None) -> None:
    """Take the epoch and iteration counts and the run's length from the Trainer.

    The counts are restored on resume, so the bridge takes them again when training starts. The
    lengths are :data:`~lightning_hooks.state.UNBOUNDED` where the Trainer sets no limit, and
    ``max_iters`` also while the training loader is not loaded yet (before ``before_train``,
    unless a hook asked for ``runner.train_dataloader``, which loads it). ``max_iters`` is the batches the fit
    trains: with ``max_steps`` it counts Lightning's optimizer steps in batches, including the
    step at each epoch's end under gradient accumulation, and with ``max_epochs`` too the
    limit reached first.
    """
    batches_done = _lightning.train_batches_processed(trainer)
    num_batches = trainer.num_training_batches
    limit = max_steps if max_steps is not None else trainer.max_steps  # the Trainer's own, when bridged
    steps: Optional[int] = int(limit) if limit and limit > 0 else None
    by_steps = (
        None if steps is None else _lightning.batches_for_steps(steps, num_batches, trainer.accumulate_grad_batches)
    )
    if state.by_epoch:
        state.epoch = trainer.current_epoch
        state.iter = batches_done
        max_epochs = trainer.max_epochs if trainer.max_epochs is not None else 0
        state.max_epochs = max_epochs if max_epochs >= 0 else UNBOUNDED  # -1: until stopped
        if state.max_epochs == UNBOUNDED:
            state.max_iters = UNBOUNDED
        elif num_batches != float("inf"):
            by_epochs = int(state.max_epochs * num_batches)
            state.max_iters = by_epochs if by_steps is None else min(by_epochs, by_steps)  # whichever ends first
        else:
            state.max_iters = by_steps if by_steps is not None else UNBOUNDED
    else:
        state.epoch = 0
        state.iter = batches_done
        state.max_epochs = 1
        state.max_iters = by_steps if by_steps is not None else UNBOUNDED


def recount_by_optimizer_steps(
    state: LoopState, trainer: pl.Trainer, batches_done: int, steps_per_batch: float
) -> None:
    """``max_iters`` under manual optimization bounded by ``max_steps``.

    ``max_steps`` counts every optimizer step, and the module takes any number per batch (two
    for a GAN's two optimizers), so the batches it leaves are counted at ``steps_per_batch``
    (the rate seen so far): ``batches_done`` plus the batches the steps left take, and with
    ``max_epochs`` too, the limit reached first. Once ``max_steps`` is reached the batch that
    reached it is the last (``max_iters == batches_done``), as MMEngine's loop knows its last one.
    """
    limit = trainer.max_steps
    if not limit or limit <= 0 or steps_per_batch <= 0:
        return
    steps_left = max(int(limit) - trainer.global_step, 0)
    last = batches_done + math.ceil(steps_left / steps_per_batch - 1e-9)
    epoch_batches = trainer.num_training_batches
    if state.by_epoch and state.max_epochs != UNBOUNDED and epoch_batches != float("inf"):
        last = min(last, int(state.max_epochs * epoch_batches))
    state.max_iters = last


def recount_with_reloaded_data(state: LoopState, trainer: pl.Trainer) -> None:
    """``max_iters`` again at the start of an epoch whose training data Lightning reloaded
    (``reload_dataloaders_every_n_epochs``): the batches done plus the epochs left at the new
    length, so it is exact by the last epoch. Epoch-based training with a known length only."""
    epoch_batches = trainer.num_training_batches
    if not state.by_epoch or state.max_epochs == UNBOUNDED or epoch_batches == float("inf"):
        return
    by_epochs = state.iter + int(epoch_batches) * (state.max_epochs - state.epoch)
    steps = trainer.max_steps
    if steps and steps > 0:
        left = _lightning.batches_for_steps(
            int(steps) - trainer.global_step, epoch_batches, trainer.accumulate_grad_batches
        )
        by_epochs = min(by_epochs, state.iter + left)
    state.max_iters = by_epochs


def warn_during_run(logger: Any, message: str, stacklevel: int = 2) -> None:
    """A problem found during a run: a warning in the run's log (and log file), and a Python
    warning, so that tests and users who filter warnings see it too. ``stacklevel`` as for
    :func:`warnings.warn`, counted from the caller of this function."""
    logger.warning(message)
    warnings.warn(message, UserWarning, stacklevel=stacklevel + 1)


def log_info(logger: Any, msg: str) -> None:
    """``logger.info(msg)``: the same bytes on the terminal and in the log file, for less work.

    When the package logger only has the bridge's own handlers (no filters, no handler of the
    user, pytest's or a library, no propagation to the root logger, no method of the logger,
    its handlers or its formatter replaced), the line is formatted once and written to each
    handler's stream under its lock, flushed as ``logging`` does. Otherwise (anything else
    listens, or ``logger`` is not a :class:`logging.Logger`) it is ``logger.info``.
    """
    handlers = None
    if type(logger) is logging.Logger and not (logger.propagate or logger.filters or logger.disabled):
        attributes = logger.__dict__
        if not ("info" in attributes or "handle" in attributes or "callHandlers" in attributes):
            handlers = _own_handlers(logger)
    if not handlers or logging.getLogRecordFactory() is not logging.LogRecord:
        logger.info(msg)
        return
    if not logger.isEnabledFor(logging.INFO):
        return
    now = time.time()
    date = _LINE_FORMATTER._date  # date_text(now), its cached case inline
    date_text = date[1] if date[0] == int(now) else _LINE_FORMATTER.date_text(now)
    text = f"{date_text} - lightning_hooks - {logging.getLevelName(logging.INFO)} - {msg}"
    for handler in handlers:
        if handler.level > logging.INFO:
            continue
        with handler.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            try:
                # _StdoutHandler.stream is sys.stdout at the time; a FileHandler keeps its stream
                stream = sys.stdout if type(handler) is _StdoutHandler else handler.__dict__["stream"]
                stream.write(text + handler.terminator)  # type: ignore[attr-defined]
                if stream and hasattr(stream, "flush"):  # StreamHandler.flush's test
                    stream.flush()
            except RecursionError:
                raise
            except Exception:
                handler.handleError(logger.makeRecord(logger.name, logging.INFO, "(unknown file)", 0, msg, (), None))


def get_logger(
    rank: Optional[int] = None, log_file: Optional[str] = None, log_level: Union[str, int, None] = None
) -> logging.Logger:
    """The package logger, printing MMEngine-style lines to stdout on rank 0 (warnings only elsewhere).

    The bridge configures it as a run starts (``rank``, ``log_level`` and the run's ``log_file``,
    a file handler on rank 0, removed by :func:`close_log_file`). Called without arguments it is
    returned as configured (INFO on rank 0 the first time), so a message said during a run does
    not undo the run's ``log_level``. As MMEngine's logger, each handler prints a warning message
    once per run.
    """
    logger = logging.getLogger(LOGGER_NAME)
    logger.propagate = False
    # logging.config.dictConfig(disable_existing_loggers=True) (Hydra's 'disabled' job logging, for
    # one) silences loggers created before it; the bridge owns this one and re-enables it per run.
    logger.disabled = False
    stream = next((h for h in logger.handlers if getattr(h, "_lh_stream", False)), None)
    if stream is None:
        stream = _StdoutHandler()
        stream._lh_stream = True  # type: ignore[attr-defined]
        stream.setFormatter(_LINE_FORMATTER)
        stream.addFilter(_OnceEachWarning())
        logger.addHandler(stream)
    elif rank is None and log_file is None and log_level is None:
        return logger
    level = log_level if isinstance(log_level, int) else logging.getLevelName(log_level or "INFO")
    stream.setLevel(level if not rank else max(level, logging.WARNING))  # other ranks: warnings at most
    logger.setLevel(min(level, logging.WARNING) if isinstance(level, int) else logging.INFO)
    if log_file is not None:
        for once in stream.filters:  # a new run: its warnings are new
            if isinstance(once, _OnceEachWarning):
                once.seen.clear()
        if not rank:
            os.makedirs(osp.dirname(log_file), exist_ok=True)
            handler = logging.FileHandler(log_file, mode="a", encoding="utf-8")
            handler._lh_file = log_file  # type: ignore[attr-defined]
            handler.setFormatter(_LINE_FORMATTER)
            handler.setLevel(level)
            handler.addFilter(_OnceEachWarning())
            logger.addHandler(handler)
    return logger


class _OnceEachWarning(logging.Filter):
    """Lets a WARNING message through once (MMEngine's ``FilterDuplicateWarning``); other levels always."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[Any] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        if record.msg in self.seen:
            return False
        self.seen.add(record.msg)
        return True


def close_log_file(log_file: Optional[str]) -> None:
    """Detach and close the file handler opened for ``log_file``."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if getattr(handler, "_lh_file", None) == log_file:
            logger.removeHandler(handler)
            handler.close()


class LoaderView:
    """A dataloader as the hooks see it: ``len()`` is the number of batches Lightning really runs.

    Attribute reads and writes (``dataset``, ``sampler``, ``_iterator``, ...) go
    to the wrapped DataLoader, so a hook written for MMEngine that switches the
    pipeline and resets ``_iterator`` (mmdet's ``PipelineSwitchHook``) reaches
    the loader Lightning iterates, persistent workers included. The runner
    returns the same view for the same loader.
    """

    _OWN = frozenset({"_loader", "_length"})

    def __init__(self, loader: Any, length: Callable[[], Any]) -> None:
        object.__setattr__(self, "_loader", loader)
        object.__setattr__(self, "_length", length)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._loader, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._loader, name)

    def __len__(self) -> int:
        n = self._length()
        if n is None or n == float("inf"):
            return len(self._loader)
        return int(n)

    def __iter__(self) -> Any:
        return iter(self._loader)

    def __getattr__(self, name: str) -> Any:
        if name in LoaderView._OWN:  # not yet set (copy/pickle): never recurse into the loader
            raise AttributeError(name)
        return getattr(self._loader, name)

    @property
    def loader(self) -> Any:
        """The wrapped DataLoader."""
        return self._loader

    @property
    def samplers_seeded_by_trainer(self) -> tuple[Any, ...]:
        """Samplers whose ``set_epoch`` the Trainer already calls before every epoch of ``fit``.

        Lightning's loops seed ``sampler`` and ``batch_sampler.sampler`` (its own
        DistributedSampler included); hooks must not seed those a second time.
        """
        batch_sampler = getattr(self._loader, "batch_sampler", None)
        found = (getattr(self._loader, "sampler", None), getattr(batch_sampler, "sampler", None))
        return tuple(sampler for sampler in found if sampler is not None)


def check_train_sampler(loader: Any) -> None:
    """Refuse MMEngine's ``InfiniteSampler``: its iterator never ends, so Lightning's epochs never end either.

    MMEngine's iteration-based configs pair it with ``IterBasedTrainLoop``; under
    Lightning the same run is a finite sampler plus ``Trainer(max_steps=N,
    max_epochs=-1)``, which re-iterates the loader as often as needed.
    """
    batch_sampler = getattr(loader, "batch_sampler", None)
    for sampler in (getattr(loader, "sampler", None), batch_sampler, getattr(batch_sampler, "sampler", None)):
        cls = type(sampler)
        if cls.__name__ == "InfiniteSampler" and cls.__module__.startswith("mmengine"):
            raise UnsupportedSamplerError(
                "The training DataLoader uses MMEngine's InfiniteSampler, whose iterator never ends, so a "
                "Lightning epoch would never end. Use a finite sampler instead: sampler=dict(type='DefaultSampler', "
                "shuffle=True) in an MMEngine dataloader config, or DataLoader(shuffle=True); for iteration-based "
                "training bound the Trainer with max_steps=N and max_epochs=-1 (Lightning starts a new pass over "
                "the data as often as needed)."
            )


class OptimizerView:
    """One optimizer as MMEngine's ``OptimWrapper`` shows it to hooks: ``runner.optim_wrapper[name]``
    when the module has several optimizers (MMEngine's ``OptimWrapperDict`` holds one wrapper each)."""

    __slots__ = ("optimizer",)

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    def get_lr(self) -> dict[str, list[float]]:
        """``{'lr': [...]}``, one entry per parameter group."""
        return {"lr": [group["lr"] for group in self.optimizer.param_groups if "lr" in group]}

    def get_momentum(self) -> dict[str, list[float]]:
        """``{'momentum': [...]}``: each group's momentum (Adam's beta1), 0 without one."""
        return {"momentum": [_momentum_of(group) for group in self.optimizer.param_groups]}

    def state_dict(self) -> Any:
        return self.optimizer.state_dict()

    def __repr__(self) -> str:
        return f"OptimizerView({type(self.optimizer).__name__})"


def _momentum_of(group: dict[str, Any]) -> Any:
    """A parameter group's momentum as MMEngine reads it: Adam's ``betas[0]``, else ``momentum``, else 0."""
    return group["betas"][0] if "betas" in group else group.get("momentum", 0)


class OptimWrapperView:
    """The part of MMEngine's OptimWrapper(Dict) that hooks use, over the Trainer's optimizers.

    ``get_lr()`` returns ``{'lr': [...]}`` for one optimizer and
    ``{'<i>.lr': [...]}`` for several, with one entry per parameter group.
    """

    def __init__(self, trainer: pl.Trainer) -> None:
        self._trainer = trainer
        #: The unwrapped optimizers while a training epoch runs (see :meth:`hold_for_epoch`), else None.
        self._held: Optional[list[torch.optim.Optimizer]] = None
        #: While a training epoch runs: ``(get_lr() key, first parameter group)`` per optimizer, so that a
        #: hook reading the learning rate every iteration can read ``group['lr']`` without a call.
        self.first_groups: Optional[tuple[tuple[str, dict[str, Any]], ...]] = None

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        """The Trainer's optimizers (unwrapped from Lightning's LightningOptimizer).

        In a ``fit`` they exist from ``before_train`` on: Lightning calls ``configure_optimizers``
        after ``before_run``. Reading them earlier is an error that says so (MMEngine builds its
        optimizer wrapper before ``before_run``), rather than an empty answer.
        """
        optimizers = self._trainer.optimizers
        if not optimizers and _fit_running(self._trainer):
            raise _not_created_yet("runner.optim_wrapper has no optimizers")
        return [_lightning.unwrap_optimizer(o) for o in optimizers]

    def hold_for_epoch(self) -> None:
        """Read the Trainer's optimizers once for the training epoch that starts.

        ``get_lr()`` runs every iteration; Lightning sets the optimizers up before training
        starts and keeps them, so within an epoch they are read once instead of through
        three Trainer properties per iteration.
        """
        held = self._held = self.optimizers
        first = [opt.param_groups[0] for opt in held if opt.param_groups]
        if len(first) == len(held) and all("lr" in group for group in first):
            names = ["lr"] if len(held) == 1 else [f"{i}.lr" for i in range(len(held))]
            self.first_groups = tuple(zip(names, first, strict=True))
        else:
            self.first_groups = None

    def release(self) -> None:
        """Read the Trainer's optimizers live again (training ended)."""
        self._held = None
        self.first_groups = None

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The optimizer, as MMEngine's ``OptimWrapper.optimizer``; with several, an ``AttributeError``
        (MMEngine's ``OptimWrapperDict`` has none) that says how to reach each."""
        optimizers = self.optimizers
        if len(optimizers) > 1:
            raise AttributeError(
                f"runner.optim_wrapper holds {len(optimizers)} optimizers (MMEngine's OptimWrapperDict, named "
                f"{self.keys()}): use runner.optim_wrapper['0'].optimizer, or iterate runner.optim_wrapper.items()"
            )
        return optimizers[0]

    @property
    def param_groups(self) -> Union[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """The optimizer's parameter groups; with several optimizers, ``{name: groups}`` as MMEngine's
        ``OptimWrapperDict`` gives them (names ``'0'``, ``'1'``, ... as in :meth:`get_lr`'s keys)."""
        optimizers = self.optimizers
        if len(optimizers) == 1:
            return optimizers[0].param_groups
        return {str(i): opt.param_groups for i, opt in enumerate(optimizers)}

    # -- MMEngine's OptimWrapperDict: one wrapper per optimizer, by name ------------------------------
    def keys(self) -> list[str]:
        """The optimizers' names: ``'0'``, ``'1'``, ... in ``configure_optimizers``'s order."""
        return [str(i) for i in range(len(self.optimizers))]

    def values(self) -> list[OptimizerView]:
        """A view of each optimizer, as MMEngine's ``OptimWrapperDict.values()`` gives its wrappers."""
        return [OptimizerView(opt) for opt in self.optimizers]

    def items(self) -> list[tuple[str, OptimizerView]]:
        """``(name, view)`` for each optimizer."""
        return list(zip(self.keys(), self.values(), strict=True))

    def __getitem__(self, name: str) -> OptimizerView:
        optimizers = self.optimizers
        if name not in self.keys():
            raise KeyError(f"runner.optim_wrapper has no optimizer {name!r}; its optimizers: {self.keys()}")
        return OptimizerView(optimizers[int(name)])

    def __contains__(self, name: object) -> bool:
        return name in self.keys()

    def __len__(self) -> int:
        return len(self.optimizers)

    def _per_optimizer(self, key: str) -> dict[str, list[Any]]:
        optimizers = self._held if self._held is not None else self.optimizers
        if len(optimizers) == 1:
            groups = optimizers[0].param_groups
            if len(groups) == 1:  # the usual case, without building a comprehension
                group = groups[0]
                return {key: [group[key]] if key in group else []}
            return {key: [g[key] for g in groups if key in g]}
        return {f"{i}.{key}": [g[key] for g in opt.param_groups if key in g] for i, opt in enumerate(optimizers)}

    def get_lr(self) -> dict[str, list[float]]:
        """Learning rates of every parameter group, keyed like MMEngine's."""
        optimizers = self._held
        if optimizers is not None and len(optimizers) == 1:  # training, one optimizer: read every iteration
            groups = optimizers[0].param_groups
            if len(groups) == 1 and "lr" in groups[0]:
                return {"lr": [groups[0]["lr"]]}
        return self._per_optimizer("lr")

    def get_momentum(self) -> dict[str, list[float]]:
        """Momentum (or Adam's beta1) of every parameter group."""
        result = {}
        for name, groups in self._per_optimizer_groups().items():
            result[name.replace("lr", "momentum")] = [_momentum_of(g) for g in groups]
        return result

    def _per_optimizer_groups(self) -> dict[str, list[dict[str, Any]]]:
        optimizers = self.optimizers
        if len(optimizers) == 1:
            return {"lr": optimizers[0].param_groups}
        return {f"{i}.lr": opt.param_groups for i, opt in enumerate(optimizers)}

    def state_dict(self) -> Any:
        """The optimizer state; with several optimizers ``{name: state}``, as MMEngine's ``OptimWrapperDict``."""
        optimizers = self.optimizers
        if len(optimizers) == 1:
            return optimizers[0].state_dict()
        return {str(i): o.state_dict() for i, o in enumerate(optimizers)}


def _not_created_yet(what: str) -> RuntimeError:
    """The error for reading optimizers or schedulers in a ``fit`` before Lightning created them."""
    return RuntimeError(
        f"{what} yet: Lightning creates the optimizers and schedulers from configure_optimizers after "
        "before_run (MMEngine builds them before it). Read them from before_train on."
    )


def _fit_running(trainer: pl.Trainer) -> bool:
    """Whether ``trainer.fit`` runs now (``trainer.state`` is public API)."""
    state = trainer.state
    return (
        str(getattr(state.fn, "value", state.fn)) == "fit"
        and str(getattr(state.status, "value", state.status)) == "running"
    )


class TrainLoopView:
    """What hooks read from MMEngine's ``runner.train_loop``; ``stop_training`` stops the Trainer.

    ``_epoch`` and ``_iter`` (MMEngine's counters, which its tests set) can be
    written while no training runs: the hooks then see them as ``runner.epoch``
    and ``runner.iter``. While ``fit`` runs, Lightning's loop owns the counters
    and a write raises. Any other attribute write raises too, so nothing a hook
    sets here is silently ignored.
    """

    __slots__ = ("_runner",)

    def __init__(self, runner: RunnerView) -> None:
        self._runner = runner

    @property
    def _epoch(self) -> int:
        return self._runner.epoch

    @_epoch.setter
    def _epoch(self, value: int) -> None:
        self._set_counter("epoch", value)

    @property
    def _iter(self) -> int:
        return self._runner.iter

    @_iter.setter
    def _iter(self, value: int) -> None:
        self._set_counter("iter", value)

    @property
    def _max_epochs(self) -> int:
        return self._runner.max_epochs

    @property
    def _max_iters(self) -> int:
        return self._runner.max_iters

    def _set_counter(self, name: str, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise TypeError(f"train_loop._{name} must be an int >= 0, got {value!r}")
        trainer = self._runner.trainer
        if _fit_running(trainer):
            raise RuntimeError(
                f"train_loop._{name} cannot be set while fit runs: Lightning's loop owns the {name} counter. "
                "Resume from a checkpoint (fit(ckpt_path=...)) or change the Trainer's max_epochs/max_steps instead."
            )
        setattr(self._runner._state, name, value)

    @property
    def stop_training(self) -> bool:
        """Whether training was asked to stop (here, or with Lightning's ``trainer.should_stop``)."""
        return bool(self._runner.trainer.should_stop) or self._runner._state.stop_requested

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        """Stop training where MMEngine's loops read the flag.

        * Epoch-based, asked while a training epoch runs: MMEngine reads it between epochs, so
          the epoch and its validation finish; the bridge sets ``trainer.should_stop`` then.
        * Iteration-based, asked inside an iteration: MMEngine reads it after the iteration (and
          its validation when one is due). The fit ends after this batch as if ``max_steps`` were
          reached here, without the extra validation Lightning runs for ``trainer.should_stop``.
        * Otherwise (before or between them): ``trainer.should_stop`` at once.
        """
        state, trainer = self._runner._state, self._runner.trainer
        if not value:
            if state.max_steps_before_stop is not None:  # asked in this iteration, taken back
                _lightning.restore_max_steps(trainer, state.max_steps_before_stop)
                state.max_steps_before_stop = None
            state.stop_requested = False
            trainer.should_stop = False
            return
        state.stop_requested = True
        if state.by_epoch and state.epoch_running:
            return  # applied when the epoch ends
        if not state.by_epoch and _fit_running(trainer) and _lightning.train_batch_running(trainer):
            if state.max_steps_before_stop is None:
                state.max_steps_before_stop = _lightning.end_fit_after_this_batch(trainer)
            return
        trainer.should_stop = True

    @property
    def epoch(self) -> int:
        return self._runner.epoch

    @property
    def iter(self) -> int:
        return self._runner.iter

    @property
    def max_epochs(self) -> int:
        return self._runner.max_epochs

    @property
    def max_iters(self) -> int:
        return self._runner.max_iters

    @property
    def dataloader(self) -> Any:
        return self._runner.train_dataloader

    @property
    def val_interval(self) -> Any:
        return self._runner.val_interval

    @property
    def val_begin(self) -> int:
        return self._runner.val_begin


class EpochBasedTrainLoopView(TrainLoopView):
    """``runner.train_loop`` in epoch-based training (see :func:`register_loop_views`)."""

    __slots__ = ()


class IterBasedTrainLoopView(TrainLoopView):
    """``runner.train_loop`` in iteration-based training (see :func:`register_loop_views`)."""

    __slots__ = ()


#: Whether the loop views are registered with MMEngine's loop classes (once MMEngine is imported).
_LOOP_VIEWS_REGISTERED = [False]


def register_loop_views() -> None:
    """Make ``isinstance(runner.train_loop, EpochBasedTrainLoop)`` (or ``IterBasedTrainLoop``) hold
    as under MMEngine's Runner, for hooks that choose their unit that way (mmpretrain's
    ``PreciseBNHook``, ``VisualizationHook``).

    This package never imports MMEngine: once a hook has (``mmengine.runner.loops`` is loaded),
    the views are registered as virtual subclasses of its loop classes, which are abstract base
    classes. Nothing else of MMEngine's changes.
    """
    if _LOOP_VIEWS_REGISTERED[0]:
        return
    loops = sys.modules.get("mmengine.runner.loops")
    if loops is None:
        return
    for name, view in (
        ("EpochBasedTrainLoop", EpochBasedTrainLoopView),
        ("IterBasedTrainLoop", IterBasedTrainLoopView),
    ):
        base = getattr(loops, name, None)
        if isinstance(base, ABCMeta):
            base.register(view)
    _LOOP_VIEWS_REGISTERED[0] = True


def _absent(name: str, hint: str) -> Any:
    """A read-only property for a Runner attribute with no counterpart: reading it is an ``AttributeError``
    (``hasattr`` is False) that says where its job is done.

    A property, not ``__getattr__``: a class with ``__getattr__`` takes the slow attribute path for
    every attribute, and hooks read the runner's counters every iteration.
    """

    def absent(self: Any) -> Any:
        raise AttributeError(f"runner.{name} (MMEngine's Runner) has no counterpart under Lightning: {hint}")

    return property(absent, doc=f"Not available: {hint}.")


def _read(path: str, doc: str) -> Any:
    """A read-only property that reads the dotted attribute ``path`` of the view.

    Its getter is :func:`operator.attrgetter`, which runs in C: hooks read counters, the
    message hub and the optimizers every iteration, and a Python getter per read would cost
    a frame each time.
    """
    return property(attrgetter(path), doc=doc)


#: MMEngine Runner attributes with no counterpart here, and where their job is done under Lightning.
_MMENGINE_ONLY = {
    "register_hook": "the hooks are the bridge's: pass them to HookBridge(custom_hooks=[...]) before the run",
    "register_hooks": "pass default_hooks and custom_hooks to HookBridge",
    "register_default_hooks": "pass default_hooks to HookBridge",
    "register_custom_hooks": "pass custom_hooks to HookBridge",
    "visualizer": "there is no Visualizer: LoggerHook writes the scalars (its vis_backends and the Trainer's "
    "loggers); draw images through the Trainer's logger (runner.trainer.logger)",
    "val_evaluator": "metrics are what the module logs in validation_step; hooks get them as after_val_epoch's metrics",
    "test_evaluator": "metrics are what the module logs in test_step; hooks get them as after_test_epoch's metrics",
    "val_loop": "Lightning runs validation: see runner.val_dataloader, runner.val_interval and runner.trainer",
    "test_loop": "Lightning runs testing: see runner.test_dataloader and runner.trainer",
    "launcher": "Lightning's strategy starts the processes: see runner.distributed, runner.rank, runner.world_size",
    "deterministic": "set Trainer(deterministic=...)",
    "load_checkpoint": "load weights with LoadFromHook, or resume with trainer.fit(ckpt_path=...) or "
    "HookBridge(resume=True)",
    "load_or_resume": "Lightning loads checkpoints: trainer.fit(ckpt_path=...) or HookBridge(resume=True)",
}


class RunnerView:
    """MMEngine's Runner, as far as hooks use it, over a Lightning Trainer.

    Counters (``epoch``, ``iter``, ``max_epochs``, ``max_iters``) follow
    MMEngine's loops; ``trainer`` gives the Trainer itself for anything else. A Runner
    attribute with no counterpart here is an ``AttributeError`` that says where its job is done.
    """

    def __init__(
        self,
        trainer: pl.Trainer,
        hooks: HookList,
        state: LoopState,
        run: RunContext,
        save_checkpoint: Callable[..., None],
    ) -> None:
        self.trainer = trainer
        self._hook_list = hooks
        self._state = state
        self._run = run
        self._save_checkpoint = save_checkpoint
        #: ``runner.train_loop``, indexed by ``by_epoch``.
        self._train_loop_views = (IterBasedTrainLoopView(self), EpochBasedTrainLoopView(self))
        self._optim_wrapper = OptimWrapperView(trainer)
        self._loader_views: dict[str, LoaderView] = {}

    # -- counters (read in C: hooks read them every iteration) ------------------------------
    epoch: int = _read(
        "_state.epoch", "Completed epochs while validating; the 0-based index of the running epoch while training."
    )
    iter: int = _read("_state.iter", "Training iterations (batches) completed before the current one.")
    max_epochs: int = _read("_state.max_epochs", "Epochs to train (1 in iteration-based training).")
    by_epoch: bool = _read(
        "_state.by_epoch", "False in iteration-based training (``max_steps`` with ``max_epochs=-1``)."
    )

    max_iters: int = _read(
        "_state.max_iters",
        "Iterations (batches) to train; -1 in ``before_run`` of epoch-based training unless a hook has "
        "read ``runner.train_dataloader`` (Lightning has not loaded the data yet).",
    )

    # -- loops -----------------------------------------------------------------------------
    @property
    def train_loop(self) -> Optional[TrainLoopView]:
        """The training loop view, or None outside ``fit``: an :class:`EpochBasedTrainLoopView` or an
        :class:`IterBasedTrainLoopView`, which pass ``isinstance`` for MMEngine's loop of that kind."""
        state = self._state
        if not state.has_train_loop:
            return None
        register_loop_views()
        return self._train_loop_views[state.by_epoch]

    _train_loop = train_loop  # MMEngine's attribute, which LogProcessor reads

    @property
    def val_interval(self) -> Any:
        """Epochs (epoch-based) or iterations (iteration-based) between validations.

        With a ``ValIntervalHook`` (``train_cfg.val_begin``/``dynamic_intervals``) it is
        MMEngine's interval in force for the current epoch or iteration.
        """
        schedule = self._val_schedule()
        if schedule is not None:
            step = (self._state.epoch if self._state.by_epoch else self._state.iter) + 1
            return schedule.interval_at(step)
        trainer = self.trainer
        if self._state.by_epoch:
            return trainer.check_val_every_n_epoch or 1
        if trainer.val_check_batch is None and isinstance(trainer.val_check_interval, int):
            return trainer.val_check_interval  # what Lightning sets val_check_batch to once the data is loaded
        return trainer.val_check_batch

    @property
    def val_begin(self) -> int:
        """First epoch or iteration that validates: a ``ValIntervalHook``'s ``val_begin``, else 1."""
        schedule = self._val_schedule()
        return schedule.val_begin if schedule is not None else 1

    def _val_schedule(self) -> Any:
        """The ``ValIntervalHook`` among the hooks, if any (it decides when Lightning validates)."""
        from .hooks.val_interval_hook import ValIntervalHook

        return next((hook for hook in self._hook_list.hooks if isinstance(hook, ValIntervalHook)), None)

    # -- run information --------------------------------------------------------------------
    @property
    def work_dir(self) -> str:
        """Absolute working directory (checkpoints, ``last_checkpoint``, logs)."""
        return self._run.work_dir

    @property
    def timestamp(self) -> str:
        """``%Y%m%d_%H%M%S`` at the start of the run (rank 0's, on every rank)."""
        return self._run.timestamp

    @property
    def log_dir(self) -> str:
        """``<work_dir>/<timestamp>``."""
        return osp.join(self.work_dir, self.timestamp)

    @property
    def experiment_name(self) -> str:
        """``<name>_<timestamp>``, or the timestamp when no name was given."""
        return self._run.experiment_name

    @property
    def logger(self) -> logging.Logger:
        """The package logger (stdout on rank 0 and ``<log_dir>/<timestamp>.log``)."""
        return logging.getLogger(LOGGER_NAME)

    @property
    def lightning_logged_names(self) -> AbstractSet[str]:
        """Names the module logs with ``self.log(..., logger=True)`` in the loop now logging (training's;
        evaluation's during ``after_val_epoch``/``after_test_epoch``): Lightning writes them to its own
        loggers itself, so LoggerHook does not write them there a second time (at other steps)."""
        return self._run.lightning_logged_names

    log_processor: Any = _read(
        "_run.log_processor", "The :class:`~lightning_hooks.logging.LogProcessor` that formats LoggerHook's lines."
    )

    message_hub: MessageHub = _read("_run.message_hub", "This run's :class:`MessageHub` (set before the view exists).")

    @property
    def seed(self) -> Optional[int]:
        """The seed given to ``lightning.seed_everything``, if any."""
        seed = os.environ.get("PL_GLOBAL_SEED")
        return int(seed) if seed is not None else None

    @property
    def cfg(self) -> None:
        """No config object exists under Lightning."""
        return None

    @property
    def _resume(self) -> bool:
        return self._run.resume

    @property
    def resume(self) -> bool:
        """Whether this ``fit`` resumed from a checkpoint (weights, optimizer and loop state)."""
        return self._resume

    @property
    def fast_dev_run(self) -> bool:
        """Whether the Trainer runs Lightning's ``fast_dev_run`` (a few batches to check the code:
        CheckpointHook then saves nothing, as Lightning's own checkpointing)."""
        return bool(getattr(self.trainer, "fast_dev_run", False))

    @property
    def hooks(self) -> list[Any]:
        """The hooks in execution order."""
        return self._hook_list.hooks

    def get_hooks_info(self) -> str:
        """MMEngine's per-stage table of the hooks (what the bridge logs at the start of a run)."""
        return self._hook_list.get_hooks_info()

    def save_checkpoint(
        self,
        out_dir: str,
        filename: str,
        file_client_args: Optional[dict[str, Any]] = None,
        save_optimizer: bool = True,
        save_param_scheduler: bool = True,
        meta: Optional[dict[str, Any]] = None,
        by_epoch: bool = True,
        backend_args: Optional[dict[str, Any]] = None,
        *,
        checkpoint_io: Any = None,
        after_write: Optional[Callable[[], None]] = None,
    ) -> None:
        """Write a Lightning checkpoint at ``out_dir/filename`` through ``trainer.save_checkpoint``.

        MMEngine's ``Runner.save_checkpoint``, with its arguments in its order. ``meta`` gets
        ``epoch`` and ``iter`` unless it has them: ``epoch + 1`` and ``iter`` with ``by_epoch``
        (the epoch that ends), ``epoch`` and ``iter + 1`` without. The file carries ``meta`` and
        the ``message_hub``; ``before_save_checkpoint`` fires while it is built. Collective under
        DDP: every rank must call it. ``out_dir`` may be an fsspec URL; ``file_client_args`` and
        ``backend_args`` (storage options) are refused by name rather than ignored.
        ``checkpoint_io`` and ``after_write`` are CheckpointHook's (an atomic writer, and what to do
        once the file is on disk).
        """
        if file_client_args is not None or backend_args is not None:
            name = "file_client_args" if file_client_args is not None else "backend_args"
            raise ValueError(
                f"runner.save_checkpoint: {name} is not supported; storage is chosen by out_dir, a local path "
                "or an fsspec URL (credentials as fsspec reads them, e.g. from the environment)"
            )
        if meta is None:
            meta = {}
        elif not isinstance(meta, dict):
            raise TypeError(f"meta should be a dict or None, but got {type(meta)}")
        meta = dict(meta)
        state = self._state
        meta.setdefault("epoch", state.epoch + 1 if by_epoch else state.epoch)
        meta.setdefault("iter", state.iter if by_epoch else state.iter + 1)
        self._save_checkpoint(
            join_path(out_dir, filename),
            meta=meta,
            save_optimizer=save_optimizer,
            save_param_scheduler=save_param_scheduler,
            checkpoint_io=checkpoint_io,
            after_write=after_write,
        )

    def call_after_stage(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once every hook has finished the mount point being called now.

        CheckpointHook uses it to write a checkpoint after all ``after_val_epoch``
        hooks, so the file holds every hook's reaction to the validation.
        """
        self._run.after_stage.append(fn)

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """Rank ``src``'s ``obj`` on every rank (collective under DDP; identity on one process)."""
        return self.trainer.strategy.broadcast(obj, src=src)

    def auto_resume(self) -> None:
        """MMEngine's ``resume=True`` for this ``fit``: load ``<work_dir>/last_checkpoint`` if it exists.

        Call it in ``before_run``; it has no effect when ``fit`` was given a ``ckpt_path``, nor when
        this ``fit`` auto-resumes already.
        """
        if self._run.auto_resume is None:
            self._run.auto_resume = arm_auto_resume(self.trainer, self.work_dir, self.logger)

    def resume_checkpoint(self) -> Optional[str]:
        """The checkpoint this ``fit`` resumes from, known from ``before_run`` on, or None for a fresh start.

        ``fit``'s ``ckpt_path``, or under auto-resume the file ``<work_dir>/last_checkpoint`` names
        (MMEngine's ``load_or_resume`` choice). Under auto-resume the first call reads that file on
        rank 0 and broadcasts it: call it on every rank. :attr:`resumed_from` says it once loaded.
        """
        path = _lightning.requested_ckpt_path(self.trainer)
        if path is None and self._run.auto_resume is not None:
            path = self._run.auto_resume()
        return str(path) if path is not None else None

    @property
    def resumed_from(self) -> Optional[str]:
        """The checkpoint this ``fit`` resumed from (Lightning's ``trainer.ckpt_path``), or None."""
        path = self.trainer.ckpt_path if self._resume else None
        return absolute_path(str(path)) if path is not None else None

    def call_hook(self, fn_name: str, **kwargs: Any) -> None:
        """Call ``fn_name`` on every hook that has it, in priority order (custom mount points work too)."""
        self._hook_list.call(fn_name, self, kwargs)

    # -- model and optimisation ----------------------------------------------------------
    @property
    def model(self) -> pl.LightningModule:
        """The LightningModule (already unwrapped from DDP)."""
        return self.trainer.lightning_module

    @property
    def model_name(self) -> str:
        """The model's class name, as MMEngine's ``runner.model_name``."""
        return type(self.model).__name__

    optim_wrapper: OptimWrapperView = _read("_optim_wrapper", "Access to the optimizers and their learning rates.")

    @property
    def param_schedulers(self) -> Optional[list[Any]]:
        """The LR schedulers of ``configure_optimizers``, each with a ``by_epoch`` attribute."""
        configs = getattr(self.trainer, "lr_scheduler_configs", None) or []
        if not configs:
            if not self.trainer.optimizers and _fit_running(self.trainer):
                raise _not_created_yet("runner.param_schedulers are not known")
            return None
        schedulers = []
        for config in configs:
            scheduler = config.scheduler
            if not hasattr(scheduler, "by_epoch"):
                try:
                    scheduler.by_epoch = config.interval == "epoch"
                except AttributeError:
                    pass
            schedulers.append(scheduler)
        return schedulers

    # -- data -------------------------------------------------------------------------------
    @property
    def train_dataloader(self) -> Optional[LoaderView]:
        """The training DataLoader; ``len()`` is the number of batches per epoch."""
        trainer = self.trainer
        loader = trainer.train_dataloader
        if loader is None and _fit_running(trainer):
            # Asked for before Lightning loads it (in before_run, as MMEngine's hooks may): load it now,
            # as Lightning's estimated_stepping_batches does, and take the run's length from it.
            _lightning.load_train_dataloader(trainer)
            sync_loop_state(self._state, trainer)
            loader = trainer.train_dataloader
        if loader is None:
            return None
        return self._loader_view("train", loader, lambda: trainer.num_training_batches)

    def _loader_view(self, kind: str, loader: Any, length: Callable[[], Any]) -> LoaderView:
        """One view per loader: ``runner.train_dataloader is runner.train_dataloader``."""
        view = self._loader_views.get(kind)
        if view is None or view.loader is not loader:
            view = self._loader_views[kind] = LoaderView(loader, length)
        return view

    @property
    def val_dataloader(self) -> Optional[LoaderView]:
        """The (first) validation DataLoader; ``len()`` is the number of batches run, over every
        validation DataLoader (hooks see one evaluation loop, as in MMEngine)."""
        return self._eval_loader("val", "num_val_batches")

    @property
    def test_dataloader(self) -> Optional[LoaderView]:
        """The (first) test DataLoader; ``len()`` is the number of batches run, over every test DataLoader."""
        return self._eval_loader("test", "num_test_batches")

    def _eval_loader(self, kind: str, count_attr: str) -> Optional[LoaderView]:
        """The first loader of ``kind``; asked for before Lightning loads them (in ``before_run``, as
        MMEngine's hooks may), they are loaded now through the loop that runs them."""
        loaders = getattr(self.trainer, f"{kind}_dataloaders")
        if loaders is None:
            _lightning.load_evaluation_dataloaders(self.trainer, kind)
            loaders = getattr(self.trainer, f"{kind}_dataloaders")
        if loaders is None:
            return None
        loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders

        def length() -> Any:
            counts = getattr(self.trainer, count_attr, None) or [None]
            return counts[0] if len(counts) == 1 else sum(counts)

        return self._loader_view(count_attr, loader, length)

    # -- distribution -----------------------------------------------------------------------
    @property
    def rank(self) -> int:
        """Global rank of this process."""
        return self.trainer.global_rank

    @property
    def world_size(self) -> int:
        """Number of processes."""
        return self.trainer.world_size

    @property
    def distributed(self) -> bool:
        """Whether more than one process trains."""
        return self.trainer.world_size > 1

    @property
    def device(self) -> torch.device:
        """The device this process computes on (the Trainer strategy's root device)."""
        return self.trainer.strategy.root_device


for _name, _hint in _MMENGINE_ONLY.items():
    setattr(RunnerView, _name, _absent(_name, _hint))

del _name, _hint
