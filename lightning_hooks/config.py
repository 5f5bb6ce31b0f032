"""Translate an MMEngine config into :class:`~lightning_hooks.HookBridge` and Trainer arguments.

:mod:`lightning_hooks.config_reader` reads the files (``_base_`` merged); this
module picks the hook-related keys: ``default_hooks``, ``custom_hooks``,
``custom_imports`` (imported first, so a hook module can register its classes),
``visualizer.vis_backends`` (given to the LoggerHook, which writes the scalars
here since there is no separate Visualizer), and the bridge's own ``work_dir``,
``experiment_name``, ``resume``, ``log_level`` and ``log_processor``.
:func:`trainer_kwargs_from_mmengine_config` maps ``train_cfg`` and ``optim_wrapper``
to Trainer arguments. Hooks this package cannot run are listed by name with the
reason; see docs/comparison.md for every difference from MMEngine.

The bridge imports this module (``HookBridge.from_mmengine_config``,
``MMEngineConfigHookBridge``); this module never imports the bridge.
"""

from __future__ import annotations

import logging
import os
import os.path as osp
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Optional, Union

from . import hooks as _builtin_hooks  # noqa: F401  (importing them registers the built-in hooks in HOOKS)
from .config_keys import report_config_keys
from .config_reader import config_to_dict, load_mmengine_config, merge_config, without_delete_keys
from .errors import UnsupportedHook, UnsupportedHookError
from .hooks.dump_config_hook import DumpConfigHook
from .hooks.hook import Hook
from .hooks.load_from_hook import LoadFromHook
from .logging.backends import BACKEND_TYPES
from .optim.optimizer import wrapper_settings
from .registry import AVERAGED_MODELS, HOOKS, import_custom_modules, mmengine_class_name, to_plain
from .runner import get_logger

__all__ = [
    "UnsupportedHook",
    "UnsupportedHookError",
    "bridge_kwargs_from_mmengine_config",
    "find_unsupported_hooks",
    "load_mmengine_config",
    "merge_config",
    "seed_from_mmengine_config",
    "skip_visualization_hooks",
    "trainer_kwargs_from_mmengine_config",
]

#: Config keys that are also :class:`HookBridge` arguments.
BRIDGE_KEYS = ("work_dir", "experiment_name", "resume", "log_level", "log_processor")
OnUnsupported = Literal["error", "warn"]

#: MMEngine hooks this package does not provide, and why.
KNOWN_UNSUPPORTED: dict[str, str] = {
    "NaiveVisualizationHook": (
        "it draws data samples through MMEngine's Visualizer, which has no Lightning counterpart "
        "(MMEngine itself says the class no longer works); log images with the Trainer's logger instead"
    ),
    "PrepareTTAHook": (
        "it wraps runner.model in an MMEngine BaseTTAModel; under Lightning do test-time augmentation "
        "in the LightningModule's test_step"
    ),
    "NPUProfilerHook": "it needs Ascend NPUs (torch_npu), which Lightning does not drive; use ProfilerHook",
}

_PORT = " (port recipe: docs/migration.md, 'Porting OpenMMLab's training hooks')"

#: OpenMMLab projects' training hooks, which change the model or the data pipeline they own; each needs a port.
DOWNSTREAM_HOOKS: dict[str, str] = {
    "PipelineSwitchHook": (
        "mmdet's hook swaps the training dataset's pipeline at switch_epoch; the data belongs to your "
        "DataModule: switch its transforms in a Hook's before_train_epoch" + _PORT
    ),
    "YOLOXModeSwitchHook": (
        "mmdet's hook turns off mosaic/mixup and turns on the L1 loss for the last epochs; switch the "
        "DataModule's transforms and set the head's use_l1 in a Hook's before_train_epoch" + _PORT
    ),
    "SyncNormHook": (
        "mmdet's hook averages the norm layers' statistics across ranks before validation; "
        "SyncBuffersHook does the same for every floating-point buffer" + _PORT
    ),
    "PreciseBNHook": (
        "mmpretrain's hook recomputes BatchNorm statistics on training batches before validation, "
        "through MMEngine's dataloader; write it as a Hook's after_train_epoch" + _PORT
    ),
    "SwitchRecipeHook": (
        "mmpretrain's hook swaps the pipeline, batch augments and loss at given epochs, which your "
        "LightningModule and DataModule own; switch them in a Hook's before_train_epoch" + _PORT
    ),
}

