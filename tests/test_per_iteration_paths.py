"""The per-iteration fast paths give what the general code gives.

RuntimeInfoHook, IterTimerHook, LoggerHook's line and the bridge's glue run every
iteration, so they take shortcuts: a numpy-exact mean in Python, a log record formatted
once for all handlers, IterTimerHook's training methods without the generic dispatch,
Lightning's per-iteration events the bridge does not use switched off. Each is checked
here against the general path it replaces.
"""

from __future__ import annotations

import logging
import math
import random
from typing import Any

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from toy import ToyModule, loaders, make_trainer

from lightning_hooks import Hook, HookBridge
from lightning_hooks.bridge import UNUSED_PER_ITERATION_EVENTS
from lightning_hooks.errors import ScalarTypeError
from lightning_hooks.hooks import CheckpointHook, IterTimerHook
from lightning_hooks.message_hub import HistoryBuffer, _numpy_float_sum
from lightning_hooks.runner import get_logger


def _numpy_sum(values: list[float]) -> float:
    return float(np.array(values, dtype=np.float64).sum())


def test_python_sum_is_numpys_to_the_last_bit():
    rng = random.Random(0)
    draws = [
        lambda: rng.random(),
        lambda: rng.gauss(0, 1e3),
        lambda: rng.random() * 1e-7,
        lambda: float(rng.randint(-3, 3)),
        lambda: rng.choice([1e16, -1e16, 1.0, 3.0]),
    ]
    for _ in range(5000):
        n = rng.randint(1, 128)
        values = [rng.choice(draws)() for _ in range(n)]
        assert _numpy_float_sum(values) == _numpy_sum(values), values


@pytest.mark.parametrize(
    "values",
    [[-0.0], [-0.0] * 9, [math.inf, -math.inf], [math.nan, 1.0], [1e308, 1e308, -1e308], [0.1] * 128],
)
def test_python_sum_special_values(values):
    expected, got = _numpy_sum(values), _numpy_float_sum(values)
    assert (math.isnan(expected) and math.isnan(got)) or (
        got == expected and math.copysign(1, got) == math.copysign(1, expected)
    )


def test_history_buffer_mean_matches_numpy_on_every_path():
    rng = random.Random(1)
    for _ in range(300):
        buffer = HistoryBuffer()
        values = [rng.gauss(0, 10) for _ in range(rng.randint(1, 300))]
        for value in values:
            buffer.update(value, rng.choice([1, 1, 2]))
        for window in (1, 7, 10, 128, 129, None):
            data, counts = buffer.data
            tail = slice(-window, None) if window else slice(None)
            assert buffer.mean(window) == float(data[tail].sum() / counts[tail].sum())
    mixed = HistoryBuffer([1, 2.5, 3], [1, 1, 1])  # an int among the floats: numpy's path
    assert mixed.mean() == float(np.array([1, 2.5, 3]).sum() / 3)


def test_pending_cpu_tensors_read_as_item_reads_them():
    """MMEngine's reading: a float64 stays a double, an integer an int."""
    buffer = HistoryBuffer()
    values = [torch.tensor(0.1), torch.tensor([0.2]), torch.tensor(0.3, dtype=torch.float64), torch.tensor(4)]
    for value in values:
        buffer.update(value)
    buffer.update(5.0)
    expected = [v.item() for v in values] + [5.0]
    assert expected[2:4] == [0.3, 4]
    assert buffer.data[0].tolist() == expected
    stacked = HistoryBuffer()
    for i in range(5):
        stacked.update(torch.tensor(i / 3))
    assert stacked.data[0].tolist() == [torch.tensor(i / 3).item() for i in range(5)]


def test_one_record_formatted_once_for_terminal_and_file(tmp_path, capsys):
    log_file = tmp_path / "run.log"
    logger = get_logger(0, str(log_file), "INFO")
    calls = []
    formatter = logger.handlers[0].formatter
    original = logging.Formatter.format

    def counting(self: Any, record: logging.LogRecord) -> str:
        if self is formatter:
            calls.append(record)
        return original(self, record)

    logging.Formatter.format = counting  # type: ignore[method-assign]
    try:
        logger.info("one line")
    finally:
        logging.Formatter.format = original  # type: ignore[method-assign]
        from lightning_hooks.runner import close_log_file

        close_log_file(str(log_file))
    assert len(calls) == 1
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert log_file.read_text().strip() == printed
    assert printed.endswith(" - lightning_hooks - INFO - one line")
    ours = [h for h in logger.handlers if getattr(h, "_lh_stream", False) or getattr(h, "_lh_file", None)]
    assert all(h.formatter is formatter for h in ours)


