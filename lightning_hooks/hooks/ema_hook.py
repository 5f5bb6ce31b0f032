"""EMAHook: MMEngine's exponential moving average of the weights, used for validation, test and checkpoints.

What it does, as MMEngine's ``EMAHook``:

* ``before_run`` deep-copies the model into an averaged model built from
  ``AVERAGED_MODELS`` (``ema_type`` is a registered name or a class);
* ``after_train_iter`` updates the average from ``begin_iter``/``begin_epoch``
  on and copies the weights before that;
* validation and test run on the averaged weights: they are swapped into the
  model in ``before_val_epoch``/``before_test_epoch`` and back in
  ``after_val_epoch``/``after_test_epoch`` (at priority NORMAL, so before
  CheckpointHook, at VERY_LOW, saves a best checkpoint);
* checkpoints get MMEngine's layout: ``state_dict`` holds the averaged
  weights (ready to deploy) and ``ema_state_dict`` the averaged model's state,
  which carries the raw training weights under ``module.*`` plus ``steps``;
* resuming restores the training weights and the average; loading (validate or
  test with ``ckpt_path``) gives both the model and the average the checkpoint's
  ``state_dict``; a checkpoint without ``ema_state_dict`` starts the average
  from its weights (with a warning when resuming).

Differences from MMEngine, on purpose (a swap that moves no data, the trained weights kept after
``fit``, sharded models, ...): see ``docs/hooks/ema_hook.md``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Optional, Union

import torch
from torch import Tensor, nn

from ..arguments import check_keywords, keyword_names
from ..averaging import AveragingConfigError, BaseAveragedModel
from ..checkpoint_io import wait_for_snapshot_copies
from ..registry import AVERAGED_MODELS, HOOKS
from ..sharded_checkpoint import SHARDED_EMA_PREFIX, load_sharded_entries
from ..sharding import (
    distribute_like,
    exchange_values,
    gather_full,
    has_dtensor_parameters,
    is_dtensor,
    local_tensor,
    reshard,
    sharded_items,
)
from .hook import DATA_BATCH, Hook

if TYPE_CHECKING:
    from ..runner import RunnerView

__all__ = ["EMAHook"]


def _resolve_ema_type(ema_type: Any) -> None:
    """Fail at construction (MMEngine fails at ``before_run``) when ``ema_type`` cannot be built."""
    if isinstance(ema_type, str):
        if AVERAGED_MODELS.get(ema_type) is None:
            known = ", ".join(sorted(AVERAGED_MODELS.module_dict))
            raise AveragingConfigError(f"ema_type {ema_type!r} is not a registered averaged model; registered: {known}")
        return
    if isinstance(ema_type, type) and issubclass(ema_type, BaseAveragedModel):
        return
    raise AveragingConfigError(
        f"ema_type must be the name of a registered averaged model or a subclass of "
        f"lightning_hooks.averaging.BaseAveragedModel, got {ema_type!r}"
    )


def _averaged_model_class(ema_type: Union[str, type]) -> type:
    found = AVERAGED_MODELS.get(ema_type) if isinstance(ema_type, str) else ema_type
    assert isinstance(found, type)
    return found


def _check_ema_kwargs(ema_type: Union[str, type], kwargs: dict[str, Any]) -> None:
    """Check the averaged model's arguments at construction: names first, then values.

    A misspelt name is a ``TypeError`` naming the closest valid one. The values
    are checked by building the averaged model around an empty module, which
    costs nothing and runs the class's own checks (momentum range, interval...).
    """
    cls = _averaged_model_class(ema_type)
    names, var_keyword = keyword_names(cls)
    names = [n for n in names if n != "model"]
    if not var_keyword:
        check_keywords("EMAHook", kwargs, ["ema_type", "strict_load", "begin_iter", "begin_epoch", *names])
    if "model" in kwargs:
        raise TypeError("EMAHook: 'model' is not an argument; the averaged model copies the Trainer's module")
    try:
        cls(nn.Module(), **kwargs)
    except (AveragingConfigError, TypeError, ValueError):
        raise
    except Exception:  # a custom class that needs a real model: its checks run in before_run
        pass


#: Strategies whose sharding EMAHook cannot see through (flat parameters, partitioned optimizer states).
_REFUSED_STRATEGIES = {
    "FSDPStrategy": "FSDP1 (strategy='fsdp') flattens parameters into per-rank FlatParameters",
    "DeepSpeedStrategy": "DeepSpeed partitions parameters outside the module",
    "XLAFSDPStrategy": "XLA FSDP flattens parameters into per-rank shards",
}


def _check_supported(runner: RunnerView, model: nn.Module) -> None:
    """Refuse the sharding schemes whose shards are not DTensors (FSDP1, DeepSpeed, XLA FSDP).

    FSDP2 (``fully_shard`` under ``ModelParallelStrategy``) is supported: its
    parameters are DTensors and each rank averages its own shards.
    """
    strategy = getattr(getattr(runner, "trainer", None), "strategy", None)
    name = type(strategy).__name__ if strategy is not None else ""
    reason = _REFUSED_STRATEGIES.get(name)
    if reason is None and _has_fsdp1_modules(model):
        name, reason = "FSDP1", "FSDP1 (FullyShardedDataParallel) flattens parameters into per-rank FlatParameters"
    if reason is not None:
        raise RuntimeError(
            f"EMAHook does not support {name}: {reason}, so an average cannot be matched to the model's "
            "parameters. Use Lightning's ModelParallelStrategy with torch.distributed.fsdp.fully_shard "
            "(FSDP2) in configure_model (EMAHook averages each rank's shards), or strategy='ddp'."
        )


def _has_fsdp1_modules(model: nn.Module) -> bool:
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel
    except ImportError:
        return False
    return any(isinstance(m, FullyShardedDataParallel) for m in model.modules())


def _defers_build(runner: Any) -> bool:
    """Under ModelParallelStrategy the model is sharded in ``configure_model``, after ``before_run``."""
    strategy = getattr(getattr(runner, "trainer", None), "strategy", None)
    return type(strategy).__name__ == "ModelParallelStrategy"


def _process_rank() -> int:
    """This process's rank in the default process group (0 without one)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return int(torch.distributed.get_rank())
    return 0


