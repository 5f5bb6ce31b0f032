"""MMEngine 0.10.7 ``tests/test_hooks/test_profiler_hook.py`` against :class:`ProfilerHook`.

Mocked runners are ``MagicMock`` as upstream, with ``rank = 0`` (this hook names
the JSON trace of other ranks ``_rank<k>``). Runner runs become Trainer runs.
``TestNPUProfilerHook`` is skipped: NPUProfilerHook is MMEngine's Ascend-only hook.
"""

from __future__ import annotations

import logging
from unittest.mock import MagicMock

import pytest
import torch

from lightning_hooks.hooks import ProfilerHook

from .suite_helpers import documented_behaviour, epoch_based, run

PROFILE_TIMES_DOC = "docs/comparison.md#profilerhook-checks-profile_times-in-before_train"


def mock_runner(tmp_path=None, **attributes) -> MagicMock:
    runner = MagicMock()
    runner.rank = 0
    runner.logger = logging.getLogger("lightning_hooks.mmengine_suite.profiler")
    if tmp_path is not None:
        runner.log_dir = str(tmp_path)
    for name, value in attributes.items():
        setattr(runner, name, value)
    return runner


def test_init():
    ProfilerHook(by_epoch=False, profile_times=1)
    with pytest.raises(ValueError):
        ProfilerHook(profile_times=0)
    with pytest.raises(ValueError):
        ProfilerHook(by_epoch=True, profile_times=2)
    ProfilerHook(schedule=dict(wait=1, warmup=1, active=3, repeat=1))
    with pytest.raises(TypeError):
        ProfilerHook(schedule=dict())


def test_parse_trace_config():
    runner = mock_runner()
    hook = ProfilerHook(on_trace_ready=None)
    hook.on_trace_ready = None
    hook._parse_trace_config(runner)

    def deal_profile(_profile):
        pass

    hook.on_trace_ready = deal_profile
    hook._parse_trace_config(runner)
    with pytest.raises(ValueError):
        hook.on_trace_ready = dict(type="unknown")
        hook._parse_trace_config(runner)
    hook.on_trace_ready = dict(type="log_trace", sort_by="self_cpu_time_total", row_limit=10)
    hook._parse_trace_config(runner)


def test_parse_trace_config_tensorboard(tmp_path):
    """Upstream needs ``torch-tb-profiler``; this hook does not (torch writes the trace files)."""
    runner = mock_runner(tmp_path)
    hook = ProfilerHook(on_trace_ready=None)
    hook.on_trace_ready = dict(type="tb_trace")
    hook._parse_trace_config(runner)
    assert hook.trace_dir == str(tmp_path / "tf_tracing_logs")
    hook.on_trace_ready["dir_name"] = "tb"
    hook._parse_trace_config(runner)
    assert hook.trace_dir == str(tmp_path / "tb")
    hook.on_trace_ready["dir_name"] = str(tmp_path / "tb")
    hook._parse_trace_config(runner)
    hook = ProfilerHook(on_trace_ready=dict(type="tb_trace"), json_trace_path=str(tmp_path / "demo.json"))
    hook._parse_trace_config(runner)

    cfg = epoch_based(
        tmp_path, [dict(type="ProfilerHook", on_trace_ready=dict(type="tb_trace", dir_name=str(tmp_path)))]
    )
    run(tmp_path, cfg)
    assert list(tmp_path.glob("*.pt.trace.json"))


def test_tb_trace_with_json_trace_path(tmp_path):
    """The docs' example: ``tb_trace`` plus ``json_trace_path`` trains to the end and writes both files."""
    json_path = tmp_path / "demo.json"
    hook_cfg = dict(type="ProfilerHook", on_trace_ready=dict(type="tb_trace"), json_trace_path=str(json_path))
    bridge, trainer = run(tmp_path, epoch_based(tmp_path, [hook_cfg]))
    assert trainer.current_epoch == 2
    traces = list((tmp_path / bridge.runner.timestamp / "tf_tracing_logs").glob("*.pt.trace.json"))
    assert len(traces) == 1
    assert json_path.read_bytes() == traces[0].read_bytes()


