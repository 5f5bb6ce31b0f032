"""Hooks whose names are registered but whose implementation is still to come.

Building one raises a clear error instead of silently doing nothing.
"""

from __future__ import annotations

from typing import Any

from ..registry import HOOKS
from .hook import Hook

__all__: list[str] = []


def _planned(name: str, issue: str) -> type:
    def __init__(self: Hook, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(f"{name} is not implemented yet in lightning_hooks ({issue}).")

    cls = type(name, (Hook,), {"__init__": __init__, "__doc__": f"{name} (not implemented yet: {issue})."})
    HOOKS.register_module(module=cls)
    return cls


_PLANNED: dict[str, str] = {}
for _name, _issue in _PLANNED.items():
    if _name not in HOOKS:
        globals()[_name] = _planned(_name, _issue)
