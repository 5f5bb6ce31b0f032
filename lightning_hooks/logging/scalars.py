"""Helpers that turn a tag (what LogProcessor returns) into what writers accept."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

__all__ = ["json_ready", "numeric_scalars"]


def json_ready(value: Any) -> Any:
    """``value`` with tensors and arrays turned into lists and numpy numbers into Python ones.

    Values of other types (objects JSON cannot hold) are dropped from dicts and
    lists, as MMEngine's LoggerHook does for test results.
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            converted = json_ready(item)
            if converted is not None or item is None:
                out[key] = converted
        return out
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        return value.tolist()
    return None


def numeric_scalars(tag: dict[str, Any]) -> tuple[dict[str, float], list[str]]:
    """The entries of ``tag`` that are real numbers (as floats), and the names of the others."""
    numbers_only: dict[str, float] = {}
    skipped: list[str] = []
    for key, value in tag.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        elif isinstance(value, (np.ndarray, np.generic)) and value.size == 1:
            value = value.item()
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            numbers_only[key] = float(value)
        else:
            skipped.append(key)
    return numbers_only, skipped
