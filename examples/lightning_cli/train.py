"""Train with LightningCLI and MMEngine-style hooks configured in YAML.

python examples/lightning_cli/train.py fit --config examples/lightning_cli/config.yaml
python examples/lightning_cli/train.py fit --trainer.callbacks.help lightning_hooks.HookBridge
"""

from __future__ import annotations

from lightning.pytorch.cli import LightningCLI

import lightning_hooks  # noqa: F401  (makes the short name HookBridge resolvable on the command line)


def main() -> None:
    """LightningCLI with any LightningModule/LightningDataModule named in the config (class_path)."""
    LightningCLI(save_config_kwargs={"overwrite": True})


if __name__ == "__main__":
    main()
