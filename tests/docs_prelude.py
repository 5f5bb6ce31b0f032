"""The placeholders that the documentation's code blocks use, and nothing else.

``tests/test_docs.py`` runs every fenced ``python`` block of README.md, docs/ and
examples/README.md as written, in an empty temporary working directory, with only
the names below defined beforehand. A block must import everything else itself
(``Trainer``, ``HookBridge``, ``torch``...), exactly as a reader copying it would.

The placeholders stand for what a reader already has: a LightningModule that logs
``loss`` in training and ``acc`` (a torchmetrics object) and ``val_loss`` in
validation, its data, and an MMEngine config and checkpoint on disk. They are tiny
(8 samples of 16 features, 4 classes, 2 batches an epoch) so that a block's
``Trainer(max_epochs=12)`` takes seconds.
"""

from __future__ import annotations

import os
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

__all__ = ["make_placeholders", "write_placeholder_files"]

FEATURES, CLASSES, SAMPLES, BATCH = 16, 4, 8, 4


class MyLightningModule(pl.LightningModule):
    """A linear classifier kept as ``self.model``, as many LightningModules do."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.model = nn.Linear(FEATURES, CLASSES)
        self.val_acc = MulticlassAccuracy(num_classes=CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.val_acc(logits, y)
        self.log("acc", self.val_acc)
        self.log("val_loss", nn.functional.cross_entropy(logits, y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _dataset(seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(
        torch.randn(SAMPLES, FEATURES, generator=g), torch.randint(0, CLASSES, (SAMPLES,), generator=g)
    )


class MyDataModule(pl.LightningDataModule):
    """The placeholder data as a LightningDataModule."""

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_dataset(0), batch_size=BATCH)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_dataset(1), batch_size=BATCH)


def make_placeholders() -> dict[str, Any]:
    """Fresh placeholder objects for one code block."""
    model = MyLightningModule()
    return {
        "MyLightningModule": MyLightningModule,
        "MyDataModule": MyDataModule,
        "model": model,
        "module": model,
        "existing_lightning_module": model,
        "datamodule": MyDataModule(),
        "train_loader": DataLoader(_dataset(0), batch_size=BATCH),
        "val_loader": DataLoader(_dataset(1), batch_size=BATCH),
    }


#: An MMEngine config as OpenMMLab projects write them (only what the bridge and the Trainer read).
MY_CFG = """\
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2, save_best='acc'),
    logger=dict(type='LoggerHook', interval=1))
custom_hooks = [dict(type='EMAHook', momentum=0.001)]
train_cfg = dict(by_epoch=True, max_epochs=3, val_interval=1)
work_dir = './work_dirs/my_cfg'
"""


def write_placeholder_files(cwd: str) -> None:
    """The files blocks name: ``configs/my_cfg.py`` and an MMEngine checkpoint ``mmengine_run/epoch_12.pth``."""
    os.makedirs(os.path.join(cwd, "configs"), exist_ok=True)
    with open(os.path.join(cwd, "configs", "my_cfg.py"), "w") as f:
        f.write(MY_CFG)
    os.makedirs(os.path.join(cwd, "mmengine_run"), exist_ok=True)
    weights = MyLightningModule().model.state_dict()
    torch.save(
        {"meta": {"epoch": 12, "iter": 24}, "state_dict": weights, "message_hub": {}},
        os.path.join(cwd, "mmengine_run", "epoch_12.pth"),
    )
