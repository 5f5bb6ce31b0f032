"""MMEngine 0.10.7 ``tests/test_runner/test_priority.py``: ``get_priority``."""

from __future__ import annotations

import pytest

from lightning_hooks import Priority, get_priority


def test_get_priority():
    assert get_priority(10) == 10
    with pytest.raises(ValueError, match="priority must be between 0 and 100"):
        get_priority(-1)
    with pytest.raises(ValueError, match="priority must be between 0 and 100"):
        get_priority(101)
    assert get_priority(Priority.HIGHEST) == 0
    assert get_priority(Priority.LOWEST) == 100
    assert get_priority("HIGHEST") == 0
    assert get_priority("LOWEST") == 100
    with pytest.raises(TypeError, match="priority must be an integer or Priority enum value"):
        get_priority([10])
