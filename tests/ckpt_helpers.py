"""Shared pieces of the CheckpointHook tests: one scenario run by MMEngine's Runner and by Trainer + HookBridge.

Both sides train the toy Linear(2, 1) model of ``toy.py`` and report validation
metrics that follow a given score sequence: the k-th validation after epoch k
(epoch-based) or the k-th validation call (iteration-based) reports
``scores[name][k - 1]``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import Iterator
from typing import Any, Optional

import torch
from toy import ToyModule, loaders, make_trainer, mm_loader_cfgs

from lightning_hooks import HookBridge

RAMP_SCORES = {"acc": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}
NO_DEFAULTS = {"runtime_info": None, "timer": None, "sampler_seed": None, "logger": None, "param_scheduler": None}


# ----------------------------------------------------------------------------- Lightning side
class ScoredModule(ToyModule):
    """ToyModule whose validation logs ``scores[name][i]`` for every name, in the given order.

    ``i`` is the 0-based epoch in epoch-based training (so it survives resume) and
    the number of earlier validations otherwise.
    """

    def __init__(self, scores: dict[str, list[float]], by_epoch: bool = True, optimizer: str = "sgd") -> None:
        super().__init__()
        self.scores = scores
        self.by_epoch = by_epoch
        self.optimizer_name = optimizer
        self.val_calls = 0

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        pass

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            index = 0
        else:
            index = self.trainer.current_epoch if self.by_epoch else self.val_calls
            self.val_calls += 1
        for name, values in self.scores.items():
            self.log(name, float(values[min(index, len(values) - 1)]))

    def configure_optimizers(self) -> Any:
        name = self.optimizer_name
        if name.startswith("adamw"):
            optimizer: torch.optim.Optimizer = torch.optim.AdamW(self.parameters(), lr=0.05)
        else:
            optimizer = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        if name.endswith("+steplr"):  # an epoch scheduler: resume must restore it after its epoch-end step
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        return optimizer


def run_lightning(
    work_dir: Any,
    ckpt_cfg: dict[str, Any],
    scores: dict[str, list[float]],
    max_epochs: int = 4,
    max_iters: Optional[int] = None,
    val_interval: int = 1,
    ckpt_path: Optional[str] = None,
    resume: bool = False,
    module: Optional[ScoredModule] = None,
    log_level: str = "WARNING",
    **trainer_kwargs: Any,
) -> tuple[Any, HookBridge, ScoredModule]:
    """Train with only a CheckpointHook (plus RuntimeInfoHook) on the bridge; returns (trainer, bridge, module)."""
    by_epoch = max_iters is None
    bridge = HookBridge(
        default_hooks={**NO_DEFAULTS, "checkpoint": dict(ckpt_cfg)},
        work_dir=str(work_dir),
        resume=resume,
        print_hooks_table=False,
        log_level=log_level,
    )
    kwargs: dict[str, Any] = dict(num_sanity_val_steps=0)
    if by_epoch:
        kwargs.update(max_epochs=max_epochs, check_val_every_n_epoch=val_interval)
    else:
        kwargs.update(max_steps=max_iters, max_epochs=-1, val_check_interval=val_interval, check_val_every_n_epoch=None)
    kwargs.update(trainer_kwargs)
    trainer = make_trainer(work_dir, bridge, **kwargs)
    model = module if module is not None else ScoredModule(scores, by_epoch=by_epoch)
    train, val = loaders()
    trainer.fit(model, train, val, ckpt_path=ckpt_path)
    return trainer, bridge, model


# ----------------------------------------------------------------------------- MMEngine side
def _mm_metric(scores: dict[str, list[float]], by_epoch: bool, prefix: Optional[str]) -> type:
    from mmengine.evaluator import BaseMetric
    from mmengine.logging import MessageHub

    class ScoreMetric(BaseMetric):
        default_prefix = prefix

        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def process(self, data_batch: Any, data_samples: Any) -> None:
            self.results.append(0)

        def compute_metrics(self, results: list) -> dict:
            index = MessageHub.get_current_instance().get_info("epoch") if by_epoch else self.calls
            self.calls += 1
            return {name: float(values[min(index, len(values) - 1)]) for name, values in scores.items()}

    return ScoreMetric


class _TorchNoWeightsOnly:
    """``torch`` as mmengine.runner.checkpoint sees it, with ``torch.load(weights_only=False)``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    load = staticmethod(functools.partial(torch.load, weights_only=False))


@contextlib.contextmanager
def mmengine_loads_full_checkpoints() -> Iterator[None]:
    """MMEngine 0.10 calls ``torch.load`` without ``weights_only``; torch>=2.6 needs it False to resume."""
    import mmengine.runner.checkpoint as mm_checkpoint

    original = mm_checkpoint.torch
    mm_checkpoint.torch = _TorchNoWeightsOnly()  # type: ignore[assignment]
    try:
        yield
    finally:
        mm_checkpoint.torch = original


def run_mmengine_ckpt(
    work_dir: Any,
    ckpt_cfg: dict[str, Any],
    scores: dict[str, list[float]],
    max_epochs: int = 4,
    max_iters: Optional[int] = None,
    val_interval: int = 1,
    resume: bool = False,
    load_from: Optional[str] = None,
    prefix: Optional[str] = None,
) -> Any:
    """MMEngine's Runner on the same scenario with only the given CheckpointHook config."""
    from mmengine.runner import Runner
    from toy import _mm_classes

    model_cls, _ = _mm_classes()
    by_epoch = max_iters is None
    train_loader, val_loader = mm_loader_cfgs(infinite=not by_epoch)
    train_cfg = (
        dict(by_epoch=True, max_epochs=max_epochs, val_interval=val_interval)
        if by_epoch
        else dict(by_epoch=False, max_iters=max_iters, val_interval=val_interval)
    )
    runner = Runner(
        model=model_cls(),
        work_dir=str(work_dir),
        experiment_name=f"mm_{uuid.uuid4().hex[:8]}",
        train_dataloader=train_loader,
        train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)),
        val_dataloader=val_loader,
        val_cfg=dict(),
        val_evaluator=dict(type=_mm_metric(scores, by_epoch, prefix)),
        default_hooks={**NO_DEFAULTS, "runtime_info": dict(type="RuntimeInfoHook"), "checkpoint": dict(ckpt_cfg)},
        resume=resume,
        load_from=load_from,
        log_level="WARNING",
    )
    with mmengine_loads_full_checkpoints():
        runner.train()
    return runner


# ----------------------------------------------------------------------------- comparisons
def files_in(directory: Any) -> list[str]:
    """Checkpoint files (``*.pth``) and ``last_checkpoint`` in ``directory``, sorted."""
    directory = str(directory)
    if not os.path.isdir(directory):
        return []
    names = [f for f in os.listdir(directory) if os.path.isfile(os.path.join(directory, f))]
    return sorted(f for f in names if f.endswith(".pth") or f == "last_checkpoint")


def unhash(names: list[str]) -> list[str]:
    """Published names with their 8 hex digits replaced by ``xxxxxxxx``."""
    import re

    return sorted(re.sub(r"-[0-9a-f]{8}\.pth$", "-xxxxxxxx.pth", n) for n in names)


def runtime_info(path: str) -> dict[str, Any]:
    """``message_hub['runtime_info']`` of a checkpoint file (ours or MMEngine's)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return dict(ckpt["message_hub"]["runtime_info"])


def strip_dir(value: Any, directory: str) -> Any:
    """Paths under ``directory`` made relative, for comparing hub entries of two work dirs."""
    if isinstance(value, str):
        return value.replace(str(directory).rstrip("/") + "/", "")
    return value
