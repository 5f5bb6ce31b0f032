"""EarlyStoppingHook against MMEngine's: rule inference, every decision step, the runner test, resume."""

from __future__ import annotations

import math
import uuid

import pytest
import torch
from mmengine.hooks import EarlyStoppingHook as MMEarlyStopping
from toy import ToyModule, _mm_classes, loaders, make_trainer, mm_loader_cfgs

from lightning_hooks import EarlyStoppingHook, HookBridge
from lightning_hooks import Hook as LHHook

#: MMEngine's runner test: stops after the 6th validation (runner.epoch == 6).
RUNNER_SEQUENCE = [90, 91, 92, 88, 89, 90] * 2
NO_DEFAULTS = dict(runtime_info=None, timer=None, sampler_seed=None, logger=None, param_scheduler=None, checkpoint=None)


# ----------------------------------------------------------------------------- construction
@pytest.mark.parametrize("monitor", ["acc", "ACC", "mAP_50", "loss", "Loss", "ce_loss", "accuracy/top1"])
def test_rule_inference_matches_mmengine(monitor):
    ours, theirs = EarlyStoppingHook(monitor), MMEarlyStopping(monitor)
    assert ours.rule == theirs.rule
    assert ours.best_score == theirs.best_score
    assert ours.min_delta == theirs.min_delta
    assert (ours.best_score < 0) == (ours.rule == "greater")


def test_bad_configuration_names_the_value():
    with pytest.raises(ValueError, match="recall"):
        EarlyStoppingHook("recall")
    with pytest.raises(ValueError):
        MMEarlyStopping("recall")
    with pytest.raises(ValueError, match="the world"):
        EarlyStoppingHook("acc", rule="the world")
    with pytest.raises(ValueError, match="-1"):
        EarlyStoppingHook("acc", patience=-1)
    with pytest.raises(ValueError, match="min_delta"):
        EarlyStoppingHook("acc", min_delta=-0.5)
    for name in ("min_delta", "stopping_threshold"):  # NaN compares with nothing: training would never stop
        with pytest.raises(ValueError, match=f"{name} must be a number, got NaN"):
            EarlyStoppingHook("acc", **{name: float("nan")})
    with pytest.raises(TypeError, match="monitor"):
        EarlyStoppingHook(3)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- decisions
DECISION_CASES = {
    "acc_rising": (dict(monitor="acc"), [i / 9 for i in range(8)]),
    "loss_falling": (dict(monitor="loss"), [i / 9 for i in range(8, 0, -1)]),
    "plateau_stops": (dict(monitor="acc", min_delta=1), torch.linspace(98, 99, 8).tolist()),
    "patience_prevents": (dict(monitor="acc", min_delta=1, patience=10), torch.linspace(98, 99, 8).tolist()),
    "infinite": (dict(monitor="acc"), [0.5, math.inf, 0.7]),
    "nan_unchecked": (dict(monitor="acc", check_finite=False), [0.5, math.nan, 0.4, 0.3]),
    "threshold": (dict(monitor="acc", stopping_threshold=98.5, patience=0), torch.linspace(98, 99, 8).tolist()),
    "runner_sequence": (dict(monitor="acc", min_delta=1, patience=3), RUNNER_SEQUENCE),
    "exact_delta_counts": (dict(monitor="loss", min_delta=0.5, patience=1), [2.0, 1.5, 1.0, 0.75]),
}


@pytest.mark.parametrize("case", sorted(DECISION_CASES))
def test_every_decision_matches_mmengine(case):
    kwargs, scores = DECISION_CASES[case]
    ours, theirs = EarlyStoppingHook(**kwargs), MMEarlyStopping(**kwargs)
    steps = []
    for score in scores:
        stop_ours, msg_ours = ours._check_stop_condition(score)
        stop_theirs, msg_theirs = theirs._check_stop_condition(score)
        assert (stop_ours, msg_ours) == (stop_theirs, msg_theirs), f"score {score}"
        assert (ours.best_score, ours.wait_count) == (theirs.best_score, theirs.wait_count)
        steps.append(stop_ours)
        if stop_ours:
            break
    expected_stop = {
        "acc_rising": None,
        "loss_falling": None,
        "plateau_stops": 5,
        "patience_prevents": None,
        "infinite": 1,
        "nan_unchecked": None,
        "threshold": 4,
        "runner_sequence": 5,
        "exact_delta_counts": 3,
    }[case]
    assert (steps.index(True) if True in steps else None) == expected_stop
    if case == "acc_rising":
        assert ours.best_score == pytest.approx(7 / 9)
    if case == "loss_falling":
        assert ours.best_score == pytest.approx(1 / 9)
    if case == "threshold":
        assert ours.best_score == pytest.approx(98 + 4 / 7)


