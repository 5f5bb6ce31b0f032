"""Train with Hydra: every object, HookBridge included, is built by ``hydra.utils.instantiate``.

    python examples/hydra/train.py
    python examples/hydra/train.py trainer.max_epochs=2 callbacks.hook_bridge.default_hooks.checkpoint.interval=2

HookBridge receives the nested hook settings as OmegaConf DictConfig/ListConfig
objects (no ``_convert_`` needed); it turns them into plain dicts and lists, so
checkpoints still load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from typing import Any

import hydra
import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig


def train(cfg: DictConfig) -> Any:
    """Build the callbacks, the Trainer, the model and the data from ``cfg``, then fit."""
    pl.seed_everything(cfg.seed)
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks)
    trainer.fit(instantiate(cfg.model), datamodule=instantiate(cfg.data))
    return trainer


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
