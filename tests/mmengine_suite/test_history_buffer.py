"""MMEngine 0.10.7 ``tests/test_logging/test_history_buffer.py``, against :class:`lightning_hooks.HistoryBuffer`.

Same cases and expected values; ``_log_history``/``_count_history`` (MMEngine's
private arrays) are read through the public ``data`` property.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer as MMHistoryBuffer

from lightning_hooks import HistoryBuffer

ARRAY_METHODS = [np.array, lambda x: x, torch.tensor]


@HistoryBuffer.register_statistics
def suite_custom_statistics(self):
    return -1


def test_init():
    buffer = HistoryBuffer()
    assert buffer.max_length == 1_000_000
    values, counts = buffer.data
    assert len(values) == 0 and len(counts) == 0
    # Longer than max_length: the oldest entries are dropped (with MMEngine's warning).
    logs = np.random.randint(1, 10, buffer.max_length + 1)
    counts_in = np.random.randint(1, 10, buffer.max_length + 1)
    with pytest.warns(UserWarning, match="exceeds the max_length"):
        buffer = HistoryBuffer(logs, counts_in)
    values, counts = buffer.data
    assert len(values) == len(counts) == buffer.max_length
    assert logs[1] == values[0] and counts_in[1] == counts[0]
    with pytest.raises(AssertionError):
        HistoryBuffer([1, 2], [1])


@pytest.mark.parametrize("array_method", ARRAY_METHODS, ids=["numpy", "list", "torch"])
def test_update(array_method):
    buffer = HistoryBuffer()
    log_history = array_method([1, 2, 3, 4, 5])
    count_history = array_method([5, 5, 5, 5, 5])
    for i in range(len(log_history)):
        buffer.update(float(log_history[i]), float(count_history[i]))  # a float count is accepted
    values, counts = buffer.data
    assert [float(v) for v in log_history] == [float(v) for v in values]
    assert [float(c) for c in count_history] == [float(c) for c in counts]

    # A 2-D history is flattened; the update then drops the oldest entry.
    max_length = buffer.max_length
    max_array = array_method([[-1] + [1] * (max_length - 1)])
    max_count = array_method([[-1] + [1] * (max_length - 1)])
    buffer = HistoryBuffer(max_array, max_count)
    buffer.update(1)
    values, counts = buffer.data
    assert values[0] == 1 and counts[0] == 1
    assert len(values) == len(counts) == max_length
    with pytest.raises(TypeError):
        buffer.update(array_method([1, 2]))


@pytest.mark.parametrize("statistics_method, name", [(np.min, "min"), (np.max, "max")])
def test_max_min(statistics_method, name):
    log_history = np.random.randint(1, 5, 20)
    buffer = HistoryBuffer(log_history, np.ones(20))
    assert statistics_method(log_history[-10:]) == getattr(buffer, name)(10)
    assert statistics_method(log_history) == getattr(buffer, name)()


def test_mean():
    log_history = np.random.randint(1, 5, 20)
    count_history = np.ones(20)
    buffer = HistoryBuffer(log_history, count_history)
    assert np.sum(log_history[-10:]) / np.sum(count_history[-10:]) == buffer.mean(10)
    assert np.sum(log_history) / np.sum(count_history) == buffer.mean()


def test_mean_is_mmengines_to_the_last_bit():
    """Random float windows: numpy's pairwise sum, not Python's sequential one (which differs in ~1/3 of them)."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        n = int(rng.integers(2, 300))
        values = rng.normal(size=n).tolist()
        counts = rng.integers(1, 4, size=n).tolist()
        ours, theirs = HistoryBuffer(), MMHistoryBuffer()
        for v, c in zip(values, counts, strict=True):
            ours.update(v, c)
            theirs.update(v, c)
        window = int(rng.integers(1, n + 1))
        assert ours.mean(window) == theirs.mean(window)
        assert ours.mean() == theirs.mean()


def test_current():
    log_history = np.random.randint(1, 5, 20)
    buffer = HistoryBuffer(log_history, np.ones(20))
    assert log_history[-1] == buffer.current()
    with pytest.raises(ValueError):
        HistoryBuffer().current()


def test_statistics():
    buffer = HistoryBuffer(np.array([1, 2, 3, 4, 5]), np.array([1, 1, 1, 1, 1]))
    assert buffer.statistics("mean") == 3
    assert buffer.statistics("min") == 1
    assert buffer.statistics("max") == 5
    assert buffer.statistics("current") == 5
    with pytest.raises(KeyError):
        buffer.statistics("unknown")


def test_register_statistics():
    assert HistoryBuffer().statistics("suite_custom_statistics") == -1


def test_window_size_must_be_int():
    """MMEngine asserts ``isinstance(window_size, int)``."""
    buffer = HistoryBuffer([1, 2], [1, 1])
    for name in ("mean", "max", "min"):
        with pytest.raises(AssertionError, match="window size"):
            getattr(buffer, name)(1.5)
