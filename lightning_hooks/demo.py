"""A real training run with MMEngine-style hooks: a small CNN on scikit-learn's handwritten digits.

``python -m lightning_hooks.demo --help`` (or ``lightning-hooks demo``). The data
ship with scikit-learn (1797 8x8 images, no download). The run uses a plain
Lightning ``Trainer`` with one callback, :class:`~lightning_hooks.HookBridge`,
holding MMEngine's default hooks plus:

* ``CheckpointHook(interval=1, save_best='auto', max_keep_ckpts=3)``;
* ``EMAHook`` (validation runs on the EMA weights, as in MMEngine);
* ``LoggerHook`` writing MMEngine's terminal lines, ``vis_data/scalars.json``
  and TensorBoard event files.

It ends with a summary: where the checkpoints, the best checkpoint, the JSON
scalars and the TensorBoard logs are, and the validation accuracy of the raw
and of the EMA weights. Needs scikit-learn (``pip install scikit-learn``).
"""

from __future__ import annotations

import argparse
import glob
import logging
import os.path as osp
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

from .bridge import HookBridge
from .hooks.checkpoint_hook import CheckpointHook

__all__ = ["DemoResult", "DigitsCNN", "DigitsDataModule", "build_bridge", "main", "run_demo"]

METRIC = "accuracy/top1"


class DigitsDataModule(pl.LightningDataModule):
    """scikit-learn's 8x8 digits, scaled to [0, 1], split into train and validation sets (seeded).

    Args:
        batch_size: training batch size (validation uses 4x that).
        val_fraction: share of the 1797 images kept for validation.
        seed: seed of the split.
    """

    def __init__(self, batch_size: int = 32, val_fraction: float = 0.2, seed: int = 0) -> None:
        super().__init__()
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size}")
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.seed = seed
        self.train_set: Optional[TensorDataset] = None
        self.val_set: Optional[TensorDataset] = None

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_set is not None:
            return
        try:
            from sklearn.datasets import load_digits  # type: ignore[import-untyped]
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("the demo needs scikit-learn: pip install scikit-learn") from exc
        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        labels = torch.tensor(digits.target, dtype=torch.long)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.seed))
        n_val = round(len(labels) * self.val_fraction)
        val_idx, train_idx = order[:n_val], order[n_val:]
        self.train_set = TensorDataset(images[train_idx], labels[train_idx])
        self.val_set = TensorDataset(images[val_idx], labels[val_idx])

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None
        return DataLoader(self.val_set, batch_size=self.batch_size * 4)


class DigitsCNN(pl.LightningModule):
    """Two 3x3 convolutions, a max-pool and a linear layer (about 10k parameters).

    Logs ``accuracy/top1`` in validation: a torchmetrics ``MulticlassAccuracy`` object (in percent, as
    MMEngine's Accuracy metric reports it), so the hooks get the accuracy over the whole validation
    set, computed by torchmetrics at the end of the epoch (and synchronised across ranks under DDP).

    Args:
        lr: SGD learning rate (momentum 0.9), annealed to 0 with a cosine schedule.
        max_epochs_for_schedule: length of the cosine schedule in epochs (or iterations
            with ``schedule_by_iter``).
        schedule_by_iter: step the schedule every iteration instead of every epoch.
    """

    def __init__(self, lr: float = 0.05, max_epochs_for_schedule: int = 5, schedule_by_iter: bool = False) -> None:
        super().__init__()
        self.lr = lr
        self.schedule_length = max(1, max_epochs_for_schedule)
        self.schedule_by_iter = schedule_by_iter
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 10),
        )
        self.val_top1 = MulticlassAccuracy(num_classes=10, average="micro") * 100

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        return nn.functional.cross_entropy(self(images), labels)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        images, labels = batch
        self.val_top1.update(self(images), labels)
        self.log(METRIC, self.val_top1)  # the object: Lightning computes and resets it once per epoch

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.schedule_length)
        interval = "step" if self.schedule_by_iter else "epoch"
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}


