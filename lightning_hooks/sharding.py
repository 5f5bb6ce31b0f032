"""Sharded parameters (FSDP2's ``fully_shard``, DTensor): what the hooks need to work shard by shard.

Under Lightning's ``ModelParallelStrategy`` each parameter is a ``DTensor``:
every rank holds one shard (``param.to_local()``) and an all-gather rebuilds the
full tensor. The helpers here let hooks keep per-rank state (EMAHook's average)
on the shards only, without an all-gather per update:

* :func:`reshard` puts every FSDP2 module back in its sharded state, so that
  ``named_parameters()`` returns the sharded parameters (after an evaluation
  forward pass FSDP2 leaves the root module's parameters gathered) and the next
  forward pass gathers again from the shards;
* :func:`shard_copy` copies a model's parameters and buffers, shard by shard,
  into a plain module tree with the same names (no FSDP2 hooks: FSDP2 modules
  cannot be deep-copied);
* :func:`exchange_values` swaps two shards in place, so FSDP2 keeps gathering
  from the storage it owns;
* :func:`gather_full` builds full tensors from shards (a collective).

Reading and writing sharded checkpoint directories (``torch.distributed.checkpoint``)
is in :mod:`lightning_hooks.sharded_checkpoint`. Nothing here imports Lightning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Optional

import torch
from torch import Tensor, nn

__all__ = [
    "distribute_like",
    "exchange_values",
    "gather_full",
    "has_dtensor_parameters",
    "is_dtensor",
    "local_tensor",
    "reshard",
    "shard_copy",
]


def _dtensor_type() -> Optional[type]:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # torch built without distributed support
        return None
    return DTensor


def is_dtensor(tensor: Any) -> bool:
    """Whether ``tensor`` is a ``DTensor`` (a sharded or replicated distributed tensor)."""
    dtensor = _dtensor_type()
    return dtensor is not None and isinstance(tensor, dtensor)


def has_dtensor_parameters(model: nn.Module) -> bool:
    """Whether any parameter of ``model`` is a ``DTensor`` (FSDP2 / tensor parallel)."""
    return any(is_dtensor(p) for p in model.parameters())


def local_tensor(tensor: Tensor) -> Tensor:
    """This rank's shard of a DTensor (the storage itself, not a copy), or the tensor unchanged."""
    if is_dtensor(tensor):
        with torch.no_grad():
            return tensor.to_local()  # type: ignore[attr-defined,no-any-return]
    return tensor


def reshard(model: nn.Module) -> None:
    """Put every FSDP2 module of ``model`` in its sharded state (frees gathered parameters).

    Afterwards ``model.named_parameters()`` returns the sharded parameters, whose
    local storage is what FSDP2 gathers from at the next forward pass. Cheap when
    already sharded; no communication.
    """
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:
        return
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()


def _copy_tensor(tensor: Tensor, dtype: Optional[torch.dtype]) -> Tensor:
    copy = tensor.detach().clone()
    if dtype is not None and copy.is_floating_point():
        copy = copy.to(dtype)
    return copy


def shard_copy(model: nn.Module, dtype: Optional[torch.dtype] = None) -> nn.Module:
    """A module tree with ``model``'s parameter and buffer names holding copies of this rank's shards.

    DTensor parameters are copied as DTensors (same mesh and placements, a
    cloned local shard: memory per rank is one shard); plain tensors are cloned.
    Tied parameters stay tied; non-persistent buffers stay non-persistent. The
    copy has no ``forward`` (its modules are plain ``nn.Module``): it holds state.
    ``dtype`` converts floating tensors.
    """
    reshard(model)
    root = nn.Module()
    copies: dict[int, Tensor] = {}

    def owner(path: str) -> nn.Module:
        module = root
        for part in path.split(".") if path else ():
            child = module._modules.get(part)
            if child is None:
                child = nn.Module()
                module.add_module(part, child)
            module = child
        return module

    with torch.no_grad():
        for name, param in model.named_parameters(remove_duplicate=False):
            path, _, leaf = name.rpartition(".")
            if id(param) not in copies:
                copies[id(param)] = nn.Parameter(_copy_tensor(param, dtype), requires_grad=False)
            owner(path).register_parameter(leaf, copies[id(param)])  # type: ignore[arg-type]
        for module_name, module in model.named_modules(remove_duplicate=False):
            for leaf, buffer in module._buffers.items():
                if buffer is None:
                    continue
                persistent = leaf not in module._non_persistent_buffers_set
                owner(module_name).register_buffer(leaf, _copy_tensor(buffer, dtype), persistent=persistent)
    return root


def exchange_values(a: Tensor, b: Tensor) -> None:
    """Swap the values of two tensors of the same shape in place (one temporary copy of one tensor).

    DTensors exchange their local shards: no communication, and both keep their storage.
    """
    a_local, b_local = local_tensor(a), local_tensor(b)
    with torch.no_grad():
        kept = a_local.clone()
        a_local.copy_(b_local)
        b_local.copy_(kept)


def gather_full(items: Iterable[tuple[str, Any]], to_cpu: bool = True, keep: bool = True) -> dict[str, Any]:
    """Full tensors from (name, tensor) pairs: DTensors are all-gathered (a collective), others cloned.

    Every rank must call it with the same names in the same order. With
    ``keep=False`` the gathered tensors are dropped after the collective (ranks
    that only take part in it keep one tensor at a time in memory).
    """
    result: dict[str, Any] = {}
    for name, value in items:
        if isinstance(value, Tensor):
            full = value.full_tensor() if is_dtensor(value) else value  # type: ignore[attr-defined]
            full = full.detach()
            if keep:
                result[name] = full.to("cpu", copy=True) if to_cpu else full.clone()
        elif keep:
            result[name] = value
    return result


def distribute_like(full: Tensor, like: Tensor) -> Tensor:
    """``full`` laid out as ``like``: this rank's shard of it when ``like`` is a DTensor (no communication).

    Every rank must hold the same ``full`` tensor (as when each loads the same file).
    """
    if not is_dtensor(like):
        return full
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(
        full.to(like.device, like.dtype),
        like.device_mesh,  # type: ignore[attr-defined]
        like.placements,  # type: ignore[attr-defined]
        src_data_rank=None,
    )


def sharded_items(state: Mapping[str, Any]) -> bool:
    """Whether a state dict holds DTensors (a sharded state, as ``get_model_state_dict`` gives it)."""
    return any(is_dtensor(v) for v in state.values())
