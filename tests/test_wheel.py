"""The package builds as a wheel that installs into a clean venv, imports from there (not the source tree) and runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
def test_wheel_installs_and_imports_in_a_clean_venv(tmp_path):
    # build from a copy of the sources (no stale build/ dir, nothing written into the tree) without network:
    # the build backend comes from this environment
    source = tmp_path / "src"
    shutil.copytree(ROOT / "lightning_hooks", source / "lightning_hooks", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
        ]
    )
    (wheel,) = (tmp_path / "dist").glob("lightning_hooks-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("__init__.py", "__main__.py", "bridge.py", "config.py", "cli.py", "demo.py", "hooks/hook.py"):
        assert f"lightning_hooks/{module}" in names
    assert not any(n.startswith(("tests/", "examples/", "notebooks/")) for n in names)
    assert "lightning_hooks/py.typed" in names  # PEP 561 marker: type checkers read the package's annotations

    # a clean venv: only the wheel is installed; dependencies (torch, lightning) are reached through a .pth
    # pointing at this environment's site-packages, whose own .pth files (the editable install) are not run
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)])
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    Path(purelib, "_deps_from_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    check = (
        "import lightning_hooks, lightning_hooks.config, lightning_hooks.demo;"
        "print(lightning_hooks.__file__, lightning_hooks.__version__, len(lightning_hooks.HOOKS));"
        "import runpy, sys; sys.argv = [SCRIPT, '--help']; runpy.run_path(SCRIPT, run_name='__main__')"
    ).replace("SCRIPT", repr(str(venv / "bin" / "lightning-hooks")))
    out = subprocess.run([str(python), "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    location, version, n_hooks = out.stdout.splitlines()[0].split()
    assert location.startswith(purelib) and not location.startswith(str(ROOT))
    assert version == "0.1.0" and int(n_hooks) >= 10
    assert "publish" in out.stdout and "inspect" in out.stdout  # the console script the wheel installed ran