_VISUALIZATION_SKIPPED = (
    "not provided by lightning_hooks: OpenMMLab's visualization hooks draw predictions through MMEngine's "
    "Visualizer, which has no Lightning counterpart; log images with the Trainer's logger"
)


# --------------------------------------------------------------------------------------- hooks
def _unsupported_reason(hook_type: Any) -> Optional[str]:
    """Why a hook ``type`` cannot be built here, or None when it can."""
    if isinstance(hook_type, type):
        if issubclass(hook_type, Hook):
            return None
        return (
            f"the class {hook_type.__module__}.{hook_type.__qualname__} is not a lightning_hooks.Hook; "
            "port it by subclassing lightning_hooks.Hook (the mount points and runner attributes are the same)"
        )
    if not isinstance(hook_type, str):
        return f"type must be a registered name or a Hook class, got {hook_type!r}"
    short = hook_type.rsplit(".", 1)[-1]
    if short in KNOWN_UNSUPPORTED:
        return "not provided by lightning_hooks: " + KNOWN_UNSUPPORTED[short]
    if short in DOWNSTREAM_HOOKS and HOOKS.get(hook_type) is None:
        return "not provided by lightning_hooks: " + DOWNSTREAM_HOOKS[short]
    if short.endswith("VisualizationHook") and HOOKS.get(hook_type) is None:
        return (
            "not provided by lightning_hooks: OpenMMLab's visualization hooks draw predictions through "
            "MMEngine's Visualizer, which has no Lightning counterpart; log images with the Trainer's logger"
        )
    cls = HOOKS.get(hook_type)
    if cls is None:
        return _unknown_reason(hook_type)
    return None


def _unknown_reason(hook_type: str) -> str:
    reason = f"{hook_type!r} is not registered in lightning_hooks.HOOKS"
    try:  # is it a hook the user registered with MMEngine's registry (custom_imports)?
        from mmengine.registry import HOOKS as MM_HOOKS  # type: ignore[import-untyped]

        if MM_HOOKS.get(hook_type) is not None:
            return (
                reason + "; it is registered in MMEngine's HOOKS registry: port the class to lightning_hooks "
                "(subclass lightning_hooks.Hook, register with lightning_hooks.HOOKS)"
            )
    except Exception:  # mmengine missing or its registry refusing the name
        pass
    import difflib

    close = difflib.get_close_matches(hook_type, sorted(HOOKS.module_dict), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        reason
        + hint
        + "; if it is your own hook, import the module that registers it first (or list it in custom_imports)"
    )


def find_unsupported_hooks(default_hooks: Mapping[str, Any], custom_hooks: list[Any]) -> list[UnsupportedHook]:
    """Every hook of the two config entries that this package cannot build, with the reason."""
    found = []
    entries = [(f"default_hooks.{k}", v) for k, v in default_hooks.items()]
    entries += [(f"custom_hooks[{i}]", v) for i, v in enumerate(custom_hooks)]
    for where, cfg in entries:
        if cfg is None or isinstance(cfg, Hook):
            continue
        if not isinstance(cfg, Mapping) or "type" not in cfg:
            found.append(UnsupportedHook(where, "?", f"a hook config must be a dict with a 'type' key, got {cfg!r}"))
            continue
        reason = _unsupported_reason(cfg["type"]) or _unsupported_ema_type(cfg)
        if reason is not None:
            name = cfg["type"] if isinstance(cfg["type"], str) else getattr(cfg["type"], "__name__", repr(cfg["type"]))
            found.append(UnsupportedHook(where, name, reason))
    return found


