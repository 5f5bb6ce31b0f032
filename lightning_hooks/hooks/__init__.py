"""MMEngine-style hooks, one module per hook; every class is registered in ``HOOKS``."""

from .check_invalid_loss_hook import CheckInvalidLossHook
from .checkpoint_hook import CheckpointHook
from .dump_config_hook import DumpConfigHook
from .early_stopping_hook import EarlyStoppingHook
from .ema_hook import EMAHook
from .empty_cache_hook import EmptyCacheHook
from .hook import Hook
from .iter_timer_hook import IterTimerHook
from .load_from_hook import LoadFromHook
from .logger_hook import LoggerHook
from .param_scheduler_hook import ParamSchedulerHook
from .profiler_hook import ProfilerHook
from .runtime_info_hook import RuntimeInfoHook
from .sampler_seed_hook import DistSamplerSeedHook
from .sync_buffers_hook import SyncBuffersHook
from .val_interval_hook import ValIntervalHook

__all__ = [
    "CheckInvalidLossHook",
    "CheckpointHook",
    "DistSamplerSeedHook",
    "DumpConfigHook",
    "EMAHook",
    "EarlyStoppingHook",
    "EmptyCacheHook",
    "Hook",
    "IterTimerHook",
    "LoadFromHook",
    "LoggerHook",
    "ParamSchedulerHook",
    "ProfilerHook",
    "RuntimeInfoHook",
    "SyncBuffersHook",
    "ValIntervalHook",
]
