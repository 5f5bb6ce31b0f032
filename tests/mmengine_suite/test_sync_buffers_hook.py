"""MMEngine 0.10.7 ``tests/test_hooks/test_sync_buffers_hook.py`` against :class:`SyncBuffersHook`, 2 gloo processes.

Upstream spawns two processes; here ``ddp_sync_buffers.py`` runs both cases
(the mocked runner and the runner run) in one 2-process Lightning DDP launch, with
a deadline, and this file checks what each rank gathered.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parent / "ddp_sync_buffers.py"
DEADLINE_S = 180
_LAUNCHER_VARS = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "GLOBAL_RANK", "MASTER_ADDR", "MASTER_PORT")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(DEADLINE_S + 60)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launch(out: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_VARS}
    env.update(PYTHONWARNINGS="ignore", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    try:
        return subprocess.run(
            [sys.executable, str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=DEADLINE_S
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the 2-process run did not finish within {DEADLINE_S} s:\n{exc.stdout}")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("sync_buffers")
    proc = _launch(out)
    if proc.returncode != 0 and "address already in use" in (proc.stdout + proc.stderr).lower():
        proc = _launch(out)  # another process took the port between choosing and binding it
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def _per_rank(values: list) -> tuple[torch.Tensor, torch.Tensor]:
    both = torch.tensor(values, dtype=torch.float64)
    return both[0], both[1]


def test_sync_buffers_hook(ranks):
    mock = ranks[0]["mock"]
    for name, values in mock["before"].items():
        first, second = _per_rank(values)
        assert not torch.allclose(first, second), name
    assert "norm.num_batches_tracked" in mock["after"]
    for name, values in mock["after"].items():
        first, second = _per_rank(values)
        assert torch.allclose(first, second), name


@pytest.mark.parametrize("case", ["runner", "runner_no_broadcast"])
def test_with_runner(ranks, case):
    """Every buffer is equal on both ranks after training; with DDP's broadcast off too (integers included)."""
    assert ranks[0][case] == ranks[1][case]
    for name, values in ranks[0][case].items():
        first, second = _per_rank(values)
        assert torch.allclose(first, second), name