def _unsupported_ema_type(cfg: Mapping[str, Any]) -> Optional[str]:
    """Why an EMAHook config's ``ema_type`` cannot be built, or None (checked with the hooks, before anything trains)."""
    hook_type = cfg.get("type")
    if not (isinstance(hook_type, str) and hook_type.rsplit(".", 1)[-1] == "EMAHook"):
        return None
    ema_type = cfg.get("ema_type", "ExponentialMovingAverage")
    if not isinstance(ema_type, str) or AVERAGED_MODELS.get(ema_type) is not None:
        return None
    return (
        f"ema_type={ema_type!r} is not registered in lightning_hooks.AVERAGED_MODELS "
        f"(registered: {', '.join(sorted(AVERAGED_MODELS.module_dict))}); register your averaged model there"
    )


def _is_visualization_hook(cfg: Any) -> bool:
    hook_type = cfg.get("type") if isinstance(cfg, Mapping) else None
    if not isinstance(hook_type, str):
        return False
    return hook_type.rsplit(".", 1)[-1].endswith("VisualizationHook") and HOOKS.get(hook_type) is None


def _visualization_active(cfg: Mapping[str, Any]) -> bool:
    """Whether a visualization hook config would draw: OpenMMLab's hooks draw only with ``enable=True``
    (mmpretrain) or ``draw=True`` (mmdet, mmseg, mmpose...); MMEngine's ``NaiveVisualizationHook`` always draws."""
    if str(cfg["type"]).rsplit(".", 1)[-1] == "NaiveVisualizationHook":
        return True
    return bool(cfg.get("enable", False) or cfg.get("draw", False))


def skip_visualization_hooks(
    default_hooks: Mapping[str, Any], custom_hooks: list[Any]
) -> tuple[dict[str, Any], list[Any], list[tuple[str, str, bool]]]:
    """Take OpenMMLab's visualization hooks out: (default_hooks, custom_hooks, [(where, type, enabled)]).

    They draw through MMEngine's Visualizer, which has no Lightning counterpart. One that does not draw
    (``enable``/``draw`` not set to True: the configs' default) is skipped with one INFO line; one that
    draws, with a warning.
    """
    skipped: list[tuple[str, str, bool]] = []
    kept_default = {}
    for name, cfg in default_hooks.items():
        if _is_visualization_hook(cfg):
            skipped.append((f"default_hooks.{name}", cfg["type"], _visualization_active(cfg)))
        else:
            kept_default[name] = cfg
    kept_custom = []
    for i, cfg in enumerate(custom_hooks):
        if _is_visualization_hook(cfg):
            skipped.append((f"custom_hooks[{i}]", cfg["type"], _visualization_active(cfg)))
        else:
            kept_custom.append(cfg)
    disabled = [f"{where} ({kind})" for where, kind, enabled in skipped if not enabled]
    enabled = [f"{where} ({kind})" for where, kind, enabled in skipped if enabled]
    if disabled:
        _config_logger().info("skipped (not drawing: enable/draw not True): " + ", ".join(disabled))
    if enabled:
        warnings.warn(
            "skipping visualization hooks:\n" + "\n".join(f"  - {item}: {_VISUALIZATION_SKIPPED}" for item in enabled),
            UserWarning,
            stacklevel=3,
        )
    return kept_default, kept_custom, skipped


def _config_logger() -> logging.Logger:
    """The package logger, printing on rank 0, for what is reported while a config is translated."""
    from .config_keys import _rank

    return get_logger(rank=_rank())


def _own_name(kind: Any, known: Callable[[str], bool]) -> Any:
    """The plain name of one of MMEngine's own classes that this package knows by that name, else ``kind``.

    New-style configs name MMEngine's classes by class (``type=CheckpointHook`` after
    ``from mmengine.hooks import CheckpointHook``), which ``mmengine.Config`` gives back as the
    class or as its import path (``'mmengine.hooks.CheckpointHook'``,
    ``'mmengine.visualization.LocalVisBackend'``, ``'mmengine.runner.LogProcessor'``).
    """
    name = mmengine_class_name(kind)
    if name is None and isinstance(kind, str) and kind.startswith("mmengine."):
        name = kind.rsplit(".", 1)[1]
    return name if name is not None and known(name) else kind


