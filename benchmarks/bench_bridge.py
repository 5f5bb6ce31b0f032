"""What the bridge itself costs.

1. Seconds per training iteration of a small CPU model:
   - plain Trainer with nothing extra;
   - Trainer + Lightning's nearest built-ins (ModelCheckpoint + LearningRateMonitor);
   - Trainer + HookBridge with the default hooks (checkpoint every epoch, like ModelCheckpoint).
2. Dispatch cost per mount point with 10 registered no-op hooks:
   - none overriding the mount point (pre-resolved: should cost ~nothing);
   - 2 of 10 overriding it;
   - all 10 overriding it;
   - MMEngine's `Runner.call_hook`-style loop (hasattr + getattr on every hook) as the anchor.

Run: ``python benchmarks/bench_bridge.py`` (about a minute). Prints two tables.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import timeit
import warnings

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_hooks import Hook, HookBridge
from lightning_hooks.dispatch import HookList

warnings.filterwarnings("ignore")


class Boring(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(32, 2)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.01)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 1)}


def seconds_per_iter(callbacks_factory, iters: int, epochs: int, repeats: int) -> float:
    """Median wall seconds per training iteration over ``repeats`` fits (each fit: ``epochs`` x ``iters // epochs``)."""
    data = DataLoader(TensorDataset(torch.randn(iters // epochs, 32)), batch_size=1)
    samples = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            callbacks, extra = callbacks_factory(tmp)
            trainer = pl.Trainer(
                max_epochs=epochs,
                accelerator="cpu",
                devices=1,
                enable_progress_bar=False,
                enable_model_summary=False,
                num_sanity_val_steps=0,
                default_root_dir=tmp,
                callbacks=callbacks,
                **extra,
            )
            model = Boring()
            start = time.perf_counter()
            trainer.fit(model, data)
            samples.append((time.perf_counter() - start) / iters)
    return statistics.median(samples)


def plain(tmp):
    return [], dict(logger=False, enable_checkpointing=False)


def builtins(tmp):
    return [ModelCheckpoint(dirpath=tmp, every_n_epochs=1, save_top_k=-1), LearningRateMonitor("step")], dict(
        logger=CSVLogger(tmp), enable_checkpointing=True
    )


def bridge(tmp):
    return [HookBridge(work_dir=tmp, print_hooks_table=False, log_level="WARNING")], dict(
        logger=False, enable_checkpointing=False
    )


def bridge_without_log_lines(tmp):
    """The default hooks minus LoggerHook: the built-ins above print no terminal lines either."""
    bridge = HookBridge(work_dir=tmp, print_hooks_table=False, log_level="WARNING", default_hooks={"logger": None})
    return [bridge], dict(logger=False, enable_checkpointing=False)


class Noop(Hook):
    pass


class Overrides(Hook):
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        return None


def mmengine_style_call(hooks, runner, name, kwargs):
    """MMEngine's Runner.call_hook loop: every hook is asked for the attribute at every call."""
    for hook in hooks:
        if hasattr(hook, name):
            getattr(hook, name)(runner, **kwargs)


def dispatch_table(number: int) -> list[tuple[str, float]]:
    rows = []
    kwargs = {"batch_idx": 0, "data_batch": None, "outputs": None}
    for label, overriding in [("0 of 10 override", 0), ("2 of 10 override", 2), ("10 of 10 override", 10)]:
        hooks = [Overrides() if i < overriding else Noop() for i in range(10)]
        table = HookList(hooks)
        table.resolve_all()

        def ours(table=table):
            for method in table.table("after_train_iter"):
                method(None, **kwargs)

        def theirs(hooks=hooks):
            mmengine_style_call(hooks, None, "after_train_iter", kwargs)

        t_ours = min(timeit.repeat(ours, number=number, repeat=5)) / number
        t_mm = min(timeit.repeat(theirs, number=number, repeat=5)) / number
        rows.append((label, t_ours * 1e6, t_mm * 1e6))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    print(f"## Per-iteration cost ({args.iters} iterations, {args.epochs} epochs, Linear(32, 2), batch 1, CPU)\n")
    configs = [
        ("plain Trainer", plain),
        ("ModelCheckpoint + LearningRateMonitor", builtins),
        ("HookBridge (default hooks)", bridge),
        ("HookBridge (default hooks, logger=None)", bridge_without_log_lines),
    ]
    for _, factory in configs:
        seconds_per_iter(factory, args.iters // 5, 1, 1)  # warm-up
    samples: dict[str, list[float]] = {name: [] for name, _ in configs}
    for _ in range(args.repeats):  # interleaved, so drift in the machine's load hits every row alike
        for name, factory in configs:
            samples[name].append(seconds_per_iter(factory, args.iters, args.epochs, 1))
    results = {name: statistics.median(values) for name, values in samples.items()}
    base = results["plain Trainer"]
    print("| setup | µs / iteration | added over plain Trainer (µs) |")
    print("|---|---:|---:|")
    for name, value in results.items():
        print(f"| {name} | {value * 1e6:.1f} | {(value - base) * 1e6:+.1f} |")
    added_builtin = results["ModelCheckpoint + LearningRateMonitor"] - base
    if added_builtin > 0:
        for name in ("HookBridge (default hooks)", "HookBridge (default hooks, logger=None)"):
            print(f"\n{name} overhead / built-ins overhead: {(results[name] - base) / added_builtin:.2f}", end="")
        print()

    print("\n## Dispatch cost of one mount point, 10 registered hooks (µs per call)\n")
    print("| hooks overriding the mount point | pre-resolved table (ours) | MMEngine-style hasattr loop | speed-up |")
    print("|---|---:|---:|---:|")
    for label, ours, theirs in dispatch_table(20000):
        print(f"| {label} | {ours:.3f} | {theirs:.3f} | {theirs / ours:.1f}x |")


if __name__ == "__main__":
    main()
