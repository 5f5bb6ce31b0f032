"""ProfilerHook: MMEngine's init checks, and real traces read back from disk.

Each training step of the toy models below runs inside ``record_function('train_step_<k>')``, so a
trace shows exactly which steps were profiled. The same scenario runs through MMEngine's Runner and
its ProfilerHook; both traces must hold the same steps.
"""

from __future__ import annotations

import glob
import json
import os
import uuid
from typing import Any

import pytest
import torch
from mmengine.hooks import ProfilerHook as MMProfilerHook
from toy import ToyModule, _mm_classes, loaders, make_trainer, mm_loader_cfgs

from lightning_hooks import Hook as LHHook
from lightning_hooks import HookBridge, ProfilerHook
from lightning_hooks.hooks.profiler_hook import _rank_path, available_activities

NO_DEFAULTS = dict(runtime_info=None, timer=None, sampler_seed=None, logger=None, param_scheduler=None, checkpoint=None)


# ----------------------------------------------------------------------------- construction
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        (dict(profile_times=0), ValueError),
        (dict(by_epoch=True, profile_times=2), ValueError),
        (dict(schedule=dict()), TypeError),
    ],
)
def test_init_checks_match_mmengine(kwargs, error):
    with pytest.raises(error):
        MMProfilerHook(**kwargs)
    with pytest.raises(error):
        ProfilerHook(**kwargs)


