"""Which direction is better for a metric: MMEngine's rule inference, shared by CheckpointHook and EarlyStoppingHook."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["DEFAULT_GREATER_KEYS", "DEFAULT_LESS_KEYS", "RULES", "infer_rule"]

#: Name fragments meaning "higher is better" (MMEngine's list).
DEFAULT_GREATER_KEYS: tuple[str, ...] = (
    "acc",
    "top",
    "AR@",
    "auc",
    "precision",
    "mAP",
    "mDice",
    "mIoU",
    "mAcc",
    "aAcc",
)
#: Name fragments meaning "lower is better".
DEFAULT_LESS_KEYS: tuple[str, ...] = ("loss",)
RULES = ("greater", "less")


def infer_rule(
    key: str,
    greater_keys: Sequence[str] = DEFAULT_GREATER_KEYS,
    less_keys: Sequence[str] = DEFAULT_LESS_KEYS,
) -> str:
    """``'greater'`` or ``'less'`` for a metric name, in MMEngine's order.

    Case-insensitive: an exact greater key, an exact less key, then a greater key
    contained in the name, then a less key contained in it.

    Raises:
        ValueError: when no key matches; the message lists both key lists.
    """
    name = key.lower()
    greater = [k.lower() for k in greater_keys]
    less = [k.lower() for k in less_keys]
    if name in greater:
        return "greater"
    if name in less:
        return "less"
    if any(k in name for k in greater):
        return "greater"
    if any(k in name for k in less):
        return "less"
    raise ValueError(
        f"Cannot infer the rule for key {key!r}, thus a specific rule must be specified: rule='greater' or "
        f"rule='less' (names are inferred from greater keys {list(greater_keys)} and less keys {list(less_keys)})."
    )