def _load_weights(module: nn.Module, state_dict: Mapping[str, Any], strict: bool, what: str, logger: Any) -> None:
    """Load like MMEngine's ``load_state_dict`` helper: non-strict skips missing, extra and reshaped tensors."""
    own = module.state_dict()
    reshaped = [
        k for k, v in state_dict.items() if k in own and isinstance(v, Tensor) and tuple(v.shape) != tuple(own[k].shape)
    ]
    kept: OrderedDict[str, Any] = OrderedDict((k, v) for k, v in state_dict.items() if k not in reshaped)
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:  # module versions, for modules that convert older layouts when loading
        kept._metadata = metadata  # type: ignore[attr-defined]
    missing, unexpected = module.load_state_dict(kept, strict=False)
    problems = []
    if unexpected:
        problems.append(f"unexpected key in source state_dict: {', '.join(unexpected)}")
    if missing:
        problems.append(f"missing keys in source state_dict: {', '.join(missing)}")
    if reshaped:
        shapes = ", ".join(f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}" for k in reshaped)
        problems.append(f"size mismatch (checkpoint vs {what}): {shapes}")
    if not problems:
        return
    message = f"EMAHook: loading {what}: " + "; ".join(problems)
    if strict:
        raise RuntimeError(message + " (strict_load=True; pass strict_load=False to skip these tensors)")
    logger.warning(message)


def _same_layout(a: Tensor, b: Tensor) -> bool:
    return a.device == b.device and a.dtype == b.dtype and a.shape == b.shape


def _exchange_data(a: Tensor, b: Tensor) -> None:
    """Exchange the storage behind two tensors of the same layout: no copy, no allocation."""
    a_data = a.data
    a.data = b.data
    b.data = a_data


