"""What users see of validation metrics, and what save_best='auto' chose.

MMEngine shows a validation metric whose name matches the log processor's ``mean_pattern``
(``val_loss``) as the mean over the last ``window_size`` validations, while ``save_best`` uses the
value of each validation. Here the line and the scalars show each validation's value by default;
``LogProcessor(smooth_eval_metrics=True)`` gives MMEngine's exact output (checked against MMEngine's
own LogProcessor on the same message hub).
"""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace

import pytest
import torch
from log_toy import LineCatcher, read_json_lines, run_lh
from mmengine.logging import MessageHub as MMHub
from mmengine.runner import LogProcessor as MMLogProcessor
from torch.utils.data import DataLoader
from toy import ToyDataset, ToyModule, make_trainer
from toy import loaders as toy_loaders

from lightning_hooks import Hook, HookBridge, LogProcessor
from lightning_hooks.message_hub import MessageHub

VAL_LOSSES = [10.0, 7.0, 4.0]


def hub_pair(name: str):
    mm_hub, our_hub = MMHub(f"mm_{name}"), MessageHub(f"lh_{name}")
    for hub in (mm_hub, our_hub):
        for value in VAL_LOSSES:
            hub.update_scalar("val/loss", value)
            hub.update_scalar("val/acc", value / 10)
            for _ in range(4):
                hub.update_scalar("val/time", 0.5)
                hub.update_scalar("val/data_time", 0.25)
    return mm_hub, our_hub


def runner_for(hub):
    loader = list(range(4))
    return SimpleNamespace(
        message_hub=hub,
        iter=11,
        epoch=3,
        max_epochs=3,
        max_iters=12,
        model=torch.nn.Linear(1, 1),
        _train_loop=SimpleNamespace(),
        train_loop=SimpleNamespace(dataloader=loader),
        val_loop=SimpleNamespace(dataloader=loader),
        test_loop=SimpleNamespace(dataloader=loader),
        train_dataloader=loader,
        val_dataloader=loader,
        test_dataloader=loader,
    )


@pytest.mark.parametrize("hierarchy", [False, True])
def test_default_shows_this_validations_value_and_smoothing_is_mmengines(hierarchy):
    mm_hub, our_hub = hub_pair(f"display_{hierarchy}")
    key = "val/loss" if hierarchy else "loss"
    tag, line = LogProcessor(log_with_hierarchy=hierarchy).get_log_after_epoch(runner_for(our_hub), 4, "val")
    assert tag[key] == 4.0 and "loss: 4.0000" in line
    mm_tag, mm_line = MMLogProcessor(log_with_hierarchy=hierarchy).get_log_after_epoch(runner_for(mm_hub), 4, "val")
    assert mm_tag[key] == pytest.approx(7.0)  # MMEngine: the mean of 10, 7, 4
    smooth_tag, smooth_line = LogProcessor(log_with_hierarchy=hierarchy, smooth_eval_metrics=True).get_log_after_epoch(
        runner_for(our_hub), 4, "val"
    )
    assert smooth_line == mm_line
    assert dict(smooth_tag) == pytest.approx(dict(mm_tag))
    # everything else is MMEngine's either way: timings are epoch means, acc its latest value
    assert {k: v for k, v in tag.items() if k != key} == pytest.approx({k: v for k, v in mm_tag.items() if k != key})


def test_smooth_eval_metrics_is_checked():
    with pytest.raises(TypeError, match="smooth_eval_metrics"):
        LogProcessor(smooth_eval_metrics="yes")


class ValLossModule(ToyModule):
    """Logs val_loss = 10, 7, 4 in its three validations (and acc, which the toy logs)."""

    def validation_step(self, batch, batch_idx):
        super().validation_step(batch, batch_idx)
        self.log("val_loss", torch.tensor(VAL_LOSSES[self.current_epoch]))


