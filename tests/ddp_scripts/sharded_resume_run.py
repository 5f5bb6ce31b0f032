"""Resumes of sharded directories with and without optimizer state, in one process under ModelParallelStrategy.

Run by ``tests/test_sharded_checkpoint.py`` in a subprocess with a deadline:
``python sharded_resume_run.py OUT_DIR``. Writes ``OUT_DIR/result.json``: per resumed file, whether
the fit finished, the "holds no optimizer state" warnings, and whether Adam's first moment came
from the file (it equals the saved one) or was built anew (empty before the first step).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from datetime import timedelta

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_hooks import HookBridge
from lightning_hooks.sharded_checkpoint import read_sharded_checkpoint

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from toy import make_trainer

NO_OPTIMIZER_STATE = "holds no optimizer"


class Net(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 1))
        self.first_moment: list[float] | None = None

    def configure_model(self) -> None:
        from torch.distributed.fsdp import fully_shard

        fully_shard(self.net, mesh=self.device_mesh["data_parallel"])

    def training_step(self, batch, batch_idx):
        x, y = batch
        return ((self.net(x) - y) ** 2).mean()

    def on_train_batch_start(self, batch, batch_idx) -> None:
        if self.first_moment is None:  # the optimizer state this fit starts from (empty: built anew)
            state = self.optimizers().optimizer.state
            weight = self.net[0].weight
            self.first_moment = state[weight]["exp_avg"].full_tensor().flatten().tolist() if weight in state else []

    def validation_step(self, batch, batch_idx) -> None:
        x, y = batch
        self.log("val_loss", ((self.net(x) - y) ** 2).mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.05)

    def train_dataloader(self):
        x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
        return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)

    val_dataloader = train_dataloader


def fit(work_dir: str, max_epochs: int, save_optimizer: bool, ckpt_path: str | None = None) -> tuple[Net, list[str]]:
    bridge = HookBridge(
        default_hooks=dict(
            checkpoint=dict(type="CheckpointHook", interval=1, save_optimizer=save_optimizer, save_best="val_loss"),
            logger=None,
        ),
        work_dir=work_dir,
        print_hooks_table=False,
        log_level="ERROR",
    )
    trainer = make_trainer(
        work_dir,
        bridge,
        strategy=ModelParallelStrategy(timeout=timedelta(seconds=60)),
        max_epochs=max_epochs,
        num_sanity_val_steps=0,
    )
    module = Net()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module, ckpt_path=ckpt_path)
    return module, [str(w.message) for w in caught if NO_OPTIMIZER_STATE in str(w.message)]


def main(out: str) -> None:
    torch.set_num_threads(1)
    result = {}
    for save_optimizer in (True, False):
        work = os.path.join(out, f"save_optimizer_{save_optimizer}")
        fit(work, 2, save_optimizer)
        best = next(name for name in sorted(os.listdir(work)) if name.startswith("best_"))
        for name in ("epoch_2.pth", best):
            path = os.path.join(work, name)
            saved = read_sharded_checkpoint(path).get("optimizer_states")
            saved_moment = (
                saved[0]["state"]["net.0.weight"]["exp_avg"].flatten().tolist() if saved and saved[0]["state"] else []
            )
            module, said = fit(os.path.join(out, f"resumed_{save_optimizer}_{name}"), 3, save_optimizer, path)
            result[f"{save_optimizer}/{'best' if name == best else name}"] = dict(
                warnings=len(said), moment=module.first_moment, saved_moment=saved_moment
            )
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1])
