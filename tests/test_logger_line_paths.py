"""A LoggerHook training line takes shortcuts; each gives what the general code gives, and steps aside.

* :meth:`LogProcessor._train_line` builds the training tag and line in one pass over the hub; the
  general steps (``_collect_scalars``, ``_iter_header``, ``_timing_str``...) still run for a
  subclass or an instance that replaces one of them, with ``custom_cfg`` or ``log_with_hierarchy``.
* :func:`~lightning_hooks.runner.log_info` writes the formatted line straight to the bridge's own
  handlers, and is ``logger.info`` as soon as anything else listens (a user's handler, a filter,
  propagation to the root logger where pytest's ``caplog`` listens).
* ``LocalJsonWriter`` gives a tag of plain numbers to ``json.dumps``' C encoder directly.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import logging
import math
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from log_toy import LineCatcher, find_one
from test_logger_golden import GOLDEN, SCENARIOS, _mask
from toy import ToyModule, make_trainer, run_mode

from lightning_hooks import HistoryBuffer, HookBridge, LogProcessor, MessageHub
from lightning_hooks.logging.local_writer import LocalJsonWriter, _json_line, _write_rest
from lightning_hooks.logging.log_processor import _eta_text
from lightning_hooks.logging.scalars import json_ready
from lightning_hooks.runner import close_log_file, get_logger, log_info


@contextlib.contextmanager
def bridge_handlers_only() -> Iterator[None]:
    """Detach what is not the bridge's from the package logger (pytest attaches its capture handlers
    to every non-propagating logger as each test phase starts), so that the fast writes are what runs."""
    logger = logging.getLogger("lightning_hooks")
    others = [h for h in logger.handlers if not (getattr(h, "_lh_stream", False) or getattr(h, "_lh_file", None))]
    for handler in others:
        logger.removeHandler(handler)
    try:
        yield
    finally:
        for handler in others:
            logger.addHandler(handler)


@contextlib.contextmanager
def info_calls() -> Iterator[list[str]]:
    """The messages given to ``Logger.info`` (the general path) while the block runs.

    Watched with a profile function: patching ``Logger.info`` would itself send every line
    through ``logging`` (a patched method is respected).
    """
    seen: list[str] = []
    code = logging.Logger.info.__code__

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is code:
            seen.append(frame.f_locals["msg"])

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield seen
    finally:
        sys.setprofile(previous)


# ----------------------------------------------------------------------------- LogProcessor
class GeneralSteps(LogProcessor):
    """Replaces one step (by calling it): every training line takes the general steps."""

    def _iter_header(self, runner: Any, batch_idx: int, mode: str) -> tuple[str, Any]:
        return super()._iter_header(runner, batch_idx, mode)


def _runner(hub: MessageHub, **counters: Any) -> SimpleNamespace:
    values = dict(epoch=2, iter=57, max_epochs=12, max_iters=600, train_dataloader=[0] * 25, _train_loop=object())
    values.update(counters)
    return SimpleNamespace(message_hub=hub, **values)


def _hub(name: str, keys: dict[str, list[Any]], eta: Any = 125.7) -> MessageHub:
    hub = MessageHub(f"line_paths_{name}")
    for key, history in keys.items():
        for value in history:
            hub.update_scalar(key, value)
    if eta is not None:
        hub.update_info("eta", eta)
    return hub


def _typed(tag: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(key, type(value).__name__, repr(value)) for key, value in tag.items()]


RNG = random.Random(3)
TIMES = [RNG.random() for _ in range(30)]
HUBS = {
    "usual": dict(
        {"train/lr": [0.1] * 14, "train/data_time": TIMES[:14], "train/time": TIMES[5:19]},
        **{"train/loss": [torch.tensor(v) for v in TIMES[:14]], "val/acc": [0.5]},
    ),
    "ints_and_names": {
        "train/base_lr": [1, 2],
        "train_acc": [3, 4],
        "train/grad_norm": [5, 7],
        "train/loss_cls": [1.5, 2.5],
        "train/count": [9],
    },
    "no_timings": {"train/lr": [0.01], "train/loss": [0.25, 0.75]},
    "same_name_twice": {"train/trainx": [1.0], "trainx": [2.0], "train/time": [0.5], "train/data_time": [0.1]},
    "prefix_twice": {"train/train/lr": [0.3], "train/lr": [0.2], "train/loss": [1.0]},
    "many_values": {"train/loss": TIMES * 5, "train/time": TIMES, "train/data_time": TIMES},
}
PROCESSORS = {
    "default": {},
    "iter_based": dict(by_epoch=False),
    "window_and_digits": dict(window_size=3, num_digits=2),
    "pattern": dict(mean_pattern=r".*(acc|lr).*"),
}


@pytest.mark.parametrize("hub_name", sorted(HUBS))
@pytest.mark.parametrize("settings", sorted(PROCESSORS))
@pytest.mark.parametrize("eta", [125.7, None])
def test_fast_training_line_is_the_general_one(hub_name: str, settings: str, eta: Any) -> None:
    hub = _hub(f"{hub_name}_{settings}", HUBS[hub_name], eta)
    runner = _runner(hub)
    fast, general = LogProcessor(**PROCESSORS[settings]), GeneralSteps(**PROCESSORS[settings])
    assert fast._train_line_is_fast() and not general._train_line_is_fast()
    expected_tag, expected_line = general.get_log_after_iter(runner, 6, "train")
    for _ in range(2):  # the second line uses the remembered per-key decisions
        tag, line = fast.get_log_after_iter(runner, 6, "train")
        assert line == expected_line
        assert _typed(tag) == _typed(expected_tag)
        assert type(tag) is type(expected_tag)
    direct = fast._train_line(runner, 6, 25)
    if hub_name in ("same_name_twice", "prefix_twice"):
        assert direct is None  # left to the general steps
    else:
        assert direct is not None and direct[1] == expected_line and _typed(direct[0]) == _typed(expected_tag)


def _instance_override() -> LogProcessor:
    processor = LogProcessor()
    processor._timing_str = lambda runner, values: ""  # type: ignore[method-assign]
    return processor


@pytest.mark.parametrize(
    "make",
    [
        LogProcessor,
        GeneralSteps,
        _instance_override,
        lambda: LogProcessor(custom_cfg=[dict(data_src="loss", method_name="max", window_size=2)]),
        lambda: LogProcessor(log_with_hierarchy=True),
    ],
    ids=["default", "subclass-step", "instance-step", "custom_cfg", "hierarchy"],
)
def test_train_line_declines_exactly_when_the_steps_are_customised(make: Any) -> None:
    """LoggerHook calls _train_line directly: it must check what _train_line_is_fast checks."""
    processor = make()
    direct = processor._train_line(_runner(_hub("declines", HUBS["usual"])), 6, 25)
    assert (direct is not None) == processor._train_line_is_fast()


def test_fast_line_outside_fit_and_with_a_new_pattern() -> None:
    hub = _hub("outside_fit", HUBS["usual"])
    for counters in (dict(_train_loop=None), dict(_train_loop={}), dict(epoch=0, max_epochs=100000)):
        runner = _runner(hub, **counters)
        for by_epoch in (True, False):
            fast, general = LogProcessor(by_epoch=by_epoch), GeneralSteps(by_epoch=by_epoch)
            assert fast.get_log_after_iter(runner, 0, "train") == general.get_log_after_iter(runner, 0, "train")
    processor = LogProcessor()
    runner = _runner(hub)
    before = processor.get_log_after_iter(runner, 3, "train")[1]
    processor.mean_pattern = __import__("re").compile("nothing")  # a new pattern: per-key decisions redone
    after = processor.get_log_after_iter(runner, 3, "train")[1]
    assert after != before and after == GeneralSteps(mean_pattern="nothing").get_log_after_iter(runner, 3, "train")[1]


class MemoryProbe(LogProcessor):
    """A CUDA model as far as the line knows (overrides the device probe and the memory reading)."""

    def _cuda_device(self, runner: Any) -> Any:
        return torch.device("cuda", 0)

    def _get_max_memory(self, runner: Any) -> int:
        return 1234


def test_overridden_device_probe_and_memory_are_called() -> None:
    runner = _runner(_hub("memory", HUBS["usual"]))
    processor = MemoryProbe()
    assert processor._train_line_is_fast()  # the probe is called by both paths, not replaced
    tag, line = processor.get_log_after_iter(runner, 4, "train")
    assert "memory: 1234  " in line and tag["memory"] == 1234

    class GeneralMemory(MemoryProbe, GeneralSteps):
        pass

    assert (tag, line) == GeneralMemory().get_log_after_iter(runner, 4, "train")


def test_replaced_steps_take_the_general_path() -> None:
    runner = _runner(_hub("replaced", HUBS["usual"]))
    processor = LogProcessor()
    processor._timing_str = lambda runner, values: "TIMING  "  # type: ignore[method-assign]
    assert not processor._train_line_is_fast()
    assert "TIMING  " in processor.get_log_after_iter(runner, 4, "train")[1]
    for settings in (dict(log_with_hierarchy=True), dict(custom_cfg=[dict(data_src="loss", method_name="max")])):
        assert not LogProcessor(**settings)._train_line_is_fast()


def _fit_lines(tmp_path: Path, processor: Any, catcher: bool = False) -> list[str]:
    """The masked log file of a 2-epoch toy fit, a line every 2 iterations (with a user's handler attached)."""
    bridge = HookBridge(
        default_hooks=dict(logger=dict(type="LoggerHook", interval=2)), print_hooks_table=False, log_processor=processor
    )
    logger = logging.getLogger("lightning_hooks")
    listener = LineCatcher()
    if catcher:
        logger.addHandler(listener)
    try:
        run_mode(make_trainer(tmp_path, bridge, max_epochs=2), ToyModule())
    finally:
        logger.removeHandler(listener)
    if catcher:
        assert sum(m.startswith("Epoch(train)") for m in listener.messages) == 4
    return _mask(find_one(tmp_path, "*.log").read_text(encoding="utf-8"), tmp_path, json=False).splitlines()


@pytest.mark.parametrize("step", ["get_log_after_iter", "_collect_scalars", "_iter_header"])
def test_a_subclass_step_is_called_in_training(tmp_path: Path, step: str) -> None:
    calls = []

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return getattr(super(Counting, self), step)(*args, **kwargs)

    Counting = type("Counting", (LogProcessor,), {step: counting})
    with bridge_handlers_only():
        lines = _fit_lines(tmp_path / "counting", Counting())
        assert len([a for a in calls if "train" in a]) == 4  # 2 epochs of 4 iterations, a line every 2
        assert lines == _fit_lines(tmp_path / "plain", LogProcessor())


# ----------------------------------------------------------------------------- logging
@pytest.fixture
def log_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The package logger with its stdout and file handlers, at a frozen time; restored afterwards."""
    now = 1_700_000_123.25
    monkeypatch.setattr("time.time", lambda: now)
    monkeypatch.setattr("time.time_ns", lambda: int(now * 1e9))
    path = tmp_path / "run.log"
    logger = get_logger(0, str(path), "INFO")
    yield logger, path
    close_log_file(str(path))
    logger.propagate = False
    logger.filters.clear()


def test_fast_line_writes_logging_bytes(log_file: Any, capsys: pytest.CaptureFixture) -> None:
    logger, path = log_file
    message = "Epoch(train)  [1][2/4]  lr: 1.0000e-01  loss: 0.5 ünïcode"
    logger.info(message)
    expected_out, expected_file = capsys.readouterr().out, path.read_bytes()
    with bridge_handlers_only(), info_calls() as seen:
        log_info(logger, message)
    assert seen == []  # the fast path: no record
    out = capsys.readouterr().out
    assert out == expected_out and out.endswith(" - lightning_hooks - INFO - " + message + "\n")
    assert path.read_bytes() == expected_file * 2


def test_fast_line_honours_handler_and_logger_levels(log_file: Any, capsys: pytest.CaptureFixture) -> None:
    logger, path = log_file
    stdout_handler = next(h for h in logger.handlers if getattr(h, "_lh_stream", False))
    stdout_handler.setLevel(logging.WARNING)  # another rank's terminal
    try:
        with bridge_handlers_only():
            log_info(logger, "file only")
            assert capsys.readouterr().out == "" and path.read_text().endswith("file only\n")
            logger.setLevel(logging.WARNING)
            log_info(logger, "nowhere")
            assert "nowhere" not in path.read_text()
    finally:
        stdout_handler.setLevel(logging.INFO)
        logger.setLevel(logging.INFO)


def test_anything_else_listening_gets_every_line(log_file: Any, capsys, caplog) -> None:
    logger, path = log_file
    with bridge_handlers_only():
        catcher = LineCatcher()
        logger.addHandler(catcher)
        try:
            log_info(logger, "to a user's handler")
        finally:
            logger.removeHandler(catcher)
        assert catcher.messages == ["to a user's handler"]
        assert path.read_text().endswith("to a user's handler\n") and "to a user's handler" in capsys.readouterr().out

        logger.propagate = True  # the root logger, where caplog listens
        with caplog.at_level(logging.INFO, logger="lightning_hooks"):
            log_info(logger, "to caplog")
        assert [r.getMessage() for r in caplog.records] == ["to caplog"]
        logger.propagate = False

        logger.addFilter(lambda record: "secret" not in record.getMessage())
        log_info(logger, "a secret line")
        assert "secret" not in path.read_text() and "secret" not in capsys.readouterr().out
        logger.filters.clear()

        handler = next(h for h in logger.handlers if getattr(h, "_lh_file", None))
        handler.emit = lambda record: None  # type: ignore[method-assign]  # replaced on the instance: respected
        with info_calls() as seen:
            log_info(logger, "not in the file")
            del handler.emit
            log_info(logger, "back to the fast writes")
        assert seen == ["not in the file"] and "not in the file" not in path.read_text()
        assert path.read_text().endswith("back to the fast writes\n")


@pytest.mark.parametrize(
    ("cls", "method"),
    [
        (logging.FileHandler, "emit"),
        (logging.StreamHandler, "emit"),
        (logging.Handler, "handle"),
        (logging.Formatter, "format"),
        (logging.Logger, "handle"),
    ],
)
def test_a_patched_logging_class_gets_every_line(log_file: Any, monkeypatch, cls: type, method: str) -> None:
    logger, _ = log_file
    seen: list[str] = []
    original = getattr(cls, method)

    def spy(self: Any, record: logging.LogRecord) -> Any:
        seen.append(record.getMessage())
        return original(self, record)

    monkeypatch.setattr(cls, method, spy)
    with bridge_handlers_only():
        log_info(logger, "through the patch")
    assert "through the patch" in seen


def test_a_logger_that_is_not_logging_s_is_called() -> None:
    calls: list[str] = []
    log_info(SimpleNamespace(info=calls.append), "line")
    assert calls == ["line"]


def test_fit_output_with_and_without_other_listeners(tmp_path: Path) -> None:
    listened = _fit_lines(tmp_path / "listened", LogProcessor(), catcher=True)
    with bridge_handlers_only(), info_calls() as seen:
        fast = _fit_lines(tmp_path / "fast", LogProcessor())
    assert not [m for m in seen if m.startswith(("Epoch(", "Exp name"))]  # LoggerHook's lines took the fast writes
    assert fast == listened and sum("INFO - Epoch(train)" in line for line in fast) == 4


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_pinned_output_without_other_listeners(tmp_path: Path, name: str) -> None:
    """The pinned golden files, with nothing but the bridge's handlers on the logger (the fast writes)."""
    from test_logger_golden import _halving

    scenario = SCENARIOS[name]
    bridge = HookBridge(**scenario["bridge_kwargs"])
    with bridge_handlers_only(), info_calls() as seen:
        run_mode(make_trainer(tmp_path, bridge, **scenario["trainer_kwargs"]), ToyModule(scheduler=_halving))
    assert not [m for m in seen if m.startswith(("Epoch(train)", "Iter(train)"))]
    files = {
        f"{name}.log": (find_one(tmp_path, "*.log"), False),
        f"{name}.scalars.json": (find_one(tmp_path, "scalars.json"), True),
        f"{name}.timestamp.json": (find_one(tmp_path, "vis_data/2*.json"), True),
    }
    for golden, (path, is_json) in files.items():
        assert _mask(path.read_text(encoding="utf-8"), tmp_path, is_json) == (GOLDEN / golden).read_text("utf-8")


# ----------------------------------------------------------------------------- JSON lines
def _dumps(tag: dict[str, Any], step: Any) -> str:
    """What the writer wrote before: every tag through json_ready, then json.dumps."""
    record = dict(json_ready(tag))
    record.setdefault("step", step)
    return json.dumps(record) + "\n"


def _dumps_bytes(tag: dict[str, Any], step: Any) -> bytes:
    """:func:`_dumps` as a file opened in text mode (MMEngine's) holds it."""
    return _dumps(tag, step).replace("\n", os.linesep).encode("utf-8")


def test_json_line_is_json_dumps_of_json_ready() -> None:
    rng = random.Random(7)
    specials: list[Any] = [math.nan, math.inf, -math.inf, -0.0, 1e-310, 1e300, 10**30, -(2**63), 'é"\\\n\u2603', ""]
    specials += [True, None, np.float64(0.1), np.float32(0.1), np.int64(3), torch.tensor(0.25), torch.tensor([1, 2])]
    specials += [np.arange(3), [1.5, torch.tensor(2.0)], (1, "a"), {"nested": np.float16(1.5)}, object(), HookBridge]
    for _ in range(1000):
        tag: dict[Any, Any] = {}
        for i in range(rng.randint(0, 8)):
            key = rng.choice(["lr", "loss", "time", "ключ", 'a"b', f"k{i}", "step", 7, 2.5, None])
            tag[key] = rng.choice([rng.random(), rng.gauss(0, 1e6), rng.randint(-1000, 1000), rng.choice(specials)])
        step = rng.choice([0, 7, 10**12, 2.5])
        assert _json_line(tag, step) == _dumps_bytes(tag, step), tag


def test_json_writer_lines_match_the_general_conversion(tmp_path: Path) -> None:
    writer = LocalJsonWriter(str(tmp_path))
    tags = [{"lr": 0.1, "loss": 0.25, "epoch": 1, "iter": 2}, {"acc": torch.tensor(0.5), "n": 3}, {"x": math.nan}]
    try:
        for step, tag in enumerate(tags):
            writer.add_scalars(tag, step=step, file_path="run.json")
    finally:
        writer.close()
    expected = [_dumps(tag, step).rstrip("\n") for step, tag in enumerate(tags)]
    for name in ("scalars.json", "run.json"):
        assert (tmp_path / name).read_bytes() == b"".join(_dumps_bytes(tag, step) for step, tag in enumerate(tags))
        assert (tmp_path / name).read_text().splitlines() == expected


class ShortWrites(io.FileIO):
    """A file whose ``write`` takes at most ``limit`` bytes a call (0: none), as a signal or a full disk may."""

    limit = 5

    def write(self, data: Any) -> int:
        return super().write(bytes(data)[: self.limit])


def test_a_short_write_is_finished(tmp_path: Path) -> None:
    line = _json_line({"loss": 0.25, "lr": 0.1}, 3)
    with ShortWrites(tmp_path / "short.json", "a") as handle:
        written = handle.write(line)
        assert written == ShortWrites.limit < len(line)
        _write_rest(handle, line, written)
    assert (tmp_path / "short.json").read_bytes() == line


def test_a_write_that_makes_no_progress_is_an_error(tmp_path: Path) -> None:
    class NoProgress(ShortWrites):
        limit = 0

    with NoProgress(tmp_path / "stuck.json", "a") as handle, pytest.raises(OSError, match=r"stuck\.json"):
        _write_rest(handle, b"{}\n", 0)


# ----------------------------------------------------------------------------- reading the hub
def _reference(items: list[Any]) -> list[Any]:
    """What the general flush gives: each tensor as ``.item()`` reads it (MMEngine's reading), held as
    MMEngine's float64 history holds every number of a buffer that started empty: as a float."""
    return [float(v.item() if isinstance(v, torch.Tensor) else v) for v in items]


def test_pending_tensors_read_as_the_general_flush_reads_them() -> None:
    rng = random.Random(11)
    makers = [
        lambda: torch.tensor(rng.random()),
        lambda: torch.tensor(rng.random(), dtype=torch.float64),
        lambda: torch.tensor(rng.random(), dtype=torch.float16),
        lambda: torch.tensor(rng.random(), dtype=torch.bfloat16),
        lambda: torch.tensor(rng.randint(-(2**40), 2**40)),
        lambda: torch.tensor(rng.random() > 0.5),
        lambda: torch.tensor([rng.random()]),
        lambda: rng.random(),
        lambda: rng.randint(0, 9),
    ]
    for trial in range(150):
        kinds = rng.sample(range(len(makers)), rng.randint(1, 3))
        items = [makers[rng.choice(kinds)]() for _ in range(rng.randint(1, 12))]
        expected = _reference(items)  # numbers before any tensor too
        buffer, hub = HistoryBuffer(), MessageHub(f"line_paths_flush_{trial}")
        append = hub.scalar_appender("x")  # the inbox the per-iteration hooks fill
        for value in items:
            buffer.update(value)
            append(value)
        hub_items = _reference(items)  # what the inbox holds joins behind a pending tensor or as a float
        for read, want in ((buffer, expected), (hub.get_scalar("x"), hub_items)):
            assert read.current() == want[-1]
            assert read.mean(len(items)) == pytest.approx(sum(want) / len(want), nan_ok=True)
            got = read.data[0].tolist()
            assert got == want and [type(v) for v in read._values] == [type(v) for v in want], (items, got, want)


def test_eta_text_is_timedelta_text() -> None:
    rng = random.Random(5)
    cases = [0, 1, 59, 60, 3599, 3600, 86399, 86400, 86401, 2 * 86400 + 5, 10**7, -1, -86401]
    for seconds in cases + [rng.randint(0, 10**6) for _ in range(2000)]:
        assert _eta_text(seconds) == str(datetime.timedelta(seconds=seconds))


@pytest.mark.parametrize("eta", [0.0, 0.9, 59.5, 3599.0, 86399.9, 86400.0, 90061.0, 10.0**7, -0.5, -1.0, -86401.0])
def test_fast_line_shows_any_eta_as_the_general_steps(eta: float) -> None:
    runner = _runner(_hub(f"eta_{eta}", HUBS["usual"], eta))
    fast = LogProcessor()._train_line(runner, 6, 25)
    assert fast is not None
    assert fast[1] == GeneralSteps().get_log_after_iter(runner, 6, "train")[1]
    assert f"eta: {datetime.timedelta(seconds=int(eta))}  " in fast[1]


@pytest.mark.parametrize("built", [True, False])
def test_the_device_is_asked_only_where_torch_has_cuda(monkeypatch: pytest.MonkeyPatch, built: bool) -> None:
    import lightning_hooks.logging.log_processor as log_processor_module

    asked: list[Any] = []
    monkeypatch.setattr(log_processor_module, "_CUDA_BUILT", built)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(LogProcessor, "_cuda_device", staticmethod(lambda runner: asked.append(runner)))
    runner = _runner(_hub(f"cuda_built_{built}", HUBS["usual"]))
    line = LogProcessor()._train_line(runner, 6, 25)
    assert line is not None and "memory" not in line[1]
    assert asked == ([runner] if built else [])
