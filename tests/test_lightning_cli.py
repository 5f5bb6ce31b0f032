"""LightningCLI: the shipped YAML (HookBridge with MMEngine-style hook dicts) runs, and --help shows HookBridge's arguments."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.cli import LightningCLI

from lightning_hooks import HookBridge

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "lightning_cli" / "config.yaml"


def config_in(tmp_path, **trainer):
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg["trainer"]["callbacks"][0]["init_args"]["work_dir"] = str(tmp_path / "work")
    cfg["trainer"]["default_root_dir"] = str(tmp_path)
    cfg["trainer"].update(trainer)
    path = tmp_path / "input.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def bridge_of(cli):
    bridges = [c for c in cli.trainer.callbacks if isinstance(c, HookBridge)]
    assert len(bridges) == 1
    return bridges[0]


@pytest.mark.slow
def test_shipped_config_fits_one_epoch(tmp_path, monkeypatch):
    """The shipped script (examples/lightning_cli/train.py) with the shipped config, for one epoch."""
    spec = importlib.util.spec_from_file_location("lightning_cli_train", CONFIG.parent / "train.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    built = []
    monkeypatch.setattr(LightningCLI, "after_fit", lambda self: built.append(self), raising=False)
    monkeypatch.setattr(sys, "argv", ["train.py", "fit", "--config", str(config_in(tmp_path, max_epochs=1))])
    script.main()
    (cli,) = built
    bridge = bridge_of(cli)
    names = [type(h).__name__ for h in bridge.hooks]
    assert names.index("EMAHook") < names.index("LoggerHook") < names.index("CheckpointHook")
    work = tmp_path / "work"
    assert (work / "epoch_1.pth").is_file()
    assert len(list(work.glob("best_accuracy_top1_epoch_1.pth"))) == 1
    assert list(work.glob("*/vis_data/scalars.json")) and list(work.glob("*/vis_data/events.out.tfevents.*"))
    checkpoint = torch.load(work / "epoch_1.pth", weights_only=True)  # callback state is plain types
    assert "ema_state_dict" in checkpoint
    assert any("HookBridge" in key for key in checkpoint["callbacks"])


def test_command_line_overrides_hook_dicts(tmp_path):
    cli = LightningCLI(
        run=False,
        args=[
            "--config",
            str(config_in(tmp_path)),
            "--trainer.callbacks.default_hooks",
            "{checkpoint: {type: CheckpointHook, interval: 2}, logger: null}",
            "--trainer.callbacks.custom_hooks",
            "[{type: CheckInvalidLossHook, interval: 5, priority: HIGHEST}]",
        ],
    )
    bridge = bridge_of(cli)
    hooks = {type(h).__name__: h for h in bridge.hooks}
    assert "LoggerHook" not in hooks and "EMAHook" not in hooks  # null removes; the list replaces
    assert hooks["CheckpointHook"].interval == 2
    assert type(bridge.hooks[0]).__name__ == "CheckInvalidLossHook"


def test_help_shows_hookbridge_arguments(capsys):
    with pytest.raises(SystemExit) as exited:
        LightningCLI(args=["fit", "--trainer.callbacks.help", "lightning_hooks.HookBridge"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for arg in ("default_hooks", "custom_hooks", "work_dir", "experiment_name", "resume", "validate_at_end"):
        assert f"--trainer.callbacks.{arg}" in out
    assert "merged as" in out and "MMEngine merges them" in out  # the Args docstring section


def test_bad_hook_in_yaml_is_named(tmp_path):
    path = config_in(tmp_path)
    cfg = yaml.safe_load(path.read_text())
    cfg["trainer"]["callbacks"][0]["init_args"]["custom_hooks"] = [{"type": "EMAHookk"}]
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match=r"'EMAHookk' is not registered.*Did you mean 'EMAHook'"):
        LightningCLI(run=False, args=["--config", str(path)])


def test_mmengine_config_file_as_callback(tmp_path):
    """LightningCLI users can point at an existing MMEngine config instead of repeating its hooks."""
    from lightning_hooks import MMEngineConfigHookBridge

    path = config_in(tmp_path)
    cfg = yaml.safe_load(path.read_text())
    mm_config = str(CONFIG.parents[1] / "mmengine_config" / "digits_cnn.py")
    cfg["trainer"]["callbacks"] = [
        {
            "class_path": "lightning_hooks.MMEngineConfigHookBridge",
            "init_args": {"config": mm_config, "on_unsupported": "warn", "work_dir": str(tmp_path / "w")},
        }
    ]
    path.write_text(yaml.safe_dump(cfg))
    with pytest.warns(UserWarning, match="VisualizationHook"):
        cli = LightningCLI(run=False, args=["--config", str(path)])
    bridge = bridge_of(cli)
    assert isinstance(bridge, MMEngineConfigHookBridge) and bridge.work_dir == str(tmp_path / "w")
    hooks = {type(h).__name__: h for h in bridge.hooks}
    assert hooks["LoggerHook"].interval == 10 and "EMAHook" in hooks
