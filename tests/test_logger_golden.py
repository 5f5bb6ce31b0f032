"""LoggerHook's output, pinned byte for byte for two fixed runs (timings, dates and paths masked).

The per-iteration path of RuntimeInfoHook, IterTimerHook, LoggerHook and LogProcessor is
tuned for speed; these files say what it must keep printing and writing: the log file's
lines, ``vis_data/scalars.json`` and ``vis_data/<timestamp>.json``. Regenerate them only
for an intended change of output: ``LH_REGEN_GOLDEN=1 pytest tests/test_logger_golden.py``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from log_toy import find_one, run_lh
from toy import ToyModule

GOLDEN = Path(__file__).parent / "data" / "logger_golden"

_LOG_PREFIX = re.compile(r"^\d\d/\d\d \d\d:\d\d:\d\d - ", re.M)
_LINE_TIMING = re.compile(r"\b(eta|time|data_time): [0-9.:e+-]+")
_JSON_TIMING = re.compile(r'"((?:\w+/)?(?:time|data_time))": [0-9.e+-]+')
_STAMP = re.compile(r"\d{8}_\d{6}")


def _mask(text: str, work_dir: Path, json: bool) -> str:
    text = text.replace(str(work_dir), "<work_dir>")
    text = _STAMP.sub("<timestamp>", text)
    if json:
        return _JSON_TIMING.sub(lambda m: f'"{m.group(1)}": <t>', text)
    return _LINE_TIMING.sub(lambda m: f"{m.group(1)}: <t>", _LOG_PREFIX.sub("", text))


def _halving(opt: torch.optim.Optimizer) -> Any:
    return torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)


SCENARIOS: dict[str, dict[str, Any]] = {
    # Epoch-based, 3 epochs of 4 iterations, a line every 2, validation each epoch, a decaying lr.
    "epoch": dict(
        trainer_kwargs=dict(max_epochs=3),
        bridge_kwargs=dict(default_hooks=dict(logger=dict(type="LoggerHook", interval=2)), print_hooks_table=False),
    ),
    # Iteration-based, 10 iterations, a line every 3, custom statistics, hierarchical tags, 3 digits.
    "iter": dict(
        trainer_kwargs=dict(max_epochs=-1, max_steps=10, val_check_interval=5, check_val_every_n_epoch=None),
        bridge_kwargs=dict(
            default_hooks=dict(logger=dict(type="LoggerHook", interval=3, interval_exp_name=4)),
            print_hooks_table=False,
            log_processor=dict(
                by_epoch=False,
                num_digits=3,
                log_with_hierarchy=True,
                custom_cfg=[
                    dict(data_src="loss", method_name="max", log_name="loss_max", window_size="global"),
                    dict(data_src="loss", method_name="mean", log_name="loss_2", window_size=2),
                ],
            ),
        ),
    ),
}


def _outputs(work_dir: Path, name: str) -> dict[str, str]:
    scenario = SCENARIOS[name]
    run_lh(work_dir, module=ToyModule(scheduler=_halving), **scenario)
    return {
        f"{name}.log": _mask(find_one(work_dir, "*.log").read_text(encoding="utf-8"), work_dir, json=False),
        f"{name}.scalars.json": _mask(find_one(work_dir, "scalars.json").read_text(encoding="utf-8"), work_dir, True),
        f"{name}.timestamp.json": _mask(
            find_one(work_dir, "vis_data/2*.json").read_text(encoding="utf-8"),
            work_dir,
            json=True,
        ),
    }


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_logger_output_is_pinned(tmp_path: Path, name: str) -> None:
    outputs = _outputs(tmp_path, name)
    if os.environ.get("LH_REGEN_GOLDEN") == "1":
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for file_name, text in outputs.items():
            (GOLDEN / file_name).write_text(text, encoding="utf-8")
    for file_name, text in outputs.items():
        expected = (GOLDEN / file_name).read_text(encoding="utf-8")
        assert text == expected, f"{file_name} differs from the pinned output"
