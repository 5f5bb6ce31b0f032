"""MMEngine 0.10.7 ``tests/test_runner/test_log_processor.py`` against :class:`LogProcessor`.

Same mocked runner (``MagicMock`` with MMEngine's counters and loaders), same
expected lines. MMEngine's private ``_get_cur_loop(runner, mode).dataloader`` is
``_get_dataloader_size(runner, mode)`` here.
"""

from __future__ import annotations

import copy
from unittest.mock import MagicMock, patch

import numpy as np
import pytest
import torch

from lightning_hooks import HistoryBuffer, LogProcessor, MessageHub

from .suite_helpers import epoch_based, iter_based, run

CUDA = torch.cuda.is_available()


@pytest.fixture
def runner() -> MagicMock:
    runner = MagicMock()
    runner.epoch, runner.max_epochs, runner.iter, runner.max_iters = 1, 10, 10, 50
    runner.train_dataloader, runner.val_dataloader, runner.test_dataloader = [0] * 20, [0] * 10, [0] * 5
    runner.train_loop.dataloader, runner.val_loop.dataloader, runner.test_loop.dataloader = [0] * 20, [0] * 10, [0] * 5
    hub = MessageHub("mmengine_suite_log_processor")
    for i in range(10):
        hub.update_scalar("train/loss", 10 - i)
    for i in range(10):
        hub.update_scalar("val/acc", i * 0.1)
    runner.message_hub = hub
    return runner


def test_init():
    processor = LogProcessor(window_size=10, by_epoch=True, custom_cfg=None)
    assert processor.by_epoch and processor.window_size == 10 and processor.custom_cfg == []


def test_check_custom_cfg():
    with pytest.raises(AssertionError):
        LogProcessor(by_epoch=False, custom_cfg=[dict(data_src="loss", window_size="epoch")])
    with pytest.raises(AssertionError):
        LogProcessor(custom_cfg=[dict(data_src="loss", log_name="loss_1"), dict(data_src="loss", log_name="loss_1")])
    with pytest.raises(AssertionError):
        LogProcessor(custom_cfg=[dict(data_src="loss"), dict(data_src="loss")])
    LogProcessor(
        custom_cfg=[
            dict(data_src="loss_cls", window_size=100, method_name="min"),
            dict(data_src="loss", log_name="loss_min", method_name="max"),
            dict(data_src="loss", log_name="loss_max", method_name="max"),
        ]
    )


def test_parse_windows_size(runner):
    processor = LogProcessor()
    assert (
        processor._parse_windows_size(runner, 1, [dict(data_src="loss_cls", window_size="epoch")])[0]["window_size"]
        == 2
    )
    assert (
        processor._parse_windows_size(runner, 1, [dict(data_src="loss_cls", window_size="global")])[0]["window_size"]
        == 11
    )
    assert (
        processor._parse_windows_size(runner, 1, [dict(data_src="loss_cls", window_size=100)])[0]["window_size"] == 100
    )
    with pytest.raises(TypeError):
        processor._parse_windows_size(runner, 1, [dict(data_src="loss_cls", window_size=[])])


CASES = [(b, m, h) for m in ("train", "val", "test") for b in (True, False) for h in (True, False)]


@pytest.mark.parametrize("by_epoch, mode, log_with_hierarchy", CASES)
def test_get_log_after_iter(runner, by_epoch, mode, log_with_hierarchy):
    processor = LogProcessor(by_epoch=by_epoch, log_with_hierarchy=log_with_hierarchy)
    processor._get_max_memory = MagicMock(return_value="100")
    runner.message_hub.update_info("eta", 40)
    logs = (
        dict(lr=0.1, time=1.0, data_time=1.0, loss_cls=1.0)
        if mode == "train"
        else dict(time=1.0, data_time=1.0, loss_cls=1.0)
    )
    processor._collect_scalars = lambda *args, **kwargs: copy.deepcopy(logs)
    tag, out = processor.get_log_after_iter(runner, 1, mode)
    size = processor._get_dataloader_size(runner, mode)
    if by_epoch:
        if mode in ("train", "val"):
            expected = f"Epoch({mode})  [{processor._get_epoch(runner, mode)}][ 2/{size}]  "
        else:
            expected = f"Epoch({mode}) [2/{size}]  "
    elif mode == "train":
        expected = f"Iter({mode}) [11/{runner.max_iters}]  "
    elif mode == "val":
        expected = f"Iter({mode}) [ 2/{size}]  "
    else:
        expected = f"Iter({mode}) [2/{size}]  "
    expected += f"lr: {logs['lr']:.4e}  " if mode == "train" else "  "
    expected += f"eta: 0:00:40  time: {logs['time']:.4f}  data_time: {logs['data_time']:.4f}  "
    if CUDA:
        expected += "memory: 100  "
    if mode == "train":
        expected += f"loss_cls: {logs['loss_cls']:.4f}"
    if by_epoch or not CUDA:
        assert out == expected
    if by_epoch and mode in ("train", "val"):
        assert "epoch" in tag
    assert "iter" in tag


LOG_VAL_CASES = [(True, "val", True), (True, "val", False), (False, "val", True), (False, "val", False)]
LOG_VAL_CASES += [(True, "test", True), (False, "test", False)]


