"""EarlyStoppingHook: stop training when a validation metric stops improving.

MMEngine's semantics: the rule ('greater'/'less') is inferred from the metric
name as CheckpointHook infers it; each validation checks, in order, a
non-finite score, the ``stopping_threshold``, then whether the score improved
by at least ``min_delta`` (an improvement of exactly ``min_delta`` counts);
``patience`` validations without improvement stop the run. Stopping sets
``runner.train_loop.stop_training``, which ends the Lightning ``fit`` cleanly
after the current validation (``trainer.should_stop``).

Differences from MMEngine, on purpose (state kept across resume, one decision for all DDP ranks,
nothing in a standalone validate/test): see ``docs/hooks/early_stopping_hook.md``.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any, Optional

import torch

from ..errors import TrainLoopError
from ..registry import HOOKS
from ..rules import RULES, infer_rule
from .hook import Hook

if TYPE_CHECKING:
    from ..runner import RunnerView

__all__ = ["EarlyStoppingHook", "Score", "infer_rule"]


class Score(float):
    """The best score: a float that also answers ``.item()``, as the tensor MMEngine keeps does."""

    def item(self) -> float:
        """The score as a plain float (what ``torch.Tensor.item()`` gives in MMEngine)."""
        return float(self)

    def __repr__(self) -> str:
        return float.__repr__(self)


def _as_float(name: str, value: Any) -> Score:
    """The monitored value as a :class:`Score`; a metric with several values is an error naming it."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"EarlyStoppingHook: metric {name!r} holds {value.numel()} values; monitor a single number"
            )
        return Score(value.detach().float().reshape(-1)[0])
    return Score(value)


