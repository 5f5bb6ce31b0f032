"""MMEngine-style hooks, one module per hook; every class is registered in ``HOOKS``."""

from . import _planned  # noqa: F401  (registers the names of hooks still to come)
from .check_invalid_loss_hook import CheckInvalidLossHook
from .checkpoint_hook import CheckpointHook
from .ema_hook import EMAHook
from .hook import Hook
from .iter_timer_hook import IterTimerHook
from .logger_hook import LoggerHook
from .param_scheduler_hook import ParamSchedulerHook
from .runtime_info_hook import RuntimeInfoHook
from .sampler_seed_hook import DistSamplerSeedHook

__all__ = [
    "CheckInvalidLossHook",
    "CheckpointHook",
    "DistSamplerSeedHook",
    "EMAHook",
    "Hook",
    "IterTimerHook",
    "LoggerHook",
    "ParamSchedulerHook",
    "RuntimeInfoHook",
]
