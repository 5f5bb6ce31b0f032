"""Averaged models (EMA, momentum-annealing EMA, SWA) with MMEngine's semantics, updated at memory speed.

The classes take MMEngine's constructor arguments, run MMEngine's checks, expose
``module``, ``steps`` and ``update_parameters(model)``, keep MMEngine's
``state_dict`` layout (``'steps'`` plus ``'module.<name>'``) and produce the same
numbers as ``mmengine.model``'s classes for the same sequence of source weights:

* the first update (``steps == 0``) copies the source;
* later updates average only when ``steps % interval == 0``;
* with ``update_buffers=False`` every buffer is copied from the source on every call;
* ``steps`` grows by one on every call.

Where MMEngine is wrong or slow this module does better (documented in
``docs/hooks/ema_hook.md``):

* **Integer buffers** (BatchNorm's ``num_batches_tracked``) are copied on every
  call when ``update_buffers=True``. MMEngine copies them once at step 0 and then
  leaves them frozen; torch's ``AveragedModel`` averages and truncates them.
* **No host-device synchronisation per update.** ``steps`` is a Python ``int``
  on the host; MMEngine keeps it as a device tensor and reads it with
  ``if self.steps == 0`` / ``steps % interval`` (one sync each) and, in
  ``MomentumAnnealingEMA``, with ``.item()`` once per parameter.
* **One fused multi-tensor operation** (``torch._foreach_lerp_`` /
  ``torch._foreach_copy_``) over tensor lists resolved once and cached, instead
  of a Python loop over a parameter dict.
* The averaged copy may live on **another device or dtype** (``device='cpu'``
  offload, ``dtype=torch.float32`` for a bf16 model): the source is staged into
  one reusable buffer (pinned when it comes from CUDA) and averaged there.

**Sharded models** (FSDP2's ``fully_shard``, parameters are DTensors): the
averaged copy holds one shard per rank (:func:`~lightning_hooks.sharding.shard_copy`)
and each rank averages its own shards with the same fused operations, with no
communication; its ``state_dict()`` holds DTensors (a sharded state) and ``module``
has no ``forward``.

``steps`` is an ``int`` (MMEngine: a ``long`` tensor buffer); ``state_dict()``
still writes it as a 0-d ``long`` tensor under ``'steps'`` (on the CPU), and
``load_state_dict`` reads MMEngine's tensors, so checkpoints are interchangeable.
"""

from __future__ import annotations

import math
import warnings
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from .errors import AveragingConfigError
from .registry import AVERAGED_MODELS
from .sharding import has_dtensor_parameters, is_dtensor, local_tensor, reshard, shard_copy

__all__ = [
    "AveragingConfigError",
    "BaseAveragedModel",
    "ExpMomentumEMA",
    "ExponentialMovingAverage",
    "MomentumAnnealingEMA",
    "StochasticWeightAverage",
]

DeviceLike = Union[str, torch.device, None]


@dataclass
class _Group:
    """Averaged tensors sharing one (device, dtype), with their sources and optional staging buffers."""

    avg: list[Tensor]
    src_params: list[Tensor]
    src_buffers: list[tuple[nn.Module, str]]
    staging: Optional[list[Tensor]] = None
    sync_device: Optional[torch.device] = None
    src_sharded: bool = False

    def sources(self) -> list[Tensor]:
        """The source tensors now; buffers are looked up again because ``module.to()`` replaces them.

        Sharded (DTensor) sources give their local shards, read at each call
        (FSDP2 may re-point a parameter's shard after ``.to()``).
        """
        params: list[Tensor] = (
            [p.to_local() for p in self.src_params]  # type: ignore[attr-defined]
            if self.src_sharded
            else self.src_params
        )
        if not self.src_buffers:
            return params
        return params + [owner._buffers[leaf] for owner, leaf in self.src_buffers]  # type: ignore[misc]


