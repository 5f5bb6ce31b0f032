"""Keyword-argument checks shared by every hook: a misspelt argument is an error that suggests the right one.

MMEngine builds hooks from config dicts, so a typo such as ``intervall=1`` is
easy to make. Python's own message names the bad keyword only; these checks
add the closest valid name (``difflib``) and the full list, at construction,
before anything trains.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["check_flags", "check_keywords", "guard_init", "unknown_keyword_error"]


def check_flags(owner: str, **flags: Any) -> None:
    """Each flag must be True or False: a string such as ``'false'`` or a path would be truthy and pass unnoticed."""
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise TypeError(f"{owner}: {name} must be True or False, got {value!r}")


def unknown_keyword_error(owner: str, name: str, valid: Iterable[str]) -> TypeError:
    """``TypeError`` naming the unknown keyword ``name`` of ``owner``, the closest valid one and all of them."""
    choices = sorted(v for v in valid if not v.startswith("_"))
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.0)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(choices) if choices else "none"
    return TypeError(f"{owner} got an unexpected keyword argument {name!r}.{hint} Valid arguments: {listed}")


def check_keywords(owner: str, given: Iterable[str], valid: Iterable[str]) -> None:
    """Raise :func:`unknown_keyword_error` for the first name in ``given`` that is not in ``valid``."""
    valid = list(valid)
    allowed = set(valid)
    for name in given:
        if name not in allowed:
            raise unknown_keyword_error(owner, name, valid)


def keyword_names(func: Callable[..., Any]) -> tuple[list[str], bool]:
    """The names ``func`` (a function, or a class: its constructor) accepts as keywords, and whether it takes ``**kwargs``."""
    names: list[str] = []
    var_keyword = False
    for i, param in enumerate(inspect.signature(func).parameters.values()):
        if i == 0 and param.name == "self" and not isinstance(func, type):
            continue
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = True
        elif param.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.append(param.name)
    return names, var_keyword


def guard_init(cls: type) -> None:
    """Make ``cls.__init__`` (if the class defines one) reject unknown keywords with :func:`unknown_keyword_error`.

    Only the names are checked, once per construction; a class whose ``__init__``
    takes ``**kwargs`` checks what it forwards itself.
    """
    init = cls.__dict__.get("__init__")
    if init is None or getattr(init, "__keywords_guarded__", False):
        return
    names, var_keyword = keyword_names(init)
    if var_keyword:
        return
    allowed = frozenset(names)

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        for name in kwargs:
            if name not in allowed:
                raise unknown_keyword_error(type(self).__name__, name, names)
        init(self, *args, **kwargs)

    __init__.__keywords_guarded__ = True  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[misc]
