"""Where every top-level key of an MMEngine config goes: the key table shown when a bridge is built from it.

MMEngine's Runner reads a fixed set of keys and silently ignores everything else
(helper variables such as ``max_epochs`` or ``train_pipeline``). Here each key gets
one of these roles, and the table says which:

* ``bridge``: used by :class:`~lightning_hooks.HookBridge` (hooks, work dir, logging, resume, load_from);
* ``trainer``: turned into Trainer arguments by ``trainer_kwargs_from_mmengine_config``;
* ``optimizers``: used by ``mmengine_optimizers`` in ``configure_optimizers``;
* ``yours``: sections Lightning leaves to your LightningModule / LightningDataModule (model, data,
  evaluators), handed over as they are;
* ``not used``: keys with no Lightning counterpart, each with the reason;
* ``unknown``: anything else (usually the config's own variables), named in one warning.

This module only classifies; it imports nothing from the package.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["KEY_ROLES", "ConfigKey", "classify_config_keys", "format_key_table", "report_config_keys"]

#: key -> (role, what happens to it)
KEY_ROLES: dict[str, tuple[str, str]] = {
    "default_hooks": ("bridge", "merged into the default hooks"),
    "custom_hooks": ("bridge", "built after the default hooks"),
    "custom_imports": ("bridge", "imported before the hooks and the optimizer are built"),
    "visualizer": ("bridge", "vis_backends given to LoggerHook"),
    "vis_backends": ("bridge", "through visualizer.vis_backends"),
    "work_dir": ("bridge", "checkpoints and logs; Trainer default_root_dir"),
    "experiment_name": ("bridge", "run name"),
    "resume": ("bridge", "resume from <work_dir>/last_checkpoint (or load_from)"),
    "load_from": ("bridge", "weights loaded before training (LoadFromHook)"),
    "log_level": ("bridge", "logger level"),
    "log_processor": ("bridge", "LoggerHook's line format"),
    "default_scope": ("bridge", "not needed: scoped names such as 'mmdet.X' resolve to X"),
    "train_cfg": ("trainer", "max_epochs/max_steps, validation interval, val_begin, dynamic_intervals"),
    "env_cfg": ("trainer", "cudnn_benchmark -> Trainer(benchmark=...); mp_cfg, dist_cfg: the Trainer's strategy"),
    "randomness": ("trainer", "deterministic -> Trainer(deterministic=...); seed -> seed_from_mmengine_config"),
    "launcher": ("trainer", "Lightning's strategy and launcher start the processes"),
    "optim_wrapper": ("optimizers", "mmengine_optimizers(module, cfg)"),
    "param_scheduler": ("optimizers", "mmengine_optimizers(module, cfg)"),
    "auto_scale_lr": ("optimizers", "mmengine_optimizers scales the lr"),
    "model": ("yours", "build it in your LightningModule"),
    "data_preprocessor": ("yours", "LightningModule / DataModule"),
    "train_dataloader": ("yours", "DataLoader / LightningDataModule"),
    "val_dataloader": ("yours", "DataLoader / LightningDataModule"),
    "test_dataloader": ("yours", "DataLoader / LightningDataModule"),
    "val_evaluator": ("yours", "metrics logged in validation_step"),
    "test_evaluator": ("yours", "metrics logged in test_step"),
    "val_cfg": ("yours", "validation loop: validation_step"),
    "test_cfg": ("yours", "test loop: test_step"),
    "tta_model": ("yours", "test-time augmentation in test_step"),
    "tta_pipeline": ("yours", "test-time augmentation in test_step"),
    "train_pipeline": ("yours", "data pipeline (DataModule)"),
    "val_pipeline": ("yours", "data pipeline (DataModule)"),
    "test_pipeline": ("yours", "data pipeline (DataModule)"),
    "dataset_type": ("yours", "data (DataModule)"),
    "data_root": ("yours", "data (DataModule)"),
    "backend_args": ("yours", "data (DataModule)"),
    "metainfo": ("yours", "data (DataModule)"),
    "model_wrapper_cfg": ("not used", "Lightning's strategy wraps the model (DDP, FSDP)"),
    "compile": ("not used", "call torch.compile in your LightningModule"),
    "activation_checkpointing": ("not used", "apply activation checkpointing in your LightningModule"),
    "efficient_conv_bn_eval": ("not used", "no Lightning counterpart"),
    "strategy": ("not used", "FlexibleRunner's strategy: pass Trainer(strategy=...)"),
    "find_unused_parameters": ("not used", "Trainer(strategy='ddp_find_unused_parameters_true')"),
    "sync_bn": ("not used", "Trainer(sync_batchnorm=True)"),
}

_ORDER = ("bridge", "trainer", "optimizers", "yours", "not used", "unknown")


@dataclass(frozen=True)
class ConfigKey:
    """One top-level key of a config and where it goes."""

    key: str
    role: str
    note: str


def classify_config_keys(cfg: Mapping[str, Any]) -> list[ConfigKey]:
    """Every top-level key of ``cfg`` with its role, grouped by role in :data:`KEY_ROLES`' order."""
    rows = []
    for key in cfg:
        if key.startswith("_"):
            continue
        role, note = KEY_ROLES.get(key, ("unknown", "not read by lightning_hooks"))
        if role in ("bridge", "trainer", "optimizers") and cfg[key] in (None, False):
            note = f"not set ({cfg[key]})"
        rows.append(ConfigKey(key, role, note))
    return sorted(rows, key=lambda row: (_ORDER.index(row.role), row.key))


def format_key_table(rows: list[ConfigKey]) -> str:
    """The rows as an aligned three-column text table."""
    if not rows:
        return "(empty config)"
    width_key = max(len("key"), *(len(r.key) for r in rows))
    width_role = max(len("used by"), *(len(r.role) for r in rows))
    lines = [f"{'key':<{width_key}}  {'used by':<{width_role}}  note"]
    lines.append("-" * len(lines[0]))
    lines += [f"{r.key:<{width_key}}  {r.role:<{width_role}}  {r.note}" for r in rows]
    return "\n".join(lines)


def _rank() -> int:
    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def report_config_keys(cfg: Mapping[str, Any], logger: logging.Logger) -> list[ConfigKey]:
    """Log the key table (INFO, rank 0) and warn once about the keys nothing reads and the unknown ones."""
    rows = classify_config_keys(cfg)
    if _rank() == 0:
        logger.info("MMEngine config keys:\n" + format_key_table(rows))
    unused = [r for r in rows if r.role == "not used" and cfg.get(r.key) not in (None, {}, [], False)]
    unknown = [r.key for r in rows if r.role == "unknown"]
    parts = []
    if unused:
        parts.append("not used here: " + "; ".join(f"{r.key} ({r.note})" for r in unused))
    if unknown:
        parts.append("not read by lightning_hooks (config variables, or keys it does not know): " + ", ".join(unknown))
    if parts:
        warnings.warn("MMEngine config: " + ". ".join(parts), UserWarning, stacklevel=3)
    return rows