def test_bad_trace_handlers_are_rejected_at_construction():
    with pytest.raises(ValueError, match="handler, or dict, or None"):
        ProfilerHook(on_trace_ready=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'flame_graph'"):
        ProfilerHook(on_trace_ready=dict(type="flame_graph"))
    with pytest.raises(TypeError, match="by_epoch"):
        ProfilerHook(by_epoch="yes")  # type: ignore[arg-type]
    # arguments that would fail only when the first trace is ready
    with pytest.raises(ValueError, match=r"log_trace does not take: \['sort_bye'\]; valid: .*'sort_by'"):
        ProfilerHook(on_trace_ready=dict(type="log_trace", sort_bye="cpu_time"))
    with pytest.raises(ValueError, match=r"tb_trace does not take: \['dirname'\]; valid: \['dir_name'"):
        ProfilerHook(on_trace_ready=dict(type="tb_trace", dirname="traces"))
    with pytest.raises(TypeError, match="json_trace_path must be a file path, got 5"):
        ProfilerHook(json_trace_path=5)  # type: ignore[arg-type]
    assert ProfilerHook(on_trace_ready=dict(type="log_trace")).on_trace_ready == dict(type="log_trace")
    assert ProfilerHook(by_epoch=False, profile_times=10, schedule=dict(wait=1, warmup=1, active=2)).schedule


def test_activities_come_from_devices_present():
    cpu = torch.profiler.ProfilerActivity.CPU
    assert available_activities(True, False) == [cpu]
    if not torch.cuda.is_available():
        with pytest.warns(UserWarning, match="no CUDA device"):
            assert available_activities(True, True) == [cpu]
        with pytest.warns(UserWarning):
            assert available_activities(False, True) == [cpu]
    assert _rank_path("/t/trace.json", 0) == "/t/trace.json"
    assert _rank_path("/t/trace.json", 3) == "/t/trace_rank3.json"


# ----------------------------------------------------------------------------- real runs
class MarkedModule(ToyModule):
    def __init__(self) -> None:
        super().__init__()
        self.steps = 0

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        with torch.profiler.record_function(f"train_step_{self.steps}"):
            self.steps += 1
            return super().training_step(batch, batch_idx)


def fit(tmp_path, hook: ProfilerHook, extra_hooks=(), **trainer_kwargs: Any) -> Any:
    bridge = HookBridge(default_hooks=NO_DEFAULTS, custom_hooks=[hook, *extra_hooks], print_hooks_table=False)
    trainer_kwargs.setdefault("max_epochs", 2)
    trainer = make_trainer(tmp_path, bridge, num_sanity_val_steps=0, **trainer_kwargs)
    train, val = loaders()
    trainer.fit(MarkedModule(), train, val)
    return trainer


def event_names(path: str) -> set[str]:
    with open(path) as f:
        return {e.get("name", "") for e in json.load(f)["traceEvents"]}


def steps_in(path: str) -> list[str]:
    return sorted((n for n in event_names(path) if n.startswith("train_step_")), key=lambda n: int(n.rsplit("_", 1)[1]))


def mmengine_trace(tmp_path, hook_kwargs: dict, train_cfg: dict, infinite: bool = False) -> str:
    """Run MMEngine's Runner with its ProfilerHook writing a Chrome trace; return the trace path."""
    from mmengine.runner import Runner

    model_cls, metric_cls = _mm_classes()

    class MarkedMMModel(model_cls):  # type: ignore[misc, valid-type]
        steps = 0

        def forward(self, inputs: torch.Tensor, label: torch.Tensor, mode: str = "tensor") -> Any:
            if mode != "loss":
                return super().forward(inputs, label, mode)
            with torch.profiler.record_function(f"train_step_{MarkedMMModel.steps}"):
                MarkedMMModel.steps += 1
                return super().forward(inputs, label, mode)

    path = str(tmp_path / "mm_trace.json")
    train_loader, val_loader = mm_loader_cfgs(infinite)
    runner = Runner(
        model=MarkedMMModel(),
        work_dir=str(tmp_path),
        experiment_name=f"prof_{uuid.uuid4().hex[:8]}",
        train_dataloader=train_loader,
        val_dataloader=val_loader,
        val_evaluator=dict(type=metric_cls),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        train_cfg=train_cfg,
        custom_hooks=[dict(type="ProfilerHook", json_trace_path=path, **hook_kwargs)],
        default_hooks=dict(checkpoint=None, logger=None),
        log_level="WARNING",
    )
    runner.train()
    return path


def test_by_epoch_profiles_the_first_epoch_like_mmengine(tmp_path):
    ours = str(tmp_path / "lh" / "trace.json")
    fit(tmp_path / "lh", ProfilerHook(json_trace_path=ours, record_shapes=True))
    theirs = mmengine_trace(tmp_path / "mm", {}, dict(by_epoch=True, max_epochs=2, val_interval=1))
    assert steps_in(theirs) == [f"train_step_{k}" for k in range(4)]  # epoch 1 of 2 (4 iterations each)
    assert steps_in(ours) == steps_in(theirs)
    names = event_names(ours)
    assert {"aten::addmm", "aten::linear"} <= names  # the model's operators
    assert {"aten::addmm", "aten::linear"} <= event_names(theirs)


@pytest.mark.slow
def test_iteration_mode_profiles_profile_times_iterations_like_mmengine(tmp_path):
    ours = str(tmp_path / "lh" / "trace.json")
    fit(
        tmp_path / "lh",
        ProfilerHook(by_epoch=False, profile_times=3, json_trace_path=ours),
        max_steps=8,
        max_epochs=-1,
        val_check_interval=4,
        check_val_every_n_epoch=None,
    )
    theirs = mmengine_trace(
        tmp_path / "mm", dict(by_epoch=False, profile_times=3), dict(by_epoch=False, max_iters=8, val_interval=4), True
    )
    assert steps_in(theirs) == ["train_step_0", "train_step_1", "train_step_2"]
    assert steps_in(ours) == steps_in(theirs)


def test_log_trace_prints_the_operator_table(tmp_path, capsys):
    fit(
        tmp_path,
        ProfilerHook(on_trace_ready=dict(type="log_trace", sort_by="cpu_time_total", row_limit=50)),
        max_epochs=1,
    )
    out = capsys.readouterr().out
    assert "Self CPU" in out and "aten::addmm" in out


def test_tb_trace_writes_under_log_dir_by_default(tmp_path):
    hook = ProfilerHook(on_trace_ready=dict(type="tb_trace"))
    trainer = fit(tmp_path, hook, max_epochs=1)
    log_dir = trainer.callbacks[0].runner.log_dir
    assert hook.trace_dir == os.path.join(log_dir, "tf_tracing_logs")
    files = glob.glob(os.path.join(hook.trace_dir, "*.pt.trace.json"))
    assert len(files) == 1
    assert "aten::addmm" in event_names(files[0])
    assert steps_in(files[0]) == [f"train_step_{k}" for k in range(4)]


def test_tb_trace_relative_and_absolute_dir_name(tmp_path):
    relative = ProfilerHook(on_trace_ready=dict(type="tb_trace", dir_name="prof", worker_name="w0"))
    trainer = fit(tmp_path / "a", relative, max_epochs=1)
    assert relative.trace_dir == os.path.join(trainer.callbacks[0].runner.log_dir, "prof")
    assert glob.glob(os.path.join(relative.trace_dir, "w0.*.pt.trace.json"))
    absolute = ProfilerHook(on_trace_ready=dict(type="tb_trace", dir_name=str(tmp_path / "abs")))
    fit(tmp_path / "b", absolute, max_epochs=1)
    assert absolute.trace_dir == str(tmp_path / "abs")
    assert glob.glob(str(tmp_path / "abs" / "*.pt.trace.json"))


def test_callable_handler_gets_the_profiler_once(tmp_path):
    seen: list[Any] = []
    fit(tmp_path, ProfilerHook(on_trace_ready=seen.append), max_epochs=2)
    assert len(seen) == 1
    assert any(evt.key == "aten::addmm" for evt in seen[0].key_averages())


def test_profile_times_longer_than_the_run_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="should not be greater than 8"):
        fit(
            tmp_path,
            ProfilerHook(by_epoch=False, profile_times=9),
            max_steps=8,
            max_epochs=-1,
            val_check_interval=4,
            check_val_every_n_epoch=None,
        )
    # The profiler that before_run started was closed by after_run.
    assert not torch.autograd._profiler_enabled()