def _own_hook_name(hook_type: Any) -> Any:
    """This package's registered name for one of MMEngine's own hook types, else ``hook_type`` unchanged."""
    return _own_name(hook_type, lambda name: HOOKS.get(name) is not None)


def _typed_as_own(cfg: Any, known: Callable[[str], bool]) -> Any:
    """A ``type``d config dict with MMEngine's class named as this package names it, and without
    ``_scope_`` (the registry scope ``mmengine.Config`` adds to the dicts of a ``pkg::`` base; there
    is one registry here)."""
    if not isinstance(cfg, Mapping) or "type" not in cfg:
        return cfg
    plain = {key: value for key, value in cfg.items() if key != "_scope_"}
    plain["type"] = _own_name(cfg["type"], known)
    return plain


def _with_own_type(cfg: Any) -> Any:
    """A hook config whose MMEngine hook ``type`` names this package's hook of the same name."""
    if isinstance(cfg, Mapping) and "type" in cfg:
        own = _own_hook_name(cfg["type"])
        if own is not cfg["type"]:
            return {**cfg, "type": own}
    return cfg


def _as_config(path_or_dict: Union[str, os.PathLike[str], Mapping[str, Any]]) -> dict[str, Any]:
    if isinstance(path_or_dict, (str, os.PathLike, Path)):
        return load_mmengine_config(path_or_dict)
    if isinstance(path_or_dict, Mapping):  # a dict, an OmegaConf DictConfig
        return to_plain(dict(path_or_dict.items()))
    if type(path_or_dict).__name__ == "Config" and hasattr(path_or_dict, "items"):  # mmengine.Config
        return to_plain(config_to_dict(path_or_dict))
    raise TypeError(f"expected a config file path or a dict (e.g. mmengine.Config), got {type(path_or_dict).__name__}")


def bridge_kwargs_from_mmengine_config(
    path_or_dict: Union[str, os.PathLike[str], Mapping[str, Any]],
    on_unsupported: OnUnsupported = "error",
) -> dict[str, Any]:
    """The :class:`HookBridge` arguments an MMEngine config describes.

    Args:
        path_or_dict: a config file, or an already loaded config (a dict or ``mmengine.Config``).
        on_unsupported: ``'error'`` raises :class:`UnsupportedHookError` listing every hook this
            package cannot run; ``'warn'`` leaves them out and warns with the same list (a left-out
            ``default_hooks`` entry falls back to this package's default hook of that name, if any).
    """
    if on_unsupported not in ("error", "warn"):
        raise ValueError(f"on_unsupported must be 'error' or 'warn', got {on_unsupported!r}")
    cfg = _as_config(path_or_dict)
    import_custom_modules(cfg.get("custom_imports"))
    default_hooks = without_delete_keys(cfg.get("default_hooks") or {})
    custom_hooks = without_delete_keys(cfg.get("custom_hooks") or [])
    if not isinstance(default_hooks, Mapping):
        raise TypeError(f"default_hooks must be a dict of name -> hook config, got {default_hooks!r}")
    if not isinstance(custom_hooks, list):
        raise TypeError(f"custom_hooks must be a list of hook configs, got {custom_hooks!r}")
    default_hooks = {name: _with_own_type(hook) for name, hook in default_hooks.items()}
    custom_hooks = [_with_own_type(hook) for hook in custom_hooks]
    default_hooks, custom_hooks, _ = skip_visualization_hooks(default_hooks, custom_hooks)
    unsupported = find_unsupported_hooks(default_hooks, custom_hooks)
    if unsupported:
        if on_unsupported == "error":
            raise UnsupportedHookError(unsupported)
        warnings.warn(
            "leaving out hooks lightning_hooks cannot run:\n" + "\n".join(f"  - {u}" for u in unsupported),
            UserWarning,
            stacklevel=2,
        )
        dropped = {u.where for u in unsupported}
        default_hooks = {k: v for k, v in default_hooks.items() if f"default_hooks.{k}" not in dropped}
        custom_hooks = [v for i, v in enumerate(custom_hooks) if f"custom_hooks[{i}]" not in dropped]
    default_hooks = _logger_with_visualizer(dict(default_hooks), cfg.get("visualizer"))
    kwargs: dict[str, Any] = {"default_hooks": default_hooks, "custom_hooks": list(custom_hooks)}
    for key in BRIDGE_KEYS:
        if cfg.get(key) is not None:
            kwargs[key] = cfg[key]
    if "log_processor" in kwargs:
        kwargs["log_processor"] = _typed_as_own(kwargs["log_processor"], lambda name: name == "LogProcessor")
    path = _config_path(path_or_dict)
    filename = path if path is not None else getattr(path_or_dict, "filename", None)  # an mmengine.Config's file
    if isinstance(filename, str) and filename:
        # MMEngine's Runner names a config's run <file stem>_<timestamp> unless it sets experiment_name
        kwargs.setdefault("experiment_name", osp.splitext(osp.basename(filename))[0])
    if path is not None:
        kwargs.setdefault("work_dir", default_work_dir(path))
        kwargs["custom_hooks"].append(DumpConfigHook(cfg, osp.basename(path)))
    kwargs["custom_hooks"] += _load_from_hooks(cfg, kwargs["custom_hooks"]) + _val_interval_hooks(cfg.get("train_cfg"))
    report_config_keys(cfg, _config_logger())
    return kwargs


