"""One save of a ~300 MB checkpoint (25M-parameter model + AdamW state): CheckpointHook vs anchors.

Rows, all measured in the same process on the same disk, best and median of N:

* ``torch.save`` of the same dict straight to its file (the anchor: no atomicity, no fsync);
* Lightning's default ``trainer.save_checkpoint`` (TorchCheckpointIO: BytesIO, then an fsspec
  transaction staged in $TMPDIR);
* MMEngine 0.10's CheckpointHook (``runner.save_checkpoint``: BytesIO, then ``open(path, 'wb')``);
* our CheckpointHook, synchronous (atomic: temp file in the target dir, fsync, rename, fsync dir;
  plus the atomic ``last_checkpoint``);
* our CheckpointHook with ``async_save=True``: the time the training loop is blocked (copy to host
  memory) and the time until the file is on disk.

Run: ``python benchmarks/bench_checkpoint.py [--repeats 3] [--dir /tmp]``. Prints a table with the
ratio of each row to ``torch.save``. The numbers are wall times on whatever else the machine runs:
on a shared machine they are noisy, so compare ratios from one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

warnings.filterwarnings("ignore")

WIDTH = 5000  # Linear(5000, 5000): 25M parameters, 100 MB; with AdamW's two moments ~300 MB


DURABLE_ROW = "torch.save + fsync (durable anchor)"
NO_FSYNC_ROW = "CheckpointHook, atomic, fsync=False (ours)"
DUMP_ROW = "building the checkpoint dict only (Lightning's dump_checkpoint)"


def durable_torch_save(obj: Any, path: str) -> None:
    """torch.save, then fsync: the floor for a checkpoint that survives a power cut."""
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def round_robin(
    methods: dict[str, Callable[[], Any]], repeats: int, cleanup: Callable[[], None]
) -> dict[str, list[float]]:
    """Time every method once per round, rounds in a row, so that disk and cache state hit all alike.

    Before each timing the output directory is emptied and ``os.sync()`` flushes dirty pages, so a
    method is not charged for the write-back of the previous one.
    """
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            cleanup()
            os.sync()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    cleanup()
    return times


def clear(directory: str) -> Callable[[], None]:
    def run() -> None:
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)

    return run


# ----------------------------------------------------------------------------- Lightning + our hook
MM_ROW = "MMEngine CheckpointHook (BytesIO + open/write)"


def lightning_rows(root: str, repeats: int, mm_save: Callable[[], None]) -> dict[str, list[float]]:
    """Train one step with two CheckpointHooks (sync, async), then time all save paths in rounds."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, TensorDataset

    from lightning_hooks import Hook, HookBridge

    rows: dict[str, list[float]] = {}

    class Big(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.layer = nn.Linear(WIDTH, WIDTH)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self) -> Any:
            return torch.optim.AdamW(self.parameters(), lr=1e-3)

    class Measure(Hook):
        priority = "LOWEST"

        def after_train(self, runner: Any) -> None:
            trainer = runner.trainer
            out = os.path.join(root, "lh")
            os.makedirs(out, exist_ok=True)
            # The three CheckpointHooks, in registration order: atomic + fsync, async, atomic without fsync.
            sync_hook, async_hook, no_fsync_hook = [h for h in runner.hooks if type(h).__name__ == "CheckpointHook"]
            meta = {"epoch": 1, "iter": 1}
            checkpoint = trainer._checkpoint_connector.dump_checkpoint(False)
            size = sum(t.numel() * t.element_size() for t in _tensors(checkpoint))
            rows["checkpoint size (MB)"] = [size / 1e6]
            sync_hook.out_dir = out
            async_hook.out_dir = out
            no_fsync_hook.out_dir = out
            blocked: list[float] = []

            def async_save() -> None:
                start = time.perf_counter()
                async_hook._save_checkpoint_with_step(runner, 1, meta)
                blocked.append(time.perf_counter() - start)
                async_hook._io.wait()

            methods = {
                "torch.save (anchor)": lambda: torch.save(checkpoint, os.path.join(out, "plain.pth")),
                DURABLE_ROW: lambda: durable_torch_save(checkpoint, os.path.join(out, "durable.pth")),
                DUMP_ROW: lambda: trainer._checkpoint_connector.dump_checkpoint(False),
                "Lightning trainer.save_checkpoint (TorchCheckpointIO)": lambda: trainer.save_checkpoint(
                    os.path.join(out, "lightning.ckpt"), weights_only=False
                ),
                MM_ROW: mm_save,
                "CheckpointHook, atomic + fsync (ours)": lambda: sync_hook._save_checkpoint_with_step(runner, 1, meta),
                NO_FSYNC_ROW: lambda: no_fsync_hook._save_checkpoint_with_step(runner, 1, meta),
                "CheckpointHook async: until on disk (ours)": async_save,
            }
            rows.update(round_robin(methods, repeats, clear(out)))
            rows["CheckpointHook async: the save call (ours; see the async table)"] = blocked

    loader = DataLoader(TensorDataset(torch.randn(4, WIDTH)), batch_size=4)
    bridge = HookBridge(
        default_hooks={name: None for name in ("timer", "sampler_seed", "logger", "param_scheduler", "checkpoint")},
        custom_hooks=[
            dict(type="CheckpointHook", interval=-1, save_last=False),
            dict(type="CheckpointHook", interval=-1, save_last=False, async_save=True),
            dict(type="CheckpointHook", interval=-1, save_last=False, fsync=False),
            Measure(),
        ],
        work_dir=os.path.join(root, "lh_work"),
        print_hooks_table=False,
        log_level="WARNING",
    )
    trainer = pl.Trainer(
        max_steps=1,
        max_epochs=-1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        callbacks=[bridge],
    )
    trainer.fit(Big(), loader)
    return rows


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(v)]
    return []


