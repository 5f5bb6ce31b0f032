"""24 SIGKILLs at random moments, mostly in the middle of a write, across sync/async and epoch/iteration modes.

``ckpt_script.py kills`` imports torch and Lightning once and forks each
training (so 24 kills fit in well under a minute on 2 cores): CheckpointHook with
``max_keep_ckpts=2`` and ``save_best``, auto-resume from ``last_checkpoint``.
After every kill it checks that every file loads with ``weights_only=True``, that
``last_checkpoint`` and the best file of the resume point exist; the next run
resumes from there. After the kills each mode trains to the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = str(Path(__file__).parent / "ckpt_script.py")
KILLS = 24
MAX_KEEP = 2


@pytest.mark.slow
@pytest.mark.timeout(170)
def test_random_sigkills_never_break_the_resume_point(tmp_path):
    result = subprocess.run(
        [sys.executable, SCRIPT, "kills", str(tmp_path), str(KILLS), "20261130"],
        capture_output=True,
        text=True,
        timeout=160,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    kills = [e for e in events if "kill" in e]
    finals = [e for e in events if "final" in e]
    assert len(kills) == KILLS and len(finals) == 4
    assert sum(e["mid_write"] for e in kills) >= KILLS // 2, "most kills must land in the middle of a write"
    assert {tuple(e["mode"]) for e in kills} == {(True, False), (True, True), (False, False), (False, True)}
    for event in kills:  # check_directory already asserted the invariants; these are what it saw
        assert event["resume"] is None or os.path.basename(event["resume"]) in event["files"]
        assert len(event["regular"]) <= MAX_KEEP + 1, event
    for event in finals:
        assert event["exit"] == 0
        assert event["temps"] == [], event
        assert len(event["regular"]) <= MAX_KEEP + 1, event
        assert event["resume"].endswith(("epoch_24.pth", "iter_96.pth")), event  # training reached its end
    for mode_dir in tmp_path.iterdir():
        assert not [n for n in os.listdir(mode_dir) if n.endswith(".tmp")], mode_dir
