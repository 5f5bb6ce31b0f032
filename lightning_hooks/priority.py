"""Hook priorities: MMEngine's named levels and their 0..100 integer scale.

A lower value runs earlier. Names are case-insensitive, and any integer in
``0..100`` is accepted, so hooks can slot in between the named levels.
"""

from __future__ import annotations

from enum import Enum
from typing import Union

__all__ = ["Priority", "get_priority", "priority_name"]


class Priority(Enum):
    """Named priority levels, identical to MMEngine's ``mmengine.runner.Priority``."""

    HIGHEST = 0
    VERY_HIGH = 10
    HIGH = 30
    ABOVE_NORMAL = 40
    NORMAL = 50
    BELOW_NORMAL = 60
    LOW = 70
    VERY_LOW = 90
    LOWEST = 100


PriorityLike = Union[int, str, Priority]


def get_priority(priority: PriorityLike) -> int:
    """Return the integer value of ``priority``.

    Args:
        priority: an int in ``0..100``, a :class:`Priority` member, or a
            level name such as ``'normal'`` (case-insensitive).

    Raises:
        ValueError: for an int outside ``0..100``.
        KeyError: for an unknown level name; the message lists the valid names.
        TypeError: for any other type.
    """
    if isinstance(priority, Priority):
        return priority.value
    if isinstance(priority, int):  # bool is an int, as in MMEngine
        if not 0 <= priority <= 100:
            raise ValueError(f"priority must be between 0 and 100, got {priority!r}")
        return int(priority)
    if isinstance(priority, str):
        try:
            return Priority[priority.upper()].value
        except KeyError:
            names = ", ".join(p.name for p in Priority)
            raise KeyError(f"unknown priority name {priority!r}; valid names are: {names}") from None
    raise TypeError(
        f"priority must be an integer or Priority enum value (or a level name), got {priority!r} "
        f"of type {type(priority).__name__}"
    )


def priority_name(priority: PriorityLike) -> str:
    """Name shown in the hooks table: the level name for a named value, else the raw value."""
    if isinstance(priority, Priority):
        return priority.name
    if isinstance(priority, str):
        return priority
    try:
        return Priority(priority).name
    except ValueError:
        return str(priority)