# ----------------------------------------------------------------------------- MMEngine's hook
def mmengine_saver(root: str, out: str) -> Callable[[], None]:
    """One AdamW step in MMEngine's Runner; returns a call of its CheckpointHook's regular save into ``out``."""
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    from torch.utils.data import Dataset

    class Data(Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> dict:
            return {"x": torch.randn(WIDTH)}

    class Big(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.layer = nn.Linear(WIDTH, WIDTH)

        def forward(self, x: torch.Tensor, mode: str = "loss") -> Any:
            return {"loss": self.layer(x).pow(2).mean()}

    work = os.path.join(root, "mm")
    runner = Runner(
        model=Big(),
        work_dir=work,
        train_dataloader=dict(
            dataset=Data(),
            batch_size=4,
            sampler=dict(type="DefaultSampler", shuffle=False),
            collate_fn=dict(type="default_collate"),
        ),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="AdamW", lr=1e-3)),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=-1, save_last=False), logger=None),
        log_level="WARNING",
    )
    runner.train()  # one step: AdamW state exists; the hook's before_train set its file backend
    hook = next(h for h in runner.hooks if type(h).__name__ == "CheckpointHook")
    hook.out_dir = out
    return lambda: hook._save_checkpoint_with_step(runner, 1, {"epoch": 1, "iter": 1})


# ----------------------------------------------------------------------------- async saving in a training loop
def _med(values: list[float], scale: float = 1e3, fmt: str = "{:.0f}") -> str:
    shown = [v * scale for v in values]
    return f"{fmt.format(statistics.median(shown))} [{fmt.format(min(shown))}-{fmt.format(max(shown))}]"