@dataclass
class _Plan:
    """What one update touches, resolved once per source model (and again after ``.to()``)."""

    model_id: int
    groups: list[_Group] = field(default_factory=list)
    copy_avg: list[Tensor] = field(default_factory=list)
    copy_src_params: list[Tensor] = field(default_factory=list)
    copy_src_buffers: list[tuple[nn.Module, str]] = field(default_factory=list)

    def copy_sources(self) -> list[Tensor]:
        return self.copy_src_params + [owner._buffers[leaf] for owner, leaf in self.copy_src_buffers]  # type: ignore[misc]


def _owner_and_leaf(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, leaf = name.rpartition(".")
    return (model.get_submodule(path) if path else model), leaf


def _check_device(device: Any) -> None:
    """``device`` names a device this process has (None: the model's)."""
    if device is None:
        return
    if not isinstance(device, (str, torch.device)):
        raise AveragingConfigError(f"device must be a str, a torch.device or None, got {device!r}")
    try:
        wanted = torch.device(device)
    except RuntimeError as exc:
        raise AveragingConfigError(f"device={device!r} is not a device: {exc}") from None
    if wanted.type == "cuda" and not torch.cuda.is_available():
        raise AveragingConfigError(f"device={device!r}: this process has no CUDA device")


def _check_interval(interval: Any) -> int:
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise AveragingConfigError(f"interval must be an int >= 1 (update every `interval` calls), got {interval!r}")
    return interval


def _as_dtype(dtype: Any) -> Optional[torch.dtype]:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype.replace("torch.", ""), None)
        if isinstance(resolved, torch.dtype) and resolved.is_floating_point:
            return resolved
    raise AveragingConfigError(
        f"dtype must be None (keep the copy's dtype) or a floating torch.dtype such as torch.float32 "
        f"or 'bfloat16', got {dtype!r}"
    )


