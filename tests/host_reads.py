"""Counting the calls that bring a tensor's value to the host, per training iteration.

On a GPU each of these is a synchronisation; the tests count them on the CPU instead of timing
them. ``pretend_accelerator_tensors`` makes CPU tensors look like accelerator ones, so the code
paths a GPU takes (batched copies) run in CPU-only CI.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lightning_hooks import Hook

HOST_READS = ("item", "tolist", "cpu", "__float__")


def count_host_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """``{'n': calls}`` of every :data:`HOST_READS` method of ``torch.Tensor`` for the rest of the test."""
    counts = {"n": 0}
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self: torch.Tensor, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            counts["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


def pretend_accelerator_tensors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every tensor report ``is_cpu`` False for the rest of the test."""
    monkeypatch.setattr(torch.Tensor, "is_cpu", property(lambda self: False))


def per_iteration_reads(counts: dict[str, int]) -> tuple[list[Hook], dict[int, int]]:
    """Two hooks (first and last at every iteration) and the host reads they see per iteration, by ``iter + 1``."""
    seen: dict[int, int] = {}

    class First(Hook):
        priority = "HIGHEST"

        def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
            self.start = counts["n"]

    class Last(Hook):
        priority = "LOWEST"

        def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
            seen[runner.iter + 1] = counts["n"] - first.start

    first = First()
    return [first, Last()], seen
