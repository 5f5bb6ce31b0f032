"""The :class:`Hook` base class: MMEngine's mount points and helper predicates.

A hook overrides the mount points it needs; every other mount point is a
no-op that the bridge never calls (dispatch is resolved once per mount point).
The ``runner`` argument is a :class:`~lightning_hooks.runner.RunnerView`.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any, Optional, Union

from ..arguments import guard_init

if TYPE_CHECKING:
    from ..runner import RunnerView

__all__ = ["GENERIC_OVERRIDES", "STAGES", "Hook", "fires_at", "overridden_stages"]

DATA_BATCH = Optional[Union[dict, tuple, list]]

#: Mount points in MMEngine's order (the order of the hooks table).
STAGES: tuple[str, ...] = (
    "before_run",
    "after_load_checkpoint",
    "before_train",
    "before_train_epoch",
    "before_train_iter",
    "after_train_iter",
    "after_train_epoch",
    "before_val",
    "before_val_epoch",
    "before_val_iter",
    "after_val_iter",
    "after_val_epoch",
    "after_val",
    "before_save_checkpoint",
    "after_train",
    "before_test",
    "before_test_epoch",
    "before_test_iter",
    "after_test_iter",
    "after_test_epoch",
    "after_test",
    "after_run",
)

#: The generic methods, and the mount points whose default body calls them.
GENERIC_OVERRIDES: dict[str, tuple[str, ...]] = {
    "_before_epoch": ("before_train_epoch", "before_val_epoch", "before_test_epoch"),
    "_after_epoch": ("after_train_epoch", "after_val_epoch", "after_test_epoch"),
    "_before_iter": ("before_train_iter", "before_val_iter", "before_test_iter"),
    "_after_iter": ("after_train_iter", "after_val_iter", "after_test_iter"),
}


class Hook:
    """Base class of all hooks.

    ``priority`` (a :class:`~lightning_hooks.priority.Priority` name, member or
    int) decides the order among hooks at each mount point; lower runs first.
    """

    priority: Union[int, str] = "NORMAL"
    stages = STAGES

    def __init__(self) -> None:
        """A hook without arguments; an unknown keyword is a ``TypeError`` naming it."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every hook class rejects unknown keyword arguments at construction, naming the closest valid one.
        super().__init_subclass__(**kwargs)
        guard_init(cls)

    # -- whole-run mount points ----------------------------------------------------
    def before_run(self, runner: RunnerView) -> None:
        """Before anything else in ``fit``/``validate``/``test``."""

    def after_run(self, runner: RunnerView) -> None:
        """After everything else, also when the run failed with an exception."""

    def before_train(self, runner: RunnerView) -> None:
        """Before the first training epoch (after any checkpoint was restored)."""

    def after_train(self, runner: RunnerView) -> None:
        """After the last training epoch."""

    def before_val(self, runner: RunnerView) -> None:
        """Before a validation loop."""

    def after_val(self, runner: RunnerView) -> None:
        """After a validation loop."""

    def before_test(self, runner: RunnerView) -> None:
        """Before a test loop."""

    def after_test(self, runner: RunnerView) -> None:
        """After a test loop."""

    def before_save_checkpoint(self, runner: RunnerView, checkpoint: dict) -> None:
        """Before a checkpoint is written; ``checkpoint`` may be edited in place."""

    def after_load_checkpoint(self, runner: RunnerView, checkpoint: dict) -> None:
        """After a checkpoint was read; edits to ``checkpoint['state_dict']`` reach the model."""

    # -- epochs ----------------------------------------------------------------------
    def before_train_epoch(self, runner: RunnerView) -> None:
        """Before each training epoch."""
        self._before_epoch(runner, mode="train")

    def before_val_epoch(self, runner: RunnerView) -> None:
        """Before each validation epoch."""
        self._before_epoch(runner, mode="val")

    def before_test_epoch(self, runner: RunnerView) -> None:
        """Before each test epoch."""
        self._before_epoch(runner, mode="test")

    def after_train_epoch(self, runner: RunnerView) -> None:
        """After each training epoch, before that epoch's validation."""
        self._after_epoch(runner, mode="train")

    def after_val_epoch(self, runner: RunnerView, metrics: Optional[dict[str, float]] = None) -> None:
        """After each validation epoch; ``metrics`` holds what the module logged."""
        self._after_epoch(runner, mode="val")

    def after_test_epoch(self, runner: RunnerView, metrics: Optional[dict[str, float]] = None) -> None:
        """After each test epoch; ``metrics`` holds what the module logged."""
        self._after_epoch(runner, mode="test")

    # -- iterations ------------------------------------------------------------------
    def before_train_iter(self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        """Before each training iteration."""
        self._before_iter(runner, batch_idx=batch_idx, data_batch=data_batch, mode="train")

    def before_val_iter(self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        """Before each validation iteration."""
        self._before_iter(runner, batch_idx=batch_idx, data_batch=data_batch, mode="val")

    def before_test_iter(self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        """Before each test iteration."""
        self._before_iter(runner, batch_idx=batch_idx, data_batch=data_batch, mode="test")

    def after_train_iter(
        self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Optional[dict] = None
    ) -> None:
        """After each training iteration; ``outputs`` is what ``training_step`` returned, as a dict."""
        self._after_iter(runner, batch_idx=batch_idx, data_batch=data_batch, outputs=outputs, mode="train")

    def after_val_iter(
        self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Optional[Sequence] = None
    ) -> None:
        """After each validation iteration; ``outputs`` is what ``validation_step`` returned."""
        self._after_iter(runner, batch_idx=batch_idx, data_batch=data_batch, outputs=outputs, mode="val")

    def after_test_iter(
        self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Optional[Sequence] = None
    ) -> None:
        """After each test iteration; ``outputs`` is what ``test_step`` returned."""
        self._after_iter(runner, batch_idx=batch_idx, data_batch=data_batch, outputs=outputs, mode="test")

    # -- generic overrides (fire in train, val and test) ------------------------------
    def _before_epoch(self, runner: RunnerView, mode: str = "train") -> None:
        """Override to act before every epoch of every mode."""

    def _after_epoch(self, runner: RunnerView, mode: str = "train") -> None:
        """Override to act after every epoch of every mode."""

    def _before_iter(
        self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None, mode: str = "train"
    ) -> None:
        """Override to act before every iteration of every mode."""

    def _after_iter(
        self,
        runner: RunnerView,
        batch_idx: int,
        data_batch: DATA_BATCH = None,
        outputs: Optional[Union[Sequence, dict]] = None,
        mode: str = "train",
    ) -> None:
        """Override to act after every iteration of every mode."""

    # -- helpers (MMEngine's exact formulas) ------------------------------------------
    def every_n_epochs(self, runner: RunnerView, n: int, start: int = 0) -> bool:
        """Whether the epoch about to finish is ``start``, ``start + n``, ... (1-based; ``n, 2n, ...`` when start is 0)."""
        dividend = runner.epoch + 1 - start
        return dividend % n == 0 if dividend >= 0 and n > 0 else False

    def every_n_inner_iters(self, batch_idx: int, n: int) -> bool:
        """Whether ``batch_idx + 1`` is a multiple of ``n``."""
        return (batch_idx + 1) % n == 0 if n > 0 else False

    def every_n_train_iters(self, runner: RunnerView, n: int, start: int = 0) -> bool:
        """Like :meth:`every_n_epochs`, over training iterations."""
        dividend = runner.iter + 1 - start
        return dividend % n == 0 if dividend >= 0 and n > 0 else False

    def end_of_epoch(self, dataloader: Any, batch_idx: int) -> bool:
        """Whether ``batch_idx`` is the last batch of ``dataloader`` (False when the loader cannot tell its length)."""
        try:
            return batch_idx + 1 == len(dataloader)
        except TypeError:  # an IterableDataset without __len__: MMEngine raises here
            return False

    def is_last_train_epoch(self, runner: RunnerView) -> bool:
        """Whether the current epoch is the last one."""
        return runner.epoch + 1 == runner.max_epochs

    def is_last_train_iter(self, runner: RunnerView) -> bool:
        """Whether the current iteration is the last one."""
        return runner.iter + 1 == runner.max_iters

    def idle_stages(self) -> frozenset[str]:
        """Mount points this hook overrides but, as configured now, returns from at once.

        The bridge leaves them out of its dispatch tables, which it builds again when
        training starts (after ``before_train``), so a training iteration does not pay for
        calls that do nothing (``CheckpointHook(by_epoch=True)`` after each iteration, for
        one). The default is none; a hook that overrides this must return only stages whose
        call would have no effect at all.
        """
        return frozenset()

    def get_triggered_stages(self) -> list[str]:
        """The mount points this hook overrides, directly or through a generic method, in table order."""
        return overridden_stages(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# -- override detection (MMEngine keeps get_triggered_stages with the hook, too) ----------
_STAGE_TO_GENERIC = {stage: generic for generic, stages in GENERIC_OVERRIDES.items() for stage in stages}


def _overrides(hook: Any, name: str) -> bool:
    """Whether ``hook`` provides its own ``name`` (on its class or the instance)."""
    if name in vars(hook):
        return True
    own = getattr(type(hook), name, None)
    return own is not None and own is not getattr(Hook, name, None)


def fires_at(hook: Any, stage: str) -> bool:
    """Whether ``hook`` does something at ``stage``: it overrides it, or the generic method behind it.

    An object that is not a :class:`Hook` fires wherever it has a method of that name.
    """
    if not isinstance(hook, Hook):
        return hasattr(hook, stage)
    if _overrides(hook, stage):
        return True
    generic = _STAGE_TO_GENERIC.get(stage)
    return generic is not None and _overrides(hook, generic)


def dispatched_at(hook: Any, stage: str) -> bool:
    """Whether the dispatch tables call ``hook`` at ``stage``: it fires there and is not idle there now.

    A method set on the instance itself (``hook.after_train_iter = ...``) is always called, as
    MMEngine's ``call_hook`` calls it: ``idle_stages`` speaks of the class's methods.
    """
    if not fires_at(hook, stage):
        return False
    if stage in getattr(hook, "__dict__", ()):
        return True
    idle = getattr(hook, "idle_stages", None)
    return idle is None or stage not in _checked_idle_stages(hook, idle())


def _checked_idle_stages(hook: Any, idle: Any) -> AbstractSet[str]:
    """``hook.idle_stages()``'s answer, refused unless it is a set of the hook's mount-point names."""
    if not isinstance(idle, AbstractSet) or not all(isinstance(name, str) for name in idle):
        raise TypeError(f"{hook!r}.idle_stages() must return a set of mount-point names, got {idle!r}")
    valid = list(getattr(hook, "stages", STAGES))
    unknown = sorted(set(idle) - set(valid))
    if unknown:
        raise ValueError(f"{hook!r}.idle_stages() names unknown mount points {unknown}; valid: {valid}")
    return idle


def overridden_stages(hook: Any) -> list[str]:
    """Mount points at which ``hook`` does something, in MMEngine's table order."""
    return [stage for stage in STAGES if fires_at(hook, stage)]


guard_init(Hook)
