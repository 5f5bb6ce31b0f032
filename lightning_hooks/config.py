"""Read MMEngine config files and turn their hook settings into a :class:`~lightning_hooks.HookBridge`.

An MMEngine config is a Python (or JSON/YAML) file of plain dicts. ``_base_``
names parent files; they are merged the way ``mmengine.Config.fromfile`` merges
them: a child's nested dict merges into the parent's key by key, a dict with
``_delete_=True`` replaces the parent's value, and anything else (lists
included) replaces it. ``{{ fileDirname }}``-style predefined variables,
``{{$ENV:default}}`` environment variables, ``{{_base_.key}}`` references and
``_base_.key`` attribute access inside Python files work as in MMEngine.
New-style "lazy import" configs (``with read_base():``) are not supported and
are reported as such.

Only the hook-related keys are used: ``default_hooks``, ``custom_hooks``,
``custom_imports`` (imported first, so a hook module can register its classes),
``visualizer.vis_backends`` (given to the LoggerHook, which writes the scalars
here since there is no separate Visualizer), and the bridge's own ``work_dir``,
``experiment_name``, ``resume``, ``log_level`` and ``log_processor``.
:func:`trainer_kwargs_from_mmengine_config` maps ``train_cfg`` and ``optim_wrapper``
to Trainer arguments.

Differences from MMEngine, on purpose:

* a ``_delete_`` key that MMEngine leaves inside a merged dict (it does so when
  the parent has no such key) is removed before a hook is built; MMEngine would
  pass it on to the hook's constructor and fail;
* hooks this package cannot run are listed by name with the reason, instead of
  failing one at a time deep inside the Runner.
"""

from __future__ import annotations

import ast
import copy
import importlib
import json
import os
import os.path as osp
import re
import types
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Union

from .bridge import HookBridge
from .registry import HOOKS, to_plain

__all__ = [
    "MMEngineConfigHookBridge",
    "UnsupportedHook",
    "UnsupportedHookError",
    "bridge_kwargs_from_mmengine_config",
    "build_bridge_from_mmengine_config",
    "load_mmengine_config",
    "merge_config",
    "trainer_kwargs_from_mmengine_config",
]

BASE_KEY = "_base_"
DELETE_KEY = "_delete_"
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


class UnsupportedHookError(ValueError):
    """Raised when a config names hooks this package cannot run; ``unsupported`` lists them."""

    def __init__(self, unsupported: list[UnsupportedHook]) -> None:
        self.unsupported = unsupported
        lines = "\n".join(f"  - {u}" for u in unsupported)
        super().__init__(
            f"{len(unsupported)} hook(s) in the MMEngine config cannot run under lightning_hooks:\n{lines}\n"
            "Remove them from the config, port them (subclass lightning_hooks.Hook and register with "
            "lightning_hooks.HOOKS), or pass on_unsupported='warn' to leave them out with a warning."
        )


@dataclass(frozen=True)
class UnsupportedHook:
    """One hook of a config that cannot be built: where it is, its type and why."""

    where: str
    type: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where} ({self.type}): {self.reason}"


