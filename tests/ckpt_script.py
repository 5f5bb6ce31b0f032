"""Subprocess entry point for the CheckpointHook tests that need their own process.

Modes:
  crash <work_dir> <max_epochs> [resume]  train a model with a 40 MB buffer, saving every epoch
  ddp <work_dir>                          2-process gloo DDP (ddp_fork); ranks see different metrics
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch
from ckpt_helpers import NO_DEFAULTS, ScoredModule
from toy import loaders, make_trainer

from lightning_hooks import Hook, HookBridge

CRASH_BALLAST = 10_000_000  # float32 elements: 40 MB in every checkpoint
FSIZE_BALLAST = 500_000  # 2 MB: above the 1 MB limit set after epoch 2


class BigModule(ScoredModule):
    """The toy model plus a large buffer, so that writing a checkpoint takes a while."""

    def __init__(self, ballast: int) -> None:
        super().__init__({"acc": [0.1 * i for i in range(1, 50)]})
        self.register_buffer("ballast", torch.zeros(ballast))


class ShrinkFileLimit(Hook):
    """After epoch 2 every new file may hold at most 1 MB: the next checkpoint write fails (EFBIG).

    The caller ignores SIGXFSZ and restores the limit afterwards.
    """

    priority = "HIGHEST"

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == 3:
            resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))


def train(work_dir: str, max_epochs: int, resume: bool, extra_hooks: list, ballast: int = CRASH_BALLAST) -> None:
    ckpt = dict(type="CheckpointHook", interval=1, max_keep_ckpts=2, save_best="acc")
    bridge = HookBridge(
        default_hooks={**NO_DEFAULTS, "checkpoint": ckpt},
        custom_hooks=extra_hooks,
        work_dir=work_dir,
        resume=resume,
        print_hooks_table=False,
    )
    trainer = make_trainer(work_dir, bridge, max_epochs=max_epochs, num_sanity_val_steps=0)
    train_loader, val_loader = loaders()
    trainer.fit(BigModule(ballast), train_loader, val_loader)
    print(f"DONE epoch={bridge.state.epoch}", flush=True)


class RankScores(ScoredModule):
    """Rank 1 sees another score sequence: a hook deciding per rank would desynchronise the saves."""

    def on_validation_epoch_end(self) -> None:
        if self.trainer.global_rank == 1:
            self.scores = {"acc": [0.3, 0.1, 0.2, 0.9]}
        super().on_validation_epoch_end()


class RecordDecisions(Hook):
    """Writes what this rank decided (hub bookkeeping, files it wrote) to ``rank<r>.json`` after training."""

    priority = "LOWEST"

    def after_train(self, runner) -> None:
        ckpt_hook = next(h for h in runner.hooks if type(h).__name__ == "CheckpointHook")
        hub = runner.message_hub
        record = {
            "rank": runner.rank,
            "world_size": runner.world_size,
            "files_written": ckpt_hook._io.files_written,
            "best_score": hub.get_info("best_score"),
            "best_ckpt": hub.get_info("best_ckpt"),
            "keep_ckpt_ids": hub.get_info("keep_ckpt_ids"),
            "epoch": runner.epoch,
        }
        with open(os.path.join(runner.work_dir, f"rank{runner.rank}.json"), "w") as f:
            json.dump(record, f)


def ddp(work_dir: str) -> None:
    ckpt = dict(type="CheckpointHook", interval=1, max_keep_ckpts=1, save_best="acc")
    bridge = HookBridge(
        default_hooks={**NO_DEFAULTS, "checkpoint": ckpt},
        custom_hooks=[RecordDecisions()],
        work_dir=work_dir,
        print_hooks_table=False,
    )
    trainer = make_trainer(
        work_dir, bridge, max_epochs=4, num_sanity_val_steps=0, strategy="ddp_fork", devices=2, accelerator="cpu"
    )
    train_loader, val_loader = loaders()
    trainer.fit(RankScores({"acc": [0.1, 0.3, 0.2, 0.4]}), train_loader, val_loader)


if __name__ == "__main__":
    mode, work_dir = sys.argv[1], sys.argv[2]
    if mode == "crash":
        train(work_dir, int(sys.argv[3]), resume=len(sys.argv) > 4, extra_hooks=[])
    elif mode == "ddp":
        ddp(work_dir)
    else:
        raise SystemExit(f"unknown mode {mode!r}; use crash or ddp")