class _SwapState:
    """How the average was put into the model, so that it can be undone exactly.

    Tensors of the same device and dtype exchange storage (symmetric and free).
    Others (a float32 average of a bf16 model, a CPU-offloaded average) cannot:
    a copy-swap would round the average to the model's dtype at every
    validation. For those the model's own values are kept aside and the
    average is copied in; undoing restores the kept values, and the average
    itself is never written.
    """

    def __init__(self) -> None:
        self.exchanged: list[tuple[str, Tensor, Tensor]] = []
        self.kept: list[tuple[str, Tensor, Tensor]] = []
        self.shards: list[tuple[str, Tensor, Tensor]] = []

    def apply(self, pairs: Iterator[tuple[str, Tensor, Tensor]]) -> None:
        copies_done = False
        for name, avg, src in pairs:
            if not copies_done and (is_dtensor(src) or not _same_layout(avg, src)):
                # Values change in place below: an async checkpoint must have copied them first.
                wait_for_snapshot_copies()
                copies_done = True
            if is_dtensor(src):
                # FSDP2 gathers from the storage it owns: exchange the shards' values in place.
                exchange_values(avg, src)
                self.shards.append((name, avg, src))
            elif _same_layout(avg, src):
                _exchange_data(avg, src)
                self.exchanged.append((name, avg, src))
            else:
                self.kept.append((name, src, src.detach().clone()))
                src.data.copy_(avg.data)

    def undo(self) -> None:
        for _, avg, src in self.exchanged:
            _exchange_data(avg, src)
        for _, src, raw in self.kept:
            src.data.copy_(raw)
        for _, avg, src in self.shards:
            exchange_values(avg, src)
        self.exchanged.clear()
        self.kept.clear()
        self.shards.clear()

    def averaged_tensors(self) -> dict[str, Tensor]:
        """Names whose average now sits in the model's tensor (exchanged storage or exchanged shards)."""
        return {name: src for name, _, src in [*self.exchanged, *self.shards]}


