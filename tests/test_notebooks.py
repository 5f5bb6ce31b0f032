"""Every notebook in notebooks/ runs top to bottom without an error (nbclient, a kernel on this interpreter)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
KERNEL = "lightning-hooks-tests"


@pytest.fixture
def kernel_on_this_python(tmp_path, monkeypatch):
    """A kernelspec for the running interpreter, found through JUPYTER_PATH (works on a fresh machine)."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "lightning_hooks tests",
        "language": "python",
        "env": {"MPLBACKEND": "Agg", "WANDB_MODE": "offline"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL


def test_notebooks_exist():
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "custom_hook.ipynb"}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, kernel_on_this_python):
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=kernel_on_this_python,
        timeout=240,
        resources={"metadata": {"path": str(tmp_path)}},  # work_dirs/ land in tmp_path
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert (tmp_path / "work_dirs").is_dir()
    if path.stem == "quickstart":  # the loss/accuracy curves and the raw-vs-EMA bars were drawn
        images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        assert len(images) == 2
        assert (tmp_path / "work_dirs" / "quickstart" / "curves.png").stat().st_size > 1000