def test_iter_timer_subclass_with_generic_methods_still_times_training(tmp_path):
    seen: list[tuple[str, str]] = []

    class Custom(IterTimerHook):
        def _before_iter(self, runner, batch_idx, data_batch=None, mode="train"):
            seen.append(("before", mode))
            super()._before_iter(runner, batch_idx, data_batch, mode)

        def _after_iter(self, runner, batch_idx, data_batch=None, outputs=None, mode="train"):
            seen.append(("after", mode))
            super()._after_iter(runner, batch_idx, data_batch, outputs, mode)

    bridge = HookBridge(default_hooks={"timer": Custom(), "checkpoint": None}, print_hooks_table=False)
    trainer = make_trainer(tmp_path, bridge, max_epochs=1, limit_val_batches=0)
    train, _ = loaders()
    trainer.fit(ToyModule(), train)
    assert seen.count(("before", "train")) == 4 and seen.count(("after", "train")) == 4
    assert "train/time" in bridge.message_hub.log_scalars


def test_lightning_skips_the_per_iteration_events_the_bridge_does_not_use(tmp_path):
    from lightning.pytorch.profilers import SimpleProfiler

    bridge = HookBridge(default_hooks={"checkpoint": None}, print_hooks_table=False)
    profiler = SimpleProfiler(dirpath=str(tmp_path), filename="profile")
    trainer = make_trainer(tmp_path, bridge, max_epochs=1, profiler=profiler, limit_val_batches=0)
    train, _ = loaders()
    trainer.fit(ToyModule(), train)
    actions = set(profiler.recorded_durations)
    assert "[Callback]HookBridge.on_train_batch_end" in actions  # Lightning profiles the events it calls
    for event in UNUSED_PER_ITERATION_EVENTS:
        assert getattr(bridge, event) is None
        assert f"[Callback]HookBridge.{event}" not in actions


def test_a_subclass_keeps_a_per_iteration_event_it_defines(tmp_path):
    calls: list[int] = []

    class Counting(HookBridge):
        def on_before_backward(self, trainer, pl_module, loss):
            calls.append(1)

    bridge = Counting(default_hooks={"checkpoint": None}, print_hooks_table=False)
    trainer = make_trainer(tmp_path, bridge, max_epochs=1, limit_val_batches=0)
    train, _ = loaders()
    trainer.fit(ToyModule(), train)
    assert len(calls) == 4


def _after_iter_hooks(bridge: HookBridge) -> list[str]:
    return [type(m.__self__).__name__ for m in bridge.hook_list.table("after_train_iter")]


class _TablesAtTrainStart(Callback):
    """Records the bridge's per-iteration table once training started (the bridge runs first)."""

    def __init__(self, bridge: HookBridge) -> None:
        self.bridge = bridge
        self.seen: list[str] = []

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.seen = _after_iter_hooks(self.bridge)


def test_idle_hooks_are_left_out_of_the_iteration_table_while_training(tmp_path):
    bridge = HookBridge(print_hooks_table=False)
    assert "CheckpointHook" not in _after_iter_hooks(bridge)  # by_epoch=True: its after_train_iter returns at once
    assert "ParamSchedulerHook" in _after_iter_hooks(bridge)  # its schedulers are not known yet
    probe = _TablesAtTrainStart(bridge)
    trainer = make_trainer(tmp_path, bridge, callbacks=[bridge, probe], max_epochs=1, limit_val_batches=0)
    train, _ = loaders()
    trainer.fit(ToyModule(), train)  # ToyModule's scheduler steps per epoch
    assert probe.seen == ["RuntimeInfoHook", "IterTimerHook", "LoggerHook"]


