"""Hydra: `_target_: lightning_hooks.HookBridge` with nested DictConfig/ListConfig builds, trains and resumes weights_only."""

from __future__ import annotations

import importlib.util
import logging
import runpy
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from lightning_hooks import HookBridge

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hydra"


def compose_example(tmp_path, *overrides):
    with initialize_config_dir(config_dir=str(EXAMPLE / "conf"), version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[
                f"callbacks.hook_bridge.work_dir={tmp_path / 'work'}",
                f"+trainer.default_root_dir={tmp_path}",
                "+trainer.limit_train_batches=12",
                *overrides,
            ],
        )


def load_example_train():
    spec = importlib.util.spec_from_file_location("hydra_example_train", EXAMPLE / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.train


def test_instantiate_converts_omegaconf_containers(tmp_path):
    cfg = compose_example(tmp_path, "callbacks.hook_bridge.default_hooks.checkpoint.interval=2")
    node = cfg.callbacks.hook_bridge
    assert isinstance(node.default_hooks, DictConfig) and isinstance(node.custom_hooks, ListConfig)
    bridge = instantiate(node)  # no _convert_: HookBridge receives DictConfig/ListConfig
    assert isinstance(bridge, HookBridge)
    hooks = {type(h).__name__: h for h in bridge.hooks}
    assert hooks["CheckpointHook"].interval == 2 and hooks["CheckpointHook"].save_best == ["auto"]
    assert set(hooks) >= {"EMAHook", "LoggerHook", "RuntimeInfoHook"}
    assert type(hooks["CheckpointHook"].save_best) is list  # plain containers inside the hooks


@pytest.mark.slow
def test_example_trains_and_resumes_with_weights_only(tmp_path):
    train = load_example_train()
    trainer = train(compose_example(tmp_path, "trainer.max_epochs=1"))
    ckpt = tmp_path / "work" / "epoch_1.pth"
    checkpoint = torch.load(ckpt, weights_only=True)  # plain callback state, no OmegaConf objects
    (state,) = [v for k, v in checkpoint["callbacks"].items() if "HookBridge" in k]
    assert type(state) is dict and type(state["hooks"]) is dict
    assert "ema_state_dict" in checkpoint and checkpoint["message_hub"]["runtime_info"]["epoch"] == 0

    cfg = compose_example(tmp_path, "trainer.max_epochs=2")
    bridge = instantiate(cfg.callbacks.hook_bridge)
    resumed = instantiate(cfg.trainer, callbacks=[bridge])
    resumed.fit(instantiate(cfg.model), datamodule=instantiate(cfg.data), ckpt_path=str(ckpt), weights_only=True)
    assert trainer.current_epoch == 1 and resumed.current_epoch == 2
    meta = torch.load(tmp_path / "work" / "epoch_2.pth", weights_only=True)["meta"]
    assert (meta["epoch"], meta["iter"]) == (2, 24)


@pytest.mark.slow
def test_example_script_entry_point(tmp_path, monkeypatch):
    """examples/hydra/train.py as a user runs it (@hydra.main, command-line overrides), in-process."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys,
        "argv",
        [
            str(EXAMPLE / "train.py"),
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=12",
            "callbacks.hook_bridge.default_hooks.checkpoint.interval=1",
            f"hydra.run.dir={tmp_path / 'run'}",
            "hydra/job_logging=none",  # leave logging alone: "disabled" would disable every logger of the process
            "hydra/hydra_logging=none",
        ],
    )
    runpy.run_path(str(EXAMPLE / "train.py"), run_name="__main__")
    work = tmp_path / "run" / "work"  # work_dir: ${hydra:runtime.output_dir}/work
    assert (work / "epoch_1.pth").is_file() and (work / "last_checkpoint").read_text() == str(work / "epoch_1.pth")
    assert (tmp_path / "run" / ".hydra" / "config.yaml").is_file()
    assert not logging.getLogger("lightning_hooks").disabled


def test_target_can_be_from_mmengine_config(tmp_path):
    """`_target_: lightning_hooks.HookBridge.from_mmengine_config` reads an MMEngine config file."""
    node = OmegaConf.create(
        {
            "_target_": "lightning_hooks.HookBridge.from_mmengine_config",
            "path_or_dict": str(EXAMPLE.parent / "mmengine_config" / "digits_cnn.py"),
            "on_unsupported": "warn",
            "work_dir": str(tmp_path),
        }
    )
    with pytest.warns(UserWarning, match="VisualizationHook"):
        bridge = instantiate(node)
    assert isinstance(bridge, HookBridge) and bridge.work_dir == str(tmp_path)
    assert "EMAHook" in [type(h).__name__ for h in bridge.hooks]
