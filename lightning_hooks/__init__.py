"""MMEngine's hook system for PyTorch Lightning.

``HookBridge`` is one Lightning callback that runs priority-ordered
MMEngine-style hooks at MMEngine's mount points, with MMEngine's call order
and counters::

    from lightning import Trainer
    from lightning_hooks import HookBridge

    trainer = Trainer(max_epochs=12, callbacks=[HookBridge(
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1)),
        custom_hooks=[dict(type="CheckInvalidLossHook", interval=50)])])

Everything in ``__all__`` is importable from here. The names are loaded on
first use (PEP 562), so ``import lightning_hooks`` itself imports neither
Lightning nor the hooks; the command line tool starts without them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    AveragingConfigError,
    CheckpointConfigError,
    CheckpointWriteError,
    LightningHooksError,
    LogProcessorConfigError,
    MessageHubError,
    OptimConfigError,
    OptimKeyError,
    ResumeError,
    ScalarTypeError,
    TrainLoopError,
    UnsupportedHook,
    UnsupportedHookError,
    UnsupportedSamplerError,
)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ loads these on first use
    from .averaging import (
        BaseAveragedModel,
        ExpMomentumEMA,
        ExponentialMovingAverage,
        MomentumAnnealingEMA,
        StochasticWeightAverage,
    )
    from .bridge import DEFAULT_HOOKS, HookBridge, MMEngineConfigHookBridge, merge_default_hooks, use_hooks
    from .checkpoint_io import AtomicCheckpointIO
    from .config import (
        bridge_kwargs_from_mmengine_config,
        load_mmengine_config,
        trainer_kwargs_from_mmengine_config,
    )
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
    from .optim import mmengine_optimizers
    from .priority import Priority, get_priority
    from .registry import AVERAGED_MODELS, HOOKS, Registry
    from .runner import RunnerView

#: Public name -> the module that defines it (relative to this package).
_LAZY: dict[str, str] = {
    "AVERAGED_MODELS": ".registry",
    "AtomicCheckpointIO": ".checkpoint_io",
    "BaseAveragedModel": ".averaging",
    "CheckInvalidLossHook": ".hooks",
    "CheckpointHook": ".hooks",
    "DEFAULT_HOOKS": ".bridge",
    "DistSamplerSeedHook": ".hooks",
    "EMAHook": ".hooks",
    "EarlyStoppingHook": ".hooks",
    "EmptyCacheHook": ".hooks",
    "ExpMomentumEMA": ".averaging",
    "ExponentialMovingAverage": ".averaging",
    "HOOKS": ".registry",
    "HistoryBuffer": ".message_hub",
    "Hook": ".hooks",
    "HookBridge": ".bridge",
    "IterTimerHook": ".hooks",
    "LogProcessor": ".logging",
    "LoggerHook": ".hooks",
    "MMEngineConfigHookBridge": ".bridge",
    "MessageHub": ".message_hub",
    "MomentumAnnealingEMA": ".averaging",
    "ParamSchedulerHook": ".hooks",
    "Priority": ".priority",
    "ProfilerHook": ".hooks",
    "Registry": ".registry",
    "RunnerView": ".runner",
    "RuntimeInfoHook": ".hooks",
    "StochasticWeightAverage": ".averaging",
    "SyncBuffersHook": ".hooks",
    "bridge_kwargs_from_mmengine_config": ".config",
    "get_priority": ".priority",
    "load_mmengine_config": ".config",
    "merge_default_hooks": ".bridge",
    "mmengine_optimizers": ".optim",
    "trainer_kwargs_from_mmengine_config": ".config",
    "use_hooks": ".bridge",
}

#: Registries are filled by importing the modules that register into them.
_FILLED_BY = {"HOOKS": ".hooks", "AVERAGED_MODELS": ".averaging"}

__all__ = [
    "AVERAGED_MODELS",
    "DEFAULT_HOOKS",
    "HOOKS",
    "AtomicCheckpointIO",
    "AveragingConfigError",
    "BaseAveragedModel",
    "CheckInvalidLossHook",
    "CheckpointConfigError",
    "CheckpointHook",
    "CheckpointWriteError",
    "DistSamplerSeedHook",
    "EMAHook",
    "EarlyStoppingHook",
    "EmptyCacheHook",
    "ExpMomentumEMA",
    "ExponentialMovingAverage",
    "HistoryBuffer",
    "Hook",
    "HookBridge",
    "IterTimerHook",
    "LightningHooksError",
    "LogProcessor",
    "LogProcessorConfigError",
    "LoggerHook",
    "MMEngineConfigHookBridge",
    "MessageHub",
    "MessageHubError",
    "MomentumAnnealingEMA",
    "OptimConfigError",
    "OptimKeyError",
    "ParamSchedulerHook",
    "Priority",
    "ProfilerHook",
    "Registry",
    "ResumeError",
    "RunnerView",
    "RuntimeInfoHook",
    "ScalarTypeError",
    "StochasticWeightAverage",
    "SyncBuffersHook",
    "TrainLoopError",
    "UnsupportedHook",
    "UnsupportedHookError",
    "UnsupportedSamplerError",
    "__version__",
    "bridge_kwargs_from_mmengine_config",
    "get_priority",
    "load_mmengine_config",
    "merge_default_hooks",
    "mmengine_optimizers",
    "trainer_kwargs_from_mmengine_config",
    "use_hooks",
]


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (PEP 562) and keep it here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name in _FILLED_BY:
        import_module(_FILLED_BY[name], __name__)
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
