"""A small name → class registry with MMEngine's ``register_module``/``build`` API.

``HOOKS`` holds every hook class; ``AVERAGED_MODELS`` holds the averaging
classes used by :class:`~lightning_hooks.hooks.EMAHook`. Configs are plain dicts
such as ``dict(type='CheckpointHook', interval=1)``.
"""

from __future__ import annotations

import difflib
import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Optional, Union

__all__ = ["AVERAGED_MODELS", "HOOKS", "Registry", "import_custom_modules", "mmengine_class_name", "to_plain"]


def to_plain(obj: Any) -> Any:
    """Turn OmegaConf containers and other mappings/sequences into plain dicts and lists.

    Hydra passes ``DictConfig``/``ListConfig``; ``isinstance(x, dict)`` fails on
    them and they cannot be loaded with ``torch.load(weights_only=True)``.
    """
    if isinstance(obj, (str, bytes)):
        return obj
    if isinstance(obj, Mapping):  # OmegaConf's DictConfig is a Mapping
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) or type(obj).__name__ == "ListConfig":
        converted = [to_plain(v) for v in obj]
        return tuple(converted) if isinstance(obj, tuple) else converted
    return obj


def import_custom_modules(custom_imports: Any) -> None:
    """A config's ``custom_imports=dict(imports=[...], allow_failed_imports=False)``, imported as MMEngine imports them.

    The listed modules run, so that they can register their classes (hooks, optimizers) before
    the config's ``type`` names are looked up. A module that fails to import is an ImportError
    naming it, or a warning when ``allow_failed_imports`` is True.
    """
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


def mmengine_class_name(obj: Any) -> Optional[str]:
    """The name MMEngine registers ``obj`` under when it is one of MMEngine's own classes, else None.

    A dict config may give MMEngine's class itself as ``type`` (``type=OptimWrapper`` after
    ``from mmengine.optim import OptimWrapper``), as MMEngine's registry accepts. This package's
    class of that name stands for it, as it does for the name ``'mmengine.optim.OptimWrapper'``
    that ``mmengine.Config.to_dict()`` writes for such a lazy import.
    """
    if isinstance(obj, type) and obj.__module__.partition(".")[0] == "mmengine":
        return obj.__name__
    return None


class Registry:
    """Maps names to classes (or functions) and builds objects from config dicts.

    Args:
        name: what the registry holds, used in error messages (e.g. ``'hook'``).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._module_dict: dict[str, Callable[..., Any]] = {}
        self._replaceable: set[str] = set()

    def __len__(self) -> int:
        return len(self._module_dict)

    def __contains__(self, key: str) -> bool:
        return key in self._module_dict

    def __repr__(self) -> str:
        return f"Registry(name={self.name!r}, items={sorted(self._module_dict)})"

    @property
    def module_dict(self) -> dict[str, Callable[..., Any]]:
        """The live name → object mapping."""
        return self._module_dict

    def get(self, key: str) -> Optional[Callable[..., Any]]:
        """Return the object registered as ``key``, or None.

        A scope prefix such as ``'mmdet.CheckInvalidLossHook'`` is accepted and ignored.
        """
        if key in self._module_dict:
            return self._module_dict[key]
        if "." in key:
            return self._module_dict.get(key.rsplit(".", 1)[1])
        return None

    def _register(self, module: Callable[..., Any], names: Union[str, list[str], None], force: bool) -> None:
        if not callable(module):
            raise TypeError(f"only a class or function can be registered in {self.name}, got {module!r}")
        if names is None:
            names = [module.__name__]
        elif isinstance(names, str):
            names = [names]
        for name in names:
            if not force and name in self._module_dict and name not in self._replaceable:
                existed = self._module_dict[name]
                raise KeyError(
                    f"{name} is already registered in {self.name} at {existed.__module__}; "
                    "pass force=True to replace it"
                )
            self._module_dict[name] = module
            self._replaceable.discard(name)

    def register_replaceable(self, module: Callable[..., Any]) -> Callable[..., Any]:
        """Register a package-provided example that a user's class of the same name may replace.

        Used for ``CheckInvalidLossHook``, so MMEngine's documentation example,
        which registers its own class under that name, runs unchanged.
        """
        self._register(module, None, force=False)
        self._replaceable.add(module.__name__)
        return module

    def register_module(
        self,
        name: Union[str, list[str], None] = None,
        force: bool = False,
        module: Optional[Callable[..., Any]] = None,
    ) -> Any:
        """Register a class or function, as a decorator or a direct call.

        Args:
            name: the registered name(s); defaults to the object's ``__name__``.
            force: replace an existing entry of the same name instead of raising.
            module: the object, for the direct-call form.
        """
        if not isinstance(force, bool):
            raise TypeError(f"force must be a bool, got {type(force).__name__}")
        if not (
            name is None or isinstance(name, str) or (isinstance(name, list) and all(isinstance(n, str) for n in name))
        ):
            raise TypeError(f"name must be None, a str or a list of str, got {name!r}")
        if module is not None:
            self._register(module, name, force)
            return module

        def decorator(obj: Callable[..., Any]) -> Callable[..., Any]:
            self._register(obj, name, force)
            return obj

        return decorator

    def _unknown_type_error(self, type_name: str) -> KeyError:
        known = sorted(self._module_dict)
        close = difflib.get_close_matches(type_name, known, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return KeyError(
            f"{type_name!r} is not registered in the {self.name} registry.{hint} Registered names: {', '.join(known)}"
        )

    def build(self, cfg: Mapping[str, Any], default_args: Optional[Mapping[str, Any]] = None) -> Any:
        """Build an object from ``cfg``: ``type`` names the class, the other keys are its arguments.

        ``type`` may also be a class or function. ``default_args`` fill in keys
        that ``cfg`` lacks. The caller's dict is not modified.
        """
        if not isinstance(cfg, Mapping):
            raise TypeError(f"cfg must be a dict, got {type(cfg).__name__}: {cfg!r}")
        args = to_plain(cfg)
        for key, value in (default_args or {}).items():
            args.setdefault(key, value)
        args.pop("_scope_", None)
        if "type" not in args:
            raise KeyError(f'cfg or default_args must contain the key "type", got {dict(cfg)!r}')
        obj_type = args.pop("type")
        if isinstance(obj_type, str):
            obj_cls = self.get(obj_type)
            if obj_cls is None:
                raise self._unknown_type_error(obj_type)
        elif callable(obj_type):
            obj_cls = obj_type
        else:
            raise TypeError(f"type must be a str or a class, got {obj_type!r}")
        try:
            return obj_cls(**args)
        except TypeError as exc:
            raise TypeError(f"{getattr(obj_cls, '__name__', obj_cls)}: {exc}") from exc


HOOKS = Registry("hook")
AVERAGED_MODELS = Registry("averaged model")
