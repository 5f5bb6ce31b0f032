"""Two-process gloo DDP run of HookBridge: every default hook plus SyncBuffersHook, EMAHook and, per scenario,
EarlyStoppingHook and CheckpointHook rotation/best (``epochs``) or ProfilerHook and EmptyCacheHook (``iters``).

Run: ``python ddp_hooks_run.py OUT_DIR [STRATEGY]`` (STRATEGY defaults to ``ddp``, which re-executes this
script once for rank 1, hence the ``__main__`` guard). Both scenarios train in the same two processes;
each rank writes ``<scenario>_rank<k>.json`` with what it observed, and tests/test_ddp.py compares them:

* ``trace``: every mount point as (stage, epoch, iter, batch_idx);
* ``buffers``: every floating-point buffer before and after SyncBuffersHook at each of its mount points
  (``rank_buffer`` is filled with rank + epoch + step after every forward pass, and BatchNorm sees other
  data on each rank, so they differ before the sync);
* ``writes``: every file-system write under the work dirs, seen by a ``sys.addaudithook`` audit hook;
* ``sampler_calls``: the epochs the training sampler's ``set_epoch`` received;
* ``stopped_at``, ``early_stopping``: where training ended and the hook's own state;
* ``ema_checksum``: the sum of the EMA model's parameters;
* ``releases``: EmptyCacheHook's calls of its release function (``iters`` only).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import torch

torch.set_num_threads(1)

import lightning.pytorch as pl  # noqa: E402
from lightning.pytorch.strategies import DDPStrategy  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset, DistributedSampler  # noqa: E402

from lightning_hooks import EarlyStoppingHook, EmptyCacheHook, HookBridge, ProfilerHook, SyncBuffersHook  # noqa: E402
from lightning_hooks import Hook as LHHook  # noqa: E402
from lightning_hooks.hooks.hook import STAGES  # noqa: E402

TRAIN_LEN, BATCH, VAL_LEN, VAL_BATCH = 24, 3, 12, 6
MAX_EPOCHS = 6
#: Per-rank validation scores (not synced): rank 0 plateaus after its 3rd validation, rank 1 keeps improving.
SCORES = {0: [1.0, 2.0, 3.0, 3.0, 3.0, 3.0], 1: [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}


class RandomData(Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 2, generator=g) * torch.linspace(1, 3, n).unsqueeze(1)
        self.y = (self.x.sum(1) > 0).float()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"inputs": self.x[i], "label": self.y[i]}


class CountingDistributedSampler(DistributedSampler):
    """A DistributedSampler that records ``set_epoch`` calls (Lightning keeps a sampler that is one already)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.calls.append(epoch)
        super().set_epoch(epoch)


