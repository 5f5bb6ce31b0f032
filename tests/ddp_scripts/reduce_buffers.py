"""Average mixed-dtype buffers over 2 real gloo processes, with ours and with MMEngine's ``all_reduce_params``.

Run: ``python reduce_buffers.py OUT_DIR``. Forks two workers (from this fresh process, not from pytest);
each writes ``reduce_rank<k>.pt`` holding its inputs, our result (through Lightning's DDP reduction, which
``strategy.reduce`` uses) and MMEngine's result for the same tensors.
"""

from __future__ import annotations

import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.fabric.utilities.distributed import _sync_ddp_if_available
from mmengine.dist import all_reduce_params

from lightning_hooks.hooks.sync_buffers_hook import COALESCE_LIMIT, average_buffers

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64)


def make_buffers(rank: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(rank)
    buffers = []
    for i, dtype in enumerate(DTYPES):
        values = torch.randn(3 + i, generator=g) * 100 + rank
        buffers.append(values.round().to(dtype) if dtype == torch.int64 else values.to(dtype))
        buffers.append(torch.full((2, 2), float(rank + 1)).to(dtype))  # a second tensor of each dtype
    # Large buffers are reduced on their own: a non-contiguous float32 one and a float16 one.
    buffers.append(torch.randn(512, COALESCE_LIMIT // 512, generator=g).t())
    buffers.append((torch.randn(COALESCE_LIMIT, generator=g) * 10 + rank).half())
    return buffers


def worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        inputs = make_buffers(rank)
        ours = [t.clone() for t in inputs]
        collectives = average_buffers(ours, lambda t: _sync_ddp_if_available(t, reduce_op="mean"))
        theirs = [t.clone() for t in inputs]
        all_reduce_params(theirs, op="mean")
        torch.save(
            {"inputs": inputs, "ours": ours, "theirs": theirs, "collectives": collectives},
            os.path.join(out_dir, f"reduce_rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    mp.start_processes(worker, args=(free_port(), sys.argv[1]), nprocs=2, start_method="fork")
