"""Subprocess entry point for the CheckpointHook tests that need their own process.

Modes:
  crash <work_dir> <max_epochs> [resume]  train a model with a 40 MB buffer, saving every epoch
  ddp <work_dir>                          2-process gloo DDP (ddp_fork); ranks see different metrics
  ddp_partial <work_dir> <rank>           2-process DDP where only <rank> logs the save_best metric
  kills <work_root> <kills> <seed>        SIGKILL forked trainings at random moments (see kill_loop)
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


class PartialMetric(ScoredModule):
    """``acc`` is logged on one rank only (Lightning's ``rank_zero_only=True`` pattern, or its mirror)."""

    def __init__(self, logging_rank: int) -> None:
        super().__init__({"acc": [0.1, 0.3, 0.2, 0.4]})
        self.logging_rank = logging_rank

    def on_validation_epoch_end(self) -> None:
        self.log("other", 1.0)
        if self.trainer.global_rank == self.logging_rank:
            acc = float(self.scores["acc"][min(self.trainer.current_epoch, 3)])
            self.log("acc", acc, rank_zero_only=self.logging_rank == 0)


def ddp_partial(work_dir: str, logging_rank: int) -> None:
    """save_best, EarlyStoppingHook and a plateau scheduler on a metric that one rank does not have."""
    ckpt = dict(type="CheckpointHook", interval=1, max_keep_ckpts=1, save_best="acc")
    early = dict(type="EarlyStoppingHook", monitor="acc", patience=1, min_delta=0.15)
    bridge = HookBridge(
        default_hooks={**NO_DEFAULTS, "checkpoint": ckpt},
        custom_hooks=[early, RecordDecisions()],
        work_dir=work_dir,
        print_hooks_table=False,
    )
    trainer = make_trainer(
        work_dir, bridge, max_epochs=4, num_sanity_val_steps=0, strategy="ddp_fork", devices=2, accelerator="cpu"
    )
    train_loader, val_loader = loaders()
    trainer.fit(PartialMetric(logging_rank), train_loader, val_loader)


# ----------------------------------------------------------------------------- SIGKILLs at random moments
KILL_BALLAST = 3_000_000  # float32: 12 MB per checkpoint, so a write takes long enough to be hit
KILL_STEPS = 24  # epochs, or validations of 4 iterations
MAX_KEEP = 2


class KillModule(BigModule):
    """Scores follow the global step (4 batches per validation), so they survive every resume."""

    def on_validation_epoch_end(self) -> None:
        index = max(self.trainer.global_step // 4 - 1, 0)
        self.log("acc", float(self.scores["acc"][index % len(self.scores["acc"])]))


def _kill_child(work_dir: str, by_epoch: bool, async_save: bool) -> None:
    """The training a forked child runs: auto-resume, save every step, max_keep_ckpts=2, save_best."""
    torch.set_num_threads(1)
    ckpt = dict(
        type="CheckpointHook",
        interval=1 if by_epoch else 4,
        by_epoch=by_epoch,
        max_keep_ckpts=MAX_KEEP,
        save_best="acc",
        async_save=async_save,
    )
    bridge = HookBridge(
        default_hooks={**NO_DEFAULTS, "checkpoint": ckpt}, work_dir=work_dir, resume=True, print_hooks_table=False,
        log_level="ERROR",
    )  # fmt: skip
    limits = (
        dict(max_epochs=KILL_STEPS)
        if by_epoch
        else dict(max_steps=KILL_STEPS * 4, max_epochs=-1, val_check_interval=4, check_val_every_n_epoch=None)
    )
    trainer = make_trainer(work_dir, bridge, num_sanity_val_steps=0, **limits)
    module = KillModule(KILL_BALLAST)
    train_loader, val_loader = loaders()
    trainer.fit(module, train_loader, val_loader)


def _temp_files(work_dir: str) -> list[str]:
    from lightning_hooks.fileio import TEMP_FILE_RE

    return [n for n in os.listdir(work_dir) if TEMP_FILE_RE.match(n)]


def _checkpoint_temps(work_dir: str) -> set[str]:
    """Temp files of checkpoint writes (not of ``last_checkpoint``, whose write lasts microseconds)."""
    return {n for n in _temp_files(work_dir) if ".pth." in n}


def check_directory(work_dir: str) -> dict:
    """The invariants that must hold at every instant; returns what was seen (raises AssertionError if broken)."""
    names = sorted(n for n in os.listdir(work_dir) if n.endswith(".pth") and not n.startswith("."))
    for name in names:  # every file loads as plain data
        torch.load(os.path.join(work_dir, name), map_location="cpu", weights_only=True, mmap=True)
    marker = os.path.join(work_dir, "last_checkpoint")
    resume = best = None
    if os.path.exists(marker):
        with open(marker) as f:
            resume = f.read()
        assert os.path.isfile(resume), f"last_checkpoint names {resume}, which does not exist"
        info = torch.load(resume, map_location="cpu", weights_only=True, mmap=True)["message_hub"]["runtime_info"]
        best = info.get("best_ckpt")
        assert best is None or os.path.isfile(best), f"the resume point names {best}, which does not exist"
    regular = [n for n in names if not n.startswith("best_")]
    return {"files": names, "regular": regular, "resume": resume, "best": best, "temps": _temp_files(work_dir)}


def kill_loop(work_root: str, kills: int, seed: int) -> None:
    """Fork trainings (no re-import per run) and SIGKILL each at a random moment, mostly mid-write.

    Four modes (sync/async x epoch/iteration) take turns. After each kill the
    directory is checked; after the kills each mode's last run trains to the end.
    One JSON line per event goes to stdout.
    """
    import random
    import signal
    import time

    rng = random.Random(seed)
    modes = [(by_epoch, async_save) for by_epoch in (True, False) for async_save in (False, True)]
    dirs = {m: os.path.join(work_root, f"{'epoch' if m[0] else 'iter'}_{'async' if m[1] else 'sync'}") for m in modes}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)

    def fork(mode):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _kill_child(dirs[mode], *mode)
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            os._exit(code)
        return pid

    for k in range(kills):
        mode = modes[k % len(modes)]
        mid_write = rng.random() < 0.85
        nth_write = rng.randint(1, 5)  # kill inside the n-th write of this run
        delay = rng.uniform(0.0, 0.001) if mid_write else rng.uniform(0.05, 1.5)
        stale = _checkpoint_temps(dirs[mode])  # left by the previous kill; the child removes them first
        pid = fork(mode)
        start = time.monotonic()
        writes: set = set()
        killed_mid_write = False
        while True:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if mid_write:  # inside the n-th checkpoint write of this run
                writes |= _checkpoint_temps(dirs[mode]) - stale
                if len(writes) >= nth_write:
                    time.sleep(delay)
                    killed_mid_write = bool(_checkpoint_temps(dirs[mode]) - stale)
                    break
            elif time.monotonic() - start > delay:
                break
            if time.monotonic() - start > 30:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise SystemExit("a training neither wrote nor ended within 30 s")
            time.sleep(0.0005)
        if not done:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        seen = check_directory(dirs[mode])
        print(json.dumps({"kill": k, "mode": list(mode), "mid_write": killed_mid_write, **seen}), flush=True)
    for mode in modes:
        pid = fork(mode)
        _, status = os.waitpid(pid, 0)
        seen = check_directory(dirs[mode])
        print(json.dumps({"final": list(mode), "exit": status, **seen}), flush=True)


if __name__ == "__main__":
    mode, work_dir = sys.argv[1], sys.argv[2]
    if mode == "crash":
        train(work_dir, int(sys.argv[3]), resume=len(sys.argv) > 4, extra_hooks=[])
    elif mode == "ddp":
        ddp(work_dir)
    elif mode == "ddp_partial":
        ddp_partial(work_dir, int(sys.argv[3]))
    elif mode == "kills":
        kill_loop(work_dir, int(sys.argv[3]), int(sys.argv[4]))
    else:
        raise SystemExit(f"unknown mode {mode!r}; use crash, ddp, ddp_partial or kills")
