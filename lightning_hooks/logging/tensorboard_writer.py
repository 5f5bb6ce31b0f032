"""TensorBoard event files, as MMEngine's ``TensorboardVisBackend`` writes them.

One ``add_scalar(name, value, step)`` per numeric entry of the tag; entries
that are not numbers are skipped with a warning. The ``SummaryWriter`` is
created at the first write, so a run that logs nothing leaves no event file.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from .scalars import numeric_scalars

__all__ = ["TensorboardWriter"]


class TensorboardWriter:
    """Writes the tag's numbers to ``save_dir`` through ``torch.utils.tensorboard.SummaryWriter``."""

    def __init__(self, save_dir: str) -> None:
        self.save_dir = save_dir
        self._writer: Any = None

    @property
    def experiment(self) -> Any:
        """The ``SummaryWriter`` (created on first use)."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(self.save_dir)
        return self._writer

    def add_scalars(self, scalars: dict[str, Any], step: int = 0, file_path: Optional[str] = None) -> None:
        """One scalar event per numeric entry at ``step`` (``file_path`` is for JSON writers only)."""
        if "step" in scalars:
            raise ValueError("pass the step as the step argument, not as a 'step' entry of the scalars")
        values, skipped = numeric_scalars(scalars)
        if skipped:
            # at run time: the run's logger (rank-aware, also in the log file), not a Python warning
            logging.getLogger("lightning_hooks").warning(f"TensorBoard accepts numbers only; skipped {skipped}")
        writer = self.experiment
        for name, value in values.items():
            writer.add_scalar(name, value, step)

    def close(self) -> None:
        """Flush and close the event file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
