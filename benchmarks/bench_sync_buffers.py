"""What one SyncBuffersHook sync costs, over 2 real gloo processes on CPU.

Three ways to average a model's buffers across ranks, timed on the same buffers:

- ``lightning_hooks``: SyncBuffersHook's path (``average_buffers`` through the strategy's DDP reduction):
  floating-point buffers only, one flattened collective per dtype;
- ``mmengine``: MMEngine's SyncBuffersHook path, ``mmengine.dist.all_reduce_params(op='mean')`` (the anchor):
  every buffer, integers included, one collective per tensor type;
- ``per-tensor``: what a plain Lightning callback usually does, ``strategy.reduce`` on each buffer in turn
  (a barrier and an all-reduce per tensor).

Buffer sets: ResNet-50's 53 BatchNorm layers (106 float buffers, 53 int counters), and 8 large float
buffers of 1M elements. After a warm-up, the three methods run interleaved ``--repeats`` times each;
rank 0 reports the medians.

Run: ``python benchmarks/bench_sync_buffers.py`` (about 30 s). The numbers come from a shared 2-core
machine, so they are noisy: compare the ratios within one run, not the absolute times across runs.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.fabric.utilities.distributed import _sync_ddp_if_available
from mmengine.dist import all_reduce_params

from lightning_hooks.hooks.sync_buffers_hook import average_buffers


def resnet50_bn_buffers() -> list[torch.Tensor]:
    """running_mean, running_var (float) and num_batches_tracked (int64) of ResNet-50's 53 BatchNorm layers."""
    channels = [64]
    for blocks, planes in zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True):
        for block in range(blocks):
            channels += [planes, planes, planes * 4]
            if block == 0:
                channels.append(planes * 4)  # the downsample branch
    buffers: list[torch.Tensor] = []
    for c in channels:
        buffers += [torch.randn(c), torch.rand(c) + 0.5, torch.tensor(100, dtype=torch.long)]
    return buffers


def large_buffers() -> list[torch.Tensor]:
    return [torch.randn(1_000_000) for _ in range(8)]


def per_tensor(buffers: list[torch.Tensor]) -> None:
    for buffer in buffers:
        if torch.is_floating_point(buffer):
            _sync_ddp_if_available(buffer, reduce_op="mean")


METHODS: dict[str, Callable[[list[torch.Tensor]], object]] = {
    "lightning_hooks": lambda b: average_buffers(b, lambda t: _sync_ddp_if_available(t, reduce_op="mean")),
    "mmengine": lambda b: all_reduce_params(b, op="mean"),
    "per-tensor": per_tensor,
}
SETS: dict[str, Callable[[], list[torch.Tensor]]] = {
    "ResNet-50 BN (53 layers)": resnet50_bn_buffers,
    "8 x 1M floats": large_buffers,
}


def worker(rank: int, port: int, repeats: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    rows = []
    for set_name, make in SETS.items():
        torch.manual_seed(rank)
        buffers = make()
        n_float = sum(b.numel() for b in buffers if torch.is_floating_point(b))
        for method in METHODS.values():  # warm-up
            method(buffers)
        times: dict[str, list[float]] = {name: [] for name in METHODS}
        names = list(METHODS)
        for repeat in range(repeats):
            # Interleaved, in a rotating order, so that load changes hit every method alike.
            for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
                dist.barrier()
                start = time.perf_counter()
                METHODS[name](buffers)
                times[name].append(time.perf_counter() - start)
        for name in names:
            rows.append((set_name, len(buffers), n_float, name, statistics.median(times[name]) * 1e3))
    if rank == 0:
        torch.save(rows, out)
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rows.pt")
        mp.start_processes(worker, args=(free_port(), args.repeats, out), nprocs=2, start_method="fork")
        rows = torch.load(out)
    print(f"SyncBuffersHook sync cost, 2 gloo processes on CPU, median of {args.repeats} (shared machine: noisy)")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs after the run\n")
    print(
        f"| {'buffers':<26} | {'tensors':>7} | {'float elems':>11} | {'method':<15} | {'ms/sync':>8} | {'vs mmengine':>11} |"
    )
    print(f"|{'-' * 28}|{'-' * 9}|{'-' * 13}|{'-' * 17}|{'-' * 10}|{'-' * 13}|")
    anchor = {name: ms for name, _, _, method, ms in rows if method == "mmengine"}
    for name, tensors, n_float, method, ms in rows:
        ratio = anchor[name] / ms
        print(f"| {name:<26} | {tensors:>7} | {n_float:>11,} | {method:<15} | {ms:>8.3f} | {ratio:>10.2f}x |")
    print("\n'vs mmengine' > 1 means faster than MMEngine's all_reduce_params(op='mean').")


if __name__ == "__main__":
    main()
