"""ValIntervalHook: MMEngine's ``train_cfg.val_begin`` and ``dynamic_intervals`` on a Lightning Trainer.

MMEngine's training loops validate after epoch (or iteration) ``n`` when
``n >= val_begin`` and (``n % val_interval == 0`` or ``n`` is the last), where
``val_interval`` switches to ``dynamic_intervals``' value from each of its milestones on
(``[(milestone, interval), ...]``; the interval of step ``n`` is the one whose milestone is the
last <= ``n``). The loops update the interval right after step ``n`` for step ``n + 1``, before
deciding whether to validate after ``n``, so that decision already uses step ``n + 1``'s interval. Lightning has one fixed interval, so before every epoch (epoch-based) or
iteration (iteration-based) this hook sets the Trainer's ``check_val_every_n_epoch`` or
``val_check_batch`` so that Lightning validates exactly then.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

from ..registry import HOOKS
from .hook import DATA_BATCH, Hook

if TYPE_CHECKING:
    from ..runner import RunnerView

__all__ = ["ValIntervalHook"]


@HOOKS.register_module()
class ValIntervalHook(Hook):
    """Validate where MMEngine's loop would, given ``val_begin``, ``val_interval`` and ``dynamic_intervals``.

    Args:
        val_interval: the interval before the first milestone (``train_cfg.val_interval``).
        val_begin: the first epoch (iteration) that may validate.
        dynamic_intervals: ``[(milestone, interval), ...]`` in increasing milestone order.
    """

    priority = "VERY_HIGH"

    def __init__(
        self, val_interval: int = 1, val_begin: int = 1, dynamic_intervals: Optional[Sequence[Sequence[int]]] = None
    ) -> None:
        for name, value in (("val_interval", val_interval), ("val_begin", val_begin)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        milestones = [0]
        intervals = [val_interval]
        for pair in dynamic_intervals or []:
            if not (
                isinstance(pair, (list, tuple))
                and len(pair) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
            ):
                raise ValueError(f"dynamic_intervals must be (milestone, interval) pairs of int, got {pair!r}")
            milestones.append(pair[0])
            intervals.append(pair[1])
        if milestones != sorted(milestones):
            raise ValueError(f"dynamic_intervals milestones must increase, got {milestones[1:]}")
        if any(i < 1 for i in intervals):
            raise ValueError(f"dynamic_intervals intervals must be >= 1, got {intervals[1:]}")
        self.val_interval = val_interval
        self.val_begin = val_begin
        self.milestones = milestones
        self.intervals = intervals

    def interval_at(self, step: int) -> int:
        """The validation interval in force for epoch (iteration) ``step`` (1-based), as MMEngine decides it."""
        return self.intervals[bisect.bisect(self.milestones, step) - 1]

    def validates_after(self, step: int, last: int) -> bool:
        """Whether MMEngine validates after epoch (iteration) ``step`` of ``last`` (with the interval
        of ``step + 1``, which its loop has chosen by then)."""
        return step >= self.val_begin and (step % self.interval_at(step + 1) == 0 or step == last)

    def before_train_epoch(self, runner: RunnerView) -> None:
        """Epoch-based: validate after this epoch or not (``check_val_every_n_epoch``)."""
        if not runner.by_epoch:
            return
        step = runner.epoch + 1
        trainer = runner.trainer
        trainer.check_val_every_n_epoch = 1 if self.validates_after(step, runner.max_epochs) else step + 1

    def before_train_iter(self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        """Iteration-based: validate after this iteration or not (``val_check_batch``)."""
        if runner.by_epoch:
            return
        step = runner.iter + 1
        runner.trainer.val_check_batch = 1 if self.validates_after(step, runner.max_iters) else step + 1

    def __repr__(self) -> str:
        return (
            f"ValIntervalHook(val_interval={self.val_interval}, val_begin={self.val_begin}, "
            f"dynamic_intervals={list(zip(self.milestones[1:], self.intervals[1:], strict=True))})"
        )
