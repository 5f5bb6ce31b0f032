"""MMEngine's ``test_sync_buffers_hook.py`` over 2 gloo processes: run by ``test_sync_buffers_hook.py``.

Run: ``python ddp_sync_buffers.py OUT_DIR``. Lightning's DDP re-executes this
script for rank 1 (hence the ``__main__`` guard). Each rank writes
``rank<k>.json`` with, per case, every buffer as both ranks hold it (gathered):

* ``mock``: upstream ``test_sync_buffers_hook``: a model whose buffers (BatchNorm's
  ``num_batches_tracked`` included) are filled with the rank id, and
  ``SyncBuffersHook.after_train_epoch`` called with a runner of MMEngine's shape;
* ``runner`` / ``runner_no_broadcast``: upstream ``test_with_runner``: the same
  model trained 2 epochs with the hook (DDP's buffer broadcast on, then off).
"""

from __future__ import annotations

import json
import os
import sys
from types import SimpleNamespace
from typing import Any

import torch

torch.set_num_threads(1)

import lightning.pytorch as pl  # noqa: E402
from lightning.pytorch.strategies import DDPStrategy  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from toy import ToyModule, loaders  # noqa: E402

from lightning_hooks import Hook, HookBridge, SyncBuffersHook  # noqa: E402


class ToyModuleWithNorm(ToyModule):
    """MMEngine's ToyModuleWithNorm: a BatchNorm before the linear layer; ``init_weights`` fills buffers with the rank."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x)).squeeze(-1)

    def init_weights(self, rank: int) -> None:
        with torch.no_grad():
            for buffer in self.buffers():
                buffer.fill_(rank)


def gathered(strategy: Any, model: nn.Module) -> dict[str, list]:
    """Every buffer of ``model`` as each rank holds it: name -> [rank 0's values, rank 1's values]."""
    return {name: strategy.all_gather(buffer).tolist() for name, buffer in model.named_buffers()}


class MockCase(Hook):
    """Upstream's mocked-runner case, run once the process group exists."""

    def __init__(self) -> None:
        self.result: dict[str, Any] = {}

    def before_run(self, runner: Any) -> None:
        model = ToyModuleWithNorm()
        model.init_weights(runner.rank)
        mock_runner = SimpleNamespace(model=model, distributed=True, trainer=runner.trainer, rank=runner.rank)
        before = gathered(runner.trainer.strategy, model)
        SyncBuffersHook().after_train_epoch(mock_runner)
        self.result = {"before": before, "after": gathered(runner.trainer.strategy, model)}


class FillAtStart(Hook):
    """MMEngine's runner calls ``init_weights`` when it builds the model: fill the buffers with the rank first."""

    priority = "HIGHEST"

    def before_train(self, runner: Any) -> None:
        runner.model.init_weights(runner.rank)


def run(out_dir: str, broadcast_buffers: bool, extra_hooks: list) -> tuple[pl.Trainer, ToyModuleWithNorm]:
    model = ToyModuleWithNorm()
    bridge = HookBridge(
        custom_hooks=[FillAtStart(), dict(type="SyncBuffersHook"), *extra_hooks],
        default_hooks=dict(checkpoint=None, logger=None),
        work_dir=out_dir,
        print_hooks_table=False,
        log_level="WARNING",
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=DDPStrategy(broadcast_buffers=broadcast_buffers, process_group_backend="gloo"),
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[bridge],
    )
    train, val = loaders()
    trainer.fit(model, train, val)
    return trainer, model


def main() -> None:
    out_dir = os.path.abspath(sys.argv[1])
    mock = MockCase()
    trainer, model = run(out_dir, True, [mock])
    result = {"mock": mock.result, "runner": gathered(trainer.strategy, model)}
    trainer, model = run(out_dir, False, [])
    result["runner_no_broadcast"] = gathered(trainer.strategy, model)
    with open(os.path.join(out_dir, f"rank{trainer.global_rank}.json"), "w") as f:
        json.dump(result, f)
    # Two fits shared one gloo group; tear it down before exit, or gloo's threads may abort the
    # interpreter's shutdown ("terminate called without an active exception") on a loaded machine.
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
