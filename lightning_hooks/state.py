"""The state one run shares between the bridge (which writes it) and the runner view (which reads it).

:class:`LoopState` holds MMEngine's loop counters; :class:`RunContext` what a
run is (its directories, names, message hub, log processor, whether it resumed).
Both are plain dataclasses: the bridge owns them and fills them in as the run
starts; :class:`~lightning_hooks.runner.RunnerView` gives them to hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from .logging.log_processor import LogProcessor
    from .message_hub import MessageHub

__all__ = ["UNBOUNDED", "LightningLoggedNames", "LoopState", "RunContext"]

#: ``max_epochs``/``max_iters`` of a training the Trainer does not bound: ``max_epochs=-1`` without
#: ``max_steps`` (Lightning's "until stopped"), or iterations of a loader that cannot tell its length.
UNBOUNDED = -1


@dataclass
class LoopState:
    """MMEngine's loop counters, kept by the bridge.

    ``epoch`` is 0-based while an epoch runs and is incremented right after
    ``after_train_epoch``, so validation sees the number of completed epochs.
    ``iter`` counts batches (not optimizer steps) and is incremented right after
    ``after_train_iter``. In iteration-based training ``epoch`` stays 0. ``max_epochs`` and
    ``max_iters`` are :data:`UNBOUNDED` where the Trainer sets no limit.
    """

    by_epoch: bool = True
    epoch: int = 0
    iter: int = 0
    max_epochs: int = 0
    max_iters: int = 0
    #: Whether this bridge has run ``fit`` (then ``runner.train_loop`` exists, as in MMEngine's Runner).
    has_train_loop: bool = False
    #: Iteration-based training: whether the one ``before_train_epoch`` has fired.
    iter_epoch_started: bool = False
    #: Epoch-based training: whether a training epoch runs (from its start to Lightning's end of it,
    #: after its validation), when MMEngine's loop would not read ``stop_training``.
    epoch_running: bool = False
    #: Whether ``runner.train_loop.stop_training`` was asked in this ``fit`` (and not taken back).
    stop_requested: bool = False
    #: Iteration-based training: the ``max_steps`` a stop asked inside a batch replaced, or None.
    max_steps_before_stop: Optional[int] = None


class LightningLoggedNames(AbstractSet[str]):
    """The names the module's ``self.log`` sends to Lightning's own loggers itself, for the loop now logging.

    Training's names (step-level ``self.log`` in ``training_step``) and evaluation's (epoch-level
    ``self.log`` in validation) are kept apart: a name validation logs (``loss``, say) must not keep
    training's own ``loss`` series from Lightning's loggers. The set reads as evaluation's while
    :attr:`evaluating` is set (the bridge sets it around ``after_val_epoch``), as training's otherwise.
    """

    def __init__(self) -> None:
        self.training: set[str] = set()
        self.evaluation: set[str] = set()
        self.evaluating = False

    def _current(self) -> set[str]:
        return self.evaluation if self.evaluating else self.training

    def __contains__(self, name: object) -> bool:
        return name in self._current()

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())


@dataclass
class RunContext:
    """What one ``fit``/``validate``/``test`` run is; set by the bridge in ``setup``.

    Read-only item access (``context["timestamp"]``) is kept for code written
    against the earlier dict.
    """

    log_processor: LogProcessor
    work_dir: str = ""
    timestamp: str = ""
    experiment_name: str = ""
    message_hub: Optional[MessageHub] = None
    log_file: Optional[str] = None
    #: Whether this ``fit`` resumed from a checkpoint (weights, optimizer and loop state).
    resume: bool = False
    #: Set when this ``fit`` auto-resumes (``resume=True``): called, it gives the checkpoint that
    #: ``<work_dir>/last_checkpoint`` names, or None (see :func:`~lightning_hooks.checkpoint_io.arm_auto_resume`).
    auto_resume: Optional[Callable[[], Optional[str]]] = None
    #: What hooks asked to run once the current mount point has finished (``runner.call_after_stage``).
    after_stage: list[Callable[[], None]] = field(default_factory=list)
    #: Names the module's ``self.log`` sends to Lightning's own loggers itself (``logger=True``).
    lightning_logged_names: LightningLoggedNames = field(default_factory=LightningLoggedNames)

    def __getitem__(self, key: str) -> Any:
        if key not in _FIELD_NAMES:
            raise KeyError(f"{key!r}: a run context has {', '.join(sorted(_FIELD_NAMES))}")
        return getattr(self, key)


_FIELD_NAMES = frozenset(f.name for f in fields(RunContext))
