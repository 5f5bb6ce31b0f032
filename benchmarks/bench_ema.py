"""Time and memory of one EMA update, ours against the anchors, in the same run.

Models:
  (a) ResNet-50's parameter set: real Conv2d/BatchNorm2d/Linear modules with ResNet-50's
      shapes (161 parameter tensors, 25.56M parameters, 159 buffers);
  (b) 2,000 small tensors of 2,048 elements (4.1M parameters), where per-tensor overhead dominates.

Methods (momentum 2e-4, i.e. decay 0.9998):
  flat floor     one ``lerp_`` over a single flat buffer of the same number of parameters (12 bytes moved per
                 parameter): a bound no per-tensor method reaches, since it needs one contiguous buffer;
  foreach floor  ``torch._foreach_lerp_`` over the same parameter tensors plus ``torch._foreach_copy_`` of the
                 buffers, with the lists built once: the real floor for an average kept tensor by tensor;
  ours       ``lightning_hooks.ExponentialMovingAverage.update_parameters`` (cached lists, one ``_foreach_lerp_``);
  mmengine   ``mmengine.model.ExponentialMovingAverage.update_parameters`` (per-parameter ``lerp_``);
  torch      ``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn`` (foreach, per update regrouping);
  lightning  ``EMAWeightAveraging``'s update (``AveragedModel`` with ``get_ema_avg_fn``, ``use_buffers=True``).

Time: ``torch.set_num_threads(1)``, the rounds are interleaved and the minimum over rounds of the
mean per update is reported. Peak extra memory: growth of the process's peak resident set while
the method builds its average and runs 3 updates (Linux ``VmHWM``, reset before each method).
One averaged copy is the expected minimum; the floor's figure is its one flat averaged buffer.
Also timed: swapping the average into the model and back (done around every validation and test),
ours (storage exchange) against MMEngine's EMAHook (clone + two copies per tensor).

Sharded (``--sharded``): two gloo processes on the CPU shard model (a) with FSDP2's ``fully_shard``
(as ``ModelParallelStrategy`` does in ``configure_model``); each rank times ``update_parameters`` on
its shards and measures its averaged copy's bytes and peak memory growth, against the unsharded
average of the same model in the same process. Target: memory per rank one shard plus a constant,
time per rank at most the unsharded time.

Run: ``python benchmarks/bench_ema.py`` (about 1-2 minutes on 2 cores). The numbers are noisy on
a shared machine; read the ratios, measured in the same run, rather than the absolute times.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

warnings.filterwarnings("ignore")
MOMENTUM = 2e-4
METHODS = ("flat floor", "foreach floor", "ours", "mmengine", "torch", "lightning")


# ----------------------------------------------------------------------------------------- models
class ResNet50Params(nn.Module):
    """ResNet-50's convolutions, batch norms and classifier (no forward: only the tensors matter here)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 64, 7, bias=False), nn.BatchNorm2d(64)]
        in_ch = 64
        for width, blocks in zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True):
            for b in range(blocks):
                layers += [nn.Conv2d(in_ch, width, 1, bias=False), nn.BatchNorm2d(width)]
                layers += [nn.Conv2d(width, width, 3, bias=False), nn.BatchNorm2d(width)]
                layers += [nn.Conv2d(width, width * 4, 1, bias=False), nn.BatchNorm2d(width * 4)]
                if b == 0:
                    layers += [nn.Conv2d(in_ch, width * 4, 1, bias=False), nn.BatchNorm2d(width * 4)]
                in_ch = width * 4
        layers.append(nn.Linear(2048, 1000))
        self.layers = nn.ModuleList(layers)


class ManySmall(nn.Module):
    def __init__(self, count: int = 2000, size: int = 2048) -> None:
        super().__init__()
        self.params = nn.ParameterList([nn.Parameter(torch.randn(size)) for _ in range(count)])


MODELS: dict[str, Callable[[], nn.Module]] = {"resnet50": ResNet50Params, "many_small": ManySmall}


