"""The rest of an MMEngine config: validation schedule, visualization and downstream hooks, load_from,
the merged config dump, the default work_dir, randomness and environment, and the key table."""

from __future__ import annotations

import logging
import re
import warnings
from typing import Any

import pytest
import torch
from toy import ToyModule, loaders, make_trace_hook, make_trainer, run_mmengine

from lightning_hooks import HookBridge, UnsupportedHookError
from lightning_hooks.config import (
    bridge_kwargs_from_mmengine_config,
    seed_from_mmengine_config,
    trainer_kwargs_from_mmengine_config,
)
from lightning_hooks.config_keys import classify_config_keys
from lightning_hooks.config_reader import load_mmengine_config
from lightning_hooks.hooks import Hook, LoadFromHook, ValIntervalHook

NO_EXTRAS = dict(checkpoint=None, logger=None)


class Listen(logging.Handler):
    """Keeps the messages of the package logger (which does not propagate to the root logger)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> Listen:
        logging.getLogger("lightning_hooks").addHandler(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        logging.getLogger("lightning_hooks").removeHandler(self)

    @property
    def text(self) -> str:
        return "\n".join(self.messages)


# ----------------------------------------------------------------------------- val_begin, dynamic_intervals
def validated_at(log: list) -> list[tuple[int, int]]:
    return [(entry[1], entry[2]) for entry in log if entry[0] == "after_val_epoch"]


def lightning_validations(tmp_path: Any, cfg: dict) -> list[tuple[int, int]]:
    log: list = []
    kwargs = bridge_kwargs_from_mmengine_config(cfg)
    kwargs["default_hooks"] = dict(NO_EXTRAS)
    kwargs["custom_hooks"].append(make_trace_hook(Hook, log))
    trainer = make_trainer(tmp_path / "lh", HookBridge(**kwargs), **trainer_kwargs_from_mmengine_config(cfg))
    trainer.fit(ToyModule(), *loaders())
    return validated_at(log)


def mmengine_validations(tmp_path: Any, cfg: dict, infinite: bool = False) -> list[tuple[int, int]]:
    from mmengine.hooks import Hook as MMHook

    log: list = []
    run_mmengine(
        tmp_path / "mm",
        [make_trace_hook(MMHook, log)],
        train_cfg=cfg["train_cfg"],
        default_hooks=dict(NO_EXTRAS),
        infinite=infinite,
    )
    return validated_at(log)


@pytest.mark.parametrize(
    "train_cfg",
    [
        dict(by_epoch=True, max_epochs=6, val_interval=1, val_begin=3),
        dict(by_epoch=True, max_epochs=7, val_interval=3, dynamic_intervals=[(4, 1)]),
        # MMEngine picks the interval after epoch n by n + 1: it validates after epoch 4 already
        dict(by_epoch=True, max_epochs=8, val_interval=10, dynamic_intervals=[(5, 1)]),
    ],
    ids=["val_begin", "dynamic_intervals", "dynamic_intervals_milestone_ahead"],
)
def test_epoch_validation_schedule_matches_mmengine(tmp_path, train_cfg):
    cfg = dict(train_cfg=train_cfg)
    ours = lightning_validations(tmp_path, cfg)
    assert ours == mmengine_validations(tmp_path, cfg)
    assert 0 < len(ours) < train_cfg["max_epochs"]


@pytest.mark.parametrize(
    ("train_cfg", "iterations"),
    [
        (dict(val_interval=4, val_begin=5, dynamic_intervals=[(8, 2)]), [8, 10, 12]),
        (dict(val_interval=4, dynamic_intervals=[(7, 1)]), [4, 6, 7, 8, 9, 10, 11, 12]),  # 6: by n + 1 again
    ],
    ids=["val_begin", "milestone_ahead"],
)
def test_iteration_validation_schedule_matches_mmengine(tmp_path, train_cfg, iterations):
    cfg = dict(train_cfg=dict(type="IterBasedTrainLoop", max_iters=12, **train_cfg))
    ours = lightning_validations(tmp_path, cfg)
    assert ours == mmengine_validations(tmp_path, cfg, infinite=True)
    assert [it for _, it in ours] == iterations


@pytest.mark.parametrize(
    "train_cfg",
    [
        dict(by_epoch=True, max_epochs=3, val_interval=1, val_begin=4),
        dict(type="IterBasedTrainLoop", max_iters=8, val_interval=4, val_begin=10),
    ],
    ids=["epochs", "iterations"],
)
def test_a_val_begin_past_the_end_never_validates(tmp_path, train_cfg):
    """MMEngine's loops check val_begin for the last step too (mmdet's masktrack-rcnn 12e sets val_begin=13)."""
    cfg = dict(train_cfg=train_cfg)
    ours = lightning_validations(tmp_path, cfg)
    assert ours == mmengine_validations(tmp_path, cfg, infinite="max_iters" in train_cfg) == []


def test_val_interval_hook_checks_arguments():
    with pytest.raises(ValueError, match="milestones must increase"):
        ValIntervalHook(dynamic_intervals=[(5, 1), (3, 2)])
    with pytest.raises(ValueError, match="val_begin must be an int >= 1, got 0"):
        ValIntervalHook(val_begin=0)
    with pytest.raises(ValueError, match=r"\(milestone, interval\) pairs of int, got \(True, True\)"):
        ValIntervalHook(dynamic_intervals=[(True, True)])


# ------------------------------------------------------------------------------------------ hooks
def test_visualization_hooks_are_skipped_never_an_error():
    cfg = dict(
        default_hooks=dict(visualization=dict(type="DetVisualizationHook", draw=True)),
        custom_hooks=[dict(type="mmseg.SegVisualizationHook", enable=False)],
    )
    with pytest.warns(UserWarning, match=r"default_hooks.visualization \(DetVisualizationHook\)") as caught:
        bridge = HookBridge.from_mmengine_config(cfg)
    assert "SegVisualizationHook" not in "".join(str(w.message) for w in caught)  # not drawing: info only
    assert not any("Visualization" in type(h).__name__ for h in bridge.hooks)
    for quiet in (dict(type="SegVisualizationHook"), dict(type="VisualizationHook", enable=False)):  # the defaults
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            HookBridge.from_mmengine_config(dict(default_hooks=dict(visualization=quiet)))


def test_downstream_and_ema_hooks_named_together():
    cfg = dict(
        custom_hooks=[
            dict(type="EMAHook", ema_type="ExpMomentumEMA", momentum=0.0002),  # built in: fine
            dict(type="EMAHook", ema_type="MyEMA"),
            dict(type="PipelineSwitchHook", switch_epoch=280, switch_pipeline=[]),
            dict(type="mmdet.YOLOXModeSwitchHook", num_last_epochs=15),
            dict(type="SyncNormHook"),
            dict(type="PreciseBNHook", num_samples=8192),
            dict(type="SwitchRecipeHook", schedule=[]),
        ]
    )
    with pytest.raises(UnsupportedHookError) as info:
        HookBridge.from_mmengine_config(cfg)
    message = str(info.value)
    assert len(info.value.unsupported) == 6
    for name in (
        "MyEMA",
        "PipelineSwitchHook",
        "YOLOXModeSwitchHook",
        "SyncNormHook",
        "PreciseBNHook",
        "SwitchRecipeHook",
    ):
        assert name in message
    assert message.count("port recipe") == 5 and "SyncBuffersHook" in message


# -------------------------------------------------------------------------------------- load_from
class Wrapped(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = ToyModule()


def test_load_from_maps_prefixes_and_reports_keys(tmp_path):
    source = ToyModule()
    with torch.no_grad():
        source.linear.weight.fill_(3.0)
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    state["module.extra.weight"] = torch.zeros(1)
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": state, "meta": {"epoch": 3}}, path)

    module = ToyModule()
    trainer = make_trainer(
        tmp_path, HookBridge(default_hooks=dict(NO_EXTRAS), custom_hooks=[LoadFromHook(str(path))]), max_epochs=1
    )
    hook = next(h for h in trainer.callbacks[0].hooks if isinstance(h, LoadFromHook))
    with Listen() as listen:
        trainer.validate(module, loaders()[1])
    assert torch.all(module.linear.weight == 3.0)
    assert hook.loaded == ([], ["extra.weight"])
    assert "unexpected key in source state_dict: extra.weight" in listen.text

    wrapped = Wrapped()
    hook = LoadFromHook(str(path), revise_keys=[(r"^module\.", "model.")])
    from lightning_hooks.hooks.load_from_hook import load_weights

    missing, unexpected = load_weights(wrapped, str(path), hook.revise_keys)
    assert missing == [] and unexpected == ["model.extra.weight"]
    assert torch.all(wrapped.model.linear.weight == 3.0)


def test_load_from_in_config_becomes_the_hook(tmp_path):
    kwargs = bridge_kwargs_from_mmengine_config(dict(load_from="ckpt.pth"))
    assert dict(type="LoadFromHook", filename="ckpt.pth") in kwargs["custom_hooks"]
    own = dict(type="LoadFromHook", filename="ckpt.pth", revise_keys=[("^", "model.")])
    kwargs = bridge_kwargs_from_mmengine_config(dict(load_from="ckpt.pth", custom_hooks=[own]))
    assert [h for h in kwargs["custom_hooks"] if isinstance(h, dict)] == [own]  # the config's own, with revise_keys
    with pytest.warns(UserWarning, match=r"trainer.fit\(ckpt_path='ckpt.pth'\)"):
        kwargs = bridge_kwargs_from_mmengine_config(dict(load_from="ckpt.pth", resume=True))
    assert not any(isinstance(h, dict) and h.get("type") == "LoadFromHook" for h in kwargs["custom_hooks"])


def test_load_from_refuses_pickled_objects(tmp_path):
    path = tmp_path / "mm.pth"
    torch.save({"state_dict": {}, "message_hub": logging.getLogger("x")}, path)
    from lightning_hooks.hooks.load_from_hook import load_weights

    with pytest.raises(ValueError, match="weights_only loading refuses"):
        load_weights(ToyModule(), str(path))


# ------------------------------------------------------------------------- files, work_dir, key table
def test_base_attribute_assignment_as_mmengine(tmp_path):
    from mmengine import Config

    (tmp_path / "base.py").write_text(
        "train_dataloader = dict(batch_size=2, dataset=dict(pipeline=[dict(type='Crop', scale=224)]))\n"
    )
    (tmp_path / "child.py").write_text(
        "_base_ = ['./base.py']\n"
        "pipeline = [dict(type='Crop', scale=160)]\n"
        "_base_.train_dataloader.dataset.pipeline = pipeline\n"
    )
    ours = load_mmengine_config(tmp_path / "child.py")
    assert ours == Config.fromfile(str(tmp_path / "child.py")).to_dict()
    assert ours["train_dataloader"]["dataset"]["pipeline"][0]["scale"] == 160


def test_default_work_dir_and_dumped_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "my_recipe.py"
    path.write_text(
        "default_hooks = dict(checkpoint=None, logger=None)\n"
        "train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)\n"
        "lr = 0.1\n"
    )
    with pytest.warns(UserWarning, match="not read by lightning_hooks .*: lr"):
        bridge = HookBridge.from_mmengine_config(path)
    assert bridge.work_dir.endswith("work_dirs/my_recipe")
    assert trainer_kwargs_from_mmengine_config(path)["default_root_dir"] == "work_dirs/my_recipe"
    trainer = make_trainer(tmp_path, bridge, **trainer_kwargs_from_mmengine_config(path))
    trainer.fit(ToyModule(), *loaders())
    dumped = tmp_path / "work_dirs" / "my_recipe" / "my_recipe.py"
    assert load_mmengine_config(dumped) == load_mmengine_config(path)


def test_key_table_classifies_every_key():
    cfg = dict(
        default_hooks={},
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        model=dict(type="ResNet"),
        val_evaluator=dict(type="Accuracy"),
        model_wrapper_cfg=dict(type="MMDistributedDataParallel"),
        find_unused_parameters=True,
        sync_bn="torch",
        base_lr=0.01,
        default_scope="mmpretrain",
    )
    roles = {row.key: row.role for row in classify_config_keys(cfg)}
    assert roles == {
        "default_hooks": "bridge",
        "default_scope": "bridge",
        "train_cfg": "trainer",
        "optim_wrapper": "optimizers",
        "model": "yours",
        "val_evaluator": "yours",
        "model_wrapper_cfg": "not used",
        "find_unused_parameters": "not used",  # read by MMEngine's Runner: named with Lightning's counterpart
        "sync_bn": "not used",
        "base_lr": "unknown",
    }
    with Listen() as listen:
        with pytest.warns(UserWarning) as caught:
            HookBridge.from_mmengine_config(cfg)
    text = str(caught[0].message)
    assert "model_wrapper_cfg (Lightning's strategy wraps the model" in text and text.endswith("base_lr")
    assert "find_unused_parameters (Trainer(strategy='ddp_find_unused_parameters_true'))" in text
    assert "sync_bn (Trainer(sync_batchnorm=True))" in text
    assert re.search(r"optim_wrapper +optimizers +mmengine_optimizers", listen.text)


def test_environment_and_randomness():
    assert trainer_kwargs_from_mmengine_config(dict(env_cfg=dict(cudnn_benchmark=True))) == dict(benchmark=True)
    # MMEngine seeds after setting up the environment: deterministic=True turns cudnn.benchmark off again
    cfg = dict(env_cfg=dict(cudnn_benchmark=True), randomness=dict(seed=7, deterministic=True))
    assert trainer_kwargs_from_mmengine_config(cfg) == dict(benchmark=False, deterministic=True)
    assert seed_from_mmengine_config(cfg) == 7
    first = torch.rand(3)
    seed_from_mmengine_config(cfg)
    assert torch.equal(first, torch.rand(3))
    assert seed_from_mmengine_config(dict(randomness=dict(deterministic=True))) is None
    with pytest.raises(ValueError, match=r"randomness: unknown keys \['sed'\]"):
        seed_from_mmengine_config(dict(randomness=dict(sed=1)))


def test_train_cfg_loop_types():
    """MMEngine's own loop types decide the counting; another loop type is named (Lightning's loop trains)
    and counted by the length it gives; ``type`` with ``by_epoch`` is MMEngine's error too."""
    iter_based = trainer_kwargs_from_mmengine_config(
        dict(train_cfg=dict(type="mmengine.IterBasedTrainLoop", max_iters=8))
    )
    assert iter_based["max_steps"] == 8 and iter_based["max_epochs"] == -1
    with pytest.warns(UserWarning, match=r"train_cfg.type='mmdet.MyIterLoop' is not run"):
        custom = trainer_kwargs_from_mmengine_config(dict(train_cfg=dict(type="mmdet.MyIterLoop", max_iters=8)))
    assert custom["max_steps"] == 8
    with pytest.warns(UserWarning, match=r"train_cfg.type='MyEpochLoop' is not run"):
        custom = trainer_kwargs_from_mmengine_config(dict(train_cfg=dict(type="MyEpochLoop", max_epochs=3)))
    assert custom["max_epochs"] == 3
    with pytest.raises(ValueError, match=r"only one of 'type' or 'by_epoch'"):
        trainer_kwargs_from_mmengine_config(
            dict(train_cfg=dict(type="EpochBasedTrainLoop", by_epoch=True, max_epochs=2))
        )
    with pytest.raises(ValueError, match=r"train_cfg needs max_epochs .* or max_iters"):
        trainer_kwargs_from_mmengine_config(dict(train_cfg=dict(type="MyLoop")))
    with pytest.raises(ValueError, match=r"an iteration-based loop and needs max_iters"):
        trainer_kwargs_from_mmengine_config(dict(train_cfg=dict(by_epoch=False, val_interval=2)))
    with pytest.raises(TypeError, match=r"IterBasedTrainLoop takes no argument 'max_epochs'; valid: \['max_iters'"):
        trainer_kwargs_from_mmengine_config(dict(train_cfg=dict(by_epoch=False, max_epochs=2)))
