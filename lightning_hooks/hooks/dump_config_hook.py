"""DumpConfigHook: write the merged config into the work directory, as MMEngine's Runner does.

MMEngine dumps the config it runs (``_base_`` files merged) to ``<work_dir>/<config file name>``.
This hook does the same in ``before_run`` on rank 0, as a Python config of plain literals that
``load_mmengine_config`` (and ``mmengine.Config``) read back.
"""

from __future__ import annotations

import os
import os.path as osp
import pprint
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..registry import HOOKS
from .hook import Hook

if TYPE_CHECKING:
    from ..runner import RunnerView

__all__ = ["DumpConfigHook", "config_as_python"]


def config_as_python(cfg: Mapping[str, Any]) -> str:
    """``key = value`` lines, one per top-level key, with the values pretty-printed."""
    lines = [f"{key} = {pprint.pformat(value, width=100, sort_dicts=False)}" for key, value in cfg.items()]
    return "\n".join(lines) + "\n"


@HOOKS.register_module()
class DumpConfigHook(Hook):
    """Write ``cfg`` to ``<work_dir>/<filename>`` before the run (rank 0).

    Args:
        cfg: the merged config (plain dicts and lists).
        filename: the file name, normally the config's own (``'resnet50_8xb32_in1k.py'``).
    """

    priority = "VERY_HIGH"

    def __init__(self, cfg: Mapping[str, Any], filename: str) -> None:
        if not isinstance(cfg, Mapping):
            raise TypeError(f"cfg must be a dict, got {type(cfg).__name__}")
        if not isinstance(filename, str) or osp.basename(filename) != filename or not filename.endswith(".py"):
            raise ValueError(f"filename must be a bare '.py' file name, got {filename!r}")
        self.cfg = dict(cfg)
        self.filename = filename

    def before_run(self, runner: RunnerView) -> None:
        """Write the file once per run, on rank 0."""
        if runner.rank != 0:
            return
        os.makedirs(runner.work_dir, exist_ok=True)
        path = osp.join(runner.work_dir, self.filename)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(config_as_python(self.cfg))
        os.replace(tmp, path)

    def __repr__(self) -> str:
        return f"DumpConfigHook(filename={self.filename!r})"
