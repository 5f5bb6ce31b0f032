"""Weights & Biases runs, configured like MMEngine's ``WandbVisBackend``.

``wandb.init(**init_kwargs)`` (``dir`` defaults to ``save_dir``) happens at the
first write. MMEngine calls ``wandb.log(scalars, commit=commit)`` and drops the
step, because W&B's own step must only grow while MMEngine's validation steps
(epochs) are smaller than its training steps (iterations). This writer does the
same and also records MMEngine's step as the ``step`` entry of each row, so
charts can use it as their x-axis (``define_metric_cfg`` can declare that).
"""

from __future__ import annotations

import os
from typing import Any, Optional, Union

from .scalars import numeric_scalars

__all__ = ["WandbWriter"]


class WandbWriter:
    """Logs the tag's numbers to a W&B run.

    Args:
        save_dir: the default ``dir`` of ``wandb.init``.
        init_kwargs: keyword arguments of ``wandb.init`` (``project``, ``name``, ``mode``...).
        define_metric_cfg: ``{metric: summary}`` or a list of ``wandb.define_metric`` kwargs.
        commit: passed to ``wandb.log``.
    """

    def __init__(
        self,
        save_dir: str,
        init_kwargs: Optional[dict[str, Any]] = None,
        define_metric_cfg: Union[dict[str, str], list[dict[str, Any]], None] = None,
        commit: bool = True,
    ) -> None:
        if define_metric_cfg is not None and not isinstance(define_metric_cfg, (dict, list)):
            raise ValueError(f"define_metric_cfg must be a dict or a list of dicts, got {define_metric_cfg!r}")
        self.save_dir = save_dir
        self.init_kwargs = dict(init_kwargs or {})
        self.define_metric_cfg = define_metric_cfg
        self.commit = commit
        self._run: Any = None

    @property
    def experiment(self) -> Any:
        """The W&B run (started on first use)."""
        if self._run is None:
            import wandb

            os.makedirs(self.save_dir, exist_ok=True)
            kwargs = dict(self.init_kwargs)
            kwargs.setdefault("dir", self.save_dir)
            self._run = wandb.init(**kwargs)
            self._define_metrics()
        return self._run

    def _define_metrics(self) -> None:
        cfg = self.define_metric_cfg
        if isinstance(cfg, dict):
            for metric, summary in cfg.items():
                self._run.define_metric(metric, summary=summary)
        elif isinstance(cfg, list):
            for entry in cfg:
                self._run.define_metric(**entry)

    def add_scalars(self, scalars: dict[str, Any], step: int = 0, file_path: Optional[str] = None) -> None:
        """Log the numbers of ``scalars`` with ``step`` as a column."""
        values, _ = numeric_scalars(scalars)
        values.setdefault("step", step)
        self.experiment.log(values, commit=self.commit)

    def close(self) -> None:
        """Finish the run (writes the offline run files)."""
        if self._run is not None:
            self._run.finish()
            self._run = None