# --------------------------------------------------------------------------------------- merging
def merge_config(child: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``child`` into a copy of ``base`` as MMEngine's ``Config`` does.

    Nested dicts merge key by key; a child dict with ``_delete_=True`` replaces the
    base value; any other value (a list too) replaces it. Neither input is modified.
    """
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, Mapping):
            value = dict(value)
            if key in merged and not value.pop(DELETE_KEY, False):
                if not isinstance(merged[key], Mapping):
                    raise TypeError(
                        f"{key}={value!r} in the child config cannot inherit from the base, where {key} is a "
                        f"{type(merged[key]).__name__}, not a dict; set {DELETE_KEY}=True to replace it"
                    )
                merged[key] = merge_config(value, merged[key])
            else:
                merged[key] = value
        else:
            merged[key] = value
    return merged


class _AttrDict(dict):
    """The ``_base_`` namespace a Python config sees: a dict whose keys are also attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the base configs define no {name!r}; they define: {', '.join(self)}") from None

    @classmethod
    def wrap(cls, obj: Any) -> Any:
        if isinstance(obj, dict):
            return cls({k: cls.wrap(v) for k, v in obj.items()})
        if isinstance(obj, (list, tuple)):
            return type(obj)(cls.wrap(v) for v in obj)
        return obj


def _unwrap(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(v) for v in obj)
    return obj


def _substitute_text(text: str, filename: str) -> str:
    """Predefined variables (``{{ fileDirname }}`` ...) and ``{{$ENV:default}}`` environment variables."""
    stem, ext = osp.splitext(osp.basename(filename))
    predefined = {
        "fileDirname": osp.dirname(filename),
        "fileBasename": osp.basename(filename),
        "fileBasenameNoExtension": stem,
        "fileExtname": ext,
    }
    for key, value in predefined.items():
        text = re.sub(r"\{\{\s*" + key + r"\s*\}\}", value.replace("\\", "/"), text)

    def env(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name, default)
        if not value:
            raise KeyError(f"{name!r} is not set in the environment and the config gives no default for it")
        return value

    return re.sub(r"\{\{['\"]?\s*\$(\w+)\s*:\s*(\S*?)\s*['\"]?\}\}", env, text)


def _mark_base_refs(text: str) -> tuple[str, dict[str, str]]:
    """Replace ``{{_base_.a.b}}`` by unique string markers, resolved after the bases are loaded."""
    refs: dict[str, str] = {}

    def mark(match: re.Match[str]) -> str:
        marker = f"__lh_base_ref_{len(refs)}__"
        refs[marker] = match.group(1)
        return f'"{marker}"'  # double quotes: valid in Python, YAML and JSON

    return re.sub(r"\{\{\s*" + BASE_KEY + r"\.([\w.]+)\s*\}\}", mark, text), refs


def _resolve_base_refs(obj: Any, refs: dict[str, str], base: Mapping[str, Any]) -> Any:
    if isinstance(obj, str) and obj in refs:
        value: Any = base
        for part in refs[obj].split("."):
            value = value[part]
        return copy.deepcopy(value)
    if isinstance(obj, dict):
        return {k: _resolve_base_refs(v, refs, base) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve_base_refs(v, refs, base) for v in obj)
    return obj


def _base_files(tree: ast.Module, filename: str) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == BASE_KEY for t in node.targets):
            value = ast.literal_eval(node.value)
            return [value] if isinstance(value, str) else list(value)
        if isinstance(node, ast.With) and "read_base" in ast.unparse(node.items[0].context_expr):
            raise ValueError(
                f"{filename} is a new-style (lazy import, `with read_base():`) MMEngine config, which "
                "from_mmengine_config does not read; use the classic `_base_ = [...]` form"
            )
    return []


def _without_base_assign(tree: ast.Module) -> ast.Module:
    body = [
        node
        for node in tree.body
        if not (
            isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == BASE_KEY for t in node.targets)
        )
    ]
    return ast.Module(body=body, type_ignores=[])


def _load_plain(filename: str, text: str) -> dict[str, Any]:
    if filename.endswith(".json"):
        return json.loads(text)
    import yaml  # type: ignore[import-untyped]  # a dependency of lightning

    return yaml.safe_load(text) or {}


def _resolve_base_path(name: str, filename: str) -> str:
    if "::" in name:
        raise ValueError(
            f"base config {name!r} in {filename} refers to another installed OpenMMLab package; "
            "copy that file next to your config and name it by a relative path"
        )
    return osp.join(osp.dirname(filename), name)


def load_mmengine_config(path: Union[str, os.PathLike[str]]) -> dict[str, Any]:
    """Read an MMEngine config file (``.py``, ``.json``, ``.yaml``/``.yml``) with its ``_base_`` files merged.

    Returns plain dicts and lists: the same content ``mmengine.Config.fromfile(path).to_dict()`` gives.
    A Python config is code and is executed, as MMEngine executes it: read only configs you trust.
    """
    filename = osp.abspath(osp.expanduser(os.fspath(path)))
    if not osp.isfile(filename):
        raise FileNotFoundError(f"MMEngine config file not found: {filename}")
    ext = osp.splitext(filename)[1]
    if ext not in (".py", ".json", ".yaml", ".yml"):
        raise ValueError(f"an MMEngine config must be a .py, .json, .yaml or .yml file, got {filename}")
    with open(filename, encoding="utf-8") as f:
        text, refs = _mark_base_refs(_substitute_text(f.read(), filename))

    if ext == ".py":
        tree = ast.parse(text, filename)
        base_names = _base_files(tree, filename)
    else:
        plain = _load_plain(filename, text)
        base_value = plain.get(BASE_KEY, [])
        base_names = [base_value] if isinstance(base_value, str) else list(base_value)

    base: dict[str, Any] = {}
    for name in base_names:
        parent = load_mmengine_config(_resolve_base_path(name, filename))
        duplicate = base.keys() & parent.keys()
        if duplicate:
            raise KeyError(f"base configs of {filename} define the same keys: {sorted(duplicate)}")
        base.update(parent)

    if ext == ".py":
        namespace: dict[str, Any] = {BASE_KEY: _AttrDict.wrap(copy.deepcopy(base))}
        exec(compile(_without_base_assign(tree), filename, "exec"), namespace)
        own = {
            key: _unwrap(value)
            for key, value in namespace.items()
            if key != BASE_KEY
            and not key.startswith("__")
            and not isinstance(value, (types.FunctionType, types.ModuleType))
        }
    else:
        own = {k: v for k, v in plain.items() if k != BASE_KEY}
    own = _resolve_base_refs(own, refs, base)
    merged = merge_config(own, base)
    return {k: v for k, v in merged.items() if not k.startswith("__")}