# ----------------------------------------------------------------------------- real runs
class SequenceModule(ToyModule):
    """Logs ``acc`` = the next value of a fixed sequence at each (non-sanity) validation."""

    def __init__(self, values: list[float]) -> None:
        super().__init__()
        self.values = values
        self.val_calls = 0

    def on_train_start(self) -> None:
        # After a resume, continue the sequence at the epoch reached.
        self.val_calls = self.trainer.current_epoch

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.log("acc", float(self.values[self.val_calls % len(self.values)]), on_epoch=True)

    def on_validation_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.val_calls += 1


class Recorder(LHHook):
    priority = "LOWEST"

    def __init__(self) -> None:
        self.val: list[tuple[int, int, float]] = []

    def after_val_epoch(self, runner, metrics=None):
        self.val.append((runner.epoch, runner.iter, (metrics or {}).get("acc")))

    def after_run(self, runner):
        self.final = (runner.epoch, runner.iter)


def run_lightning(tmp_path, hooks, values, default_hooks=None, ckpt_path=None, **trainer_kwargs):
    recorder = Recorder()
    bridge = HookBridge(
        default_hooks=NO_DEFAULTS if default_hooks is None else default_hooks,
        custom_hooks=[*hooks, recorder],
        print_hooks_table=False,
    )
    trainer = make_trainer(tmp_path, bridge, num_sanity_val_steps=0, **trainer_kwargs)
    train, val = loaders()
    trainer.fit(SequenceModule(values), train, val, ckpt_path=ckpt_path)
    return recorder, trainer


def run_mmengine_sequence(tmp_path, values, hook_cfg, train_cfg, infinite=False):
    """MMEngine's Runner on the toy scenario with a metric that returns ``values`` in turn."""
    from mmengine.evaluator import BaseMetric
    from mmengine.hooks import Hook as MMHook
    from mmengine.runner import Runner

    class SequenceMetric(BaseMetric):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def process(self, data_batch, data_samples) -> None:
            self.results.append(0)

        def compute_metrics(self, results) -> dict:
            value = values[self.calls % len(values)]
            self.calls += 1
            return {"acc": value}

    class MMRecorder(MMHook):
        priority = "LOWEST"

        def __init__(self) -> None:
            self.val: list[tuple[int, int, float]] = []

        def after_val_epoch(self, runner, metrics=None):
            self.val.append((runner.epoch, runner.iter, (metrics or {}).get("acc")))

    model_cls, _ = _mm_classes()
    train_loader, val_loader = mm_loader_cfgs(infinite)
    recorder = MMRecorder()
    runner = Runner(
        model=model_cls(),
        work_dir=str(tmp_path),
        experiment_name=f"es_{uuid.uuid4().hex[:8]}",
        train_dataloader=train_loader,
        val_dataloader=val_loader,
        val_evaluator=dict(type=SequenceMetric),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        train_cfg=train_cfg,
        custom_hooks=[hook_cfg, recorder],
        default_hooks=dict(checkpoint=None, logger=None),
        log_level="WARNING",
    )
    runner.train()
    return runner, recorder


def test_runner_stops_at_epoch_6_like_mmengine(tmp_path):
    cfg = dict(type="EarlyStoppingHook", monitor="acc", rule="greater", min_delta=1, patience=3)
    mm_runner, mm_rec = run_mmengine_sequence(
        tmp_path / "mm", RUNNER_SEQUENCE, cfg, dict(by_epoch=True, max_epochs=10, val_interval=1)
    )
    rec, trainer = run_lightning(tmp_path / "lh", [dict(cfg)], RUNNER_SEQUENCE, max_epochs=10)
    assert mm_runner.epoch == 6
    assert rec.final[0] == 6
    assert [(e, i, float(v)) for e, i, v in rec.val] == [(e, i, float(v)) for e, i, v in mm_rec.val]
    assert trainer.should_stop and trainer.current_epoch == 6
    hook = next(h for h in trainer.callbacks[0].hooks if isinstance(h, EarlyStoppingHook))
    assert (hook.best_score, hook.wait_count) == (92.0, 3)


@pytest.mark.slow
def test_iteration_based_stop_matches_mmengine(tmp_path):
    cfg = dict(type="EarlyStoppingHook", monitor="acc", rule="greater", min_delta=1, patience=3)
    mm_runner, mm_rec = run_mmengine_sequence(
        tmp_path / "mm", RUNNER_SEQUENCE, cfg, dict(by_epoch=False, max_iters=40, val_interval=4), infinite=True
    )
    rec, _ = run_lightning(
        tmp_path / "lh",
        [dict(cfg)],
        RUNNER_SEQUENCE,
        max_steps=40,
        max_epochs=-1,
        val_check_interval=4,
        check_val_every_n_epoch=None,
    )
    assert mm_runner.iter == 24
    assert rec.final[1] == mm_runner.iter
    assert [(e, i, float(v)) for e, i, v in rec.val] == [(e, i, float(v)) for e, i, v in mm_rec.val]


