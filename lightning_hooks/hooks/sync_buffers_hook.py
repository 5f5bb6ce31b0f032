"""SyncBuffersHook: average the model's buffers (e.g. BatchNorm running stats) across ranks.

DDP keeps parameters identical on every rank, but buffers updated in the
forward pass (BatchNorm's running mean and variance) drift apart because each
rank sees other data. This hook replaces every buffer by its mean over the
ranks after each training epoch, as MMEngine's does, through the Trainer's
strategy (gloo, NCCL, whatever the Trainer runs on). Integer buffers
(``num_batches_tracked``) get MMEngine's mean truncated toward zero, so they too
are equal on every rank afterwards.

Differences from MMEngine, on purpose (integer buffers summed in float64, half precision averaged
in float32, distribution read at each call): see ``docs/hooks/sync_buffers_hook.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional

import torch

from ..registry import HOOKS
from .hook import Hook

if TYPE_CHECKING:
    from ..runner import RunnerView

__all__ = ["SyncBuffersHook", "average_buffers"]

#: Dtypes reduced in float32 and cast back.
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _reduced_dtype(dtype: torch.dtype) -> Optional[torch.dtype]:
    """The dtype a buffer is averaged in: float32 for half precision, float64 for integers, else its own.

    None for buffers that are not averaged (bool, complex).
    """
    if dtype in _LOW_PRECISION:
        return torch.float32
    if dtype.is_floating_point:
        return dtype
    if dtype == torch.bool or dtype.is_complex:
        return None
    return torch.float64  # integers: MMEngine's mean, truncated toward zero when copied back


def _group_floating(buffers: Iterable[torch.Tensor]) -> dict[tuple[torch.device, torch.dtype], list[torch.Tensor]]:
    """Averaged tensors (floating point and integer) grouped by (device, dtype), in model order, each once."""
    groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    seen: set[int] = set()
    for buffer in buffers:
        if _reduced_dtype(buffer.dtype) is None or buffer.numel() == 0 or id(buffer) in seen:
            continue
        seen.add(id(buffer))
        groups.setdefault((buffer.device, buffer.dtype), []).append(buffer)
    return groups


#: Buffers with at least this many elements are reduced on their own, in place; smaller ones of one
#: device and dtype are flattened into one tensor. Flattening saves a collective per small buffer
#: (BatchNorm stats: ~100x faster than one collective each) but copies the data twice, which costs
#: more than it saves for large buffers.
COALESCE_LIMIT = 1 << 18


def _collective_groups(buffers: Iterable[torch.Tensor]) -> list[list[torch.Tensor]]:
    """The buffers to reduce together, one list per collective, in model order (identical on every rank)."""
    plan: list[list[torch.Tensor]] = []
    for group in _group_floating(buffers).values():
        small = [b for b in group if b.numel() < COALESCE_LIMIT]
        if small:
            plan.append(small)
        plan.extend([b] for b in group if b.numel() >= COALESCE_LIMIT)
    return plan


def _reduce_alone(buffer: torch.Tensor, reduce_mean: Any) -> None:
    dtype = _reduced_dtype(buffer.dtype)
    in_place = buffer.is_contiguous() and dtype == buffer.dtype
    work = buffer if in_place else buffer.detach().to(dtype).contiguous()
    reduced = reduce_mean(work)
    if reduced is not buffer:
        buffer.copy_(reduced)  # an integer buffer takes the mean truncated toward zero, as in MMEngine


def _reduce_flattened(group: list[torch.Tensor], reduce_mean: Any) -> None:
    flat = torch.cat([b.detach().reshape(-1) for b in group])
    flat = flat.to(_reduced_dtype(flat.dtype))
    reduced = reduce_mean(flat)
    offset = 0
    for buffer in group:
        n = buffer.numel()
        buffer.copy_(reduced[offset : offset + n].view_as(buffer))
        offset += n


def average_buffers(buffers: Iterable[torch.Tensor], reduce_mean: Any) -> int:
    """Replace each floating-point or integer tensor in ``buffers`` by ``reduce_mean`` of it, in place.

    Small tensors of one device and dtype are flattened so that they cost a
    single collective; large ones (``COALESCE_LIMIT`` elements or more) are
    reduced on their own, in place. ``reduce_mean(tensor)`` must return the
    element-wise mean over the ranks (every rank must call it in the same order).
    Returns the number of collectives issued.
    """
    plan = _collective_groups(buffers)
    with torch.no_grad():
        for group in plan:
            if len(group) == 1:
                _reduce_alone(group[0], reduce_mean)
            else:
                _reduce_flattened(group, reduce_mean)
    return len(plan)


@HOOKS.register_module()
class SyncBuffersHook(Hook):
    """Average every buffer of the model across ranks after each training epoch (integers: truncated mean).

    In iteration-based training ``after_train_epoch`` comes only at the end, so
    buffers are also averaged before each validation that no training epoch end
    synchronised just before (MMEngine's ``called_in_train`` rule). On one
    process it does nothing.
    """

    priority = "NORMAL"

    def __init__(self) -> None:
        self.called_in_train = False
        self.collectives = 0

    def _sync(self, runner: RunnerView) -> None:
        strategy = runner.trainer.strategy

        def reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
            return strategy.reduce(tensor, reduce_op="mean")

        self.collectives += average_buffers(runner.model.buffers(), reduce_mean)

    @staticmethod
    def _distributed(runner: RunnerView) -> bool:
        return bool(getattr(runner, "distributed", False))

    def after_train_epoch(self, runner: RunnerView) -> None:
        """Average the buffers (every rank reaches this point, so the collective cannot hang)."""
        if self._distributed(runner):
            self._sync(runner)
            self.called_in_train = True

    def before_val_epoch(self, runner: RunnerView) -> None:
        """Average the buffers unless the training epoch that just ended already did."""
        if self._distributed(runner):
            if not self.called_in_train:
                self._sync(runner)
            self.called_in_train = False

    def __repr__(self) -> str:
        return "SyncBuffersHook()"