def test_profile_times_is_not_checked_against_a_training_that_runs_until_stopped():
    """``Trainer(max_epochs=-1)`` without ``max_steps``: the run's length is -1 (unknown), not a bound."""
    from types import SimpleNamespace

    unbounded = SimpleNamespace(max_epochs=-1, max_iters=-1)
    ProfilerHook(by_epoch=True).before_train(unbounded)
    ProfilerHook(by_epoch=False, profile_times=3).before_train(unbounded)
    with pytest.raises(ValueError, match="should not be greater than 2"):
        ProfilerHook(by_epoch=False, profile_times=3).before_train(SimpleNamespace(max_epochs=1, max_iters=2))


def test_profiler_is_closed_when_training_fails(tmp_path):
    class Boom(LHHook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if runner.iter == 1:
                raise RuntimeError("boom")

    path = str(tmp_path / "trace.json")
    hook = ProfilerHook(json_trace_path=path)
    with pytest.raises(RuntimeError, match="boom"):
        fit(tmp_path, hook, extra_hooks=[Boom()])
    assert hook._closed
    assert steps_in(path) == ["train_step_0", "train_step_1"]
    assert not torch.autograd._profiler_enabled()  # MMEngine's would go on recording every operator


def test_standalone_validate_profiles_the_whole_run(tmp_path):
    path = str(tmp_path / "val_trace.json")
    hook = ProfilerHook(json_trace_path=path)
    bridge = HookBridge(default_hooks=NO_DEFAULTS, custom_hooks=[hook], print_hooks_table=False)
    make_trainer(tmp_path, bridge).validate(MarkedModule(), loaders()[1])
    assert hook._closed
    assert "aten::addmm" in event_names(path)


def test_mount_points_and_priority_match_mmengine():
    ours, theirs = ProfilerHook(), MMProfilerHook()
    assert ours.priority == theirs.priority
    # Ours checks profile_times in before_train and closes a running profiler in after_run.
    assert set(ours.get_triggered_stages()) == set(theirs.get_triggered_stages()) | {"before_train", "after_run"}