@pytest.mark.parametrize("by_epoch, mode, log_with_hierarchy", LOG_VAL_CASES)
def test_log_val(runner, by_epoch, mode, log_with_hierarchy):
    processor = LogProcessor(by_epoch=by_epoch, log_with_hierarchy=log_with_hierarchy)
    processor._collect_scalars = MagicMock(return_value=dict(accuracy=0.9, data_time=1.0))
    processor._collect_non_scalars = MagicMock(
        return_value=dict(recall={"cat": 1, "dog": 0}, cm=torch.tensor([1, 2, 3]))
    )
    _, out = processor.get_log_after_epoch(runner, 2, mode)
    metrics = "accuracy: 0.9000  recall: {'cat': 1, 'dog': 0}  cm: \ntensor([1, 2, 3])\n  data_time: 1.0000"
    if by_epoch:
        assert out == ("Epoch(test) [5/5]    " if mode == "test" else "Epoch(val) [1][10/10]    ") + metrics
    else:
        assert out == ("Iter(test) [5/5]    " if mode == "test" else "Iter(val) [10/10]    ") + metrics


def test_collect_scalars(runner):
    counts = np.ones(100)
    time_scalars, loss_cls_scalars, lr_scalars, metric_scalars = (np.random.randn(100) for _ in range(4))
    custom_cfg = [dict(data_src="time", method_name="max", log_name="time_max")]
    processor = LogProcessor(custom_cfg=custom_cfg)
    runner.message_hub._log_scalars = {
        "train/time": HistoryBuffer(time_scalars, counts),
        "lr": HistoryBuffer(lr_scalars, counts),
        "train/loss_cls": HistoryBuffer(loss_cls_scalars, counts),
        "val/metric": HistoryBuffer(metric_scalars, counts),
    }
    tag = processor._collect_scalars(copy.deepcopy(custom_cfg), runner, mode="train")
    assert list(tag.keys()) == ["time", "loss_cls", "time_max"]
    assert tag["time"] == time_scalars[-10:].mean()
    assert tag["time_max"] == time_scalars.max()
    assert tag["loss_cls"] == loss_cls_scalars[-10:].mean()
    tag = processor._collect_scalars(copy.deepcopy(custom_cfg), runner, mode="val")
    assert list(tag.keys()) == ["metric"] and tag["metric"] == metric_scalars[-1]
    tag = processor._collect_scalars(copy.deepcopy(custom_cfg), runner, mode="train", reserve_prefix=True)
    assert list(tag.keys()) == ["train/time", "train/loss_cls", "train/time_max"]
    assert tag["train/time"] == time_scalars[-10:].mean()
    assert tag["train/time_max"] == time_scalars.max()
    assert tag["train/loss_cls"] == loss_cls_scalars[-10:].mean()


def test_collect_non_scalars(runner):
    metric1, metric2 = np.random.rand(10), torch.tensor(10)
    runner.message_hub._runtime_info = {"test/metric1": metric1, "test/metric2": metric2}
    tag = LogProcessor()._collect_non_scalars(runner, mode="test")
    assert list(tag.keys()) == ["metric1", "metric2"]
    assert tag["metric1"] is metric1 and tag["metric2"] is metric2


@patch("torch.cuda.max_memory_allocated", MagicMock())
@patch("torch.cuda.reset_peak_memory_stats", MagicMock())
def test_get_max_memory():
    runner = MagicMock()
    runner.world_size = 1
    runner.model = torch.nn.Linear(1, 1)
    LogProcessor()._get_max_memory(runner)
    torch.cuda.max_memory_allocated.assert_called()
    torch.cuda.reset_peak_memory_stats.assert_called()


def test_get_iter(runner):
    processor = LogProcessor()
    assert processor._get_iter(runner, 1) == 2
    processor.by_epoch = False
    assert processor._get_iter(runner, 1) == 11


def test_get_epoch(runner):
    processor = LogProcessor()
    assert processor._get_epoch(runner, "train") == 2
    assert processor._get_epoch(runner, "val") == 1
    with pytest.raises(ValueError):
        processor._get_epoch(runner, "test")


def test_get_cur_loop(runner):
    processor = LogProcessor()
    assert processor._get_dataloader_size(runner, "train") == 20
    assert processor._get_dataloader_size(runner, "val") == 10
    assert processor._get_dataloader_size(runner, "test") == 5


def test_with_runner(tmp_path):
    epoch_cfg = dict(
        custom_cfg=[dict(data_src="time", window_size="epoch", log_name="iter_time", method_name="mean")],
        log_with_hierarchy=True,
    )
    iter_cfg = dict(
        by_epoch=False,
        custom_cfg=[dict(data_src="time", window_size=100, log_name="iter_time", method_name="mean")],
        log_with_hierarchy=True,
    )
    logger = dict(logger=dict(type="LoggerHook", interval=1))
    for name, cfg in (
        ("epoch", epoch_based(tmp_path / "epoch", log_processor=epoch_cfg, default_hooks=logger, log_level="INFO")),
        ("iter", iter_based(tmp_path / "iter", log_processor=iter_cfg, log_level="INFO")),
    ):
        bridge, trainer = run(tmp_path / name, cfg)
        trainer.validate(trainer.lightning_module, trainer.val_dataloaders)
        trainer.test(trainer.lightning_module, trainer.val_dataloaders)
        log = (tmp_path / name / bridge.runner.timestamp / f"{bridge.runner.timestamp}.log").read_text()
        assert "iter_time" in log