def test_before_run():
    runner = mock_runner(max_epochs=1000, max_iters=10000)
    hook = ProfilerHook()
    hook.before_run(runner)
    hook.profiler.__exit__(None, None, None)


@pytest.mark.xfail(strict=True, raises=pytest.fail.Exception, reason=f"deliberate: {PROFILE_TIMES_DOC}")
def test_before_run_checks_profile_times_by_iter():
    runner = mock_runner(max_epochs=1000, max_iters=10000)
    with documented_behaviour(PROFILE_TIMES_DOC):  # before_train raises, once the run's length is known
        hook = ProfilerHook(by_epoch=False, profile_times=10001)
        hook.before_run(runner)
        with pytest.raises(ValueError, match="profile_times"):
            hook.before_train(runner)
        hook.profiler.__exit__(None, None, None)
    # MMEngine: before_run raises already.
    with pytest.raises(ValueError):
        hook = ProfilerHook(by_epoch=False, profile_times=10001)
        hook.before_run(runner)
    hook.profiler.__exit__(None, None, None)


def test_before_run_checks_profile_times_by_epoch():
    with pytest.raises(ValueError):
        hook = ProfilerHook(by_epoch=True, profile_times=1001)  # raises here, in MMEngine too
        hook.before_run(mock_runner(max_epochs=1000, max_iters=10000))


def test_export_chrome_trace(tmp_path):
    runner = mock_runner(max_epochs=1000)
    hook = ProfilerHook(json_trace_path=str(tmp_path / "demo.json"))
    hook.before_run(runner)
    hook._export_chrome_trace(runner)
    assert (tmp_path / "demo.json").is_file()


def test_after_train_epoch():
    runner = mock_runner(max_epochs=1000, epoch=0)
    hook = ProfilerHook()
    hook.before_run(runner)
    hook.profiler.__exit__(None, None, None)
    hook.profiler = MagicMock()
    hook.after_train_epoch(runner)
    hook.profiler.__exit__.assert_called_once()


def test_after_train_iter():
    runner = mock_runner(max_iters=10000, iter=9)
    hook = ProfilerHook(by_epoch=False, profile_times=10, schedule=None)
    hook.profiler = MagicMock()
    hook.after_train_iter(runner, 1, 1, 1)
    hook.profiler.__exit__.assert_called_once()
    hook.profiler.step.assert_called_once()
    hook = ProfilerHook(by_epoch=False, schedule=dict(wait=1, warmup=1, active=3, repeat=1))
    hook.profiler = MagicMock()
    hook.after_train_iter(runner, 1, 1, 1)
    hook.profiler.step.assert_called_once()


def test_with_runner(tmp_path):
    run(tmp_path, epoch_based(tmp_path, [dict(type="ProfilerHook", activity_with_cpu=False, activity_with_cuda=False)]))
    json_path = tmp_path / "demo.json"
    run(tmp_path, epoch_based(tmp_path, [dict(type="ProfilerHook", json_trace_path=str(json_path))]))
    assert json_path.exists(), "ERROR::json file is not generated!"
    log_trace = dict(type="log_trace", sort_by="self_cpu_time_total", row_limit=10)
    run(tmp_path, epoch_based(tmp_path, [dict(type="ProfilerHook", on_trace_ready=log_trace)]))
    with pytest.raises(ValueError):
        run(tmp_path, epoch_based(tmp_path, [dict(type="ProfilerHook", on_trace_ready=0)]))
    if torch.cuda.is_available():
        run(tmp_path, epoch_based(tmp_path, [dict(type="ProfilerHook", activity_with_cuda=True)]))


@pytest.mark.skip(reason="NPUProfilerHook is MMEngine's Ascend NPU hook; this package has no NPU support")
def test_npu_profiler_hook():
    """Upstream ``TestNPUProfilerHook`` (4 cases): needs Ascend PyTorch and NPU devices."""