def test_hooks_that_work_per_iteration_stay_in_the_table(tmp_path):
    steps: list[int] = []

    class PerIterationScheduler(ToyModule):
        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=0.1)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: steps.append(i) or 1.0)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    class SavesEveryIteration(CheckpointHook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            steps.append(-1)

    bridge = HookBridge(
        default_hooks={"checkpoint": dict(type="CheckpointHook", interval=2, by_epoch=False)}, print_hooks_table=False
    )
    probe = _TablesAtTrainStart(bridge)
    trainer = make_trainer(tmp_path, bridge, callbacks=[bridge, probe], max_epochs=1, limit_val_batches=0)
    train, _ = loaders()
    trainer.fit(PerIterationScheduler(), train)
    assert probe.seen == ["RuntimeInfoHook", "IterTimerHook", "LoggerHook", "ParamSchedulerHook", "CheckpointHook"]
    assert len([s for s in steps if s >= 0]) == 1 + 4  # the scheduler's construction step, then each iteration
    assert (tmp_path / "iter_2.pth").is_file() and (tmp_path / "iter_4.pth").is_file()

    subclass = HookBridge(default_hooks={"checkpoint": SavesEveryIteration()}, print_hooks_table=False)
    assert "SavesEveryIteration" in _after_iter_hooks(subclass)  # its own after_train_iter is always called


def test_learning_rates_are_read_from_each_fits_own_optimizers(tmp_path):
    bridge = HookBridge(default_hooks={"checkpoint": None}, print_hooks_table=False)
    train, _ = loaders()
    for lr in (0.1, 0.25):
        trainer = make_trainer(tmp_path, bridge, max_epochs=1, limit_val_batches=0)
        trainer.fit(ToyModule(lr=lr), train)
        assert bridge.message_hub.get_scalar("train/lr").current() == lr
        assert bridge.runner.optim_wrapper.get_lr() == {"lr": [lr]}  # read live again once training ended


def test_appended_values_keep_their_order_among_checked_updates():
    buffer = HistoryBuffer()
    append = buffer.appender()
    append(1.0)
    buffer.update(torch.tensor(2.0))  # pending on its device, behind the appended value
    append(3.0)
    append(torch.tensor(4.0))
    assert len(buffer) == 4
    buffer.update(5)
    append(6.0)
    assert buffer.data[0].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert buffer.current() == 6.0 and buffer.mean(2) == 5.5
    append(7.0)
    assert buffer.state_dict()["log_history"][-1] == 7.0


def test_loading_a_state_keeps_the_buffer_and_its_appender():
    from lightning_hooks.message_hub import MessageHub

    hub = MessageHub("appender-load")
    append = hub.scalar_appender("train/time")
    append(0.5)
    saved = hub.state_dict()
    append(9.0)  # dropped by the load below, as a replaced history would drop it
    buffer = hub.get_scalar("train/time")
    hub.load_state_dict(saved)
    assert hub.get_scalar("train/time") is buffer
    append(0.25)
    assert buffer.data[0].tolist() == [0.5, 0.25]
    assert hub.state_dict()["resumed_keys"]["train/time"] is True


def test_per_iteration_recording_follows_the_runner_hub_and_stays_bounded():
    from types import SimpleNamespace

    from lightning_hooks.hooks import RuntimeInfoHook
    from lightning_hooks.message_hub import MessageHub

    class Optim:
        lr = 0.1

        def get_lr(self):
            return {"lr": [self.lr]}

    first, second = MessageHub("rec-first"), MessageHub("rec-second")
    runner = SimpleNamespace(message_hub=first, iter=0, max_iters=5000, optim_wrapper=Optim())
    hooks = [RuntimeInfoHook(), IterTimerHook()]
    for i in range(5000):
        runner.iter = i
        if i == 4500:
            runner.message_hub = second
        for hook in hooks:
            hook.before_train_iter(runner, i)
        for hook in hooks:
            hook.after_train_iter(runner, i, outputs={"loss": torch.tensor(float(i)), "acc": 0.5})
    assert len(first.get_scalar("train/loss")) == 4500 and len(second.get_scalar("train/loss")) == 500
    assert first.get_scalar("train/lr").current() == 0.1 and second.get_info("iter") == 4999
    assert second.get_scalar("train/acc").mean() == 0.5 and second.get_info("eta") is not None
    assert first.get_scalar("train/loss").current() == 4499.0
    # values appended are brought into the history at least every 4096 iterations
    assert all(len(b._inbox) <= 4096 for hub in (first, second) for b in hub.log_scalars.values())
    assert list(second.log_scalars) == ["train/lr", "train/data_time", "train/loss", "train/acc", "train/time"]


@pytest.mark.parametrize("stage", ["before_train_iter", "after_train_iter", "before_train_epoch"])
def test_a_hook_with_a_wrong_signature_is_named_at_every_mount_point(tmp_path, stage):
    """The per-iteration calls (made by the bridge itself) name the hook as HookList.call does."""

    class Wrong(Hook):
        pass

    setattr(Wrong, stage, lambda self, runner, required: None)  # a signature no mount point calls
    bridge = HookBridge(default_hooks={"checkpoint": None}, custom_hooks=[Wrong()], print_hooks_table=False)
    trainer = make_trainer(tmp_path, bridge, max_epochs=1, limit_val_batches=0)
    train, _ = loaders()
    with pytest.raises(TypeError, match=r"(unexpected keyword argument|missing 1 required).* in Wrong\(\)$"):
        trainer.fit(ToyModule(), train)


def test_an_appended_value_that_is_not_a_number_is_refused_when_it_joins_the_history():
    buffer = HistoryBuffer()
    append = buffer.appender()
    append(1.0)
    append("fast")
    with pytest.raises(ScalarTypeError, match=r"appender\(\) must be a number .* got 'fast'"):
        buffer.current()


def test_appended_cpu_losses_join_the_history_as_the_general_flush_gives_them():
    """0-d float32 CPU tensors are read where they are; any other tensors wait behind pending ones."""
    rng = random.Random(3)
    losses = [torch.tensor(rng.uniform(-1e3, 1e3)) for _ in range(37)]
    direct, general = HistoryBuffer(), HistoryBuffer()
    append = direct.appender()
    for loss in losses:
        append(loss)
        general.update(loss)
    assert direct._pending == [] and len(direct._inbox) == 37
    assert direct.mean(10) == general.mean(10) and direct.current() == general.current()
    assert direct.data[0].tolist() == general.data[0].tolist() and direct._inbox == []
    assert all(type(v) is float for v in direct._values)


@pytest.mark.parametrize(
    "late",
    [torch.tensor(2.0, dtype=torch.float64), torch.tensor([2.0]), torch.tensor(2), torch.tensor(2.0)],
    ids=["float64", "shape-1", "int", "behind-pending"],
)
def test_appended_tensors_that_are_not_plain_cpu_floats_wait_in_order(late):
    buffer = HistoryBuffer()
    append = buffer.appender()
    append(1.0)
    if late.dtype == torch.float32 and late.dim() == 0:
        buffer.update(torch.tensor(1.5))  # a pending tensor first: the appended one queues behind it
    append(late)
    append(torch.tensor(3.0))
    values = buffer.data[0].tolist()
    assert values[0] == 1.0 and values[-2] == 2.0 and values[-1] == 3.0
    assert len(values) == (4 if late.dtype == torch.float32 and late.dim() == 0 else 3)


@pytest.mark.parametrize("waiting", [1, 9, 10, 37, 4095, 4096])
def test_newest_values_read_from_the_inbox_equal_the_settled_history(waiting):
    rng = random.Random(waiting)
    older = [rng.uniform(-5, 5) for _ in range(25)]
    newer = [rng.gauss(0, 1e3) for _ in range(waiting)]
    settled, waiting_buffer = HistoryBuffer(older, [1] * len(older)), HistoryBuffer(older, [1] * len(older))
    append = waiting_buffer.appender()
    for value in newer:
        settled.update(value)
        append(value)
    assert waiting_buffer.current() == settled.current() == newer[-1]
    for window in sorted({1, 3, 10, 24, 40, waiting}):
        within = window <= 128 and window <= waiting < 4096  # longer windows take numpy's sum over the history
        assert waiting_buffer.mean(window) == settled.mean(window), window
        assert len(waiting_buffer) == len(settled)
        assert bool(waiting_buffer._inbox) == within  # a window within the inbox leaves it for the next read
        if not within:
            break
    assert waiting_buffer.data[0].tolist() == settled.data[0].tolist() and not waiting_buffer._inbox


def test_a_bad_value_behind_the_newest_floats_is_refused_at_the_next_full_read():
    buffer = HistoryBuffer()
    append = buffer.appender()
    append("fast")
    for value in (1.0, 2.0, 3.0):
        append(value)
    assert buffer.current() == 3.0 and buffer.mean(2) == 2.5  # the newest values, read where they wait
    with pytest.raises(ScalarTypeError, match=r"appender\(\) must be a number .* got 'fast'"):
        buffer.mean(10)


def test_an_appended_tensor_with_many_elements_is_refused():
    buffer = HistoryBuffer()
    append = buffer.appender()
    append(torch.tensor(1.0))
    append(torch.ones(3))
    with pytest.raises(ScalarTypeError, match=r"appender\(\) must be a number"):
        buffer.mean(10)


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (["after_train_iter"], TypeError, "must return a set of mount-point names"),
        (frozenset({"after_train_itr"}), ValueError, r"unknown mount points \['after_train_itr'\]; valid: \["),
    ],
)
def test_idle_stages_must_name_mount_points(answer, error, message):
    class Odd(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            pass

        def idle_stages(self):
            return answer

    with pytest.raises(error, match=message):
        HookBridge(default_hooks={"checkpoint": None}, custom_hooks=[Odd()], print_hooks_table=False)