def _config_path(path_or_dict: Any) -> Optional[str]:
    return os.fspath(path_or_dict) if isinstance(path_or_dict, (str, os.PathLike)) else None


def default_work_dir(path: Union[str, os.PathLike[str]]) -> str:
    """``work_dirs/<config file stem>``: where MMEngine's ``tools/train.py`` puts a config's run without ``work_dir``."""
    return osp.join("work_dirs", osp.splitext(osp.basename(os.fspath(path)))[0])


def _load_from_hooks(cfg: Mapping[str, Any], custom_hooks: list[Any]) -> list[dict[str, Any]]:
    """MMEngine's ``load_from`` as a :class:`~lightning_hooks.hooks.LoadFromHook`.

    Not when ``resume`` is set, and not when ``custom_hooks`` has its own ``LoadFromHook`` (that is
    how a config gives ``revise_keys``: ``dict(type='LoadFromHook', filename=..., revise_keys=[...])``).
    """
    load_from = cfg.get("load_from")
    if not load_from:
        return []
    for hook in custom_hooks:
        hook_type = hook.get("type") if isinstance(hook, Mapping) else type(hook)
        if hook_type in ("LoadFromHook", LoadFromHook) or isinstance(hook, LoadFromHook):
            return []
    if cfg.get("resume"):
        warnings.warn(
            f"resume=True with load_from={load_from!r}: MMEngine resumes from load_from; here pass it to "
            f"trainer.fit(ckpt_path={load_from!r}) (HookBridge(resume=True) resumes from <work_dir>/last_checkpoint)",
            UserWarning,
            stacklevel=3,
        )
        return []
    return [{"type": "LoadFromHook", "filename": load_from}]


def _logger_with_visualizer(default_hooks: dict[str, Any], visualizer: Any) -> dict[str, Any]:
    """Give the config's ``visualizer.vis_backends`` to the LoggerHook, unless it names its own.

    In MMEngine the LoggerHook writes through the Runner's Visualizer; here the hook owns its writers.
    """
    backends = visualizer.get("vis_backends") if isinstance(visualizer, Mapping) else None
    if not backends:
        return default_hooks
    logger = default_hooks.get("logger", {"type": "LoggerHook"})
    if logger is None or not isinstance(logger, Mapping) or "vis_backends" in logger:
        return default_hooks
    backends = [backends] if isinstance(backends, Mapping) else backends
    if isinstance(backends, list):
        backends = [_typed_as_own(entry, BACKEND_TYPES.__contains__) for entry in backends]
    return {**default_hooks, "logger": {**logger, "vis_backends": backends}}


