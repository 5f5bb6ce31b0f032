"""MMEngine's hook system for PyTorch Lightning.

``HookBridge`` is one Lightning callback that runs priority-ordered
MMEngine-style hooks at MMEngine's mount points, with MMEngine's call order
and counters::

    from lightning import Trainer
    from lightning_hooks import HookBridge

    trainer = Trainer(max_epochs=12, callbacks=[HookBridge(
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1)),
        custom_hooks=[dict(type="CheckInvalidLossHook", interval=50)])])
"""

__version__ = "0.1.0"

from .averaging import BaseAveragedModel, ExponentialMovingAverage, MomentumAnnealingEMA, StochasticWeightAverage
from .bridge import DEFAULT_HOOKS, HookBridge, merge_default_hooks, use_hooks
from .checkpoint_io import AtomicCheckpointIO, CheckpointWriteError
from .hooks import (
    CheckInvalidLossHook,
    CheckpointHook,
    DistSamplerSeedHook,
    EarlyStoppingHook,
    EMAHook,
    EmptyCacheHook,
    Hook,
    IterTimerHook,
    LoggerHook,
    ParamSchedulerHook,
    ProfilerHook,
    RuntimeInfoHook,
    SyncBuffersHook,
)
from .logging import LogProcessor
from .message_hub import HistoryBuffer, MessageHub
from .priority import Priority, get_priority
from .registry import AVERAGED_MODELS, HOOKS, Registry
from .runner import RunnerView

__all__ = [
    "AVERAGED_MODELS",
    "DEFAULT_HOOKS",
    "HOOKS",
    "AtomicCheckpointIO",
    "BaseAveragedModel",
    "CheckInvalidLossHook",
    "CheckpointHook",
    "CheckpointWriteError",
    "DistSamplerSeedHook",
    "EMAHook",
    "EarlyStoppingHook",
    "EmptyCacheHook",
    "ExponentialMovingAverage",
    "HistoryBuffer",
    "Hook",
    "HookBridge",
    "IterTimerHook",
    "LogProcessor",
    "LoggerHook",
    "MessageHub",
    "MomentumAnnealingEMA",
    "ParamSchedulerHook",
    "Priority",
    "ProfilerHook",
    "Registry",
    "RunnerView",
    "RuntimeInfoHook",
    "StochasticWeightAverage",
    "SyncBuffersHook",
    "__version__",
    "get_priority",
    "merge_default_hooks",
    "use_hooks",
]
