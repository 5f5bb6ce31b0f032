"""Real OpenMMLab configs (tests/data/openmmlab_configs, Apache-2.0) build and train with their recipe.

For each config: ``load_mmengine_config`` reads it as ``mmengine.Config`` does;
``HookBridge.from_mmengine_config`` builds in the default mode; the key table gives every
top-level key its role and the warning names exactly the config's own variables; and a
stand-in LightningModule trains 2 epochs on the toy data with the config's
``optim_wrapper``/``param_scheduler`` (built for the config's full length) and its hooks.
Configs with OpenMMLab training hooks fail in the default mode naming them all, and
train with them left out in ``on_unsupported='warn'``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from toy import loaders, make_trainer

from lightning_hooks import HookBridge, UnsupportedHookError, mmengine_optimizers
from lightning_hooks.config import trainer_kwargs_from_mmengine_config
from lightning_hooks.config_keys import classify_config_keys
from lightning_hooks.config_reader import load_mmengine_config

pytestmark = pytest.mark.filterwarnings("ignore:.*does not have many workers.*")

DATA = Path(__file__).resolve().parent / "data" / "openmmlab_configs"

#: config -> the top-level keys that are the config's own variables (named in the warning)
BUILDS = {
    "mmpretrain/resnet/resnet50_8xb32_in1k.py": [],
    "mmpretrain/convnext/convnext-tiny_32xb128_in1k.py": ["bgr_mean", "bgr_std"],
    "mmpretrain/swin_transformer/swin-tiny_16xb64_in1k.py": ["bgr_mean", "bgr_std"],
    "mmdet/faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py": [],
    "mmdet/retinanet/retinanet_r50_fpn_1x_coco.py": ["img_scales"],
    "mmdet/mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py": [],
    "mmseg/pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py": ["crop_size", "img_ratios", "norm_cfg", "optimizer"],
    "mmseg/deeplabv3plus/deeplabv3plus_r50-d8_4xb2-40k_cityscapes-512x1024.py": [
        "crop_size",
        "img_ratios",
        "norm_cfg",
        "optimizer",
    ],
    "mmseg/segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py": [
        "checkpoint",
        "crop_size",
        "img_ratios",
        "norm_cfg",
        "optimizer",
    ],
}

#: config -> the hooks the default mode names (OpenMMLab training hooks to port)
NEEDS_PORTS = {
    "mmpretrain/mobileone/mobileone-s4_8xb32_in1k.py": ["SwitchRecipeHook"],
    "mmpretrain/regnet/regnetx-400mf_8xb128_in1k.py": ["PreciseBNHook"],
    "mmdet/rtmdet/rtmdet_tiny_8xb32-300e_coco.py": ["PipelineSwitchHook"],
    "mmdet/yolox/yolox_s_8xb8-300e_coco.py": ["YOLOXModeSwitchHook", "SyncNormHook"],
}

ROLES = {
    "default_hooks": "bridge",
    "default_scope": "bridge",
    "env_cfg": "trainer",
    "train_cfg": "trainer",
    "optim_wrapper": "optimizers",
    "param_scheduler": "optimizers",
    "model": "yours",
    "train_dataloader": "yours",
    "val_evaluator": "yours",
}


class StandIn(pl.LightningModule):
    """A tiny model with the parts recipes single out: backbone with norms, a neck, a head, biases."""

    def __init__(self, cfg: dict, lengths: dict) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Conv2d(2, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1, groups=4))
        self.neck = nn.Sequential(nn.Flatten(), nn.LayerNorm(4))
        self.head = nn.Linear(4, 1)
        self.cfg = cfg
        self.lengths = lengths
        self.lrs: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.neck(self.backbone(x[:, :, None, None]))).squeeze(-1)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        return ((self(batch["inputs"]) - batch["label"]) ** 2).mean()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.log("acc", ((self(batch["inputs"]) > 0.5).float() == batch["label"]).float().mean())

    def configure_optimizers(self) -> Any:
        return mmengine_optimizers(self, self.cfg, **self.lengths)


def full_lengths(cfg: dict) -> dict:
    """The config's own training length, so that its schedules are built as for the full run."""
    train_cfg = cfg["train_cfg"]
    if "max_iters" in train_cfg:
        return dict(max_epochs=1, max_iters=int(train_cfg["max_iters"]))
    return dict(max_epochs=int(train_cfg["max_epochs"]), max_iters=int(train_cfg["max_epochs"]) * 4)


