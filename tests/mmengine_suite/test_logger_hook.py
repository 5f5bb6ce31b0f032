"""MMEngine 0.10.7 ``tests/test_hooks/test_logger_hook.py`` against :class:`LoggerHook`.

Mocked-runner cases use a ``MagicMock`` runner as upstream, with ``rank = 0``
(MMEngine's hook leaves ranks to its logger and visualizer; this one checks
``runner.rank``). MMEngine writes scalars through ``runner.visualizer.add_scalars``;
this hook writes through its writers, which have the same
``add_scalars(tag, step=, file_path=)`` signature, so the mock visualizer is
installed as the hook's writer. ``test_with_runner`` becomes Trainer runs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from unittest.mock import ANY, MagicMock, call

import pytest
import torch

from lightning_hooks.hooks import LoggerHook

from .suite_helpers import documented_behaviour, epoch_based, run

FILE_CLIENT_DOC = "docs/comparison.md#loggerhook-takes-backend_args-not-file_client_args"


def mock_runner() -> MagicMock:
    runner = MagicMock()
    runner.rank = 0
    runner.log_processor.get_log_after_iter = MagicMock(return_value=(dict(), "log_str"))
    return runner


def test_init():
    LoggerHook()
    LoggerHook(interval=100, ignore_last=False, interval_exp_name=100)
    with pytest.raises(TypeError, match="interval must be"):
        LoggerHook(interval="100")
    with pytest.raises(ValueError, match="interval must be"):
        LoggerHook(interval=-1)
    with pytest.raises(TypeError, match="ignore_last must be"):
        LoggerHook(ignore_last="False")
    with pytest.raises(TypeError, match="interval_exp_name"):
        LoggerHook(interval_exp_name="100")
    with pytest.raises(ValueError, match="interval_exp_name"):
        LoggerHook(interval_exp_name=-1)
    with pytest.raises(TypeError, match="out_suffix"):
        LoggerHook(out_suffix=[100])
    with pytest.raises(TypeError, match="out_dir must be"):
        LoggerHook(out_dir=1)
    with pytest.raises(ValueError, match="file_client_args"):
        LoggerHook(file_client_args=dict(enable_mc=True))
    with pytest.raises(ValueError, match='"file_client_args" and "backend_args" cannot be '):
        LoggerHook(out_dir="out", file_client_args=dict(enable_mc=True), backend_args=dict(enable_mc=True))


def test_init_checks_every_flag_type():
    """As ``ignore_last``: a truthy string is not a boolean."""
    for name in ("keep_local", "log_metric_by_epoch"):
        with pytest.raises(TypeError, match=f"{name} must be a boolean"):
            LoggerHook(**{name: "False"})


@pytest.mark.xfail(strict=True, raises=ValueError, reason=f"deliberate: {FILE_CLIENT_DOC}")
def test_init_file_client_args_deprecated(tmp_path):
    with documented_behaviour(FILE_CLIENT_DOC):  # storage options go to backend_args; file_client_args is refused
        hook = LoggerHook(out_dir=str(tmp_path), backend_args=dict(auto_mkdir=True))
        assert hook.backend_args == dict(auto_mkdir=True)
        with pytest.raises(ValueError, match="backend_args"):
            LoggerHook(out_dir=str(tmp_path), file_client_args=dict(backend="disk"))
    # MMEngine: the hook is built, with a logged deprecation warning.
    LoggerHook(out_dir=str(tmp_path), file_client_args=dict(backend="disk"))


def test_after_train_iter(monkeypatch):
    monkeypatch.setattr(LoggerHook, "every_n_train_iters", MagicMock(return_value=True))
    runner = mock_runner()
    hook = LoggerHook()
    hook.after_train_iter(runner, batch_idx=5)
    runner.log_processor.get_log_after_iter.assert_not_called()
    hook.after_train_iter(runner, batch_idx=9)
    runner.log_processor.get_log_after_iter.assert_called()

    # By epoch: only batch_idx counts.
    runner = mock_runner()
    hook = LoggerHook()
    hook.after_train_iter(runner, batch_idx=10)
    runner.log_processor.get_log_after_iter.assert_not_called()
    hook.after_train_iter(runner, batch_idx=9)
    runner.log_processor.get_log_after_iter.assert_called()

    # The end of the epoch.
    runner = mock_runner()
    runner.train_dataloader = [0] * 5
    LoggerHook(ignore_last=False).after_train_iter(runner, batch_idx=4)
    runner.log_processor.get_log_after_iter.assert_called()

    # The experiment name.
    runner = mock_runner()
    runner.logger = MagicMock()
    LoggerHook().after_train_iter(runner, batch_idx=999)
    runner.logger.info.assert_called()

    # Fewer iterations than the interval: the last one is logged.
    runner = mock_runner()
    runner.train_dataloader = [0] * 9
    LoggerHook().after_train_iter(runner, batch_idx=8)
    runner.log_processor.get_log_after_iter.assert_called()


def test_after_val_epoch():
    runner = mock_runner()
    runner.log_processor.get_log_after_epoch = MagicMock(return_value=({"time": 1, "datatime": 1, "acc": 0.8}, "s"))
    hook = LoggerHook()
    hook._writers = [runner.visualizer]  # MMEngine's visualizer is this hook's writer
    hook.after_val_epoch(runner)
    args = {"step": ANY, "file_path": ANY}
    calls = [call({"time": 1, "datatime": 1, "acc": 0.8}, **args)]
    assert len(runner.visualizer.add_scalars.mock_calls) == len(calls)
    runner.visualizer.add_scalars.assert_has_calls(calls)

    hook = LoggerHook(log_metric_by_epoch=False)
    hook._writers = [runner.visualizer]
    runner.log_processor.get_log_after_epoch = MagicMock(return_value=({"time": 5, "datatime": 5, "acc": 0.5}, "s"))
    hook.after_val_epoch(runner)
    calls.append(call({"time": 5, "datatime": 5, "acc": 0.5}, **args))
    assert len(runner.visualizer.add_scalars.mock_calls) == len(calls)
    runner.visualizer.add_scalars.assert_has_calls(calls)


def test_after_test_epoch(tmp_path):
    runner = mock_runner()
    runner.log_dir = str(tmp_path)
    runner.work_dir = str(tmp_path)
    runner.timestamp = "test_after_test_epoch"
    runner.trainer.loggers = []
    tag = dict(a=1, b=2, c={"list": [1, 2]}, d=torch.tensor([1, 2, 3]))
    runner.log_processor.get_log_after_epoch = MagicMock(return_value=(tag, "log_str"))
    hook = LoggerHook()
    hook.before_run(runner)
    hook.after_test_epoch(runner)
    runner.log_processor.get_log_after_epoch.assert_called()
    runner.logger.info.assert_called()
    content = json.loads((tmp_path / "test_after_test_epoch.json").read_text())
    assert content == dict(a=1, b=2, c={"list": [1, 2]}, d=[1, 2, 3])
    hook.after_run(runner)


@pytest.mark.parametrize("stage", ["after_val_iter", "after_test_iter"])
def test_after_eval_iter(stage):
    runner = mock_runner()
    runner.iter = 0
    hook = LoggerHook()
    getattr(hook, stage)(runner, 1)
    runner.log_processor.get_log_after_iter.assert_not_called()
    getattr(hook, stage)(runner, 9)
    runner.log_processor.get_log_after_iter.assert_called()


def _files(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file()]


def test_with_runner(tmp_path):
    work_dir = tmp_path / "work"
    cfg = epoch_based(work_dir, max_epochs=10, default_hooks=dict(logger=dict(type="LoggerHook")))
    bridge, _ = run(work_dir, cfg)
    assert os.path.isfile(os.path.join(bridge.runner.log_dir, "vis_data", f"{bridge.runner.timestamp}.json"))

    out_dir = tmp_path / "test"
    out_dir.mkdir()
    cfg["bridge"]["default_hooks"] = dict(logger=dict(type="LoggerHook", out_dir=str(out_dir)))
    run(work_dir, cfg)
    assert os.listdir(out_dir)
    for name in os.listdir(out_dir):
        shutil.rmtree(out_dir / name)

    cfg["bridge"]["default_hooks"] = dict(logger=dict(type="LoggerHook", out_dir=str(out_dir), out_suffix=".log"))
    run(work_dir, cfg)
    copied = _files(out_dir)
    assert copied and all(name.endswith(".log") for name in copied)

    cfg["bridge"]["default_hooks"] = dict(logger=dict(type="LoggerHook", out_dir=str(out_dir), keep_local=False))
    bridge, _ = run(work_dir, cfg)
    for name in _files(Path(bridge.runner.log_dir)):
        assert not name.endswith((".log", ".json", ".py", ".yaml")), f"{name} should not be kept."
