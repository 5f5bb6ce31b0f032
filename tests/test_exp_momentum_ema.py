"""ExpMomentumEMA (mmdet/mmyolo's averaged model) gives mmdet's numbers and builds from an EMAHook config."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from toy import ToyModule, loaders, make_trainer

from lightning_hooks import AVERAGED_MODELS, AveragingConfigError, ExpMomentumEMA, HookBridge


def reference(weights: list[torch.Tensor], momentum: float, gamma: float, interval: int) -> torch.Tensor:
    """mmdet's rule written out: copy at step 0, then every ``interval`` calls avg*(1-m) + src*m."""
    avg = weights[0].clone()
    for steps, src in enumerate(weights):
        if steps == 0:
            continue
        if steps % interval == 0:
            m = (1 - momentum) * math.exp(-float(1 + steps) / gamma) + momentum
            avg = avg * (1 - m) + src * m
    return avg


@pytest.mark.parametrize("interval", [1, 2])
def test_matches_mmdet_formula(interval):
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    ema = ExpMomentumEMA(model, momentum=0.0002, gamma=4, interval=interval)
    seen = []
    for _ in range(9):
        seen.append(model.weight.detach().clone())
        ema.update_parameters(model)
        with torch.no_grad():
            model.weight.add_(torch.randn_like(model.weight))
    expected = reference(seen, 0.0002, 4, interval)
    torch.testing.assert_close(ema.module.weight, expected, rtol=1e-6, atol=1e-7)
    assert ema.exp_momentum(0) == pytest.approx((1 - 0.0002) * math.exp(-1 / 4) + 0.0002)


def test_registered_and_checked():
    assert AVERAGED_MODELS.get("ExpMomentumEMA") is ExpMomentumEMA
    with pytest.raises(AveragingConfigError, match="gamma must be greater than 0"):
        ExpMomentumEMA(nn.Linear(2, 2), gamma=0)


def test_ema_hook_with_exp_momentum_ema_trains(tmp_path):
    """RTMDet's and YOLOX's custom_hooks entry, as the configs write it."""
    hook = dict(type="EMAHook", ema_type="ExpMomentumEMA", momentum=0.0002, update_buffers=True, priority=49)
    bridge = HookBridge(default_hooks=dict(checkpoint=None, logger=None), custom_hooks=[hook])
    trainer = make_trainer(tmp_path, bridge, max_epochs=1)
    trainer.fit(ToyModule(), *loaders())
    ema_hook = next(h for h in bridge.hooks if type(h).__name__ == "EMAHook")
    assert isinstance(ema_hook.ema_model, ExpMomentumEMA) and ema_hook.ema_model.steps == 4
