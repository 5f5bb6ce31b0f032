"""Start-up cost of the ``lightning-hooks`` command against ``python -c "import torch"``.

``lightning-hooks inspect`` and ``publish`` read one checkpoint file: they need torch, and
nothing else heavy. This benchmark times, as fresh processes, interleaved round by round:

- the anchor, ``python -c "import torch"``;
- ``python -m lightning_hooks inspect CKPT``;
- ``python -m lightning_hooks publish CKPT --keys meta state_dict``;
- ``python -c "import lightning_hooks"`` against ``python -c "import lightning"``.

It prints the median wall time of each and the ratios; the target is at most 1.5x the anchor for
``inspect`` and ``publish``, and ``import lightning_hooks`` no slower than ``import lightning``.
A subprocess also checks that ``inspect`` loaded neither Lightning nor the hooks.

Run: ``python benchmarks/bench_cli.py [--rounds 7]`` (about a minute). The numbers come from a shared
machine, so compare the ratios within one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch


def write_checkpoint(directory: str) -> str:
    """A checkpoint shaped like the package's (meta, state_dict, message_hub, optimizer state): ~4 MB."""
    path = os.path.join(directory, "epoch_3.pth")
    weights = {f"layer{i}.weight": torch.randn(256, 256) for i in range(16)}
    torch.save(
        {
            "meta": {"epoch": 3, "iter": 300},
            "state_dict": weights,
            "message_hub": {
                "runtime_info": {"best_score": 0.9, "best_ckpt": "best_acc_epoch_3.pth"},
                "log_scalars": {},
            },
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1, "params": list(range(16))}]}],
            "epoch": 2,
            "global_step": 300,
        },
        path,
    )
    return path


def run_once(cmd: list[str], env: dict[str, str]) -> float:
    """Wall time of one fresh process; it must succeed."""
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{result.stderr[-2000:]}")
    return elapsed


def modules_loaded_by_inspect(ckpt: str, env: dict[str, str]) -> list[str]:
    """Which of lightning / the hooks / the bridge a real ``inspect`` call imported (should be none)."""
    probe = (
        "import json, sys; from lightning_hooks.cli import main; main(['inspect', sys.argv[1]]);"
        "heavy = ('lightning', 'pytorch_lightning', 'lightning_hooks.hooks', 'lightning_hooks.bridge');"
        "print('LOADED', json.dumps(sorted(m for m in sys.modules if m in heavy)))"
    )
    out = subprocess.run([sys.executable, "-c", probe, ckpt], env=env, capture_output=True, text=True, timeout=300)
    line = next(x for x in out.stdout.splitlines() if x.startswith("LOADED"))
    return list(json.loads(line.split(" ", 1)[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="rounds; each runs every command once")
    args = parser.parse_args()
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = write_checkpoint(tmp)
        commands = {
            "import torch": [sys.executable, "-c", "import torch"],
            "inspect": [sys.executable, "-m", "lightning_hooks", "inspect", ckpt],
            "publish": [sys.executable, "-m", "lightning_hooks", "publish", ckpt, "--keys", "meta", "state_dict"],
            "import lightning": [sys.executable, "-c", "import lightning"],
            "import lightning_hooks": [sys.executable, "-c", "import lightning_hooks"],
        }
        for cmd in commands.values():  # warm the file cache
            run_once(cmd, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, cmd in commands.items():
                times[name].append(run_once(cmd, env))
        loaded = modules_loaded_by_inspect(ckpt, env)
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"median wall time over {args.rounds} rounds (fresh processes):")
    for name, value in median.items():
        print(f"  {name:<24} {value:6.2f} s")
    anchor = median["import torch"]
    print(f"inspect / import torch               : {median['inspect'] / anchor:.2f}x  (target <= 1.5x)")
    print(f"publish / import torch               : {median['publish'] / anchor:.2f}x  (target <= 1.5x)")
    ratio = median["import lightning_hooks"] / median["import lightning"]
    print(f"import lightning_hooks / lightning   : {ratio:.2f}x  (target <= 1.0x, noise aside)")
    print(f"heavy modules imported by inspect    : {loaded or 'none'}")


if __name__ == "__main__":
    main()
