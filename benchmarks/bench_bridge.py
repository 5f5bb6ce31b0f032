"""What the bridge and its default hooks cost per training iteration, measured three ways.

``attribution`` (in-process, the default hooks against MMEngine's on the same toy training):
    Both sides train ``Linear(32, 2)`` on batches of 4 for ``--iters`` iterations over
    ``--epochs`` epochs with MMEngine's default hooks (RuntimeInfoHook, IterTimerHook,
    DistSamplerSeedHook, LoggerHook every 10 iterations at log level INFO, ParamSchedulerHook,
    CheckpointHook every epoch). Terminal lines go to /dev/null on both sides; both write the
    log file and the JSON-lines scalars. Timed with ``time.perf_counter`` in-process:

    * ours: the bridge's Lightning callback methods that run every iteration
      (``on_train_batch_start`` + ``on_train_batch_end`` and any other per-iteration event
      Lightning calls on it), less the per-epoch ``after_train_epoch`` (the checkpoint) they
      contain at the epoch's last batch;
    * MMEngine: ``Runner.call_hook('before_train_iter')`` + ``call_hook('after_train_iter')``.

    A second pass per round also times every hook's ``before/after_train_iter`` on both sides;
    the bridge's glue is its method time less the hooks' time. A hook the bridge does not call
    at all (``Hook.idle_stages``: CheckpointHook saving by epoch, ParamSchedulerHook with only
    epoch-based schedulers) shows as ``-``; MMEngine calls them every iteration. The line cost of LoggerHook
    (its ``after_train_iter`` on an iteration that writes a line, which for MMEngine includes
    its LogProcessor and Visualizer) is reported per line.

``fit`` (whole fits, wall time per iteration, paired against a plain Trainer of the same round):
    * plain Trainer (no logger, no checkpointing);
    * + a no-op Callback (empty ``on_train_batch_start/end``): Lightning's floor for any callback;
    * Lightning's ``ModelCheckpoint`` (every epoch, all kept) + ``LearningRateMonitor('step')`` +
      ``self.log('loss')`` + a Lightning logger that every 10 steps does LoggerHook's work (a line
      through Python logging to the terminal and a log file, one JSON line to each of two files);
    * HookBridge with the default hooks (as above).
    The saves differ in one way, against us: CheckpointHook's are atomic and fsynced.

``dispatch``: the cost of one mount point with 10 registered hooks against MMEngine's
    ``call_hook`` loop (``hasattr`` + ``getattr`` on every hook at every call).

Every mode runs its configurations interleaved in paired rounds, prints median [min-max] over
the rounds and the machine's load average (``os.getloadavg()``) before and after.

Run: ``python benchmarks/bench_bridge.py`` (all modes, a few minutes) or ``--mode attribution``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import tempfile
import time
import timeit
import warnings
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lightning_hooks import Hook, HookBridge
from lightning_hooks.dispatch import HookList

warnings.filterwarnings("ignore")
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
logging.getLogger("lightning.fabric").setLevel(logging.ERROR)

FEATURES, BATCH = 32, 4
#: The clock of the in-process timings: ``time.perf_counter`` by default. ``--clock cpu`` uses the
#: thread's CPU time (``time.thread_time``), which leaves out time spent descheduled on a loaded
#: machine but is a system call: in a real training loop one read costs a few microseconds, and
#: each side reads it four times per iteration, more than some of the hooks being measured.
#: ``perf_counter`` is read without a system call; the timed spans are tens of microseconds, so
#: being descheduled inside one is rare, and the median over rounds absorbs it.
CLOCK: list[Callable[[], float]] = [time.perf_counter]
CLOCKS: dict[str, Callable[[], float]] = {"time.perf_counter": time.perf_counter, "time.thread_time": time.thread_time}
#: Lightning events that run once per training iteration (automatic optimisation).
PER_ITER_EVENTS = (
    "on_train_batch_start",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "on_train_batch_end",
)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def med(values: list[float], fmt: str = "{:.1f}") -> str:
    """``median [min-max]``."""
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


class Data(Dataset):
    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, FEATURES, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"inputs": self.x[i]}


class Module(pl.LightningModule):
    def __init__(self, self_log: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(FEATURES, 2)
        self.self_log = self_log

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.layer(batch["inputs"]).pow(2).mean()
        if self.self_log:
            self.log("loss", loss)
        return loss

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=0.01)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 1)}


def loader(iters_per_epoch: int) -> DataLoader:
    return DataLoader(Data(iters_per_epoch * BATCH), batch_size=BATCH)


def trainer(tmp: str, epochs: int, callbacks: list[Any], **kwargs: Any) -> pl.Trainer:
    settings: dict[str, Any] = dict(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp,
        logger=False,
        enable_checkpointing=False,
        callbacks=callbacks,
    )
    settings.update(kwargs)
    return pl.Trainer(**settings)


def default_bridge(tmp: str) -> HookBridge:
    """MMEngine's default hooks, LoggerHook every 10 iterations, lines at INFO."""
    return HookBridge(work_dir=tmp, print_hooks_table=False, log_level="INFO")