@pytest.mark.parametrize(("smooth", "shown"), [(False, [10.0, 7.0, 4.0]), (True, [10.0, 8.5, 7.0])])
def test_fit_shows_val_loss_as_chosen_and_save_best_auto_says_what_it_chose(tmp_path, smooth, shown):
    _, bridge, catcher = run_lh(
        tmp_path,
        trainer_kwargs=dict(max_epochs=3, num_sanity_val_steps=0),
        bridge_kwargs=dict(
            default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1, save_best="auto")),
            log_processor=dict(smooth_eval_metrics=smooth),
        ),
        module=ValLossModule(),
    )
    summaries = [m for m in catcher.messages if m.startswith("Epoch(val) [") and "[2/2]" in m]
    assert [float(m.split("val_loss: ")[1].split()[0]) for m in summaries] == shown
    records = read_json_lines(
        os.path.join(bridge.runtime.work_dir, bridge.runtime.timestamp, "vis_data", "scalars.json")
    )
    assert [r["val_loss"] for r in records if "val_loss" in r] == pytest.approx(shown)
    # save_best='auto' took the first metric logged (the toy's acc), and said so once with its rule
    chose = [m for m in catcher.messages if m.startswith("save_best='auto' chose")]
    assert chose == [
        "save_best='auto' chose 'acc', the first metric of this validation (acc, val_loss), with rule 'greater': "
        "a higher value is better. Name the metric in save_best to choose another."
    ]
    assert os.path.basename(bridge.message_hub.get_info("best_ckpt")).startswith("best_acc_epoch_")


class LossFirstModule(ValLossModule):
    """Logs val_loss before acc, as many Lightning modules do: 'auto' then means the lowest loss."""

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", torch.tensor(VAL_LOSSES[self.current_epoch]))
        ToyModule.validation_step(self, batch, batch_idx)


def test_save_best_auto_with_a_loss_first_says_lower_is_better(tmp_path):
    _, bridge, catcher = run_lh(
        tmp_path,
        trainer_kwargs=dict(max_epochs=2, num_sanity_val_steps=0),
        bridge_kwargs=dict(default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1, save_best="auto"))),
        module=LossFirstModule(),
    )
    chose = [m for m in catcher.messages if m.startswith("save_best='auto' chose")]
    assert len(chose) == 1 and "'val_loss'" in chose[0] and "rule 'less': a lower value is better" in chose[0]
    assert bridge.message_hub.get_info("best_ckpt").endswith("best_val_loss_epoch_2.pth")
    assert logging.getLogger("lightning_hooks").level <= logging.INFO


class TwoLoaderModule(ToyModule):
    """Validates and tests on two dataloaders (2 and 3 batches): Lightning names their metrics ``acc/dataloader_idx_N``."""

    def train_dataloader(self):
        return toy_loaders()[0]

    def _two(self):
        return [DataLoader(ToyDataset(12), batch_size=6), DataLoader(ToyDataset(9), batch_size=3)]

    val_dataloader = test_dataloader = _two

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        super().validation_step(batch, batch_idx)

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        super().test_step(batch, batch_idx)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_several_evaluation_dataloaders_are_one_loop_and_every_metric_arrives(tmp_path):
    class Record(Hook):
        def __init__(self) -> None:
            self.seen: list[tuple[str, int]] = []
            self.metrics: list[dict] = []

        def before_val_iter(self, runner, batch_idx, data_batch=None):
            self.seen.append(("val", batch_idx))

        def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.seen.append(("test", batch_idx))

        def after_val_epoch(self, runner, metrics=None):
            self.metrics.append(dict(metrics or {}))

        def after_test_epoch(self, runner, metrics=None):
            self.metrics.append(dict(metrics or {}))

    record = Record()
    bridge = HookBridge(
        default_hooks=dict(
            checkpoint=dict(type="CheckpointHook", interval=1, save_best="acc/dataloader_idx_1"),
            logger=dict(type="LoggerHook", interval=1),
        ),
        custom_hooks=[record],
    )
    catcher_logger = logging.getLogger("lightning_hooks")
    catcher = LineCatcher()
    catcher_logger.addHandler(catcher)
    try:
        trainer = make_trainer(tmp_path, bridge, max_epochs=1, num_sanity_val_steps=0)
        module = TwoLoaderModule()
        trainer.fit(module)
        validated = {k: float(v) for k, v in trainer.callback_metrics.items()}
        trainer.test(module)
    finally:
        catcher_logger.removeHandler(catcher)
    assert record.seen == [("val", i) for i in range(5)] + [("test", i) for i in range(5)]
    assert sorted(record.metrics[0]) == ["acc/dataloader_idx_0", "acc/dataloader_idx_1"]
    assert record.metrics[0] == pytest.approx(validated)
    assert sorted(record.metrics[1]) == ["acc/dataloader_idx_0", "acc/dataloader_idx_1"]
    assert [m.split("  ")[0] for m in catcher.messages if m.startswith("Epoch(val) [1][")] == [
        f"Epoch(val) [1][{i}/5]" for i in (1, 2, 3, 4, 5, 5)
    ]
    assert os.path.basename(bridge.message_hub.get_info("best_ckpt")) == "best_acc_dataloader_idx_1_epoch_1.pth"
