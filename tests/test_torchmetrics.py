"""torchmetrics as a first-class input: ``self.log('acc', metric_object)`` drives the hooks with the epoch's value.

A ``MulticlassAccuracy`` (macro average) updated batch by batch and logged as an object is computed by
torchmetrics over the whole epoch, which is not the mean of per-batch accuracies. The hooks must see
that computed value: ``after_val_epoch(metrics)``, CheckpointHook's ``save_best``, EarlyStoppingHook and
the validation log line. The reference value is ``torchmetrics.functional.multiclass_accuracy`` over the
epoch's concatenated predictions (gathered from every rank under DDP).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.functional.classification import multiclass_accuracy

from lightning_hooks import Hook, HookBridge

CLASSES = 4


def _data(seed: int, n: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, :CLASSES].argmax(1) + (torch.rand(n, generator=g) < 0.3).long()) % CLASSES  # learnable, noisy
    return TensorDataset(x, y)


class MetricModule(pl.LightningModule):
    """Logs a MulticlassAccuracy object as ``acc``; keeps the epoch's predictions for the reference value."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(8, CLASSES)
        self.val_acc = MulticlassAccuracy(num_classes=CLASSES)
        self.preds: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []
        self.batch_accs: list[float] = []
        self.reference: list[float] = []  # the epoch's accuracy, per validation
        self.batch_means: list[float] = []  # the mean of per-batch accuracies, per validation

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)  # a step value: it reaches every rank's message hub, once per iteration
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.val_acc(logits, y)
        self.log("acc", self.val_acc)
        self.preds.append(logits.argmax(1))
        self.targets.append(y)
        self.batch_accs.append(float(multiclass_accuracy(logits.argmax(1), y, num_classes=CLASSES)))

    def on_validation_epoch_end(self) -> None:
        preds, targets = torch.cat(self.preds), torch.cat(self.targets)
        if self.trainer.world_size > 1:  # the reference covers every rank's predictions
            preds, targets = self.all_gather(preds).flatten(), self.all_gather(targets).flatten()
        if not self.trainer.sanity_checking:
            self.reference.append(float(multiclass_accuracy(preds, targets, num_classes=CLASSES)))
            self.batch_means.append(sum(self.batch_accs) / len(self.batch_accs))
        self.preds, self.targets, self.batch_accs = [], [], []

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.5)


class MetricsRecorder(Hook):
    """Writes what each validation handed the hooks, and the hooks' decisions, to ``<out>/rank<k>.json``."""

    priority = "LOWEST"  # after CheckpointHook and EarlyStoppingHook have acted on the metrics

    def __init__(self, out: str) -> None:
        self.out = out
        self.seen: list[dict[str, float]] = []

    def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
        self.seen.append(dict(metrics or {}))

    def after_run(self, runner: Any) -> None:
        module = runner.model
        bridge = next(cb for cb in runner.trainer.callbacks if isinstance(cb, HookBridge))
        stopper = next(h for h in bridge.hooks if type(h).__name__ == "EarlyStoppingHook")
        record = {
            "seen": self.seen,
            "reference": module.reference,
            "batch_means": module.batch_means,
            "best_score": runner.message_hub.get_info("best_score"),
            "best_ckpt": runner.message_hub.get_info("best_ckpt"),
            "early_stop_best": stopper.best_score,
            "early_stop_wait": stopper.wait_count,
            "epochs_run": runner.epoch,
            "train_loss_steps": len(runner.message_hub.get_scalar("train/train_loss")),
            "iters": runner.iter,
        }
        with open(os.path.join(self.out, f"rank{runner.rank}.json"), "w") as f:
            json.dump(record, f)


def run(tmp_path: Path, max_epochs: int, **trainer_kwargs: Any) -> list[dict[str, Any]]:
    bridge = HookBridge(
        default_hooks=dict(
            checkpoint=dict(type="CheckpointHook", interval=1, save_best="acc"),
            logger=dict(type="LoggerHook", interval=1),
        ),
        custom_hooks=[
            dict(type="EarlyStoppingHook", monitor="acc", min_delta=0.0, patience=100),
            MetricsRecorder(str(tmp_path)),
        ],
        work_dir=str(tmp_path / "work"),
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[bridge],
        **trainer_kwargs,
    )
    train = DataLoader(_data(0, 32), batch_size=8)
    val = DataLoader(_data(1, 24), batch_size=4)  # 6 batches; 3 per rank under 2-process DDP
    trainer.fit(MetricModule(), train, val)
    return [json.loads(p.read_text()) for p in sorted(tmp_path.glob("rank*.json"))]


def check_record(record: dict[str, Any], tmp_path: Path, epochs: int) -> None:
    reference = record["reference"]
    assert len(reference) == epochs == len(record["seen"])
    assert record["train_loss_steps"] == record["iters"] > 0
    # the epoch's computed value is not the mean of batch values here, so the test tells them apart
    assert any(abs(r - m) > 1e-3 for r, m in zip(reference, record["batch_means"], strict=True))
    assert [s["acc"] for s in record["seen"]] == pytest.approx(reference, abs=1e-6)
    assert all(isinstance(s["acc"], float) for s in record["seen"])
    # save_best: the best score is the first maximum of the epoch values, and its checkpoint is that epoch's
    best = max(reference)
    assert record["best_score"] == pytest.approx(best, abs=1e-6)
    assert Path(record["best_ckpt"]).name == f"best_acc_epoch_{reference.index(best) + 1}.pth"
    # early stopping tracked the same values (min_delta=0: an equal score counts as an improvement)
    wait, stop_best = 0, -math.inf
    for score in reference:
        wait, stop_best = (wait + 1, stop_best) if stop_best > score else (0, score)
    assert record["early_stop_best"] == pytest.approx(stop_best, abs=1e-6)
    assert record["early_stop_wait"] == wait


def test_metric_object_drives_save_best_early_stopping_and_log_lines(tmp_path):
    epochs = 4
    (record,) = run(tmp_path, epochs, devices=1)
    check_record(record, tmp_path, epochs)
    (log_file,) = (tmp_path / "work").glob("*/*.log")
    summaries = [line.split(" - INFO - ", 1)[-1] for line in log_file.read_text().splitlines()]
    summaries = [line for line in summaries if line.startswith("Epoch(val) [") and "[6/6]" in line and "acc:" in line]
    assert len(summaries) == epochs
    for epoch, (line, value) in enumerate(zip(summaries, record["reference"], strict=True), start=1):
        assert line.startswith(f"Epoch(val) [{epoch}][6/6]")
        assert f"acc: {value:.4f}" in line, line
    assert not math.isclose(record["reference"][0], record["reference"][-1])  # several distinct epoch values


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ddp_fork needs fork (POSIX)")
@pytest.mark.timeout(180)
def test_metric_object_under_ddp_is_the_epoch_value_over_all_ranks(tmp_path):
    """2 gloo processes: torchmetrics syncs its state, so every rank's hooks see the accuracy over all 24 samples."""
    epochs = 3
    records = run(tmp_path, epochs, devices=2, strategy="ddp_fork")
    assert len(records) == 2
    for record in records:
        check_record(record, tmp_path, epochs)
    assert records[0]["seen"] == records[1]["seen"]
