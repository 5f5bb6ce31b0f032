"""DumpConfigHook: write the merged config into the work directory, as MMEngine's Runner does.

MMEngine dumps the config it runs (``_base_`` files merged) to ``<work_dir>/<config file name>``.
This hook does the same in ``before_run`` on rank 0, in the format of that name: a Python config
of plain literals, JSON or YAML, which ``load_mmengine_config`` (and ``mmengine.Config``) read back.
"""

from __future__ import annotations

import json
import os
import os.path as osp
import pprint
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..registry import HOOKS
from .hook import Hook

if TYPE_CHECKING:
    from ..runner import RunnerView

__all__ = ["DumpConfigHook", "config_as_python", "config_text"]

_SUFFIXES = (".py", ".json", ".yaml", ".yml")


def config_as_python(cfg: Mapping[str, Any]) -> str:
    """``key = value`` lines, one per top-level key, with the values pretty-printed."""
    lines = [f"{key} = {pprint.pformat(value, width=100, sort_dicts=False)}" for key, value in cfg.items()]
    return "\n".join(lines) + "\n"


def _as_plain_data(value: Any) -> Any:
    """Dicts and lists all the way down (tuples become lists), as JSON and YAML hold them."""
    if isinstance(value, Mapping):
        return {key: _as_plain_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_plain_data(item) for item in value]
    return value


def config_text(cfg: Mapping[str, Any], filename: str) -> str:
    """``cfg`` in the format ``filename`` names: Python (``.py``), JSON (``.json``) or YAML (``.yaml``/``.yml``)."""
    if filename.endswith(".json"):
        return json.dumps(_as_plain_data(cfg), indent=4) + "\n"
    if filename.endswith((".yaml", ".yml")):
        import yaml  # type: ignore[import-untyped]  # a dependency of lightning (PyYAML)

        return str(yaml.safe_dump(_as_plain_data(cfg), sort_keys=False))
    return config_as_python(cfg)


@HOOKS.register_module()
class DumpConfigHook(Hook):
    """Write ``cfg`` to ``<work_dir>/<filename>`` before the run (rank 0).

    Args:
        cfg: the merged config (plain dicts and lists).
        filename: the file name, normally the config's own (``'resnet50_8xb32_in1k.py'``); its suffix
            (``.py``, ``.json``, ``.yaml``, ``.yml``) sets the format.
    """

    priority = "VERY_HIGH"

    def __init__(self, cfg: Mapping[str, Any], filename: str) -> None:
        if not isinstance(cfg, Mapping):
            raise TypeError(f"cfg must be a dict, got {type(cfg).__name__}")
        if not isinstance(filename, str) or osp.basename(filename) != filename or not filename.endswith(_SUFFIXES):
            raise ValueError(f"filename must be a bare file name ending with one of {_SUFFIXES}, got {filename!r}")
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
            f.write(config_text(self.cfg, self.filename))
        os.replace(tmp, path)

    def __repr__(self) -> str:
        return f"DumpConfigHook(filename={self.filename!r})"
