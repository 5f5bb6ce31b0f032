"""Helpers for the logging and scheduler tests: run the toy scenario through MMEngine and through
Lightning + HookBridge, capturing the log lines each prints (only the message part)."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any, Optional

from toy import ToyModule, _mm_classes, make_trainer, mm_loader_cfgs, run_mode

from lightning_hooks import HookBridge

LINE_START = ("Epoch(", "Iter(", "Exp name")
_TIMING = re.compile(r"\b(eta|time|data_time): \S+")


class LineCatcher(logging.Handler):
    """Keeps every message logged through the logger it is attached to."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def lines(self) -> list[str]:
        """The LoggerHook lines, with timings and the experiment name masked."""
        kept = []
        for message in self.messages:
            if not message.startswith(LINE_START):
                continue
            if message.startswith("Exp name"):
                message = "Exp name: <name>"
            kept.append(_TIMING.sub(lambda m: f"{m.group(1)}: <t>", message))
        return kept


def mm_capture_hook(catcher: LineCatcher) -> Any:
    """An MMEngine hook that attaches ``catcher`` to the Runner's logger before anything is logged."""
    from mmengine.hooks import Hook as MMHook

    class Capture(MMHook):
        priority = "HIGHEST"

        def before_run(self, runner: Any) -> None:
            runner.logger.addHandler(catcher)
            runner.logger.setLevel(logging.INFO)

    return Capture()


def run_mm(
    work_dir: Any,
    *,
    mode: str = "train",
    train_cfg: Optional[dict] = None,
    default_hooks: Optional[dict] = None,
    custom_hooks: Optional[list] = None,
    log_processor: Optional[dict] = None,
    optim_wrapper: Optional[dict] = None,
    param_scheduler: Any = None,
    visualizer: Optional[dict] = None,
    infinite: bool = False,
    metric: Any = None,
) -> tuple[Any, LineCatcher]:
    """MMEngine's Runner on the toy scenario (same data and model as tests/toy.py)."""
    from mmengine.runner import Runner

    model_cls, metric_cls = _mm_classes()
    catcher = LineCatcher()
    loader, eval_loader = mm_loader_cfgs(infinite)
    evaluator = dict(type=metric or metric_cls)
    kwargs: dict[str, Any] = dict(
        model=model_cls(),
        work_dir=str(work_dir),
        experiment_name=f"mm_{uuid.uuid4().hex[:8]}",
        custom_hooks=[mm_capture_hook(catcher), *(custom_hooks or [])],
        default_hooks=default_hooks,
        log_processor=log_processor,
        log_level="WARNING",
        visualizer=visualizer,
    )
    if mode == "train":
        kwargs.update(
            train_dataloader=loader,
            train_cfg=train_cfg or dict(by_epoch=True, max_epochs=2, val_interval=1),
            optim_wrapper=optim_wrapper or dict(optimizer=dict(type="SGD", lr=0.1)),
            val_dataloader=eval_loader,
            val_cfg=dict(),
            val_evaluator=evaluator,
            param_scheduler=param_scheduler,
        )
    elif mode == "val":
        kwargs.update(val_dataloader=eval_loader, val_cfg=dict(), val_evaluator=evaluator)
    else:
        kwargs.update(test_dataloader=eval_loader, test_cfg=dict(), test_evaluator=evaluator)
    runner = Runner(**kwargs)
    getattr(runner, mode)()
    return runner, catcher


def run_lh(
    work_dir: Any,
    *,
    mode: str = "fit",
    trainer_kwargs: Optional[dict] = None,
    bridge_kwargs: Optional[dict] = None,
    module: Any = None,
) -> tuple[Any, Any, LineCatcher]:
    """Lightning + HookBridge on the toy scenario; returns (trainer, bridge, catcher)."""
    catcher = LineCatcher()
    logger = logging.getLogger("lightning_hooks")
    logger.addHandler(catcher)
    try:
        bridge = HookBridge(**(bridge_kwargs or {}))
        trainer = make_trainer(work_dir, bridge, **(trainer_kwargs or {}))
        run_mode(trainer, module if module is not None else ToyModule(), mode)
    finally:
        logger.removeHandler(catcher)
    return trainer, bridge, catcher


# ----------------------------------------------------------------------------- file readers
def read_json_lines(path: Any) -> list[dict]:
    """One dict per line of a JSON-lines file."""
    import json

    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def find_one(root: Any, pattern: str) -> Any:
    """The single file under ``root`` matching the glob ``pattern``."""
    from pathlib import Path

    found = sorted(Path(root).rglob(pattern))
    assert len(found) == 1, f"expected one {pattern} under {root}, found {found}"
    return found[0]


def read_tensorboard(event_dir: Any) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` read with tensorboard's own EventAccumulator."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(event_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


_BLOCK = 32 * 1024
_WANDB_HEADER = 7  # ':W&B', a 2-byte magic and a version byte


def read_wandb_history(run_file: Any) -> list[dict[str, Any]]:
    """The history rows of an offline W&B run, decoded from its ``.wandb`` file with W&B's protobuf schema.

    The file is a LevelDB-style log: 32 KiB blocks of chunks with a 7-byte header
    (crc, little-endian length, type 1=full 2=first 3=middle 4=last).
    """
    import json

    from wandb.proto import wandb_internal_pb2

    data = open(run_file, "rb").read()
    assert data[:4] == b":W&B", "not a W&B run file"
    pos, pending, payloads = _WANDB_HEADER, b"", []
    while pos + 7 <= len(data):
        left_in_block = _BLOCK - pos % _BLOCK
        if left_in_block < 7:
            pos += left_in_block
            continue
        length = int.from_bytes(data[pos + 4 : pos + 6], "little")
        kind = data[pos + 6]
        if pos + 7 + length > len(data):
            break  # the writer has not finished this chunk yet
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        pending += chunk
        if kind in (1, 4):
            payloads.append(pending)
            pending = b""
    rows = []
    for payload in payloads:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") == "history":
            row = {}
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                row[key] = json.loads(item.value_json)
            rows.append(row)
    return rows


def wait_for_wandb_history(root: Any, key: str, rows_expected: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """History rows of the single offline run under ``root``, once ``rows_expected`` rows hold ``key``.

    W&B's service process writes the ``.wandb`` file asynchronously, so the rows
    may appear a moment after ``finish()`` returns.
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        rows = read_wandb_history(find_one(root, "run-*.wandb"))
        if sum(key in row for row in rows) >= rows_expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)