def test_missing_monitor_warns_or_fails_when_strict(tmp_path):
    with pytest.warns(UserWarning, match=r"do not include `monitor` \(loss\)"):
        rec, trainer = run_lightning(tmp_path / "a", [EarlyStoppingHook("loss")], [1.0], max_epochs=2)
    assert rec.final[0] == 2 and not trainer.should_stop
    with pytest.raises(RuntimeError, match="`loss` is not available"):
        run_lightning(tmp_path / "b", [EarlyStoppingHook("loss", strict=True)], [1.0], max_epochs=2)


def test_standalone_validate_leaves_state_alone(tmp_path):
    hook = EarlyStoppingHook("acc", min_delta=1, patience=1)
    bridge = HookBridge(default_hooks=NO_DEFAULTS, custom_hooks=[hook], print_hooks_table=False)
    trainer = make_trainer(tmp_path, bridge)
    trainer.validate(SequenceModule([90.0]), loaders()[1])
    assert (hook.best_score, hook.wait_count) == (-math.inf, 0)


@pytest.mark.slow
def test_state_survives_resume(tmp_path):
    """Interrupted after epoch 5, resumed from epoch_5.pth: it stops where the uninterrupted run stops (epoch 6).

    epoch_5.pth is written in after_train_epoch, before epoch 5's validation (MMEngine's order), so it holds
    the state after 4 validations: best 92, 1 validation waited, and records that epoch 5's validation is
    still to come. The resumed run repeats that validation (89), then epoch 6's (90) exhausts patience 3,
    exactly as in the uninterrupted run. Without the restored state the sequence 89, 90, 90, 91, 92 never
    waits 3 times and training reaches epoch 10.
    """
    cfg = dict(type="EarlyStoppingHook", monitor="acc", rule="greater", min_delta=1, patience=3)
    ckpt = dict(NO_DEFAULTS, checkpoint=dict(type="CheckpointHook", interval=1))
    whole, _ = run_lightning(tmp_path / "whole", [dict(cfg)], RUNNER_SEQUENCE, default_hooks=ckpt, max_epochs=10)
    assert whole.final[0] == 6

    first, _ = run_lightning(tmp_path, [dict(cfg)], RUNNER_SEQUENCE, default_hooks=ckpt, max_epochs=5)
    assert first.final[0] == 5
    saved = torch.load(tmp_path / "epoch_5.pth", weights_only=True)
    state = next(v for k, v in saved["callbacks"].items() if "HookBridge" in k)["hooks"]["EarlyStoppingHook"]
    assert (state["best_score"], state["wait_count"]) == (92.0, 1)

    resumed, trainer = run_lightning(
        tmp_path,
        [dict(cfg)],
        RUNNER_SEQUENCE,
        default_hooks=ckpt,
        max_epochs=10,
        ckpt_path=str(tmp_path / "epoch_5.pth"),
    )
    assert [v for _, _, v in resumed.val] == [89.0, 90.0]
    assert resumed.val == whole.val[4:]
    assert resumed.final == whole.final and trainer.should_stop

    fresh, _ = run_lightning(
        tmp_path / "fresh",
        [dict(cfg, monitor="acc")],
        RUNNER_SEQUENCE[4:] + RUNNER_SEQUENCE,
        max_epochs=5,
    )
    assert fresh.final[0] == 5  # the same values without the saved state do not stop


def test_state_for_another_metric_is_not_restored():
    hook = EarlyStoppingHook("acc")
    other = EarlyStoppingHook("loss")
    other.best_score, other.wait_count = 0.1, 4
    with pytest.warns(UserWarning, match="starting from scratch"):
        hook.load_state_dict(other.state_dict())
    assert (hook.best_score, hook.wait_count) == (-math.inf, 0)
    same = EarlyStoppingHook("acc")
    same.load_state_dict({"monitor": "acc", "rule": "greater", "best_score": 0.5, "wait_count": 2})
    assert (same.best_score, same.wait_count) == (0.5, 2)


def test_monitored_value_must_be_one_number():
    from lightning_hooks.hooks.early_stopping_hook import _as_float

    assert _as_float("acc", torch.tensor(0.5)) == 0.5
    assert _as_float("acc", 3) == 3.0
    with pytest.raises(ValueError, match="'acc' holds 2 values"):
        _as_float("acc", torch.tensor([0.5, 0.7]))


def test_mount_points_and_priority_match_mmengine():
    ours, theirs = EarlyStoppingHook("acc"), MMEarlyStopping("acc")
    assert ours.priority == theirs.priority
    assert set(ours.get_triggered_stages()) == set(theirs.get_triggered_stages())
