"""Two-process gloo run of EMAHook under ``ddp`` or ``ModelParallelStrategy`` (FSDP2's ``fully_shard``).

Run: ``python sharded_ema_run.py OUT_DIR {ddp,fsdp2}``. Lightning re-executes this script for rank 1
(hence the ``__main__`` guard). The same model, data and seeds train under both strategies, so
tests/test_sharded.py can compare them number by number. Three ``fit`` calls, each rank writing
``<OUT_DIR>/<strategy>_<phase>_rank<k>.pt`` (loadable with ``weights_only=True``):

* ``first``: 2 epochs; EMAHook (MomentumAnnealingEMA, buffers averaged), SyncBuffersHook and a
  recorder that also keeps ExponentialMovingAverage and StochasticWeightAverage models of its own;
  then ``trainer.save_checkpoint`` (a sharded directory under fsdp2) and ``save_averaged``;
* ``resumed``: ``fit(ckpt_path=...)`` to 3 epochs;
* ``straight``: 3 epochs from scratch, the reference for ``resumed``.

Under fsdp2, ``first`` and ``resumed`` run again as ``fsdp2full`` with
``ModelParallelStrategy(save_distributed_checkpoint=False)``: CheckpointHook writes one full-state
file per epoch (the average gathered to rank 0) and ``resumed`` starts from ``epoch_2.pth``.

Each record holds the validation metrics (computed on the EMA weights), the full average gathered
by ``averaged_state_dict()`` (also once during the last validation, while the average sits in the
model), the other averages gathered, the raw weights gathered and the EMA step count.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import torch

torch.set_num_threads(1)

import lightning.pytorch as pl  # noqa: E402
from lightning.pytorch.strategies import DDPStrategy, ModelParallelStrategy  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from lightning_hooks import EMAHook, Hook, HookBridge, SyncBuffersHook  # noqa: E402
from lightning_hooks.averaging import ExponentialMovingAverage, StochasticWeightAverage  # noqa: E402
from lightning_hooks.sharding import gather_full  # noqa: E402

TRAIN_LEN, BATCH, VAL_LEN, VAL_BATCH = 16, 4, 8, 4


class RandomData(Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x.sum(1, keepdim=True).tanh()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


class Net(pl.LightningModule):
    """Shapes chosen to shard unevenly: [3, 6] splits 2/1 and [1, 3] leaves rank 1 an empty shard."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3), nn.Tanh())
        self.head = nn.Linear(3, 1)

    def configure_model(self) -> None:
        if not isinstance(self.trainer.strategy, ModelParallelStrategy):
            return
        from torch.distributed.fsdp import fully_shard

        mesh = self.device_mesh["data_parallel"]
        fully_shard(self.net[0], mesh=mesh)
        fully_shard(self.net[3], mesh=mesh)
        fully_shard(self.net, mesh=mesh)  # BatchNorm's parameters: FSDP2 keeps them gathered after eval
        fully_shard(self.head, mesh=mesh)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return ((self(x) - y) ** 2).mean()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", ((self(x) - y) ** 2).mean(), on_epoch=True, sync_dist=True)

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=0.05)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(RandomData(TRAIN_LEN, 0), batch_size=BATCH, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(RandomData(VAL_LEN, 1), batch_size=VAL_BATCH)


class Recorder(Hook):
    """Keeps two more averages on the (sharded) model, records metrics and, after training, everything gathered."""

    priority = "ABOVE_NORMAL"  # after_val_epoch runs before EMAHook gives the model its raw weights back

    def __init__(self, path: str, extra_averages: bool) -> None:
        self.path = path
        self.extra_averages = extra_averages
        self.record: dict[str, Any] = {"val": [], "during_val": None}
        self.others: dict[str, Any] = {}

    def _ema(self, runner: Any) -> EMAHook:
        return next(h for h in runner.hooks if isinstance(h, EMAHook))

    def before_train(self, runner: Any) -> None:
        if self.extra_averages:
            self.others = {
                "ema": ExponentialMovingAverage(runner.model, momentum=0.3),
                "swa": StochasticWeightAverage(runner.model, interval=2),
            }

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        for average in self.others.values():
            average.update_parameters(runner.model)

    def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
        self.record["val"].append(float(metrics["val_loss"]))
        if runner.epoch == runner.max_epochs:
            self.record["during_val"] = self._ema(runner).averaged_state_dict()

    def after_train(self, runner: Any) -> None:
        ema = self._ema(runner)
        self.record["average"] = ema.averaged_state_dict()
        self.record["steps"] = ema.ema_model.steps
        self.record["raw"] = gather_full(runner.model.state_dict().items())
        self.record["others"] = {k: gather_full(v.module.state_dict().items()) for k, v in self.others.items()}
        self.record["sharded"] = ema.ema_model.sharded
        self.record["local_numel"] = sum(
            p.to_local().numel() if ema.ema_model.sharded else p.numel() for p in ema.ema_model.module.parameters()
        )
        torch.save(self.record, self.path.format(rank=runner.rank))


def make_trainer(out: str, strategy_name: str, phase: str, max_epochs: int) -> tuple[pl.Trainer, Recorder]:
    recorder = Recorder(os.path.join(out, f"{strategy_name}_{phase}_rank{{rank}}.pt"), extra_averages=phase == "first")
    # fsdp2full: ModelParallelStrategy(save_distributed_checkpoint=False), CheckpointHook writing full-state files.
    checkpoint = dict(type="CheckpointHook", interval=1, max_keep_ckpts=1) if strategy_name == "fsdp2full" else None
    bridge = HookBridge(
        default_hooks=dict(checkpoint=checkpoint, logger=None),
        custom_hooks=[
            dict(type="EMAHook", ema_type="MomentumAnnealingEMA", momentum=0.1, gamma=4),
            SyncBuffersHook(),
            recorder,
        ],
        work_dir=os.path.join(out, f"work_{strategy_name}"),
        print_hooks_table=False,
    )
    if strategy_name.startswith("fsdp2"):
        strategy: Any = ModelParallelStrategy(
            data_parallel_size=2, tensor_parallel_size=1, save_distributed_checkpoint=strategy_name == "fsdp2"
        )
    else:
        strategy = DDPStrategy(broadcast_buffers=False)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=strategy,
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=out,
        callbacks=[bridge],
    )
    return trainer, recorder


