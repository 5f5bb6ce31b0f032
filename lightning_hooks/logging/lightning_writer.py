"""Forwarding of LoggerHook's scalars to the Lightning loggers attached to the Trainer.

It calls ``logger.log_metrics(scalars, step)`` directly (as Lightning's
``LearningRateMonitor`` does), so TensorBoardLogger, WandbLogger, CSVLogger or
any other logger receive MMEngine's scalars with MMEngine's steps, independent
of Lightning's ``log_every_n_steps``.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Optional

from .scalars import numeric_scalars

__all__ = ["LightningLoggersWriter"]


class LightningLoggersWriter:
    """Sends the tag's numbers to each of ``loggers`` (Lightning ``Logger`` objects).

    ``skip`` names values Lightning already writes to these loggers itself (the module's
    ``self.log`` values): written again at MMEngine's steps they would form a second,
    interleaved series under the same name. It may grow while the run goes on. ``epoch`` is
    never sent: Lightning writes its own (0-based) beside every value it logs, and MMEngine's
    (1-based) stays in the hook's own backends.
    """

    def __init__(self, loggers: Sequence[Any], skip: AbstractSet[str] = frozenset()) -> None:
        self.loggers = list(loggers)
        self.skip = skip

    def add_scalars(self, scalars: dict[str, Any], step: int = 0, file_path: Optional[str] = None) -> None:
        """``log_metrics`` on every logger, numbers only."""
        values, _ = numeric_scalars(scalars)
        values.pop("step", None)
        values.pop("epoch", None)  # Lightning's own in its loggers: 0-based, beside every value it writes
        if self.skip:
            values = {k: v for k, v in values.items() if k not in self.skip}
        if not values:
            return
        for logger in self.loggers:
            logger.log_metrics(values, step=step)

    def close(self) -> None:
        """Write what the loggers buffer (CSVLogger keeps rows in memory); Lightning finalizes them later."""
        for logger in self.loggers:
            logger.save()
