"""LoggerHook (minimal): accepts MMEngine's arguments; full terminal/JSON/TensorBoard/W&B output comes with the logging work."""

from __future__ import annotations

from typing import Any, Optional, Union

from ..registry import HOOKS
from .hook import Hook

__all__ = ["LoggerHook"]


@HOOKS.register_module()
class LoggerHook(Hook):
    """Placeholder with MMEngine's signature; it writes nothing yet."""

    priority = "BELOW_NORMAL"

    def __init__(
        self,
        interval: int = 10,
        ignore_last: bool = True,
        interval_exp_name: int = 1000,
        out_dir: Optional[str] = None,
        out_suffix: Union[str, tuple] = (".json", ".log", ".py", "yaml"),
        keep_local: bool = True,
        file_client_args: Optional[dict] = None,
        log_metric_by_epoch: bool = True,
        backend_args: Optional[dict] = None,
    ) -> None:
        if not isinstance(interval, int) or interval <= 0:
            raise ValueError(f"interval must be a positive int, got {interval!r}")
        self.interval = interval
        self.ignore_last = ignore_last
        self.interval_exp_name = interval_exp_name
        self.out_dir = out_dir
        self.out_suffix = out_suffix
        self.keep_local = keep_local
        self.log_metric_by_epoch = log_metric_by_epoch
        self.backend_args = backend_args

    def __repr__(self) -> str:
        return f"LoggerHook(interval={self.interval})"


_ = Any