def main(out: str, strategy_name: str) -> None:
    ckpt = os.path.join(out, f"{strategy_name}.ckpt")
    trainer, _ = make_trainer(out, strategy_name, "first", 2)
    trainer.fit(Net())
    trainer.save_checkpoint(ckpt)
    bridge = next(c for c in trainer.callbacks if isinstance(c, HookBridge))  # type: ignore[attr-defined]
    ema = next(h for h in bridge.hooks if isinstance(h, EMAHook))
    ema.save_averaged(os.path.join(out, f"{strategy_name}_averaged.pth"))

    trainer, _ = make_trainer(out, strategy_name, "resumed", 3)
    trainer.fit(Net(), ckpt_path=ckpt)
    trainer, _ = make_trainer(out, strategy_name, "straight", 3)
    trainer.fit(Net())
    if strategy_name == "fsdp2":  # the same first and resumed runs with one full-state file per checkpoint
        trainer, _ = make_trainer(out, "fsdp2full", "first", 2)
        trainer.fit(Net())
        trainer, _ = make_trainer(out, "fsdp2full", "resumed", 3)
        trainer.fit(Net(), ckpt_path=os.path.join(out, "work_fsdp2full", "epoch_2.pth"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    # Several fits shared one gloo group; tear it down before exit, or gloo's threads may abort the
    # interpreter's shutdown ("terminate called without an active exception") on a loaded machine.
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