# --------------------------------------------------------------------------------------- hooks
def _strip_delete(obj: Any) -> Any:
    """Drop ``_delete_`` keys that MMEngine's merge can leave in a dict (see the module docstring)."""
    if isinstance(obj, dict):
        return {k: _strip_delete(v) for k, v in obj.items() if k != DELETE_KEY}
    if isinstance(obj, list):
        return [_strip_delete(v) for v in obj]
    return obj


def _unsupported_reason(hook_type: Any) -> Optional[str]:
    """Why a hook ``type`` cannot be built here, or None when it can."""
    from .hooks.hook import Hook

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
    from .hooks.hook import Hook

    found = []
    entries = [(f"default_hooks.{k}", v) for k, v in default_hooks.items()]
    entries += [(f"custom_hooks[{i}]", v) for i, v in enumerate(custom_hooks)]
    for where, cfg in entries:
        if cfg is None or isinstance(cfg, Hook):
            continue
        if not isinstance(cfg, Mapping) or "type" not in cfg:
            found.append(UnsupportedHook(where, "?", f"a hook config must be a dict with a 'type' key, got {cfg!r}"))
            continue
        reason = _unsupported_reason(cfg["type"])
        if reason is not None:
            name = cfg["type"] if isinstance(cfg["type"], str) else getattr(cfg["type"], "__name__", repr(cfg["type"]))
            found.append(UnsupportedHook(where, name, reason))
    return found


def _import_custom_modules(custom_imports: Any) -> None:
    """``custom_imports=dict(imports=[...], allow_failed_imports=False)``, as MMEngine imports them."""
    if not custom_imports:
        return
    imports = custom_imports.get("imports", []) if isinstance(custom_imports, Mapping) else custom_imports
    allow_failed = (
        bool(custom_imports.get("allow_failed_imports", False)) if isinstance(custom_imports, Mapping) else False
    )
    for name in [imports] if isinstance(imports, str) else imports:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            if not allow_failed:
                raise ImportError(f"custom_imports: cannot import {name!r}: {exc}") from exc
            warnings.warn(f"custom_imports: {name!r} failed to import and is skipped", UserWarning, stacklevel=3)


def _as_config(path_or_dict: Union[str, os.PathLike[str], Mapping[str, Any]]) -> dict[str, Any]:
    if isinstance(path_or_dict, (str, os.PathLike, Path)):
        return load_mmengine_config(path_or_dict)
    if isinstance(path_or_dict, Mapping) or type(path_or_dict).__name__ in ("DictConfig", "Config"):
        return to_plain(dict(path_or_dict.items()))
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
    _import_custom_modules(cfg.get("custom_imports"))
    default_hooks = _strip_delete(cfg.get("default_hooks") or {})
    custom_hooks = _strip_delete(cfg.get("custom_hooks") or [])
    if not isinstance(default_hooks, Mapping):
        raise TypeError(f"default_hooks must be a dict of name -> hook config, got {default_hooks!r}")
    if not isinstance(custom_hooks, list):
        raise TypeError(f"custom_hooks must be a list of hook configs, got {custom_hooks!r}")
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
    return kwargs


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
    return {**default_hooks, "logger": {**logger, "vis_backends": list(backends)}}


def build_bridge_from_mmengine_config(
    cls: type[HookBridge],
    path_or_dict: Union[str, os.PathLike[str], Mapping[str, Any]],
    on_unsupported: OnUnsupported = "error",
    **overrides: Any,
) -> HookBridge:
    """Build ``cls`` (a HookBridge class) from an MMEngine config; ``overrides`` win over the config."""
    kwargs = bridge_kwargs_from_mmengine_config(path_or_dict, on_unsupported)
    kwargs.update(overrides)
    return cls(**kwargs)