def as_lightning_module(model: nn.Module) -> Any:
    import lightning.pytorch as pl

    class Wrapped(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

    return Wrapped()


# ----------------------------------------------------------------------------------------- methods
def flat_source(model: nn.Module) -> torch.Tensor:
    """The floor's stand-in for the model: all parameters in one flat buffer."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def build(method: str, model: nn.Module, flat_src: torch.Tensor) -> tuple[Callable[[], None], nn.Module]:
    """An update closure for ``method``, and the module whose parameters it reads."""
    if method == "flat floor":
        avg = flat_src.clone()
        return (lambda: avg.lerp_(flat_src, MOMENTUM)), model
    if method == "foreach floor":
        src_params = [p.detach() for p in model.parameters()]
        avg_params = [p.clone() for p in src_params]
        src_buffers = [b.detach() for b in model.buffers()]
        avg_buffers = [b.clone() for b in src_buffers]

        def foreach_update() -> None:
            torch._foreach_lerp_(avg_params, src_params, MOMENTUM)
            if src_buffers:
                torch._foreach_copy_(avg_buffers, src_buffers)

        return foreach_update, model
    if method == "ours":
        from lightning_hooks import ExponentialMovingAverage

        ours = ExponentialMovingAverage(model, momentum=MOMENTUM)
        return (lambda: ours.update_parameters(model)), model
    if method == "mmengine":
        from mmengine.model import ExponentialMovingAverage as MMEMA

        theirs = MMEMA(model, momentum=MOMENTUM)
        return (lambda: theirs.update_parameters(model)), model
    if method == "torch":
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(1 - MOMENTUM))
        return (lambda: averaged.update_parameters(model)), model
    if method == "lightning":
        from lightning.pytorch.callbacks import EMAWeightAveraging

        module = as_lightning_module(model)
        callback = EMAWeightAveraging(decay=1 - MOMENTUM)
        callback.setup(None, module, "fit")  # type: ignore[arg-type]  # builds its AveragedModel; the trainer is unused
        average = callback._average_model
        assert average is not None
        return (lambda: average.update_parameters(module)), module
    raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")


def time_updates(model_name: str, rounds: int, per_round: int) -> dict[str, list[float]]:
    """Milliseconds per update for every method: the mean of each interleaved round, per round."""
    torch.manual_seed(0)
    model = MODELS[model_name]()
    flat_src = flat_source(model)
    updates = {}
    for method in METHODS:
        update, _ = build(method, model, flat_src)
        update()  # the first update copies (and resolves caches)
        update()
        updates[method] = update
    per_round_ms: dict[str, list[float]] = {method: [] for method in METHODS}
    for _ in range(rounds):
        for method, update in updates.items():
            start = time.perf_counter()
            for _ in range(per_round):
                update()
            per_round_ms[method].append((time.perf_counter() - start) / per_round * 1e3)
    return per_round_ms


def time_swaps(model_name: str, rounds: int, per_round: int) -> dict[str, list[float]]:
    """Milliseconds to swap the average into the model and back (what every validation costs twice)."""
    from mmengine.hooks import EMAHook as MMEMAHook
    from mmengine.model import ExponentialMovingAverage as MMEMA

    from lightning_hooks import EMAHook, ExponentialMovingAverage
    from lightning_hooks.hooks.ema_hook import _SwapState

    torch.manual_seed(0)
    model = MODELS[model_name]()
    ours = EMAHook(momentum=MOMENTUM)
    ours.src_model, ours.ema_model = model, ExponentialMovingAverage(model, momentum=MOMENTUM)
    theirs = MMEMAHook(momentum=MOMENTUM)
    theirs.src_model, theirs.ema_model = model, MMEMA(model, momentum=MOMENTUM)

    def ours_swap() -> None:
        swap = _SwapState()
        swap.apply(ours._swap_pairs())
        swap.undo()

    def theirs_swap() -> None:
        theirs._swap_ema_parameters()
        theirs._swap_ema_parameters()

    per_round_ms: dict[str, list[float]] = {"ours": [], "mmengine": []}
    with torch.no_grad():
        for _ in range(rounds):
            for name, swap in (("ours", ours_swap), ("mmengine", theirs_swap)):
                start = time.perf_counter()
                for _ in range(per_round):
                    swap()
                per_round_ms[name].append((time.perf_counter() - start) / per_round * 1e3)
    return per_round_ms


def med(values: list[float], fmt: str = "{:.2f}") -> str:
    """``median [min-max]``."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return f"{fmt.format(median)} [{fmt.format(ordered[0])}-{fmt.format(ordered[-1])}]"


def paired(a: list[float], b: list[float]) -> list[float]:
    """Per-round ratios ``a / b`` (the same round's two timings)."""
    return [x / y for x, y in zip(a, b, strict=True)]


def _rss_mib(key: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def peak_extra_mib(model_name: str) -> dict[str, float]:
    """Peak resident-memory growth (MiB) while each method builds its average and runs 3 updates.

    Linux only: the peak (VmHWM) is reset through ``/proc/self/clear_refs`` and free heap memory is
    returned with ``malloc_trim`` before each method, so each figure is that method's own peak.
    """
    libc = ctypes.CDLL("libc.so.6")
    torch.manual_seed(0)
    model = MODELS[model_name]()
    flat_src = flat_source(model)
    result = {}
    for method in METHODS:
        gc.collect()
        libc.malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        base = _rss_mib("VmRSS:")
        update, _ = build(method, model, flat_src)
        for _ in range(3):
            update()
        result[method] = _rss_mib("VmHWM:") - base
        del update
    return result


# ----------------------------------------------------------------------------------------- sharded
def _average_bytes(average: nn.Module) -> int:
    from lightning_hooks.sharding import local_tensor

    return sum(local_tensor(t).numel() * t.element_size() for t in [*average.parameters(), *average.buffers()])


def _sharded_worker(rank: int, rounds: int, per_round: int, port: int, results: Any) -> None:
    import os

    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from lightning_hooks import ExponentialMovingAverage
    from lightning_hooks.hooks.ema_hook import EMAHook, _SwapState

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    libc = ctypes.CDLL("libc.so.6")
    torch.manual_seed(0)
    plain = ResNet50Params()
    torch.manual_seed(0)
    sharded = ResNet50Params()
    mesh = init_device_mesh("cpu", (2,))
    for layer in sharded.layers:
        if any(True for _ in layer.parameters()):
            fully_shard(layer, mesh=mesh)
    fully_shard(sharded, mesh=mesh)
    row: dict[str, float] = {}
    for name, model in (("unsharded", plain), ("sharded", sharded)):
        gc.collect()
        libc.malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        base = _rss_mib("VmRSS:")
        average = ExponentialMovingAverage(model, momentum=MOMENTUM)
        for _ in range(3):
            average.update_parameters(model)
        row[f"{name}_peak_mib"] = _rss_mib("VmHWM:") - base
        row[f"{name}_copy_mib"] = _average_bytes(average.module) / 2**20
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(per_round):
                average.update_parameters(model)
            best = min(best, (time.perf_counter() - start) / per_round * 1e3)
        row[f"{name}_ms"] = best
        hook = EMAHook(momentum=MOMENTUM)
        hook.src_model, hook.ema_model = model, average
        best = float("inf")
        with torch.no_grad():
            for _ in range(rounds):
                start = time.perf_counter()
                for _ in range(per_round):
                    swap = _SwapState()
                    swap.apply(hook._swap_pairs())
                    swap.undo()
                best = min(best, (time.perf_counter() - start) / per_round * 1e3)
        row[f"{name}_swap_ms"] = best
        del average, hook
    results[rank] = row
    dist.destroy_process_group()


def sharded_case(rounds: int, per_round: int) -> None:
    """Per-rank update time and memory of the average of a 2-way FSDP2-sharded ResNet-50 against the unsharded one."""
    import multiprocessing
    import random

    import torch.multiprocessing as mp

    manager = multiprocessing.Manager()
    results = manager.dict()
    port = random.randint(20000, 40000)
    mp.start_processes(_sharded_worker, args=(rounds, per_round, port, results), nprocs=2, start_method="fork")
    print("## resnet50 sharded 2 ways with fully_shard (gloo, CPU), per rank, against its unsharded average")
    print("| rank | average MiB (unsharded -> sharded) | peak extra MiB | ms / update | ms swap in+out |")
    print("|---|---:|---:|---:|---:|")
    for rank in (0, 1):
        r = results[rank]
        print(
            f"| {rank} | {r['unsharded_copy_mib']:.1f} -> {r['sharded_copy_mib']:.1f} | "
            f"{r['unsharded_peak_mib']:.1f} -> {r['sharded_peak_mib']:.1f} | "
            f"{r['unsharded_ms']:.3f} -> {r['sharded_ms']:.3f} | "
            f"{r['unsharded_swap_ms']:.3f} -> {r['sharded_swap_ms']:.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory column")
    parser.add_argument("--sharded", action="store_true", help="only the 2-process FSDP2 case")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.sharded:
        sharded_case(args.rounds, args.per_round)
        return
    import os

    print(f"torch {torch.__version__}, 1 thread, {args.rounds} interleaved rounds of {args.per_round} updates;")
    print("times: median [min-max] of the per-round means; ratios: per round (paired), median [min-max]")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs at the start\n")
    for model_name in MODELS:
        model = MODELS[model_name]()
        n_params = sum(p.numel() for p in model.parameters())
        copy_mib = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()]) / 2**20
        print(
            f"## {model_name}: {len(list(model.parameters()))} parameter tensors, {n_params / 1e6:.2f}M parameters, "
            f"{len(list(model.buffers()))} buffers; one averaged copy = {copy_mib:.1f} MiB"
        )
        times = time_updates(model_name, args.rounds, args.per_round)
        memory = {} if args.no_memory else peak_extra_mib(model_name)
        print("| method | ms / update | x foreach floor | x flat floor | ours faster by | peak extra MiB |")
        print("|---|---:|---:|---:|---:|---:|")
        for method in METHODS:
            peak = f"{memory[method]:.1f}" if memory else "-"
            print(
                f"| {method} | {med(times[method], '{:.3f}')} | {med(paired(times[method], times['foreach floor']))} | "
                f"{med(paired(times[method], times['flat floor']))} | {med(paired(times[method], times['ours']))}x | "
                f"{peak} |"
            )
        swaps = time_swaps(model_name, args.rounds, args.per_round)
        print(
            f"\nswap in + swap out (each validation): ours {med(swaps['ours'], '{:.3f}')} ms, "
            f"MMEngine {med(swaps['mmengine'], '{:.3f}')} ms; MMEngine / ours "
            f"{med(paired(swaps['mmengine'], swaps['ours']), '{:.0f}')}x\n"
        )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
