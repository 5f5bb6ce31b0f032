"""Two-process gloo run of every default hook plus EMAHook, EarlyStoppingHook, SyncBuffersHook,
EmptyCacheHook, CheckInvalidLossHook and ProfilerHook, under ``ddp`` or ``ModelParallelStrategy``.

Run: ``python sharded_ckpt_run.py OUT_DIR {ddp,fsdp2} {killed,resumed,straight}``. Lightning
re-executes this script for rank 1 (hence the ``__main__`` guard). The work dir is
``OUT_DIR/<strategy>_<run>`` where ``killed`` and ``resumed`` share one (``run`` = ``crash``):

* ``killed``: trains until the regular save of epoch 3 is being written, then every rank SIGKILLs
  itself: under fsdp2 once its shards of ``.epoch_3.pth.tmp`` are written (before ``meta.pt`` and
  the rename), under ddp once rank 0 wrote the temporary file (rank 1 at the save's barrier);
* ``resumed``: ``HookBridge(resume=True)`` resumes from ``last_checkpoint`` and trains until early
  stopping;
* ``straight``: the same training without the crash, the reference.

CheckpointHook saves every epoch with ``max_keep_ckpts=2``, ``save_best`` on two keys
(``val_loss`` computed on the EMA weights, ``score`` fixed per validation) and ``published_keys``;
EarlyStoppingHook stops on ``score``. Each rank writes ``<OUT_DIR>/<strategy>_<phase>_rank<k>.pt``
(``weights_only=True``) with: the mount-point trace, the validation metrics, learning rates,
early-stopping state, the checkpoint entries in the work dir, ``last_checkpoint``, the gathered
EMA average and every file-system write or removal this process made under ``OUT_DIR``.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import timedelta
from typing import Any

import torch

torch.set_num_threads(1)

import lightning.pytorch as pl  # noqa: E402
from ddp_hooks_run import WRITES, watch_writes  # noqa: E402
from lightning.pytorch.strategies import DDPStrategy, ModelParallelStrategy  # noqa: E402
from sharded_ema_run import Net  # noqa: E402

from lightning_hooks import EMAHook, HookBridge  # noqa: E402
from lightning_hooks import Hook as LHHook  # noqa: E402
from lightning_hooks.hooks.hook import STAGES  # noqa: E402

MAX_EPOCHS = 7
#: ``score`` at each validation: plateaus after the 3rd, so EarlyStoppingHook(min_delta=0.5, patience=2) stops at 5.
SCORES = [1.0, 2.0, 3.0, 3.2, 3.3, 3.4, 3.5]
KILL_AT = "epoch_3.pth"


class ScoredNet(Net):
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        self.log("score", SCORES[self.current_epoch], on_epoch=True, sync_dist=True)

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameters(), lr=0.05)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 2, 0.5)}


class Recorder(LHHook):
    """Records the trace (HIGHEST priority, so before any hook acts) and, at the end, what the run left."""

    priority = "HIGHEST"

    def __init__(self, path: str) -> None:
        self.path = path
        self.record: dict[str, Any] = {"trace": [], "val": [], "lr": []}

        def make(stage: str) -> Any:
            def method(runner: Any, **kwargs: Any) -> None:
                self.record["trace"].append(f"{stage}:{runner.epoch}:{runner.iter}")
                getattr(self, f"_{stage}", lambda *a, **k: None)(runner, **kwargs)

            return method

        for stage in STAGES:
            setattr(self, stage, make(stage))

    def _after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
        self.record["val"].append([runner.epoch, float(metrics["val_loss"]), float(metrics["score"])])

    def _before_train_epoch(self, runner: Any) -> None:
        self.record["lr"].append(runner.optim_wrapper.get_lr()["lr"][0])

    def _after_train(self, runner: Any) -> None:
        ema = next(h for h in runner.hooks if isinstance(h, EMAHook))
        stopper = next(h for h in runner.hooks if type(h).__name__ == "EarlyStoppingHook")
        self.record["average"] = ema.averaged_state_dict()
        self.record["stopped_at"] = runner.epoch
        self.record["early_stopping"] = [float(stopper.best_score), int(stopper.wait_count)]
        # Buffers are not sharded; SyncBuffersHook averaged them over the ranks after the last epoch.
        self.record["buffers"] = {
            name: buf.detach().clone() for name, buf in runner.model.named_buffers() if buf.is_floating_point()
        }
        self.record["rank"] = runner.rank

    def _after_run(self, runner: Any) -> None:
        work_dir = runner.work_dir
        runner.trainer.strategy.barrier()  # rank 0's last writes are done before anyone lists the directory
        entries = sorted(name for name in os.listdir(work_dir) if name.endswith(".pth") or name.endswith(".tmp"))
        self.record["entries"] = [[name, os.path.isdir(os.path.join(work_dir, name))] for name in entries]
        with open(os.path.join(work_dir, "last_checkpoint")) as handle:
            self.record["last_checkpoint"] = handle.read().strip()
        self.record["writes"] = [list(w) for w in WRITES]
        torch.save(self.record, self.path.format(rank=runner.rank))


def arm_crash(strategy_name: str) -> None:
    """SIGKILL every rank in the middle of the save of ``KILL_AT`` (see the module docstring)."""

    def die() -> None:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    if strategy_name == "fsdp2":
        import torch.distributed.checkpoint as dcp

        original_dcp_save = dcp.save

        def dcp_save(*args: Any, **kwargs: Any) -> Any:
            result = original_dcp_save(*args, **kwargs)
            if KILL_AT in str(kwargs.get("checkpoint_id")):
                die()
            return result

        dcp.save = dcp_save
        return
    original_save, original_barrier = torch.save, DDPStrategy.barrier

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
        result = original_save(obj, f, *args, **kwargs)
        name = f if isinstance(f, str) else getattr(f, "name", None)  # the writer may pass an open file
        if isinstance(name, str) and os.path.basename(name).startswith("." + KILL_AT) and name.endswith(".tmp"):
            die()
        return result

    def barrier(self: Any, name: Any = None) -> None:
        if name == "Trainer.save_checkpoint" and self.global_rank != 0 and ARMED["epoch"] == 3:
            die()
        original_barrier(self, name)

    torch.save = save  # type: ignore[assignment]
    DDPStrategy.barrier = barrier  # type: ignore[method-assign]


ARMED: dict[str, int] = {"epoch": -1}


class EpochTracker(LHHook):
    priority = "LOWEST"

    def before_train_epoch(self, runner: Any) -> None:
        ARMED["epoch"] = runner.epoch + 1


def main(out: str, strategy_name: str, phase: str) -> None:
    run = "straight" if phase == "straight" else "crash"
    work_dir = os.path.join(out, f"{strategy_name}_{run}")
    watch_writes(out)
    if phase == "killed":
        arm_crash(strategy_name)
    bridge = HookBridge(
        default_hooks=dict(
            checkpoint=dict(
                type="CheckpointHook",
                interval=1,
                max_keep_ckpts=2,
                save_best=["val_loss", "score"],
                rule=["less", "greater"],
                published_keys=["meta", "state_dict"],
                keep_resumed=False,
            ),
        ),
        custom_hooks=[
            Recorder(os.path.join(out, f"{strategy_name}_{phase}_rank{{rank}}.pt")),
            EpochTracker(),
            dict(type="EMAHook", momentum=0.2),
            dict(type="SyncBuffersHook"),
            dict(type="EarlyStoppingHook", monitor="score", rule="greater", min_delta=0.5, patience=2),
            dict(type="EmptyCacheHook", after_epoch=True),
            dict(type="CheckInvalidLossHook", interval=1),
            dict(type="ProfilerHook", by_epoch=True, profile_times=1, json_trace_path=f"{work_dir}/trace.json"),
        ],
        work_dir=work_dir,
        resume=phase == "resumed",
        print_hooks_table=False,
    )
    if strategy_name == "fsdp2":
        strategy: Any = ModelParallelStrategy(
            data_parallel_size=2, tensor_parallel_size=1, timeout=timedelta(seconds=60)
        )
    else:
        strategy = DDPStrategy(broadcast_buffers=False, timeout=timedelta(seconds=60))
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=strategy,
        max_epochs=MAX_EPOCHS,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=out,
        callbacks=[bridge],
    )
    trainer.fit(ScoredNet())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
