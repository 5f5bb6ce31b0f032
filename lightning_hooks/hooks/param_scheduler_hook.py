"""ParamSchedulerHook (minimal): registered; until it takes over stepping, Lightning steps the schedulers itself."""

from __future__ import annotations

from ..registry import HOOKS
from .hook import Hook

__all__ = ["ParamSchedulerHook"]


@HOOKS.register_module()
class ParamSchedulerHook(Hook):
    """Placeholder: Lightning keeps stepping the schedulers of ``configure_optimizers``."""

    priority = "LOW"