def build_bridge(
    work_dir: str, iter_based: bool = False, interval: int = 1, ema_momentum: float = 0.02, log_interval: int = 10
) -> HookBridge:
    """The demo's bridge: default hooks, best/last checkpoints, EMA, JSON and TensorBoard scalars."""
    return HookBridge(
        work_dir=work_dir,
        experiment_name="digits",
        default_hooks=dict(
            checkpoint=dict(
                type="CheckpointHook", interval=interval, by_epoch=not iter_based, save_best="auto", max_keep_ckpts=3
            ),
            logger=dict(
                type="LoggerHook",
                interval=log_interval,
                log_metric_by_epoch=not iter_based,  # validation scalars at iteration steps
                vis_backends=[dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend")],
            ),
        ),
        custom_hooks=[dict(type="EMAHook", momentum=ema_momentum)],
        log_processor=dict(by_epoch=not iter_based),  # MMEngine's iteration-based configs set by_epoch=False
        print_hooks_table=False,
    )


@dataclass
class DemoResult:
    """Where the demo's files are, and the accuracies it measured."""

    work_dir: str
    checkpoints: list[str] = field(default_factory=list)
    last_checkpoint: Optional[str] = None
    best_checkpoint: Optional[str] = None
    best_score: Optional[float] = None
    scalars_json: Optional[str] = None
    tensorboard_dir: Optional[str] = None
    raw_accuracy: float = 0.0
    ema_accuracy: float = 0.0

    def summary(self) -> str:
        """The lines printed at the end of the run."""
        rel = [osp.basename(p) for p in self.checkpoints]
        lines = [
            "=" * 72,
            "Summary",
            f"  work_dir          : {self.work_dir}",
            f"  checkpoints       : {', '.join(rel) if rel else 'none'}",
            f"  last checkpoint   : {self.last_checkpoint}",
            f"  best checkpoint   : {self.best_checkpoint} ({METRIC} {_fmt(self.best_score)})",
            f"  JSON scalars      : {self.scalars_json}",
            f"  TensorBoard logs  : {self.tensorboard_dir}   (tensorboard --logdir {self.tensorboard_dir})",
            f"  val accuracy, raw weights : {self.raw_accuracy:.2f}%",
            f"  val accuracy, EMA weights : {self.ema_accuracy:.2f}%",
            "=" * 72,
        ]
        return "\n".join(lines)


def _fmt(score: Optional[float]) -> str:
    return "n/a" if score is None else f"{score:.4f}"


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader) -> float:
    """Top-1 accuracy in percent of ``model`` over ``loader`` (on the CPU, in eval mode)."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for images, labels in loader:
        correct += int((model(images).argmax(1) == labels).sum())
        total += len(labels)
    model.train(was_training)
    return 100.0 * correct / max(total, 1)


def _find_one(pattern: str) -> Optional[str]:
    found = sorted(glob.glob(pattern, recursive=True))
    return found[-1] if found else None


def _collect_result(bridge: HookBridge, model: DigitsCNN, data: DigitsDataModule, work_dir: str) -> DemoResult:
    """Read back what this run left on disk and measure the raw and EMA accuracies.

    File names come from this run's message hub (CheckpointHook records the kept
    ids, the last and the best checkpoint there), so files an earlier run left in
    the same work_dir are not reported.
    """
    log_dir = osp.join(work_dir, bridge.runtime["timestamp"])
    hub = bridge.message_hub
    info = hub.runtime_info if hub is not None else {}
    checkpoint_hook = next(h for h in bridge.hooks if isinstance(h, CheckpointHook))
    checkpoints = [
        osp.join(checkpoint_hook.out_dir, checkpoint_hook.filename_tmpl.format(step))
        for step in info.get("keep_ckpt_ids", [])
    ]
    last = info.get("last_ckpt")
    best = info.get("best_ckpt")
    events = _find_one(osp.join(log_dir, "**", "events.out.tfevents.*"))
    result = DemoResult(
        work_dir=work_dir,
        checkpoints=checkpoints,
        last_checkpoint=last,
        best_checkpoint=best,
        best_score=info.get("best_score"),
        scalars_json=_find_one(osp.join(log_dir, "vis_data", "scalars.json")),
        tensorboard_dir=osp.dirname(events) if events else None,
    )
    model = model.cpu()
    loader = data.val_dataloader()
    result.raw_accuracy = evaluate(model, loader)  # EMAHook swaps the raw weights back after validation
    if last is not None:
        # MMEngine's layout: a checkpoint's state_dict holds the EMA weights (ema_state_dict the raw ones).
        checkpoint = torch.load(last, map_location="cpu", weights_only=True)
        ema_model = DigitsCNN()
        ema_model.load_state_dict(checkpoint["state_dict"])
        result.ema_accuracy = evaluate(ema_model, loader)
    return result


def run_demo(
    epochs: int = 5,
    work_dir: str = "work_dirs/digits_demo",
    iter_based: bool = False,
    max_iters: int = 200,
    val_interval: int = 50,
    batch_size: int = 32,
    lr: float = 0.05,
    ema_momentum: float = 0.02,
    log_interval: int = 10,
    seed: int = 0,
    accelerator: str = "cpu",
) -> DemoResult:
    """Train, then return (and not print) the summary of the run; see the module docstring."""
    pl.seed_everything(seed, verbose=False)
    work_dir = osp.abspath(work_dir)
    data = DigitsDataModule(batch_size=batch_size, seed=seed)
    model = DigitsCNN(lr=lr, max_epochs_for_schedule=max_iters if iter_based else epochs, schedule_by_iter=iter_based)
    bridge = build_bridge(
        work_dir,
        iter_based=iter_based,
        interval=val_interval if iter_based else 1,
        ema_momentum=ema_momentum,
        log_interval=log_interval,
    )
    limits: dict[str, Any] = (
        dict(max_steps=max_iters, max_epochs=-1, val_check_interval=val_interval, check_val_every_n_epoch=None)
        if iter_based
        else dict(max_epochs=epochs)
    )
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=1,
        logger=False,  # LoggerHook writes the JSON scalars and the TensorBoard events
        enable_checkpointing=False,  # CheckpointHook saves
        enable_progress_bar=False,  # MMEngine-style lines instead
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=work_dir,
        callbacks=[bridge],
        **limits,
    )
    trainer.fit(model, datamodule=data)
    return _collect_result(bridge, model, data, work_dir)


def build_parser(prog: str = "python -m lightning_hooks.demo") -> argparse.ArgumentParser:
    """The demo's command-line options (``prog``: the command as the user typed it, for ``--help``)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train a small CNN on scikit-learn's handwritten digits with MMEngine-style hooks "
        "(checkpoints with save_best, EMA, MMEngine log lines, JSON and TensorBoard scalars).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=5, help="epochs to train (epoch-based mode)")
    parser.add_argument("--work-dir", default="work_dirs/digits_demo", help="checkpoints and logs go here")
    parser.add_argument("--iter-based", action="store_true", help="iteration-based training (Trainer max_steps)")
    parser.add_argument("--max-iters", type=int, default=200, help="iterations to train with --iter-based")
    parser.add_argument(
        "--val-interval", type=int, default=50, help="iterations between validations/checkpoints with --iter-based"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (cosine-annealed)")
    parser.add_argument("--ema-momentum", type=float, default=0.02, help="EMAHook momentum (MMEngine's meaning)")
    parser.add_argument("--log-interval", type=int, default=10, help="iterations between log lines")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--accelerator", default="cpu", help="Lightning accelerator (cpu, gpu, auto, ...)")
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for name in ("epochs", "max_iters", "val_interval", "batch_size", "log_interval"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not 0.0 < args.ema_momentum < 1.0:
        parser.error(f"--ema-momentum must be between 0 and 1, got {args.ema_momentum}")


def _quiet_lightning() -> None:
    """Keep the terminal to MMEngine's lines: Lightning's start-up notices and a deprecation warning it triggers."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m lightning_hooks.demo") -> int:
    """Run the demo from the command line and print its summary; returns the exit status."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    _check_args(parser, args)
    _quiet_lightning()
    result = run_demo(
        epochs=args.epochs,
        work_dir=args.work_dir,
        iter_based=args.iter_based,
        max_iters=args.max_iters,
        val_interval=args.val_interval,
        batch_size=args.batch_size,
        lr=args.lr,
        ema_momentum=args.ema_momentum,
        log_interval=args.log_interval,
        seed=args.seed,
        accelerator=args.accelerator,
    )
    print(result.summary())
    return 0


def result_as_dict(result: DemoResult) -> dict[str, Any]:
    """The summary as a plain dict (for notebooks and tests)."""
    return asdict(result)


if __name__ == "__main__":
    raise SystemExit(main())
