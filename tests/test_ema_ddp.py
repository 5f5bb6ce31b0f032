"""EMAHook under real 2-process DDP on CPU (gloo): every rank ends with the same average, without extra communication."""

from __future__ import annotations

import sys

import pytest
import torch
from toy import ToyModule, loaders, make_trainer

from lightning_hooks import EMAHook, Hook, HookBridge


class DumpAverage(Hook):
    """Writes what this rank holds after training: its average, its step count and its raw weights."""

    priority = "LOWEST"

    def after_train(self, runner) -> None:
        ema = next(h for h in runner.hooks if isinstance(h, EMAHook))
        torch.save(
            {
                "average": ema.averaged_state_dict(),
                "steps": ema.ema_model.steps,
                "raw": {k: v.detach().clone() for k, v in runner.model.state_dict().items()},
                "world_size": runner.world_size,
            },
            f"{runner.work_dir}/rank{runner.rank}.pt",
        )


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="ddp_fork needs fork (POSIX)")
def test_both_ranks_hold_the_same_average(tmp_path):
    bridge = HookBridge(
        default_hooks=dict(checkpoint=None, logger=None),
        custom_hooks=[dict(type="EMAHook", momentum=0.3, update_buffers=True), DumpAverage()],
        work_dir=str(tmp_path),
        print_hooks_table=False,
    )
    trainer = make_trainer(tmp_path, bridge, max_epochs=2, strategy="ddp_fork", devices=2, num_sanity_val_steps=0)
    train, val = loaders()
    trainer.fit(ToyModule(), train, val)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    # 12 samples split over 2 ranks in batches of 3: 2 iterations per epoch, 2 epochs.
    assert ranks[0]["steps"] == ranks[1]["steps"] == 4
    for key, value in ranks[0]["average"].items():
        assert torch.equal(value, ranks[1]["average"][key]), f"average of {key} differs between ranks"
        assert torch.equal(ranks[0]["raw"][key], ranks[1]["raw"][key])
    assert not torch.allclose(ranks[0]["average"]["linear.weight"], ranks[0]["raw"]["linear.weight"])
