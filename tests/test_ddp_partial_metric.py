"""A save_best / early-stopping metric that only some ranks log must not hang a 2-process DDP job.

The bridge gives every rank rank 0's validation metrics (MMEngine's evaluator
broadcasts them too), so every rank decides the same: rank 0's value is used
everywhere, and a metric rank 0 lacks is the same clear error on every rank.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ckpt_helpers import files_in

SCRIPT = str(Path(__file__).parent / "ckpt_script.py")


def _run(work_dir: Path, logging_rank: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, SCRIPT, "ddp_partial", str(work_dir), str(logging_rank)],
        capture_output=True,
        text=True,
        timeout=100,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_metric_logged_on_rank_zero_only_is_decided_on_rank_zero_for_every_rank(tmp_path):
    """Lightning's ``self.log(..., rank_zero_only=True)``: rank 1 has no ``acc``; it used to hang or raise."""
    result = _run(tmp_path, logging_rank=0)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for key in ("best_score", "best_ckpt", "keep_ckpt_ids", "epoch"):
        assert records[0][key] == records[1][key], key
    assert records[0]["best_score"] == pytest.approx(0.3)
    assert records[0]["epoch"] == 3  # EarlyStoppingHook stopped both ranks after the third validation
    assert files_in(tmp_path) == ["best_acc_epoch_2.pth", "epoch_3.pth", "last_checkpoint"]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_metric_missing_on_rank_zero_is_the_same_error_on_every_rank(tmp_path):
    result = _run(tmp_path, logging_rank=1)
    assert result.returncode != 0
    assert "validation did not report ['acc']; the reported metrics are ['other']" in result.stderr
    assert not list(tmp_path.glob("best_*.pth"))