# --------------------------------------------------------------------------------------- Trainer
def trainer_kwargs_from_mmengine_config(
    path_or_dict: Union[str, os.PathLike[str], Mapping[str, Any]],
) -> dict[str, Any]:
    """Lightning ``Trainer`` arguments for an MMEngine config.

    * ``train_cfg``: epoch-based → ``max_epochs`` and ``check_val_every_n_epoch``; iteration-based →
      ``max_steps``, ``max_epochs=-1``, ``val_check_interval`` and ``check_val_every_n_epoch=None``.
      With ``val_begin`` or ``dynamic_intervals`` the interval starts at 1 and the bridge's
      ``ValIntervalHook`` (added by ``from_mmengine_config``) decides each validation.
    * ``optim_wrapper``: ``accumulative_counts`` → ``accumulate_grad_batches`` (and ``max_steps`` is
      divided by it, since Lightning counts optimizer steps), ``clip_grad`` → ``gradient_clip_val``
      and ``gradient_clip_algorithm``, ``AmpOptimWrapper`` → ``precision`` (``'16-mixed'``, or
      ``'bf16-mixed'`` for ``dtype='bfloat16'``).
    * ``env_cfg.cudnn_benchmark`` → ``benchmark``; ``randomness.deterministic`` → ``deterministic``
      (the seed: :func:`seed_from_mmengine_config`), which turns ``benchmark`` off, as in MMEngine.
    * ``work_dir`` → ``default_root_dir`` (``work_dirs/<config stem>`` for a file without one).
    """
    cfg = _as_config(path_or_dict)
    kwargs: dict[str, Any] = {}
    accumulate = 1
    if cfg.get("optim_wrapper"):
        settings = wrapper_settings(cfg["optim_wrapper"])
        kwargs.update(settings.trainer_kwargs())
        accumulate = settings.accumulate_grad_batches
    kwargs.update(_loop_kwargs(cfg.get("train_cfg"), accumulate))
    env_cfg = cfg.get("env_cfg") or {}
    if env_cfg.get("cudnn_benchmark"):
        kwargs["benchmark"] = True
    randomness = cfg.get("randomness") or {}
    if randomness.get("deterministic"):
        kwargs["deterministic"] = True
        if "benchmark" in kwargs:  # MMEngine seeds after setting up the environment, and turns it off again
            kwargs["benchmark"] = False
    if cfg.get("work_dir") is not None:
        kwargs["default_root_dir"] = cfg["work_dir"]
    elif _config_path(path_or_dict) is not None:
        kwargs["default_root_dir"] = default_work_dir(path_or_dict)  # type: ignore[arg-type]
    return kwargs


def _needs_val_interval_hook(train_cfg: Any) -> bool:
    return bool(train_cfg) and (train_cfg.get("val_begin", 1) != 1 or bool(train_cfg.get("dynamic_intervals")))


_MMENGINE_LOOPS = {"EpochBasedTrainLoop": True, "IterBasedTrainLoop": False}


#: The arguments of MMEngine's two training loops (``EpochBasedTrainLoop``, ``IterBasedTrainLoop``), and
#: the keys that choose between them.
_LOOP_ARGUMENTS = {
    True: ("max_epochs", "val_begin", "val_interval", "dynamic_intervals"),
    False: ("max_iters", "val_begin", "val_interval", "dynamic_intervals"),
}
_LOOP_CHOICE = ("type", "by_epoch", "_scope_")


def _check_loop_keys(train_cfg: Mapping[str, Any], epoch_based: bool) -> None:
    """A key MMEngine's loop does not take is an error naming it, as MMEngine's is (a ``TypeError``)."""
    valid = _LOOP_ARGUMENTS[epoch_based]
    unknown = sorted(set(map(str, train_cfg)) - {*valid, *_LOOP_CHOICE})
    if unknown:
        loop = "EpochBasedTrainLoop" if epoch_based else "IterBasedTrainLoop"
        raise TypeError(f"train_cfg: {loop} takes no argument {', '.join(map(repr, unknown))}; valid: {list(valid)}")