# ----------------------------------------------------------------------------- timing helpers
class Clock:
    """Accumulates seconds per named bucket, and per-call samples for the buckets asked for."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.samples: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self.iteration = 0

    def wrap(self, fn: Callable[..., Any], bucket: str, keep: bool = False) -> Callable[..., Any]:
        total, samples, clock = self.total, self.samples[bucket], CLOCK[0]

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = clock() - start
                total[bucket] += spent
                if keep:
                    samples.append((self.iteration, spent))

        return timed


def line_cost(samples: list[tuple[int, float]], interval: int = 10) -> float:
    """Mean seconds of the calls made on iterations that write a line (``(i + 1) % interval == 0``)."""
    due = [s for i, s in samples if (i + 1) % interval == 0]
    return sum(due) / len(due) if due else float("nan")


class WrapTables(Callback):
    """Times every hook the bridge calls per iteration, once its tables are final (after ``before_train``)."""

    def __init__(self, bridge: HookBridge, clock: Clock) -> None:
        self.bridge, self.clock = bridge, clock

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        hook_list = self.bridge.hook_list
        for stage in ("before_train_iter", "after_train_iter"):
            hook_list._tables[stage] = tuple(
                self.clock.wrap(m, type(m.__self__).__name__, keep=type(m.__self__).__name__ == "LoggerHook")
                for m in hook_list.table(stage)
            )


def run_ours(iters: int, epochs: int, per_hook: bool) -> dict[str, float]:
    """One fit with the default hooks; µs per iteration of the bridge's methods (and of each hook)."""
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        bridge = default_bridge(tmp)
        for name in PER_ITER_EVENTS:
            method = getattr(bridge, name)
            if callable(method):
                setattr(bridge, name, clock.wrap(method, "bridge"))
        bridge._close_train_epoch = clock.wrap(bridge._close_train_epoch, "per_epoch")  # type: ignore[method-assign]
        start = bridge.on_train_batch_start

        def count(*args: Any, **kwargs: Any) -> Any:
            clock.iteration = args[3] if len(args) > 3 else kwargs["batch_idx"]
            return start(*args, **kwargs)

        bridge.on_train_batch_start = count  # type: ignore[method-assign]
        callbacks: list[Any] = [bridge]
        if per_hook:
            callbacks.append(WrapTables(bridge, clock))
        fit = trainer(tmp, epochs, callbacks)
        fit.fit(Module(), loader(iters // epochs))
    result = {"total": (clock.total["bridge"] - clock.total["per_epoch"]) / iters * 1e6}
    if per_hook:
        hooks = {k: v for k, v in clock.total.items() if k not in ("bridge", "per_epoch")}
        for name, seconds in hooks.items():
            result[name] = seconds / iters * 1e6
        result["glue"] = result["total"] - sum(result[name] for name in hooks)
        result["line"] = line_cost(clock.samples["LoggerHook"]) * 1e6
    return result


def run_mmengine(iters: int, epochs: int, per_hook: bool) -> dict[str, float]:
    """One MMEngine Runner.train() with its default hooks; µs per iteration of call_hook (and of each hook)."""
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class MMModule(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.layer = nn.Linear(FEATURES, 2)

        def forward(self, inputs: torch.Tensor, mode: str = "tensor") -> Any:
            return {"loss": self.layer(inputs).pow(2).mean()}

    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(
            model=MMModule(),
            work_dir=tmp,
            experiment_name=f"bench_{time.time_ns()}",
            train_dataloader=dict(
                dataset=Data(iters // epochs * BATCH),
                batch_size=BATCH,
                sampler=dict(type="DefaultSampler", shuffle=False),
                collate_fn=dict(type="default_collate"),
            ),
            train_cfg=dict(by_epoch=True, max_epochs=epochs),
            optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
            param_scheduler=dict(type="StepLR", step_size=1, by_epoch=True),
            default_hooks=dict(logger=dict(type="LoggerHook", interval=10)),
            log_level="INFO",
        )
        call_hook = runner.call_hook

        def timed_call_hook(fn_name: str, **kwargs: Any) -> None:
            if fn_name not in ("before_train_iter", "after_train_iter"):
                return call_hook(fn_name, **kwargs)
            if fn_name == "before_train_iter":
                clock.iteration = kwargs["batch_idx"]
            read = CLOCK[0]
            start = read()
            call_hook(fn_name, **kwargs)
            clock.total["call_hook"] += read() - start

        runner.call_hook = timed_call_hook  # type: ignore[method-assign]
        if per_hook:
            from mmengine.hooks import Hook as MMHook

            for hook in runner.hooks:
                name = type(hook).__name__
                for stage, generic in (("before_train_iter", "_before_iter"), ("after_train_iter", "_after_iter")):
                    # MMEngine calls every hook's method; a hook does work where it overrides it or its generic one.
                    own = getattr(type(hook), stage) is not getattr(MMHook, stage)
                    if own or getattr(type(hook), generic) is not getattr(MMHook, generic):
                        setattr(hook, stage, clock.wrap(getattr(hook, stage), name, keep=name == "LoggerHook"))
        runner.train()
    result = {"total": clock.total["call_hook"] / iters * 1e6}
    if per_hook:
        hooks = {k: v for k, v in clock.total.items() if k != "call_hook"}
        for name, seconds in hooks.items():
            result[name] = seconds / iters * 1e6
        result["glue"] = result["total"] - sum(result[name] for name in hooks)
        result["line"] = line_cost(clock.samples["LoggerHook"]) * 1e6
    return result


def attribution(iters: int, epochs: int, rounds: int) -> None:
    print(
        f"## Per-iteration hook time, in-process ({iters} iterations, {epochs} epochs, "
        f"Linear({FEATURES}, 2), batch {BATCH}, CPU, 1 torch thread)\n"
    )
    clock = "thread CPU time (time.thread_time)" if CLOCK[0] is time.thread_time else "wall time (time.perf_counter)"
    reads = {name: min(timeit.repeat(fn, number=20000, repeat=3)) / 20000 * 1e6 for name, fn in CLOCKS.items()}
    print(
        f"clock: {clock}; each timed call adds two clock reads to both sides "
        f"(one read, hot: {', '.join(f'{name} {us:.2f} µs' for name, us in reads.items())})"
    )
    print(f"before: {load()}")
    devnull = open(os.devnull, "w")
    samples: dict[str, list[dict[str, float]]] = defaultdict(list)
    with contextlib.redirect_stdout(devnull), contextlib.redirect_stderr(devnull):
        run_ours(iters // 4, epochs, False)  # warm-up both sides
        run_mmengine(iters // 4, epochs, False)
        for _ in range(rounds):  # interleaved, paired
            samples["ours"].append(run_ours(iters, epochs, False))
            samples["mmengine"].append(run_mmengine(iters, epochs, False))
            samples["ours_hooks"].append(run_ours(iters, epochs, True))
            samples["mm_hooks"].append(run_mmengine(iters, epochs, True))
    devnull.close()
    print(f"after:  {load()}\n")
    ours = [r["total"] for r in samples["ours"]]
    theirs = [r["total"] for r in samples["mmengine"]]
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    print(f"{rounds} paired rounds; µs per iteration, median [min-max] over rounds\n")
    print("| | µs / iteration |")
    print("|---|---:|")
    print(f"| HookBridge: its per-iteration callback methods (default hooks) | {med(ours)} |")
    print(f"| MMEngine: Runner.call_hook before/after_train_iter (default hooks) | {med(theirs)} |")
    print(f"| ratio ours / MMEngine (same round) | {med(ratios, '{:.2f}')} |")
    print("\nWhere the time goes (second pass, every hook timed too; the timers add to the totals):\n")
    names = sorted({k for r in samples["ours_hooks"] + samples["mm_hooks"] for k in r} - {"total", "glue", "line"})
    print("| part | HookBridge µs / iteration | MMEngine µs / iteration |")
    print("|---|---:|---:|")

    def cell(key: str, runs: list[dict[str, float]]) -> str:
        values = [r[key] for r in runs if key in r]
        return med(values) if values else "-"

    for name in names:
        print(f"| {name} | {cell(name, samples['ours_hooks'])} | {cell(name, samples['mm_hooks'])} |")
    print(
        f"| glue (bridge / call_hook loop) | {cell('glue', samples['ours_hooks'])} | "
        f"{cell('glue', samples['mm_hooks'])} |"
    )
    print(f"| total | {cell('total', samples['ours_hooks'])} | {cell('total', samples['mm_hooks'])} |")
    line_ratio = [a["line"] / b["line"] for a, b in zip(samples["ours_hooks"], samples["mm_hooks"], strict=True)]
    print(
        f"\nOne LoggerHook line (its after_train_iter on a line iteration; MMEngine's includes LogProcessor"
        f" and Visualizer): ours {cell('line', samples['ours_hooks'])} µs, MMEngine "
        f"{cell('line', samples['mm_hooks'])} µs, ratio {med(line_ratio, '{:.2f}')}"
    )


# ----------------------------------------------------------------------------- whole fits
class NoopCallback(Callback):
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        pass

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        pass


class LineAndJsonLogger(Logger):
    """LoggerHook's work for a Lightning logger: a line to the terminal and a log file, JSON to two files."""

    def __init__(self, save_dir: str) -> None:
        super().__init__()
        self._dir = save_dir
        self._log = logging.getLogger(f"bench_equal_work_{id(self)}")
        self._log.propagate = False
        self._log.setLevel(logging.INFO)
        fmt = logging.Formatter("%(asctime)s - bench - %(levelname)s - %(message)s", "%m/%d %H:%M:%S")
        self._handlers: list[logging.Handler] = [
            logging.StreamHandler(),
            logging.FileHandler(os.path.join(save_dir, "run.log")),
        ]
        for handler in self._handlers:
            handler.setFormatter(fmt)
            self._log.addHandler(handler)
        self._files = [open(os.path.join(save_dir, n), "a") for n in ("scalars.json", "run.json")]

    @property
    def name(self) -> str:
        return "equal_work"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._log.info(f"Step [{step}]  " + "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items()))
        line = json.dumps({**metrics, "step": step}) + "\n"
        for handle in self._files:
            handle.write(line)
            handle.flush()

    def finalize(self, status: str) -> None:
        for handle in self._files:
            handle.close()
        for handler in self._handlers:
            self._log.removeHandler(handler)
            handler.close()


def fit_seconds(setup: str, iters: int, epochs: int) -> tuple[float, float]:
    """Wall seconds and process CPU seconds (all threads) of one ``fit``."""
    with tempfile.TemporaryDirectory() as tmp:
        self_log = False
        callbacks: list[Any] = []
        extra: dict[str, Any] = {}
        if setup == "noop":
            callbacks = [NoopCallback()]
        elif setup == "builtins":
            callbacks = [ModelCheckpoint(dirpath=tmp, every_n_epochs=1, save_top_k=-1), LearningRateMonitor("step")]
            extra = dict(logger=LineAndJsonLogger(tmp), log_every_n_steps=10, enable_checkpointing=True)
            self_log = True
        elif setup == "bridge":
            callbacks = [default_bridge(tmp)]
        fit = trainer(tmp, epochs, callbacks, **extra)
        model, data = Module(self_log), loader(iters // epochs)
        start, cpu = time.perf_counter(), time.process_time()
        fit.fit(model, data)
        return time.perf_counter() - start, time.process_time() - cpu


def whole_fit(iters: int, epochs: int, rounds: int) -> None:
    setups = {
        "plain": "plain Trainer",
        "noop": "+ no-op Callback (Lightning's floor for a callback)",
        "builtins": "ModelCheckpoint + LearningRateMonitor + self.log + logger (equal work)",
        "bridge": "HookBridge (default hooks, LoggerHook every 10 at INFO)",
    }
    print(f"## Whole fit ({iters} iterations, {epochs} epochs, Linear({FEATURES}, 2), batch {BATCH}, CPU)\n")
    print(f"before: {load()}")
    per_iter: dict[str, list[float]] = defaultdict(list)
    cpu_per_iter: dict[str, list[float]] = defaultdict(list)
    devnull = open(os.devnull, "w")
    with contextlib.redirect_stdout(devnull), contextlib.redirect_stderr(devnull):
        for setup in setups:
            fit_seconds(setup, iters // 5, 1)  # warm-up
        for _ in range(rounds):
            for setup in setups:
                wall, cpu = fit_seconds(setup, iters, epochs)
                per_iter[setup].append(wall / iters * 1e6)
                cpu_per_iter[setup].append(cpu / iters * 1e6)
    devnull.close()
    print(f"after:  {load()}\n")
    print(f"{rounds} interleaved rounds; added = this setup minus the plain Trainer of the same round\n")
    print("| setup | wall µs / iteration | wall added (µs) | CPU µs / iteration | CPU added (µs) |")
    print("|---|---:|---:|---:|---:|")
    added = {s: [a - b for a, b in zip(per_iter[s], per_iter["plain"], strict=True)] for s in setups}
    cpu_added = {s: [a - b for a, b in zip(cpu_per_iter[s], cpu_per_iter["plain"], strict=True)] for s in setups}
    for setup, label in setups.items():
        shown = ("", "") if setup == "plain" else (med(added[setup]), med(cpu_added[setup]))
        print(f"| {label} | {med(per_iter[setup])} | {shown[0]} | {med(cpu_per_iter[setup])} | {shown[1]} |")
    ratio = [a / b for a, b in zip(per_iter["bridge"], per_iter["builtins"], strict=True)]
    cpu_ratio = [a / b for a, b in zip(cpu_per_iter["bridge"], cpu_per_iter["builtins"], strict=True)]
    print(
        f"\nwhole-fit time, HookBridge / built-ins (same round): wall {med(ratio, '{:.3f}')}, "
        f"process CPU {med(cpu_ratio, '{:.3f}')}"
    )
    print("(CPU: time.process_time, every thread of the process; less disturbed by other jobs than wall time)")


# ----------------------------------------------------------------------------- dispatch
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


def dispatch(number: int, rounds: int) -> None:
    print("## Dispatch cost of one mount point, 10 registered hooks (µs per call)\n")
    print(f"before: {load()}")
    kwargs = {"batch_idx": 0, "data_batch": None, "outputs": None}
    rows = []
    for label, overriding in [("0 of 10 override", 0), ("2 of 10 override", 2), ("10 of 10 override", 10)]:
        hooks = [Overrides() if i < overriding else Noop() for i in range(10)]
        table = HookList(hooks)
        table.resolve_all()

        def ours(table=table):
            table.call("after_train_iter", None, kwargs)

        def theirs(hooks=hooks):
            mmengine_style_call(hooks, None, "after_train_iter", kwargs)

        t_ours, t_mm = [], []
        for _ in range(rounds):  # interleaved
            t_ours.append(min(timeit.repeat(ours, number=number, repeat=3)) / number * 1e6)
            t_mm.append(min(timeit.repeat(theirs, number=number, repeat=3)) / number * 1e6)
        rows.append((label, t_ours, t_mm))
    print(f"after:  {load()}\n")
    print("| hooks overriding the mount point | HookList.call (ours) | MMEngine-style hasattr loop | speed-up |")
    print("|---|---:|---:|---:|")
    for label, t_ours, t_mm in rows:
        speed = [b / a for a, b in zip(t_ours, t_mm, strict=True)]
        print(f"| {label} | {med(t_ours, '{:.3f}')} | {med(t_mm, '{:.3f}')} | {med(speed, '{:.1f}')}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("all", "attribution", "fit", "dispatch"), default="all")
    parser.add_argument("--iters", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="wall", help="clock of the in-process timings")
    args = parser.parse_args()
    CLOCK[0] = time.thread_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(1)
    if args.mode in ("all", "attribution"):
        attribution(args.iters, args.epochs, args.rounds)
        print()
    if args.mode in ("all", "fit"):
        whole_fit(args.iters, args.epochs, args.rounds)
        print()
    if args.mode in ("all", "dispatch"):
        dispatch(20000, args.rounds)


if __name__ == "__main__":
    main()