def two_epochs(path: Path, tmp_path: Path, bridge: HookBridge) -> StandIn:
    cfg = load_mmengine_config(path)
    kwargs = trainer_kwargs_from_mmengine_config(path)
    for key in ("max_steps", "max_epochs", "val_check_interval", "check_val_every_n_epoch", "default_root_dir"):
        kwargs.pop(key, None)
    module = StandIn(cfg, full_lengths(cfg))
    trainer = make_trainer(tmp_path, bridge, max_epochs=2, **kwargs)
    trainer.fit(module, *loaders())
    assert trainer.current_epoch == 2 and trainer.global_step * trainer.accumulate_grad_batches == 8
    return module


def test_the_data_holds_real_configs():
    assert len(BUILDS) + len(NEEDS_PORTS) >= 8
    assert (DATA / "README.md").read_text().count("Apache") >= 1


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_config_builds_and_trains_two_epochs(name, tmp_path):
    from mmengine import Config

    path = DATA / name
    cfg = load_mmengine_config(path)
    assert cfg == Config.fromfile(str(path)).to_dict()

    rows = {row.key: row.role for row in classify_config_keys(cfg)}
    assert set(rows) == {key for key in cfg if not key.startswith("_")}
    assert {key: rows[key] for key in ROLES if key in rows} == {key: role for key, role in ROLES.items() if key in rows}
    assert sorted(key for key, role in rows.items() if role == "unknown") == BUILDS[name]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bridge = HookBridge.from_mmengine_config(path, work_dir=str(tmp_path / "work"))
    messages = [str(w.message) for w in caught if "MMEngine config" in str(w.message)]
    if BUILDS[name]:
        assert len(messages) == 1 and messages[0].endswith(", ".join(BUILDS[name]))
    else:
        assert messages == []
    assert not any("VisualizationHook" in str(w.message) for w in caught)  # the configs' hooks do not draw

    module = two_epochs(path, tmp_path, bridge)
    lrs = module.lrs
    assert len(lrs) == 8
    if name != "mmpretrain/resnet/resnet50_8xb32_in1k.py":  # the others warm up or decay every iteration
        assert lrs[0] != lrs[-1]
    else:  # MultiStepLR at epochs 30, 60, 90: 2 epochs keep the base lr
        assert lrs == [0.1] * 8
    assert (tmp_path / "work" / Path(name).name).is_file()  # the merged config, dumped as MMEngine does


@pytest.mark.parametrize("name", sorted(NEEDS_PORTS))
def test_config_with_training_hooks_names_them_then_trains_without(name, tmp_path):
    path = DATA / name
    with pytest.raises(UnsupportedHookError) as info:
        HookBridge.from_mmengine_config(path, work_dir=str(tmp_path / "work"))
    assert sorted(u.type for u in info.value.unsupported) == sorted(NEEDS_PORTS[name])
    assert "port recipe" in str(info.value)
    with pytest.warns(UserWarning, match=NEEDS_PORTS[name][0]):
        bridge = HookBridge.from_mmengine_config(path, on_unsupported="warn", work_dir=str(tmp_path / "work"))
    two_epochs(path, tmp_path, bridge)


def test_mobileone_base_assignment_gives_the_first_stage_pipeline():
    """mobileone-s4 sets `_base_.train_dataloader.dataset.pipeline = train_pipeline_1e` (crop 160)."""
    cfg = load_mmengine_config(DATA / "mmpretrain/mobileone/mobileone-s4_8xb32_in1k.py")
    crop = next(t for t in cfg["train_dataloader"]["dataset"]["pipeline"] if t["type"] == "RandomResizedCrop")
    assert crop["scale"] == 160


@pytest.mark.slow
def test_example_trains_with_its_configs_optimizer_and_schedule(tmp_path):
    import importlib.util

    example = DATA.parents[2] / "examples" / "mmengine_config"
    spec = importlib.util.spec_from_file_location("mmengine_config_train_recipe", example / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.warns(UserWarning, match="VisualizationHook"):
        trainer = module.train(str(example / "digits_cnn.py"), epochs=1, work_dir=str(tmp_path))
    schedulers = [type(c.scheduler).__name__ for c in trainer.lr_scheduler_configs]
    assert schedulers == ["LinearLR", "CosineAnnealingLR"]
    groups = trainer.optimizers[0].param_groups
    assert len(groups) > 1 and {g["weight_decay"] for g in groups} == {0.0, 0.0001}  # paramwise_cfg
    assert trainer.lr_scheduler_configs[1].scheduler.end == trainer.num_training_batches  # converted to iterations
    assert (tmp_path / "digits_cnn.py").is_file()