def _is_epoch_based(train_cfg: Mapping[str, Any]) -> bool:
    """MMEngine's choice of loop: ``by_epoch``, or the loop ``type`` (another type: the length it gives)."""
    if "type" in train_cfg and "by_epoch" in train_cfg:
        raise ValueError(
            f"train_cfg: only one of 'type' or 'by_epoch' can be given, as in MMEngine; got {dict(train_cfg)!r}"
        )
    loop = str(train_cfg["type"]).rsplit(".", 1)[-1] if "type" in train_cfg else None
    if loop is None or loop in _MMENGINE_LOOPS:
        epoch_based = bool(train_cfg.get("by_epoch", True)) if loop is None else _MMENGINE_LOOPS[loop]
        _check_loop_keys(train_cfg, epoch_based)
        return epoch_based
    if "max_epochs" not in train_cfg and "max_iters" not in train_cfg:
        raise ValueError(f"train_cfg needs max_epochs (epoch-based) or max_iters (iteration-based), got {train_cfg!r}")
    warnings.warn(
        f"train_cfg.type={train_cfg['type']!r} is not run: Lightning's loop trains, with the length and "
        "validation interval the config gives; port what that loop does to your LightningModule or a callback",
        UserWarning,
        stacklevel=4,
    )
    return "max_epochs" in train_cfg


def _loop_kwargs(train_cfg: Any, accumulate: int) -> dict[str, Any]:
    if not train_cfg:
        return {}
    hooked = _needs_val_interval_hook(train_cfg)
    if _is_epoch_based(train_cfg):
        interval = 1 if hooked else int(train_cfg.get("val_interval", 1))
        return {"max_epochs": _loop_length(train_cfg, "max_epochs"), "check_val_every_n_epoch": interval}
    max_iters = _loop_length(train_cfg, "max_iters")
    if max_iters % accumulate:
        raise ValueError(
            f"train_cfg.max_iters={max_iters} is not a multiple of accumulative_counts={accumulate}; "
            "Lightning's max_steps counts optimizer steps"
        )
    interval = 1 if hooked else int(train_cfg.get("val_interval", 1000))
    return {
        "max_steps": max_iters // accumulate,
        "max_epochs": -1,
        "val_check_interval": interval,
        "check_val_every_n_epoch": None,
    }


def _loop_length(train_cfg: Mapping[str, Any], key: str) -> int:
    """``train_cfg[key]`` as an int, or an error naming the key the loop needs."""
    if key not in train_cfg:
        kind = "an epoch-based" if key == "max_epochs" else "an iteration-based"
        raise ValueError(f"train_cfg describes {kind} loop and needs {key}, got {dict(train_cfg)!r}")
    return int(train_cfg[key])


def _val_interval_hooks(train_cfg: Any) -> list[dict[str, Any]]:
    """``ValIntervalHook`` for a ``train_cfg`` with ``val_begin`` or ``dynamic_intervals``."""
    if not _needs_val_interval_hook(train_cfg):
        return []
    default = 1 if _is_epoch_based(train_cfg) else 1000
    return [
        {
            "type": "ValIntervalHook",
            "val_interval": int(train_cfg.get("val_interval", default)),
            "val_begin": int(train_cfg.get("val_begin", 1)),
            "dynamic_intervals": [list(pair) for pair in train_cfg.get("dynamic_intervals") or []],
        }
    ]


def seed_from_mmengine_config(path_or_dict: Union[str, os.PathLike[str], Mapping[str, Any]]) -> Optional[int]:
    """Seed as the config's ``randomness`` says, through ``lightning.seed_everything``; returns the seed.

    Call it before building the model, as MMEngine's Runner seeds before building it.
    ``diff_rank_seed=True`` adds the global rank to the seed, as MMEngine does. Without a
    ``randomness.seed`` nothing is seeded and None is returned.
    """
    randomness = _as_config(path_or_dict).get("randomness") or {}
    unknown = sorted(set(randomness) - {"seed", "deterministic", "diff_rank_seed"})
    if unknown:
        raise ValueError(f"randomness: unknown keys {unknown}; supported: ['deterministic', 'diff_rank_seed', 'seed']")
    seed = randomness.get("seed")
    if seed is None:
        return None
    if randomness.get("diff_rank_seed"):
        from .config_keys import _rank

        seed = int(seed) + _rank()
    from lightning.fabric.utilities.seed import seed_everything

    return int(seed_everything(int(seed), workers=True))
