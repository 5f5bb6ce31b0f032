"""Tiny shared scenario for conformance tests: the same data, model and hooks under MMEngine and Lightning.

12 training samples in batches of 3 (4 iterations per epoch), 12 validation
samples in batches of 6 (2 iterations), a Linear(2, 1) model and SGD with lr 0.1,
as in MMEngine's own RunnerTestCase.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lightning_hooks.hooks.hook import STAGES

TRAIN_LEN = 12
BATCH = 3
VAL_BATCH = 6


class ToyDataset(Dataset):
    """Deterministic 2-d inputs with a 0/1 label."""

    def __init__(self, n: int = TRAIN_LEN) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 2, generator=g)
        self.y = (self.x.sum(1) > 0).float()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"inputs": self.x[i], "label": self.y[i]}


def make_trace_hook(base: type, log: list) -> Any:
    """A HIGHEST-priority hook (subclass of ``base``) recording ``(stage, epoch, iter, batch_idx)`` at every mount point."""

    def make(stage: str) -> Callable[..., None]:
        def method(self: Any, runner: Any, **kwargs: Any) -> None:
            entry = (stage, runner.epoch, runner.iter, kwargs.get("batch_idx"))
            if stage in ("after_val_epoch", "after_test_epoch"):
                entry = (*entry, tuple(sorted((kwargs.get("metrics") or {}).keys())))
            log.append(entry)

        method.__name__ = stage
        return method

    attrs = {stage: make(stage) for stage in STAGES}
    attrs["priority"] = "HIGHEST"
    cls = type("TraceHook", (base,), attrs)
    return cls()


# ----------------------------------------------------------------------------- Lightning side
class ToyModule(pl.LightningModule):
    """Linear(2, 1) regression on the label; logs ``acc`` in validation and test."""

    def __init__(self, lr: float = 0.1, scheduler: Optional[Callable[[torch.optim.Optimizer], Any]] = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(2, 1)
        self.lr = lr
        self.scheduler = scheduler

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(-1)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return ((self(batch["inputs"]) - batch["label"]) ** 2).mean()

    def _eval_step(self, batch: dict) -> None:
        acc = ((self(batch["inputs"]) > 0.5).float() == batch["label"]).float().mean()
        self.log("acc", acc, on_epoch=True)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=self.lr)
        if self.scheduler is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": self.scheduler(opt)}


def loaders() -> tuple[DataLoader, DataLoader]:
    return (
        DataLoader(ToyDataset(), batch_size=BATCH, shuffle=False),
        DataLoader(ToyDataset(), batch_size=VAL_BATCH, shuffle=False),
    )


def make_trainer(tmp_path: Any, bridge: Any, **kwargs: Any) -> pl.Trainer:
    """A quiet CPU Trainer with Lightning's own checkpointing and logging off."""
    defaults: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        callbacks=[bridge],
    )
    defaults.update(kwargs)
    return pl.Trainer(**defaults)


def run_mode(trainer: pl.Trainer, model: pl.LightningModule, mode: str = "fit") -> None:
    """``fit`` (train + val loaders), ``validate`` or ``test`` (val loader) on the toy data."""
    train, val = loaders()
    if mode == "fit":
        trainer.fit(model, train, val)
    elif mode == "validate":
        trainer.validate(model, val)
    else:
        trainer.test(model, val)


# ----------------------------------------------------------------------------- MMEngine side
def _mm_classes() -> tuple[type, type]:
    from mmengine.evaluator import BaseMetric
    from mmengine.model import BaseModel

    class MMToyModel(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.linear = nn.Linear(2, 1)

        def forward(self, inputs: torch.Tensor, label: torch.Tensor, mode: str = "tensor") -> Any:
            out = self.linear(inputs).squeeze(-1)
            if mode == "loss":
                return {"loss": ((out - label) ** 2).mean()}
            return [((out > 0.5).float() == label).float()]

    class ToyAcc(BaseMetric):
        def process(self, data_batch: Any, data_samples: Any) -> None:
            self.results.extend(data_samples[0].tolist())

        def compute_metrics(self, results: list) -> dict:
            return {"acc": sum(results) / len(results)}

    return MMToyModel, ToyAcc


def mm_loader_cfgs(infinite: bool = False) -> tuple[dict, dict]:
    """MMEngine dataloader configs for the toy data: (train, val); ``infinite`` for iteration-based loops."""
    sampler = dict(type="InfiniteSampler" if infinite else "DefaultSampler", shuffle=False)
    train = dict(dataset=ToyDataset(), batch_size=BATCH, sampler=sampler, collate_fn=dict(type="default_collate"))
    val = dict(
        dataset=ToyDataset(),
        batch_size=VAL_BATCH,
        sampler=dict(type="DefaultSampler", shuffle=False),
        collate_fn=dict(type="default_collate"),
    )
    return train, val


def run_mmengine(
    tmp_path: Any,
    hooks: list,
    train_cfg: Optional[dict] = None,
    mode: str = "train",
    default_hooks: Optional[dict] = None,
    optim_wrapper: Optional[dict] = None,
    param_scheduler: Any = None,
    infinite: bool = False,
    load_from: Optional[str] = None,
) -> Any:
    """Run MMEngine's own Runner on the toy scenario; returns the runner."""
    from mmengine.runner import Runner

    model_cls, metric_cls = _mm_classes()
    loader, val_loader = mm_loader_cfgs(infinite)
    kwargs: dict[str, Any] = dict(
        model=model_cls(),
        work_dir=str(tmp_path),
        experiment_name=f"mm_{uuid.uuid4().hex[:8]}",
        custom_hooks=hooks,
        default_hooks=default_hooks,
        log_level="WARNING",
        load_from=load_from,
    )
    if mode == "train":
        kwargs.update(
            train_dataloader=loader,
            train_cfg=train_cfg or dict(by_epoch=True, max_epochs=2, val_interval=1),
            optim_wrapper=optim_wrapper or dict(optimizer=dict(type="SGD", lr=0.1)),
            val_dataloader=val_loader,
            val_cfg=dict(),
            val_evaluator=dict(type=metric_cls),
            param_scheduler=param_scheduler,
        )
    elif mode == "val":
        kwargs.update(val_dataloader=val_loader, val_cfg=dict(), val_evaluator=dict(type=metric_cls))
    else:
        kwargs.update(test_dataloader=val_loader, test_cfg=dict(), test_evaluator=dict(type=metric_cls))
    runner = Runner(**kwargs)
    getattr(runner, {"train": "train", "val": "val", "test": "test"}[mode])()
    return runner