class BNModule(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1))
        self.register_buffer("rank_buffer", torch.zeros(3))
        self.val_calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = ((self(batch["inputs"]) - batch["label"]) ** 2).mean()
        # After the forward pass, so DDP's buffer broadcast (at the start of the next forward) cannot undo it.
        self.rank_buffer.fill_(float(self.global_rank + self.current_epoch + self.trainer.global_step))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        acc = ((self(batch["inputs"]) > 0.5).float() == batch["label"]).float().mean()
        self.log("acc", acc, on_epoch=True, sync_dist=True)
        score = SCORES[self.global_rank][min(self.val_calls, MAX_EPOCHS - 1)]
        self.log("score", score, on_epoch=True, sync_dist=False)

    def on_validation_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.val_calls += 1

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.05)

    def train_dataloader(self) -> DataLoader:
        data = RandomData(TRAIN_LEN, 0)
        sampler = CountingDistributedSampler(
            data, num_replicas=self.trainer.world_size, rank=self.global_rank, shuffle=True, seed=0
        )
        self.train_sampler = sampler
        return DataLoader(data, batch_size=BATCH, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(RandomData(VAL_LEN, 1), batch_size=VAL_BATCH)


class Counter:
    """EmptyCacheHook's release function here: records when it is called (there is no cache on CPU)."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self) -> None:
        self.calls.append(len(self.calls))


def float_buffers(model: nn.Module) -> dict[str, list[float]]:
    return {
        name: buf.detach().reshape(-1).tolist() for name, buf in model.named_buffers() if torch.is_floating_point(buf)
    }


SYNC_POINTS = ("after_train_epoch", "before_val_epoch")


class Observer(LHHook):
    """Records the mount-point trace (HIGHEST priority) and the buffers just before SyncBuffersHook acts."""

    priority = "HIGHEST"

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

        def make(stage: str) -> Any:
            def method(runner: Any, **kwargs: Any) -> None:
                record["trace"].append([stage, runner.epoch, runner.iter, kwargs.get("batch_idx")])
                if stage in SYNC_POINTS:
                    entry = {"stage": stage, "epoch": runner.epoch, "iter": runner.iter}
                    record["buffers"].append(dict(entry, before=float_buffers(runner.model)))

            return method

        for stage in STAGES:
            setattr(self, stage, make(stage))


class AfterSync(LHHook):
    """Runs after SyncBuffersHook (NORMAL) at its mount points; writes this rank's JSON at after_run."""

    priority = "BELOW_NORMAL"

    def __init__(self, record: dict[str, Any], path: str) -> None:
        self.record = record
        self.path = path

    def after_train_epoch(self, runner: Any) -> None:
        self.record["buffers"][-1]["after"] = float_buffers(runner.model)

    def before_val_epoch(self, runner: Any) -> None:
        self.record["buffers"][-1]["after"] = float_buffers(runner.model)

    def after_train(self, runner: Any) -> None:
        self.record["stopped_at"] = [runner.epoch, runner.iter]
        self.record["sampler_calls"] = list(runner.model.train_sampler.calls)
        self.record["rank"] = runner.rank
        self.record["world_size"] = runner.world_size
        es = next((h for h in runner.hooks if isinstance(h, EarlyStoppingHook)), None)
        if es is not None:
            self.record["early_stopping"] = {"best_score": es.best_score, "wait_count": es.wait_count}
        self.record["work_dir"] = runner.work_dir
        self.record["log_dir"] = runner.log_dir
        ema = next((h for h in runner.hooks if type(h).__name__ == "EMAHook"), None)
        model = getattr(ema, "ema_model", None)
        if model is not None:
            self.record["ema_checksum"] = float(sum(p.detach().double().sum() for p in model.parameters()))

    def after_run(self, runner: Any) -> None:
        self.record["writes"] = list(WRITES)
        WRITES.clear()
        with open(self.path.format(rank=runner.rank), "w") as f:
            json.dump(self.record, f)


WRITES: list[list[str]] = []
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def watch_writes(root: str) -> None:
    """Record every write-like file-system event under ``root`` made by this process."""
    root = os.path.abspath(root)

    def under_root(path: Any) -> bool:
        try:
            return os.path.abspath(os.fsdecode(path)).startswith(root)
        except (TypeError, ValueError):
            return False

    def audit(event: str, args: tuple) -> None:
        if event == "open" and args and under_root(args[0]):
            mode, flags = args[1], args[2]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if writing:
                WRITES.append([event, os.fsdecode(args[0])])
        elif event in ("os.rename", "os.replace", "shutil.copyfile", "shutil.move") and len(args) > 1:
            if under_root(args[1]):
                WRITES.append([event, os.fsdecode(args[1])])
        elif event in ("os.mkdir", "os.remove", "os.unlink", "os.rmdir") and args and under_root(args[0]):
            WRITES.append([event, os.fsdecode(args[0])])

    sys.addaudithook(audit)


def run(out_dir: str, scenario: str, strategy_name: str) -> None:
    """One ``fit``: ``epochs`` (epoch-based, early stopping, rotation and best checkpoints) or
    ``iters`` (iteration-based, validation every 3 iterations, DDP's buffer broadcast off)."""
    work_dir = os.path.join(out_dir, f"work_{scenario}")
    record: dict[str, Any] = {"scenario": scenario, "trace": [], "buffers": []}
    custom: list[Any] = [
        Observer(record),
        SyncBuffersHook(),
        AfterSync(record, f"{out_dir}/{scenario}_rank{{rank}}.json"),
    ]
    if scenario == "epochs":
        custom.append(EarlyStoppingHook("score", rule="greater", min_delta=0.5, patience=2))
        # The best checkpoint follows ``score``, which differs per rank: the ranks must still take one decision.
        checkpoint = {
            "type": "CheckpointHook",
            "interval": 1,
            "max_keep_ckpts": 2,
            "save_best": "score",
            "rule": "greater",
        }
        limits: dict[str, Any] = dict(max_epochs=MAX_EPOCHS)
        strategy: Any = strategy_name
    else:
        checkpoint = {"type": "CheckpointHook", "interval": 3, "by_epoch": False}
        limits = dict(max_steps=12, max_epochs=-1, val_check_interval=3, check_val_every_n_epoch=None)
        releases = Counter()
        record["releases"] = releases.calls
        custom.append(EmptyCacheHook(before_epoch=True, release_fn=releases))
        custom.append(ProfilerHook(by_epoch=False, profile_times=2, json_trace_path=f"{out_dir}/trace.json"))
        strategy = DDPStrategy(broadcast_buffers=False, start_method="popen" if strategy_name == "ddp" else "fork")
    custom.append({"type": "EMAHook", "momentum": 0.1})
    bridge = HookBridge(
        default_hooks={"checkpoint": checkpoint},
        custom_hooks=custom,
        work_dir=work_dir,
        print_hooks_table=False,
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=strategy,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=work_dir,
        callbacks=[bridge],
        **limits,
    )
    trainer.fit(BNModule())


def main() -> None:
    out_dir = os.path.abspath(sys.argv[1])
    strategy_name = sys.argv[2] if len(sys.argv) > 2 else "ddp"
    watch_writes(os.path.join(out_dir, "work"))  # work_epochs/ and work_iters/
    # Both scenarios in the same two processes: the second Trainer reuses the process group.
    run(out_dir, "epochs", strategy_name)
    run(out_dir, "iters", strategy_name)


if __name__ == "__main__":
    main()