@HOOKS.register_module()
class EarlyStoppingHook(Hook):
    """Stop training when the monitored metric has reached a plateau.

    Args:
        monitor: the metric key (as logged by the module in validation) to watch.
        rule: 'greater' or 'less'; None infers it from ``monitor``.
        min_delta: the smallest change that counts as an improvement (MMEngine's
            code default 0.1; its docstring says 0.01).
        strict: raise when ``monitor`` is missing from the metrics, instead of
            warning and skipping that validation.
        check_finite: stop when the metric becomes NaN or infinite.
        patience: validations without improvement after which training stops.
        stopping_threshold: stop as soon as the metric is better than this.
    """

    priority = "LOWEST"

    def __init__(
        self,
        monitor: str,
        rule: Optional[str] = None,
        min_delta: float = 0.1,
        strict: bool = False,
        check_finite: bool = True,
        patience: int = 5,
        stopping_threshold: Optional[float] = None,
    ) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"EarlyStoppingHook: monitor must be a metric name (a non-empty str), got {monitor!r}")
        if rule is not None and rule not in RULES:
            raise ValueError(
                f'EarlyStoppingHook: rule should be either "greater" or "less" (or None), but got {rule!r}'
            )
        for name, value in (("min_delta", min_delta), ("stopping_threshold", stopping_threshold)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise TypeError(f"EarlyStoppingHook: {name} must be a number, got {value!r}")
            if value is not None and value != value:  # NaN: no score compares with it, training would never stop
                raise ValueError(f"EarlyStoppingHook: {name} must be a number, got NaN")
        for name, value in (("strict", strict), ("check_finite", check_finite)):
            if not isinstance(value, bool):
                raise TypeError(f"EarlyStoppingHook: {name} must be True or False, got {value!r}")
        if min_delta < 0:
            raise ValueError(f"EarlyStoppingHook: min_delta must be >= 0 (the smallest improvement), got {min_delta!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStoppingHook: patience must be an int >= 0, got {patience!r}")
        self.monitor = monitor
        self.rule = rule if rule is not None else infer_rule(monitor)
        self.min_delta = float(min_delta) if self.rule == "greater" else -float(min_delta)
        self.strict = strict
        self.check_finite = check_finite
        self.patience = patience
        self.stopping_threshold = stopping_threshold
        self.wait_count = 0
        #: The best score so far: what ``after_val_epoch`` received, as a :class:`Score` (``.item()`` works).
        self.best_score: float = Score(-math.inf if self.rule == "greater" else math.inf)

    # ------------------------------------------------------------------ decision
    def _better(self, a: float, b: float) -> bool:
        return a > b if self.rule == "greater" else a < b

    def _check_stop_condition(self, score: float) -> tuple[bool, str]:
        """MMEngine's four checks, in its order; updates ``best_score``/``wait_count``."""
        if self.check_finite and not math.isfinite(score):
            return True, (
                f"Monitored metric {self.monitor} = {score} is infinite. Previous best value was {self.best_score:.3f}."
            )
        if self.stopping_threshold is not None and self._better(score, self.stopping_threshold):
            self.best_score = score
            return True, (
                f"Stopping threshold reached: `{self.monitor}` = {score} is {self.rule} than {self.stopping_threshold}."
            )
        if self._better(self.best_score + self.min_delta, score):
            self.wait_count += 1
            if self.wait_count >= self.patience:
                return True, (
                    f"the monitored metric did not improve in the last {self.wait_count} records. "
                    f"best score: {self.best_score:.3f}. "
                )
            return False, ""
        self.best_score = score
        self.wait_count = 0
        return False, ""

    # ------------------------------------------------------------------ mount points
    def before_run(self, runner: RunnerView) -> None:
        """Check that training can be stopped (only ``fit`` has a training loop)."""
        train_loop = runner.train_loop
        if train_loop is not None and not hasattr(train_loop, "stop_training"):
            raise TrainLoopError(
                "EarlyStoppingHook: `runner.train_loop` should contain a `stop_training` attribute, got "
                f"{type(train_loop).__name__}"
            )

    def after_val_epoch(self, runner: RunnerView, metrics: Optional[dict[str, float]] = None) -> None:
        """Decide whether to stop; under DDP every rank takes the same decision."""
        train_loop = runner.train_loop
        if train_loop is None:
            return
        metrics = metrics or {}
        stop, message = False, ""
        if self.monitor not in metrics:
            if self.strict:
                raise RuntimeError(
                    f"Early stopping conditioned on metric `{self.monitor}` is not available. Please check available "
                    f"metrics {sorted(metrics)}, or set `strict=False` in `EarlyStoppingHook`."
                )
            warnings.warn(
                f"Skip early stopping process since the evaluation results ({list(metrics)}) do not include "
                f"`monitor` ({self.monitor}).",
                UserWarning,
                stacklevel=2,
            )
        else:
            stop, message = self._check_stop_condition(_as_float(self.monitor, metrics[self.monitor]))
        if getattr(runner, "distributed", False) is True:
            own = stop
            stop = bool(runner.trainer.strategy.reduce_boolean_decision(stop, all=False))
            if stop and not own:
                message = "another rank decided to stop early."
        if stop:
            train_loop.stop_training = True
            runner.logger.info(message)

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Plain-type state saved in checkpoints: the best score and the validations waited so far."""
        return {
            "monitor": self.monitor,
            "rule": self.rule,
            "best_score": float(self.best_score),
            "wait_count": int(self.wait_count),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state saved by :meth:`state_dict`; a state for another metric or rule is ignored with a warning."""
        if state.get("monitor", self.monitor) != self.monitor or state.get("rule", self.rule) != self.rule:
            warnings.warn(
                f"EarlyStoppingHook: the checkpoint tracked {state.get('monitor')!r} ({state.get('rule')}), "
                f"this hook tracks {self.monitor!r} ({self.rule}); starting from scratch.",
                UserWarning,
                stacklevel=2,
            )
            return
        self.best_score = Score(state["best_score"])
        self.wait_count = int(state["wait_count"])

    def __repr__(self) -> str:
        return f"EarlyStoppingHook(monitor={self.monitor!r}, rule={self.rule!r}, patience={self.patience})"