def async_in_training(root: str, rounds: int, width: int, layers: int, batch: int, follow: int) -> None:
    """Blocked time and iteration time around a save, in a plain training loop, sync against async.

    The model is ``layers`` x Linear(width, width) with AdamW; one iteration is forward, backward and
    step on a batch of ``batch``, sized so that forward + backward take longer than copying the
    checkpoint's tensors (both are measured and printed). Per round, interleaved:

    * baseline: ``follow`` iterations with no save;
    * sync: a durable synchronous save (atomic, fsync), then ``follow`` iterations;
    * async: ``async_save=True`` (parameters and AdamW state copied by the writer thread while the
      next forward and backward run; the step waits only for what is not yet copied), then
      ``follow`` iterations during which the copy and the write run; the write is waited for
      afterwards, outside the timings.

    Blocked time is the save call plus, for async, the optimizer steps' waits for the copy. The
    writer's cost to training is the ``follow`` iterations' time minus the same round's baseline.
    """
    from lightning_hooks import AtomicCheckpointIO

    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(width, width) for _ in range(layers)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, width)

    def forward_backward() -> None:
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()

    def iteration() -> None:
        forward_backward()
        optimizer.step()

    def checkpoint() -> dict[str, Any]:
        return {"state_dict": model.state_dict(), "optimizer_states": [optimizer.state_dict()], "epoch": 1}

    def timed(fn: Callable[[], Any]) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def iterations() -> float:
        return timed(lambda: [iteration() for _ in range(follow)])

    iteration()  # AdamW state exists from here on
    size = sum(t.numel() * t.element_size() for t in _tensors(checkpoint()))
    out = os.path.join(root, "async")
    os.makedirs(out, exist_ok=True)
    sync_io = AtomicCheckpointIO()
    async_io = AtomicCheckpointIO(async_save=True)
    async_io.bind_optimizers([optimizer])
    rows: dict[str, list[float]] = {k: [] for k in ("fb", "copy", "sync", "async", "base", "after_sync", "after_async")}
    print(
        f"\n## Async save in a training loop: {layers} x Linear({width}, {width}) + AdamW, batch {batch}, "
        f"checkpoint {size / 1e6:.0f} MB, {rounds} rounds, {follow} iterations after each save"
    )
    print(f"before: load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    for _ in range(rounds):
        clear(out)()
        os.sync()
        rows["fb"].append(timed(forward_backward))
        rows["copy"].append(timed(lambda: [t.clone() for t in _tensors(checkpoint())]))
        rows["base"].append(iterations())
        rows["sync"].append(timed(lambda: sync_io.save_checkpoint(checkpoint(), os.path.join(out, "sync.pth"))))
        rows["after_sync"].append(iterations())
        os.sync()
        waited = async_io.step_wait_seconds
        call = timed(lambda: async_io.save_checkpoint(checkpoint(), os.path.join(out, "async.pth")))
        rows["after_async"].append(iterations())
        rows["async"].append(call + async_io.step_wait_seconds - waited)
        async_io.wait()
    async_io.teardown()
    print(f"after:  load average {os.getloadavg()[0]:.2f}\n")
    ratio = [a / s for a, s in zip(rows["async"], rows["sync"], strict=True)]
    cost = [a - b for a, b in zip(rows["after_async"], rows["base"], strict=True)]
    sync_cost = [a - b for a, b in zip(rows["after_sync"], rows["base"], strict=True)]
    print("| measured (median [min-max] over rounds) | ms |")
    print("|---|---:|")
    print(f"| forward + backward, one iteration | {_med(rows['fb'])} |")
    print(f"| copying every checkpoint tensor (clone) | {_med(rows['copy'])} |")
    print(f"| synchronous durable save: training blocked | {_med(rows['sync'])} |")
    print(f"| async save: training blocked (save call + steps' waits) | {_med(rows['async'], fmt='{:.1f}')} |")
    print(f"| {follow} iterations, no save (baseline) | {_med(rows['base'])} |")
    print(f"| {follow} iterations right after the sync save, minus baseline | {_med(sync_cost)} |")
    print(f"| {follow} iterations while the async copy and write run, minus baseline | {_med(cost)} |")
    print(f"\nasync blocked / sync blocked (same round): {_med(ratio, scale=1, fmt='{:.3f}')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir under $TMPDIR)")
    parser.add_argument("--mode", choices=("all", "save", "async"), default="all")
    parser.add_argument("--width", type=int, default=2048, help="async mode: Linear(width, width) layers")
    parser.add_argument("--layers", type=int, default=4, help="async mode: number of layers")
    parser.add_argument("--batch", type=int, default=512, help="async mode: batch size")
    parser.add_argument("--follow", type=int, default=3, help="async mode: iterations timed after each save")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.mode in ("all", "async"):
        root = tempfile.mkdtemp(prefix="bench_ckpt_", dir=args.dir)
        try:
            async_in_training(root, args.repeats, args.width, args.layers, args.batch, args.follow)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        if args.mode == "async":
            return
    root = tempfile.mkdtemp(prefix="bench_ckpt_", dir=args.dir)
    try:
        mm_save = mmengine_saver(root, os.path.join(root, "lh"))
        rows = lightning_rows(root, args.repeats, mm_save)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    size = rows.pop("checkpoint size (MB)")[0]
    anchor = min(rows["torch.save (anchor)"])
    order = [
        "torch.save (anchor)",
        DURABLE_ROW,
        DUMP_ROW,
        "Lightning trainer.save_checkpoint (TorchCheckpointIO)",
        MM_ROW,
        "CheckpointHook, atomic + fsync (ours)",
        NO_FSYNC_ROW,
        "CheckpointHook async: the save call (ours; see the async table)",
        "CheckpointHook async: until on disk (ours)",
    ]
    print(
        f"\ncheckpoint: {size:.0f} MB (model + AdamW state), {args.repeats} interleaved rounds, disk under "
        f"{args.dir or tempfile.gettempdir()}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs after"
    )
    print(
        "(wall times on a shared machine: compare the ratios; per-round ratios are paired with that round's torch.save)\n"
    )
    print("| save path | best ms | median [min-max] ms | best / best torch.save | per-round / torch.save |")
    print("|---|---:|---:|---:|---:|")
    anchors = rows["torch.save (anchor)"]
    for name in order:
        times = rows[name]
        per_round = [t / a for t, a in zip(times, anchors, strict=True)]
        print(
            f"| {name} | {min(times) * 1e3:.0f} | {_med(times)} | {min(times) / anchor:.2f} | "
            f"{_med(per_round, scale=1, fmt='{:.2f}')} |"
        )


if __name__ == "__main__":
    main()
