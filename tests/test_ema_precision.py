"""EMAHook with a bf16 model (Lightning's precision='bf16-true'): the average's dtype is a choice, and is kept exact."""

from __future__ import annotations

import pytest
import torch
from toy import ToyModule, loaders, make_trainer

from lightning_hooks import EMAHook, Hook, HookBridge


def find_ema(runner) -> EMAHook:
    return next(h for h in runner.hooks if isinstance(h, EMAHook))


class BeforeSwap(Hook):
    """Runs before EMAHook (HIGH < NORMAL): what the average and the model hold before each validation."""

    priority = "HIGH"

    def __init__(self, log: list) -> None:
        self.log = log

    def before_val_epoch(self, runner) -> None:
        avg = find_ema(runner).ema_model.module.linear.weight.detach().clone()
        self.log.append(("before", avg, runner.model.linear.weight.detach().clone()))


class AfterSwap(Hook):
    """Runs after EMAHook: what the model holds during validation, and both after the swap back."""

    priority = "VERY_LOW"

    def __init__(self, log: list) -> None:
        self.log = log

    def before_val_epoch(self, runner) -> None:
        self.log.append(("during", None, runner.model.linear.weight.detach().clone()))

    def after_val_epoch(self, runner, metrics=None) -> None:
        avg = find_ema(runner).ema_model.module.linear.weight.detach().clone()
        self.log.append(("after", avg, runner.model.linear.weight.detach().clone()))


@pytest.mark.parametrize("dtype", [None, "bfloat16"], ids=["float32_average", "bf16_average"])
def test_bf16_model_average_survives_validation_exactly(tmp_path, dtype):
    log: list = []
    ema_cfg = dict(type="EMAHook", momentum=0.3)
    if dtype is not None:
        ema_cfg["dtype"] = dtype
    bridge = HookBridge(
        default_hooks=dict(logger=None),
        custom_hooks=[ema_cfg, BeforeSwap(log), AfterSwap(log)],
        print_hooks_table=False,
    )
    trainer = make_trainer(tmp_path, bridge, max_epochs=2, precision="bf16-true", num_sanity_val_steps=0)
    train, val = loaders()
    model = ToyModule()
    trainer.fit(model, train, val)
    ema = next(h for h in bridge.hooks if isinstance(h, EMAHook))
    expected = torch.float32 if dtype is None else torch.bfloat16
    assert model.linear.weight.dtype == torch.bfloat16
    assert ema.ema_model.module.linear.weight.dtype == expected
    assert [entry[0] for entry in log] == ["before", "during", "after"] * 2
    for (_, avg_before, raw_before), (_, _, during), (_, avg_after, raw_after) in zip(
        log[0::3], log[1::3], log[2::3], strict=True
    ):
        assert not torch.equal(avg_before.to(torch.bfloat16), raw_before)
        torch.testing.assert_close(during, avg_before.to(torch.bfloat16), rtol=0, atol=0)  # validated on the average
        assert torch.equal(raw_after, raw_before)  # training weights restored bit for bit
        assert avg_after.dtype == expected and torch.equal(avg_after, avg_before)  # the average was not rounded
    saved = torch.load(tmp_path / "epoch_2.pth", weights_only=False)
    assert saved["state_dict"]["linear.weight"].dtype == expected
    assert saved["ema_state_dict"]["module.linear.weight"].dtype == torch.bfloat16
