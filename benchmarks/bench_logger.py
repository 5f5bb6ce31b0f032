"""Per-iteration cost of logging: LoggerHook (interval 10 and 50) against Lightning's ``self.log`` and MMEngine.

Every configuration trains the same toy loop (Linear(2, 1), batches of 3, SGD) for
``ITERS`` iterations on the CPU; the time from the start of iteration ``WARMUP`` to
the start of the last iteration (process CPU time) is divided by the iterations in between. The
logging cost of a configuration is its time per iteration minus its framework's
baseline without logging:

* Lightning baseline: the module, no callbacks, ``logger=False``;
* Lightning ``self.log``: ``self.log('loss', loss)`` every step with a CSVLogger,
  flushed every ``log_every_n_steps`` (10 or 50) iterations;
* lightning_hooks: HookBridge with RuntimeInfoHook + IterTimerHook + LoggerHook
  (terminal line, log file, JSON lines), against the same Trainer without the bridge;
* MMEngine: Runner with RuntimeInfoHook + IterTimerHook + LoggerHook + LogProcessor
  against a Runner without default hooks.

The "RuntimeInfo+IterTimer only" rows separate LoggerHook's own cost from the
message-hub feeding (and, for lightning_hooks, the bridge's Lightning callback
overhead) that every line depends on.

Terminal output of all runs goes to /dev/null. Configurations run interleaved in
``REPEATS`` rounds; a cost is taken against its framework's baseline *of the same
round* (paired, so drift in the machine's speed cancels), and the median over rounds
is reported. Run: ``python benchmarks/bench_logger.py`` (about two minutes).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from toy import ToyDataset

ITERS = 1500
WARMUP = 150
REPEATS = 5
torch.set_num_threads(1)


class Module(pl.LightningModule):
    def __init__(self, use_self_log: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(2, 1)
        self.use_self_log = use_self_log

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = ((self.linear(batch["inputs"]).squeeze(-1) - batch["label"]) ** 2).mean()
        if self.use_self_log:
            self.log("loss", loss)
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Stamp:
    """Records the process CPU time at the start of iteration WARMUP and of the last iteration.

    CPU time, not wall time: on a shared machine it does not count the time other
    processes hold the cores.
    """

    def __init__(self) -> None:
        self.t0 = self.t1 = 0.0

    def at(self, index: int) -> None:
        if index == WARMUP:
            self.t0 = time.process_time()
        elif index == ITERS - 1:
            self.t1 = time.process_time()

    def per_iter_us(self) -> float:
        return (self.t1 - self.t0) / (ITERS - 1 - WARMUP) * 1e6


class StampCallback(pl.Callback):
    def __init__(self, stamp: Stamp) -> None:
        self.stamp = stamp

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.stamp.at(batch_idx)


def run_lightning(bridge_hooks: Any = None, self_log_every: int = 0) -> float:
    stamp = Stamp()
    callbacks: list[Any] = [StampCallback(stamp)]
    with tempfile.TemporaryDirectory() as tmp:
        if bridge_hooks is not None:
            from lightning_hooks import HookBridge

            callbacks.append(HookBridge(default_hooks=bridge_hooks, print_hooks_table=False, work_dir=tmp))
        logger: Any = False
        if self_log_every:
            from lightning.pytorch.loggers import CSVLogger

            logger = CSVLogger(tmp, flush_logs_every_n_steps=self_log_every)
        trainer = pl.Trainer(
            accelerator="cpu",
            max_epochs=1,
            logger=logger,
            log_every_n_steps=self_log_every or 50,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=tmp,
            callbacks=callbacks,
        )
        trainer.fit(Module(use_self_log=bool(self_log_every)), DataLoader(ToyDataset(ITERS * 3), batch_size=3))
    return stamp.per_iter_us()


def run_mmengine(default_hooks: dict) -> float:
    from mmengine.hooks import Hook as MMHook
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    stamp = Stamp()

    class StampHook(MMHook):
        priority = "HIGHEST"

        def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
            stamp.at(batch_idx)

    class MMModule(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.linear = nn.Linear(2, 1)

        def forward(self, inputs: torch.Tensor, label: torch.Tensor, mode: str = "tensor") -> Any:
            return {"loss": ((self.linear(inputs).squeeze(-1) - label) ** 2).mean()}

    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(
            model=MMModule(),
            work_dir=tmp,
            experiment_name=f"bench_{time.time_ns()}",
            train_dataloader=dict(
                dataset=ToyDataset(ITERS * 3),
                batch_size=3,
                sampler=dict(type="DefaultSampler", shuffle=False),
                collate_fn=dict(type="default_collate"),
            ),
            train_cfg=dict(by_epoch=True, max_epochs=1),
            optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
            default_hooks=default_hooks,
            custom_hooks=[StampHook()],
            log_level="INFO",
        )
        runner.train()
    return stamp.per_iter_us()


NONE_HOOKS = ("runtime_info", "timer", "sampler_seed", "logger", "param_scheduler", "checkpoint")


def hooks_with_logger(interval: int) -> dict:
    """RuntimeInfoHook + IterTimerHook + LoggerHook(interval); interval 0 drops the LoggerHook."""
    cfg: dict[str, Any] = {name: None for name in ("sampler_seed", "param_scheduler", "checkpoint")}
    cfg["logger"] = dict(type="LoggerHook", interval=interval) if interval else None
    return cfg


CONFIGS: dict[str, Callable[[], float]] = {
    "lightning: baseline": lambda: run_lightning(),
    "lightning: self.log + CSVLogger, every 10": lambda: run_lightning(self_log_every=10),
    "lightning: self.log + CSVLogger, every 50": lambda: run_lightning(self_log_every=50),
    "lightning_hooks: RuntimeInfo+IterTimer only": lambda: run_lightning(bridge_hooks=hooks_with_logger(0)),
    "lightning_hooks: LoggerHook interval 10": lambda: run_lightning(bridge_hooks=hooks_with_logger(10)),
    "lightning_hooks: LoggerHook interval 50": lambda: run_lightning(bridge_hooks=hooks_with_logger(50)),
    "mmengine: baseline (no default hooks)": lambda: run_mmengine({name: None for name in NONE_HOOKS}),
    "mmengine: RuntimeInfo+IterTimer only": lambda: run_mmengine(hooks_with_logger(0)),
    "mmengine: LoggerHook interval 10": lambda: run_mmengine(hooks_with_logger(10)),
    "mmengine: LoggerHook interval 50": lambda: run_mmengine(hooks_with_logger(50)),
}


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _baseline_name(name: str) -> str:
    return "mmengine: baseline (no default hooks)" if name.startswith("mmengine") else "lightning: baseline"


def main() -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    rounds: list[dict[str, float]] = []
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        for _ in range(REPEATS):  # interleaved, so slow phases of the machine hit every configuration
            rounds.append({name: fn() for name, fn in CONFIGS.items()})
    per_iter = {name: _median([r[name] for r in rounds]) for name in CONFIGS}
    # Paired: each round's cost against the same round's baseline, then the median over rounds.
    costs = {name: [r[name] - r[_baseline_name(name)] for r in rounds] for name in CONFIGS}
    cost = {name: _median(values) for name, values in costs.items()}
    print(f"{ITERS} iterations per run, {REPEATS} interleaved rounds, process CPU time, 1 torch thread")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs after the run")
    print("(costs are paired against the same round's baseline; medians over rounds)\n")
    print(f"{'configuration':46s} {'us/iter':>9s} {'logging cost us/iter, median [min-max]':>38s}")
    for name in CONFIGS:
        spread = f"{cost[name]:.1f} [{min(costs[name]):.1f}-{max(costs[name]):.1f}]"
        shown = "" if "baseline" in name else f"{spread:>38s}"
        print(f"{name:46s} {per_iter[name]:9.1f} {shown}")
    print("\nratios of logging cost (lightning_hooks / anchor; below 1 is better):")
    for interval in (10, 50):
        ours = cost[f"lightning_hooks: LoggerHook interval {interval}"]
        lightning = cost[f"lightning: self.log + CSVLogger, every {interval}"]
        mmengine = cost[f"mmengine: LoggerHook interval {interval}"]
        to_lightning = [
            r[f"lightning_hooks: LoggerHook interval {interval}"] - r["lightning: baseline"] for r in rounds
        ]
        per_round = [
            (o / (r[f"lightning: self.log + CSVLogger, every {interval}"] - r["lightning: baseline"]))
            for o, r in zip(to_lightning, rounds, strict=True)
        ]
        print(
            f"  interval {interval:2d}: vs Lightning self.log {ours / lightning:5.2f} "
            f"(per round {min(per_round):.2f}-{max(per_round):.2f})   "
            f"vs MMEngine LoggerHook {ours / mmengine:5.2f}"
        )
    print("\nLoggerHook alone (cost above RuntimeInfo+IterTimer of the same framework, paired), us/iter:")
    for interval in (10, 50):
        ours_alone = _median(
            [
                r[f"lightning_hooks: LoggerHook interval {interval}"] - r["lightning_hooks: RuntimeInfo+IterTimer only"]
                for r in rounds
            ]
        )
        mm_alone = _median(
            [r[f"mmengine: LoggerHook interval {interval}"] - r["mmengine: RuntimeInfo+IterTimer only"] for r in rounds]
        )
        print(f"  interval {interval:2d}: lightning_hooks {ours_alone:7.1f}   MMEngine {mm_alone:7.1f}")
    spread = [r["lightning: baseline"] for r in rounds]
    print(f"\nLightning baseline across rounds: {min(spread):.0f}-{max(spread):.0f} us/iter (the noise floor)")


if __name__ == "__main__":
    main()