class MMEngineConfigHookBridge(HookBridge):
    """A :class:`~lightning_hooks.HookBridge` whose hooks come from an MMEngine config file.

    For tools that build callbacks from a class and its arguments, such as LightningCLI::

        trainer:
          callbacks:
            - class_path: lightning_hooks.config.MMEngineConfigHookBridge
              init_args: {config: configs/my_cfg.py, on_unsupported: warn}

    (Hydra can call ``lightning_hooks.HookBridge.from_mmengine_config`` directly as ``_target_``.)

    Args:
        config: an MMEngine config file (``.py``, ``.json``, ``.yaml``); ``_base_`` files are merged
            as MMEngine merges them.
        on_unsupported: ``'error'`` raises listing the hooks this package cannot run; ``'warn'``
            leaves them out with a warning listing them.
        work_dir: overrides the config's ``work_dir``.
        experiment_name: overrides the config's ``experiment_name``.
    """

    def __init__(
        self,
        config: str,
        on_unsupported: OnUnsupported = "error",
        work_dir: Optional[str] = None,
        experiment_name: Optional[str] = None,
    ) -> None:
        kwargs = bridge_kwargs_from_mmengine_config(config, on_unsupported)
        overrides = {"work_dir": work_dir, "experiment_name": experiment_name}
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        super().__init__(**kwargs)
        self.config_path = os.fspath(config)


# --------------------------------------------------------------------------------------- Trainer
def trainer_kwargs_from_mmengine_config(
    path_or_dict: Union[str, os.PathLike[str], Mapping[str, Any]],
) -> dict[str, Any]:
    """Lightning ``Trainer`` arguments for an MMEngine config's ``train_cfg`` and ``optim_wrapper``.

    ``train_cfg``: epoch-based → ``max_epochs`` and ``check_val_every_n_epoch``; iteration-based →
    ``max_steps``, ``max_epochs=-1``, ``val_check_interval`` and ``check_val_every_n_epoch=None``.
    ``optim_wrapper``: ``accumulative_counts`` → ``accumulate_grad_batches`` (and ``max_steps`` is
    divided by it, since Lightning counts optimizer steps), ``clip_grad.max_norm`` →
    ``gradient_clip_val``, ``AmpOptimWrapper`` → ``precision='16-mixed'``. ``work_dir`` →
    ``default_root_dir``. Settings with no Trainer equivalent (``val_begin`` other than 1,
    ``dynamic_intervals``) raise a ValueError naming them.
    """
    cfg = _as_config(path_or_dict)
    kwargs: dict[str, Any] = {}
    optim = cfg.get("optim_wrapper") or {}
    accumulate = int(optim.get("accumulative_counts", 1))
    if accumulate != 1:
        kwargs["accumulate_grad_batches"] = accumulate
    clip = optim.get("clip_grad") or {}
    if "max_norm" in clip:
        kwargs["gradient_clip_val"] = clip["max_norm"]
        kwargs["gradient_clip_algorithm"] = "norm"
    if str(optim.get("type", "")).endswith("AmpOptimWrapper"):
        kwargs["precision"] = "bf16-mixed" if optim.get("dtype") == "bfloat16" else "16-mixed"
    train_cfg = cfg.get("train_cfg")
    if train_cfg:
        for key, ok in (("val_begin", lambda v: v == 1), ("dynamic_intervals", lambda v: not v)):
            if key in train_cfg and not ok(train_cfg[key]):
                raise ValueError(f"train_cfg.{key}={train_cfg[key]!r} has no Lightning Trainer equivalent")
        loop = str(train_cfg.get("type", ""))
        by_epoch = train_cfg.get("by_epoch", not loop.endswith("IterBasedTrainLoop"))
        if by_epoch:
            kwargs["max_epochs"] = int(train_cfg["max_epochs"])
            kwargs["check_val_every_n_epoch"] = int(train_cfg.get("val_interval", 1))
        else:
            max_iters = int(train_cfg["max_iters"])
            if max_iters % accumulate:
                raise ValueError(
                    f"train_cfg.max_iters={max_iters} is not a multiple of accumulative_counts={accumulate}; "
                    "Lightning's max_steps counts optimizer steps"
                )
            kwargs.update(
                max_steps=max_iters // accumulate,
                max_epochs=-1,
                val_check_interval=int(train_cfg.get("val_interval", 1000)),
                check_val_every_n_epoch=None,
            )
    if cfg.get("work_dir") is not None:
        kwargs["default_root_dir"] = cfg["work_dir"]
    return kwargs