class BaseAveragedModel(nn.Module):
    """Keeps a running average of a model's weights in a private copy (``self.module``).

    Subclasses give the averaging rule with ``avg_func(averaged, source, steps)``
    (one tensor, in place), as in MMEngine. They may also override
    ``multi_avg_func(averaged_list, source_list, steps)`` to do the whole update
    in one fused call; the built-in classes do. A subclass that overrides only
    ``avg_func`` gets it called per tensor, so registering your own rule works::

        @AVERAGED_MODELS.register_module()
        class HalfwayAverage(BaseAveragedModel):
            def avg_func(self, averaged_param, source_param, steps):
                averaged_param.lerp_(source_param, 0.5)

    Args:
        model: the model to average; it is deep-copied (``requires_grad=False``).
        interval: average every ``interval`` calls of :meth:`update_parameters`
            (the first call always copies).
        device: where the averaged copy lives (e.g. ``'cpu'`` to offload it);
            None keeps the copy where the model was.
        update_buffers: average the floating-point buffers as well (BatchNorm
            running statistics); integer buffers are then copied on every call.
            When False, every buffer is copied from the source on every call.
        dtype: floating dtype of the averaged copy (an extension; None keeps the
            model's). ``torch.float32`` averages a bf16/fp16 model in fp32.
    """

    def __init__(
        self,
        model: nn.Module,
        interval: int = 1,
        device: DeviceLike = None,
        update_buffers: bool = False,
        dtype: Union[torch.dtype, str, None] = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise AveragingConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.interval = _check_interval(interval)
        if not isinstance(update_buffers, bool):
            raise AveragingConfigError(f"update_buffers must be True or False, got {update_buffers!r}")
        self.update_buffers = update_buffers
        _check_device(device)
        self.dtype = _as_dtype(dtype)
        self.sharded = has_dtensor_parameters(model)
        if self.sharded:
            self.module: nn.Module = self._sharded_copy(model, device)
        else:
            self.module = deepcopy(model).requires_grad_(False)
            if device is not None:
                self.module.to(device)
            if self.dtype is not None:
                self._cast_floats(self.dtype)
        self._steps = 0
        self._plan: Optional[_Plan] = None
        self._fused = self._fused_rule()

    def _sharded_copy(self, model: nn.Module, device: DeviceLike) -> nn.Module:
        """One shard per rank of the average: the shards of ``model`` copied (FSDP2 modules cannot be deep-copied)."""
        if device is not None:
            wanted = torch.device(device)
            have = next(local_tensor(p).device for p in model.parameters() if is_dtensor(p))
            if (wanted.type, wanted.index) != (have.type, have.index if wanted.index is not None else None):
                raise AveragingConfigError(
                    f"device={device!r}: the average of a sharded model stays on the shards' device ({have}); "
                    "each rank already holds only its shard of the average. Leave device=None."
                )
        return shard_copy(model, self.dtype)

    # ------------------------------------------------------------------ counters and layout
    @property
    def steps(self) -> int:
        """Number of :meth:`update_parameters` calls so far (a host int: reading it never syncs)."""
        return self._steps

    @steps.setter
    def steps(self, value: Any) -> None:
        self._steps = int(value)

    @property
    def avg_parameters(self) -> dict[str, Tensor]:
        """The averaged tensors by name: parameters, plus persistent buffers when ``update_buffers``."""
        params: dict[str, Tensor] = dict(self.module.named_parameters())
        if self.update_buffers:
            persistent = self.module.state_dict(keep_vars=True)
            params.update((k, b) for k, b in self.module.named_buffers() if k in persistent)
        return params

    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        # MMEngine's layout: a 0-d long tensor 'steps' before the 'module.*' entries.
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + "steps"] = torch.tensor(self._steps, dtype=torch.long)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        key = prefix + "steps"
        if key in state_dict:
            self._steps = int(state_dict[key])  # one read at load time, never per update
        elif strict:
            missing_keys.append(key)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        if key in unexpected_keys:
            unexpected_keys.remove(key)

    def __getstate__(self) -> dict[str, Any]:
        # The plan references the source model's tensors: a copy or pickle of the average must not drag it along.
        state = dict(self.__dict__)
        state["_plan"] = None
        return state

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        # .to()/.cuda()/.half() replace tensors: resolve the plan again at the next update.
        self._plan = None
        return super()._apply(fn, *args, **kwargs)

    def _cast_floats(self, dtype: torch.dtype) -> None:
        for tensor in [*self.module.parameters(), *self.module.buffers()]:
            if tensor.is_floating_point():
                tensor.data = tensor.data.to(dtype)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the averaged copy."""
        return self.module(*args, **kwargs)

    # ------------------------------------------------------------------ averaging rules
    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        """Average one tensor in place; ``steps`` is the number of earlier calls (an int)."""
        raise NotImplementedError(f"{type(self).__name__} must implement avg_func(averaged_param, source_param, steps)")

    def multi_avg_func(self, averaged: list[Tensor], source: list[Tensor], steps: int) -> None:
        """Average every tensor of one (device, dtype) group in place; by default ``avg_func`` per tensor."""
        for avg, src in zip(averaged, source, strict=True):
            self.avg_func(avg, src, steps)

    def _fused_rule(self) -> bool:
        """Whether ``multi_avg_func`` belongs to the same (or a more derived) class as ``avg_func``.

        A user's subclass of :class:`ExponentialMovingAverage` that overrides only
        ``avg_func`` must not be averaged with the parent's fused EMA rule.
        """
        mro = type(self).__mro__
        avg_owner = next(i for i, c in enumerate(mro) if "avg_func" in vars(c))
        multi_owner = next(i for i, c in enumerate(mro) if "multi_avg_func" in vars(c))
        return multi_owner <= avg_owner

    # ------------------------------------------------------------------ the update
    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        """Fold ``model``'s current weights into the average (MMEngine's rule; see the module docstring)."""
        plan = self._plan
        if plan is None or plan.model_id != id(model):
            plan = self._plan = self._build_plan(model)
        steps = self._steps
        if steps == 0:
            for group in plan.groups:
                torch._foreach_copy_(group.avg, group.sources())
        elif steps % self.interval == 0:
            for group in plan.groups:
                source = self._stage(group)
                if self._fused:
                    self.multi_avg_func(group.avg, source, steps)
                else:
                    BaseAveragedModel.multi_avg_func(self, group.avg, source, steps)
        if plan.copy_avg:
            torch._foreach_copy_(plan.copy_avg, plan.copy_sources())
        self._steps = steps + 1

    def copy_from(self, model: nn.Module) -> None:
        """Copy every parameter and buffer of ``model`` into the averaged copy; ``steps`` is unchanged.

        This is what EMAHook does before ``begin_iter``/``begin_epoch``.
        """
        plan = self._plan
        if plan is None or plan.model_id != id(model):
            plan = self._plan = self._build_plan(model)
        with torch.no_grad():
            for group in plan.groups:
                torch._foreach_copy_(group.avg, group.sources())
            if plan.copy_avg:
                torch._foreach_copy_(plan.copy_avg, plan.copy_sources())
            if not self.update_buffers:
                return
            # Non-persistent buffers are outside the plan in update_buffers mode; copy them too.
            averaged = {id(t) for g in plan.groups for t in g.avg} | {id(t) for t in plan.copy_avg}
            src = dict(model.named_buffers())
            for name, buf in self.module.named_buffers():
                if id(buf) not in averaged and name in src:
                    buf.copy_(src[name])

    @staticmethod
    def _stage(group: _Group) -> list[Tensor]:
        """The group's sources, moved to the averaged copy's device/dtype through the staging buffer if needed."""
        sources = group.sources()
        if group.staging is None:
            return sources
        torch._foreach_copy_(group.staging, sources, non_blocking=group.sync_device is not None)
        if group.sync_device is not None:
            # The device-to-host copies must land before the CPU reads them: one sync per update (offload only).
            torch.cuda.current_stream(group.sync_device).synchronize()
        return group.staging

    def _build_plan(self, model: nn.Module) -> _Plan:
        """Pair every averaged or copied tensor with its source, grouped for fused calls."""
        if self.sharded:
            reshard(model)  # named_parameters() must give the sharded parameters, not gathered ones
        plan = _Plan(model_id=id(model))
        src_params = dict(model.named_parameters())
        src_buffer_names = {name for name, _ in model.named_buffers()}
        persistent = set(self.module.state_dict(keep_vars=True)) if self.update_buffers else set()

        def source_of(name: str, is_buffer: bool) -> Union[Tensor, tuple[nn.Module, str]]:
            if is_buffer:
                if name not in src_buffer_names:
                    raise KeyError(f"buffer {name!r} of the averaged model is missing from the source model")
                return _owner_and_leaf(model, name)
            if name not in src_params:
                raise KeyError(f"parameter {name!r} of the averaged model is missing from the source model")
            return src_params[name]

        averaged: list[tuple[Tensor, Union[Tensor, tuple[nn.Module, str]]]] = []
        for name, param in self.module.named_parameters():
            averaged.append((param, source_of(name, False)))
        for name, buf in self.module.named_buffers():
            if self.update_buffers and name in persistent:
                if buf.is_floating_point():
                    averaged.append((buf, source_of(name, True)))
                else:
                    self._add_copy(plan, buf, source_of(name, True))
            elif not self.update_buffers:
                self._add_copy(plan, buf, source_of(name, True))
        self._group(plan, averaged)
        return plan

    @staticmethod
    def _add_copy(plan: _Plan, avg: Tensor, src: Union[Tensor, tuple[nn.Module, str]]) -> None:
        if isinstance(src, Tensor):
            plan.copy_avg.insert(len(plan.copy_src_params), avg)
            plan.copy_src_params.append(src)
        else:
            plan.copy_avg.append(avg)
            plan.copy_src_buffers.append(src)

    @staticmethod
    def _group(plan: _Plan, averaged: list[tuple[Tensor, Union[Tensor, tuple[nn.Module, str]]]]) -> None:
        by_key: dict[tuple[Any, ...], list[tuple[Tensor, Union[Tensor, tuple[nn.Module, str]]]]] = {}
        for avg, src in averaged:
            src_tensor = src if isinstance(src, Tensor) else src[0]._buffers[src[1]]
            assert src_tensor is not None
            if is_dtensor(avg) != is_dtensor(src_tensor):
                raise ValueError(
                    "the averaged copy and the source model disagree on sharding (one holds DTensors, the other "
                    "not): the model was sharded after the copy was made; build the average again"
                )
            sharded = is_dtensor(src_tensor)
            avg, src_local = local_tensor(avg), local_tensor(src_tensor)
            if src_local.shape != avg.shape:
                raise ValueError(
                    f"shape mismatch between the averaged copy {tuple(avg.shape)} and the source "
                    f"{tuple(src_local.shape)}: the source model's structure changed after the copy was made"
                )
            key = (avg.device, avg.dtype, src_local.device, src_local.dtype, sharded)
            by_key.setdefault(key, []).append((avg, src))
        for (avg_device, avg_dtype, src_device, src_dtype, sharded), pairs in by_key.items():
            params = [(a, s) for a, s in pairs if isinstance(s, Tensor)]
            buffers = [(a, s) for a, s in pairs if not isinstance(s, Tensor)]
            group = _Group(
                avg=[a for a, _ in params] + [a for a, _ in buffers],
                src_params=[s for _, s in params],  # type: ignore[misc]
                src_buffers=[s for _, s in buffers],  # type: ignore[misc]
                src_sharded=sharded,
            )
            if (avg_device, avg_dtype) != (src_device, src_dtype):
                pinned = avg_device.type == "cpu" and src_device.type == "cuda"
                total = sum(a.numel() for a in group.avg)
                flat = torch.empty(total, dtype=avg_dtype, device=avg_device, pin_memory=pinned)
                views, offset = [], 0
                for a in group.avg:
                    views.append(flat[offset : offset + a.numel()].view_as(a))
                    offset += a.numel()
                group.staging = views
                group.sync_device = src_device if pinned else None
            plan.groups.append(group)


@AVERAGED_MODELS.register_module()
class StochasticWeightAverage(BaseAveragedModel):
    """Stochastic weight averaging: the running mean of the snapshots taken at steps 0, interval, 2·interval, ...

    ``avg += (src - avg) / (steps // interval + 1)``, done as one fused ``lerp``.
    """

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        averaged_param.lerp_(source_param, 1.0 / float(int(steps) // self.interval + 1))

    def multi_avg_func(self, averaged: list[Tensor], source: list[Tensor], steps: int) -> None:
        torch._foreach_lerp_(averaged, source, 1.0 / float(steps // self.interval + 1))


@AVERAGED_MODELS.register_module()
class ExponentialMovingAverage(BaseAveragedModel):
    """Exponential moving average: ``avg = (1 - momentum) * avg + momentum * src``.

    ``momentum`` is the weight of the *new* value (MMEngine's convention, the
    opposite of an optimizer's momentum or torch's ``decay``), hence its small default.

    Args:
        model: the model to average.
        momentum: weight of the source in each update, in (0, 1); a value above
            0.5 is probably a decay given by mistake and is warned about.
        interval: average every ``interval`` calls.
        device: where the averaged copy lives (None: where the model is).
        update_buffers: average floating-point buffers too.
        dtype: dtype of the averaged copy (None: the model's).
    """

    def __init__(
        self,
        model: nn.Module,
        momentum: float = 0.0002,
        interval: int = 1,
        device: DeviceLike = None,
        update_buffers: bool = False,
        dtype: Union[torch.dtype, str, None] = None,
    ) -> None:
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 < momentum < 1.0:
            raise AveragingConfigError(
                f"momentum must be in range (0.0, 1.0) (the weight of the new value, e.g. 0.0002), got {momentum!r}"
            )
        super().__init__(model, interval, device, update_buffers, dtype)
        if momentum > 0.5:
            message = (
                f"The value of momentum in EMA is usually a small number (the weight of the new value), "
                f"which is different from the conventional notion of momentum, but got {momentum}. "
                f"Did you mean momentum={1 - momentum:g}?"
            )
            warnings.warn(message, UserWarning, stacklevel=2)  # at construction: a Python warning only
        self.momentum = float(momentum)

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        averaged_param.lerp_(source_param, self.momentum)

    def multi_avg_func(self, averaged: list[Tensor], source: list[Tensor], steps: int) -> None:
        torch._foreach_lerp_(averaged, source, self.momentum)


@AVERAGED_MODELS.register_module()
class MomentumAnnealingEMA(ExponentialMovingAverage):
    """EMA whose momentum starts large and anneals: ``m = max(momentum, gamma / (gamma + steps))``.

    ``steps`` is the number of earlier calls, read on the host (MMEngine calls
    ``steps.item()`` once per parameter: one device sync per tensor on GPU).

    Args:
        model: the model to average.
        momentum: the floor of the annealed momentum, in (0, 1).
        gamma: annealing speed, > 0; larger keeps the momentum high for longer.
        interval: average every ``interval`` calls.
        device: where the averaged copy lives.
        update_buffers: average floating-point buffers too.
        dtype: dtype of the averaged copy (None: the model's).
    """

    def __init__(
        self,
        model: nn.Module,
        momentum: float = 0.0002,
        gamma: int = 100,
        interval: int = 1,
        device: DeviceLike = None,
        update_buffers: bool = False,
        dtype: Union[torch.dtype, str, None] = None,
    ) -> None:
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0:
            raise AveragingConfigError(f"gamma must be greater than 0 (e.g. 100), but got {gamma!r}")
        super().__init__(model, momentum, interval, device, update_buffers, dtype)
        self.gamma = gamma

    def annealed_momentum(self, steps: int) -> float:
        """The momentum used at an update made after ``steps`` earlier calls."""
        return max(self.momentum, self.gamma / (self.gamma + int(steps)))

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        averaged_param.lerp_(source_param, self.annealed_momentum(steps))

    def multi_avg_func(self, averaged: list[Tensor], source: list[Tensor], steps: int) -> None:
        torch._foreach_lerp_(averaged, source, self.annealed_momentum(steps))


@AVERAGED_MODELS.register_module()
class ExpMomentumEMA(ExponentialMovingAverage):
    """mmdet's and mmyolo's EMA (RTMDet, YOLOX): ``m = (1 - momentum) * exp(-(1 + steps) / gamma) + momentum``.

    The momentum starts near 1 and decays exponentially to ``momentum``. The update is
    ``avg = avg * (1 - m) + src * m``, written as mmdet writes it (multiply, then add), so the
    numbers are mmdet's.

    Args:
        model: the model to average.
        momentum: the floor of the momentum, in (0, 1).
        gamma: decay speed, > 0; larger keeps the momentum high for longer.
        interval: average every ``interval`` calls.
        device: where the averaged copy lives.
        update_buffers: average floating-point buffers too.
        dtype: dtype of the averaged copy (None: the model's).
    """

    def __init__(
        self,
        model: nn.Module,
        momentum: float = 0.0002,
        gamma: int = 2000,
        interval: int = 1,
        device: DeviceLike = None,
        update_buffers: bool = False,
        dtype: Union[torch.dtype, str, None] = None,
    ) -> None:
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0:
            raise AveragingConfigError(f"gamma must be greater than 0 (e.g. 2000), but got {gamma!r}")
        super().__init__(model, momentum, interval, device, update_buffers, dtype)
        self.gamma = gamma

    def exp_momentum(self, steps: int) -> float:
        """The momentum used at an update made after ``steps`` earlier calls."""
        return (1 - self.momentum) * math.exp(-float(1 + int(steps)) / self.gamma) + self.momentum

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        momentum = self.exp_momentum(steps)
        averaged_param.mul_(1 - momentum).add_(source_param, alpha=momentum)

    def multi_avg_func(self, averaged: list[Tensor], source: list[Tensor], steps: int) -> None:
        momentum = self.exp_momentum(steps)
        torch._foreach_mul_(averaged, 1 - momentum)
        torch._foreach_add_(averaged, source, alpha=momentum)