@HOOKS.register_module()
class EMAHook(Hook):
    """Keep an exponential moving average of the weights; validate, test and checkpoint with it.

    Args:
        ema_type: the averaged model: a name registered in ``AVERAGED_MODELS``
            (``'ExponentialMovingAverage'``, ``'MomentumAnnealingEMA'``,
            ``'StochasticWeightAverage'`` or your own) or a ``BaseAveragedModel`` subclass.
        strict_load: whether loading the average from a checkpoint must match
            every key and shape; when False, mismatches are skipped with a warning.
        begin_iter: first iteration (counted from 1) that updates the average;
            before it the average copies the weights. Exclusive with ``begin_epoch``.
        begin_epoch: first epoch (counted from 1) that updates the average.
        **kwargs: arguments of the averaged model: ``momentum`` (weight of the
            new value, default 0.0002), ``interval``, ``gamma``,
            ``update_buffers``, ``device`` (e.g. ``'cpu'`` to offload the
            average; None follows the model's device) and ``dtype`` (e.g.
            ``torch.float32`` to average a bf16 model in fp32).
    """

    priority = "NORMAL"

    def __init__(
        self,
        ema_type: Union[str, type] = "ExponentialMovingAverage",
        strict_load: bool = False,
        begin_iter: int = 0,
        begin_epoch: int = 0,
        **kwargs: Any,
    ) -> None:
        _resolve_ema_type(ema_type)
        _check_ema_kwargs(ema_type, kwargs)
        for name, value in (("begin_iter", begin_iter), ("begin_epoch", begin_epoch)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise AveragingConfigError(f"`{name}` must be an int (0 = from the start), got {value!r}")
        if not isinstance(strict_load, bool):
            raise TypeError(f"EMAHook: strict_load must be True or False, got {strict_load!r}")
        if begin_iter != 0 and begin_epoch != 0:
            raise AveragingConfigError(
                f"`begin_iter` and `begin_epoch` should not be both set (got begin_iter={begin_iter}, "
                f"begin_epoch={begin_epoch}); set one of them and leave the other at 0"
            )
        if begin_iter < 0:
            raise AveragingConfigError(f"`begin_iter` must larger than or equal to 0, but got begin_iter: {begin_iter}")
        if begin_epoch < 0:
            raise AveragingConfigError(
                f"`begin_epoch` must larger than or equal to 0, but got begin_epoch: {begin_epoch}"
            )
        self.strict_load = bool(strict_load)
        self.ema_cfg: dict[str, Any] = dict(type=ema_type, **kwargs)
        self.begin_iter = begin_iter
        self.begin_epoch = begin_epoch
        self.enabled_by_epoch = begin_epoch > 0
        self.src_model: Optional[nn.Module] = None
        self.ema_model: Optional[BaseAveragedModel] = None
        self._swap: Optional[_SwapState] = None

    # ------------------------------------------------------------------ building and placement
    def before_run(self, runner: RunnerView) -> None:
        """Build the averaged copy of the model (kept when the same model runs again, e.g. test after fit).

        Under ModelParallelStrategy the model is sharded later (``configure_model``):
        the average is built from the shards when training, evaluation or a
        checkpoint load first needs it.
        """
        _check_supported(runner, runner.model)
        if not _defers_build(runner):
            self._ensure_average(runner)

    def _ensure_average(self, runner: RunnerView) -> None:
        """Build the average unless one of this model, sharded as the model now is, exists."""
        model: nn.Module = runner.model
        if (
            self.ema_model is not None
            and self.src_model is model
            and self.ema_model.sharded == has_dtensor_parameters(model)
        ):
            return
        _check_supported(runner, model)
        self.src_model = model
        ema = AVERAGED_MODELS.build(self.ema_cfg, default_args=dict(model=model))
        if not isinstance(ema, BaseAveragedModel):
            raise AveragingConfigError(
                f"ema_type {self.ema_cfg['type']!r} built a {type(ema).__name__}, not a BaseAveragedModel"
            )
        self.ema_model = ema
        self._swap = None

    def before_train(self, runner: RunnerView) -> None:
        """Check ``begin_*`` against the run's length (when the Trainer bounds it) and put the average
        where the model now is."""
        if self.enabled_by_epoch:
            if 0 <= runner.max_epochs < self.begin_epoch:
                raise AveragingConfigError(
                    f"self.begin_epoch should be smaller than or equal to runner.max_epochs: {runner.max_epochs}, "
                    f"but got begin_epoch: {self.begin_epoch}"
                )
        elif 0 <= runner.max_iters < self.begin_iter:
            raise AveragingConfigError(
                f"self.begin_iter should be smaller than or equal to runner.max_iters: {runner.max_iters}, "
                f"but got begin_iter: {self.begin_iter}"
            )
        self._ensure_average(runner)
        self._follow_model(runner)

    def _follow_model(self, runner: RunnerView) -> None:
        """Move the average to the model's device when no ``device`` was given.

        Lightning builds and restores callbacks while the model is still on the
        CPU; the strategy moves the model afterwards.
        """
        assert self.ema_model is not None and self.src_model is not None
        if self.ema_cfg.get("device") is not None or self.ema_model.sharded:
            return
        target = next((p.device for p in self.src_model.parameters()), None)
        current = next((p.device for p in self.ema_model.module.parameters()), None)
        if target is not None and target != current:
            self.ema_model.to(target)

    # ------------------------------------------------------------------ training
    def after_train_iter(
        self, runner: RunnerView, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Optional[dict] = None
    ) -> None:
        """Update the average (or copy the weights before ``begin_iter``/``begin_epoch``)."""
        if self.ema_model is None:
            self._ensure_average(runner)
        assert self.ema_model is not None and self.src_model is not None
        if self._ema_started(runner):
            self.ema_model.update_parameters(self.src_model)
        else:
            self.ema_model.copy_from(self.src_model)

    def _ema_started(self, runner: RunnerView) -> bool:
        if self.enabled_by_epoch:
            return runner.epoch + 1 >= self.begin_epoch
        return runner.iter + 1 >= self.begin_iter

    # ------------------------------------------------------------------ evaluation swaps
    def before_val_epoch(self, runner: RunnerView) -> None:
        """Validate with the averaged weights."""
        self._toggle(runner)

    def after_val_epoch(self, runner: RunnerView, metrics: Optional[dict[str, float]] = None) -> None:
        """Give the model its training weights back (before CheckpointHook saves a best checkpoint)."""
        self._toggle(runner)

    def before_test_epoch(self, runner: RunnerView) -> None:
        """Test with the averaged weights."""
        self._toggle(runner)

    def after_test_epoch(self, runner: RunnerView, metrics: Optional[dict[str, float]] = None) -> None:
        """Give the model its training weights back."""
        self._toggle(runner)

    def after_run(self, runner: RunnerView) -> None:
        """A run that failed while evaluating still leaves the model with its training weights."""
        self._swap_out()

    def _toggle(self, runner: RunnerView) -> None:
        """Swap, as MMEngine does on each of the four calls: in when the model has its own weights, else out.

        The bridge calls them in pairs; a direct call (MMEngine's tests call
        ``after_val_epoch`` alone) swaps as well.
        """
        if self._swap is None:
            self._swap_in(runner)
        else:
            self._swap_out()

    def _swap_in(self, runner: RunnerView) -> None:
        self._ensure_average(runner)
        if self.ema_model is None:
            return
        self._follow_model(runner)
        self._put_average_in_model()

    def _put_average_in_model(self) -> None:
        self._reshard()
        swap = _SwapState()
        with torch.no_grad():
            swap.apply(self._swap_pairs())
        self._swap = swap

    def _swap_ema_parameters(self) -> None:
        """MMEngine's swap, for subclasses that call it (mmpretrain's ``EMAHook``): the model takes
        the averaged weights, or gets its own back when it holds the averaged ones."""
        if self._swap is not None:
            self._swap_out()
        elif self.ema_model is not None and self.src_model is not None:
            self._put_average_in_model()

    def _swap_out(self) -> None:
        if self._swap is None:
            return
        # FSDP2 leaves the root's gathered (averaged) parameters in place after an evaluation
        # forward pass: drop them so that training gathers the restored shards.
        self._reshard()
        with torch.no_grad():
            self._swap.undo()
        self._swap = None

    def _reshard(self) -> None:
        if self.ema_model is not None and self.ema_model.sharded and self.src_model is not None:
            reshard(self.src_model)

    def _swap_pairs(self) -> Iterator[tuple[str, Tensor, Tensor]]:
        """(name, averaged, model) tensors matched by name: parameters, plus buffers when ``update_buffers``.

        MMEngine pairs them by position (``zip``); by name is the same for the
        same architecture and cannot silently pair the wrong tensors.
        """
        assert self.ema_model is not None and self.src_model is not None
        src_params = dict(self.src_model.named_parameters())
        for name, avg in self.ema_model.module.named_parameters():
            if name in src_params:
                yield name, avg, src_params[name]
        if self.ema_model.update_buffers:
            src_buffers = dict(self.src_model.named_buffers())
            for name, avg_buffer in self.ema_model.module.named_buffers():
                if name in src_buffers:
                    yield name, avg_buffer, src_buffers[name]

    # ------------------------------------------------------------------ checkpoints
    def before_save_checkpoint(self, runner: RunnerView, checkpoint: dict) -> None:
        """``state_dict`` gets the averaged weights; ``ema_state_dict`` the raw ones under ``module.*`` plus ``steps``.

        A sharded model saved as a sharded directory keeps MMEngine's exchange, but
        the ``module.*`` shards travel inside ``state_dict`` under
        ``ema_state_dict.module.*`` (only ``state_dict`` is written shard by shard)
        and ``ema_state_dict`` keeps ``steps``. Saved as one full file, the average
        is gathered to rank 0 first. Every rank calls this (saving is collective).
        """
        self._ensure_average(runner)
        assert self.ema_model is not None
        if not self.ema_model.sharded:
            checkpoint["ema_state_dict"] = self.ema_model.state_dict()
            self._swap_ema_state_dict(checkpoint)
            return
        state = checkpoint.get("state_dict", {})
        ema_state = self.ema_model.state_dict()
        if sharded_items(state):
            steps = ema_state.pop("steps")
            checkpoint["ema_state_dict"] = ema_state
            self._swap_ema_state_dict(checkpoint)
            clash = [k for k in ema_state if SHARDED_EMA_PREFIX + k in state]
            if clash:
                raise RuntimeError(f"EMAHook: the model's state_dict already has keys {clash[:3]}...")
            state.update((SHARDED_EMA_PREFIX + k, v) for k, v in ema_state.items())
            checkpoint["ema_state_dict"] = {"steps": steps}
            return
        # One full file (ModelParallelStrategy(save_distributed_checkpoint=False)): rank 0 writes it.
        full = gather_full(ema_state.items(), keep=runner.rank == 0)
        checkpoint["ema_state_dict"] = full
        if full:
            self._swap_ema_state_dict(checkpoint)

    def after_load_checkpoint(self, runner: RunnerView, checkpoint: dict) -> None:
        """Resume: training weights to the model, average to the hook. Load: both get ``state_dict``.

        Loading weights only (``load_from``) from a file without ``state_dict`` (a bare state dict,
        where MMEngine fails), or before a sharded model exists: the average is built from the
        model once it holds them.
        """
        not_sharded_yet = _defers_build(runner) and not has_dtensor_parameters(runner.model)
        if not runner.resume and ("state_dict" not in checkpoint or not_sharded_yet):
            return
        self._ensure_average(runner)
        assert self.ema_model is not None
        if self.ema_model.sharded:
            self._load_sharded(runner, checkpoint)
            return
        if "ema_state_dict" in checkpoint and runner.resume:
            self._swap_ema_state_dict(checkpoint)
            _load_weights(
                self.ema_model, checkpoint["ema_state_dict"], self.strict_load, "the EMA state", runner.logger
            )
            return
        if runner.resume:
            runner.logger.warning(
                "There is no `ema_state_dict` in checkpoint. `EMAHook` will make a copy of `state_dict` as the "
                "initial `ema_state_dict`"
            )
        _load_weights(
            self.ema_model.module, checkpoint["state_dict"], self.strict_load, "the averaged model", runner.logger
        )

    def _load_sharded(self, runner: RunnerView, checkpoint: dict) -> None:
        """After Lightning loaded ``state_dict`` (the average) into the sharded model: split it again.

        The average is copied from the model's shards; when resuming, the raw
        training weights are then read into the model: from the directory's
        ``ema_state_dict.module.*`` shards, or from a full file's ``ema_state_dict``.
        """
        assert self.ema_model is not None and self.src_model is not None
        model = self.src_model
        reshard(model)
        self.ema_model.copy_from(model)
        ema_state = checkpoint.get("ema_state_dict")
        if not runner.resume:
            return
        if not isinstance(ema_state, Mapping) or "steps" not in ema_state:
            runner.logger.warning(
                "There is no `ema_state_dict` in checkpoint. `EMAHook` will make a copy of `state_dict` as the "
                "initial `ema_state_dict`"
            )
            return
        self.ema_model.steps = int(ema_state["steps"])
        wanted = [k[len("module.") :] for k in self.ema_model.state_dict() if k.startswith("module.")]
        targets = {k: v for k, v in model.state_dict(keep_vars=True).items() if k in set(wanted)}
        if any(k.startswith("module.") for k in ema_state):  # a full file: every rank holds the full tensors
            with torch.no_grad():
                for key, target in targets.items():
                    full = ema_state.get("module." + key)
                    if full is not None:
                        local_tensor(target).copy_(local_tensor(distribute_like(full, target)))
            return
        path = getattr(runner, "resumed_from", None)
        if path is None:
            raise RuntimeError("EMAHook: resuming a sharded checkpoint whose directory is unknown")
        load_sharded_entries(path, {SHARDED_EMA_PREFIX + "module." + k: v for k, v in targets.items()})

    @staticmethod
    def _swap_ema_state_dict(checkpoint: dict) -> None:
        """Exchange ``ema_state_dict['module.X']`` and ``state_dict['X']`` (dict values, no copies)."""
        model_state = checkpoint["state_dict"]
        ema_state = checkpoint["ema_state_dict"]
        for key in list(ema_state):
            if key.startswith("module.") and key[7:] in model_state:
                ema_state[key], model_state[key[7:]] = model_state[key[7:]], ema_state[key]

    # ------------------------------------------------------------------ export
    def averaged_state_dict(self) -> dict[str, Tensor]:
        """The averaged weights, keyed as the model's ``state_dict`` (detached copies, safe to keep).

        With a sharded model the full average is gathered (a collective: every
        rank must call it) and returned on every rank, on the CPU.

        ``model.load_state_dict(ema_hook.averaged_state_dict())`` turns a model
        into its averaged version.
        """
        if self.ema_model is None:
            raise RuntimeError("EMAHook has no average yet: it is built when fit/validate/test starts")
        return self._averaged_state(keep=True)

    def _averaged_state(self, keep: bool) -> dict[str, Tensor]:
        assert self.ema_model is not None
        state = self.ema_model.module.state_dict()
        if self._swap is not None:  # during evaluation part of the average sits in the model's tensors
            state.update(self._swap.averaged_tensors())
        if self.ema_model.sharded:
            return gather_full(state.items(), to_cpu=True, keep=keep)
        return {k: v.detach().clone() for k, v in state.items()}

    def save_averaged(self, path: Union[str, os.PathLike]) -> str:
        """Write ``{'state_dict': averaged weights, 'meta': {'ema_steps': n}}`` to ``path`` (local or fsspec URL).

        The file loads with ``torch.load(path, weights_only=True)``. Returns the path.
        With a sharded model every rank must call it (the average is gathered to
        rank 0, which writes).
        """
        import fsspec  # type: ignore[import-untyped]

        if self.ema_model is None:
            raise RuntimeError("EMAHook has no average yet: it is built when fit/validate/test starts")
        rank = _process_rank()
        state = self._averaged_state(keep=rank == 0)
        if rank != 0:
            return str(path)
        payload = {"state_dict": state, "meta": {"ema_steps": self.ema_model.steps}}
        fs, _, (target,) = fsspec.get_fs_token_paths(str(path))
        parent = os.path.dirname(target)
        if parent:
            fs.makedirs(parent, exist_ok=True)
        with fs.open(target, "wb") as handle:
            torch.save(payload, handle)
        return str(path)
