"""Train the digits model from an MMEngine config file.

    python examples/mmengine_config/train.py examples/mmengine_config/digits_cnn.py [--epochs N]

The hooks come from the config's ``default_hooks``/``custom_hooks`` (``_base_`` merged),
the Trainer's limits from ``train_cfg``/``optim_wrapper``, and the optimizer and its schedule
from ``optim_wrapper``/``param_scheduler`` through ``mmengine_optimizers``, with MMEngine's
numbers. OpenMMLab's ``VisualizationHook`` is skipped with a warning, and one table shows
where every key of the config went.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, Optional

import lightning.pytorch as pl

from lightning_hooks import HookBridge, load_mmengine_config, mmengine_optimizers, trainer_kwargs_from_mmengine_config
from lightning_hooks.config import seed_from_mmengine_config
from lightning_hooks.demo import DigitsCNN, DigitsDataModule


class ConfigDigitsCNN(DigitsCNN):
    """DigitsCNN whose optimizer and schedule are the config's ``optim_wrapper`` and ``param_scheduler``."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.cfg = cfg

    def configure_optimizers(self) -> Any:
        return mmengine_optimizers(self, self.cfg)


def train(config: str, epochs: Optional[int] = None, work_dir: Optional[str] = None) -> pl.Trainer:
    """Fit DigitsCNN with the hooks and limits of ``config``; ``epochs``/``work_dir`` override it."""
    cfg = load_mmengine_config(config)
    seed_from_mmengine_config(cfg)  # randomness.seed, before the model is built
    overrides: dict[str, Any] = {"work_dir": work_dir} if work_dir else {}
    bridge = HookBridge.from_mmengine_config(config, **overrides)
    trainer_kwargs = trainer_kwargs_from_mmengine_config(cfg)
    if epochs is not None:
        trainer_kwargs["max_epochs"] = epochs
    if work_dir:
        trainer_kwargs["default_root_dir"] = work_dir
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        callbacks=[bridge],
        **trainer_kwargs,
    )
    trainer.fit(ConfigDigitsCNN(cfg), datamodule=DigitsDataModule())
    return trainer


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="an MMEngine config file (.py, .json, .yaml)")
    parser.add_argument("--epochs", type=int, default=None, help="override train_cfg.max_epochs")
    parser.add_argument("--work-dir", default=None, help="override work_dir")
    args = parser.parse_args(argv)
    train(args.config, args.epochs, args.work_dir)


if __name__ == "__main__":
    main()
