"""JSON-lines scalar files, as MMEngine's ``LocalVisBackend`` writes them.

Every call appends one JSON object (the scalars plus ``step``) to
``<save_dir>/scalars.json`` and to ``<save_dir>/<file_path>`` (the
``<timestamp>.json`` LoggerHook names). Files are opened once and flushed after
each line, instead of being reopened for every line as MMEngine does.
"""

from __future__ import annotations

import json
import os
import os.path as osp
from typing import IO, Any, Optional

from .scalars import json_ready

__all__ = ["LocalJsonWriter"]


class LocalJsonWriter:
    """Appends ``{..., "step": step}`` lines to ``scalars.json`` and to ``file_path``.

    Args:
        save_dir: the directory (LoggerHook uses ``<log_dir>/vis_data``).
        scalar_save_file: the name of the file that receives every line.
    """

    def __init__(self, save_dir: str, scalar_save_file: str = "scalars.json") -> None:
        if not scalar_save_file.endswith(".json"):
            raise ValueError(f"scalar_save_file must end with '.json', got {scalar_save_file!r}")
        self.save_dir = save_dir
        self.scalar_save_file = scalar_save_file
        self._files: dict[str, IO[str]] = {}

    def _file(self, name: str) -> IO[str]:
        handle = self._files.get(name)
        if handle is None:
            os.makedirs(self.save_dir, exist_ok=True)
            handle = self._files[name] = open(osp.join(self.save_dir, name), "a", encoding="utf-8")
        return handle

    def add_scalars(self, scalars: dict[str, Any], step: int = 0, file_path: Optional[str] = None) -> None:
        """Append the scalars, with ``step`` added unless they already hold one."""
        record = dict(json_ready(scalars))
        record.setdefault("step", step)
        line = json.dumps(record) + "\n"
        names = [self.scalar_save_file]
        if file_path is not None:
            if not file_path.endswith(".json"):
                raise ValueError(f"file_path must end with '.json', got {file_path!r}")
            if file_path == self.scalar_save_file:
                raise ValueError(f"file_path must differ from scalar_save_file {self.scalar_save_file!r}")
            names.append(file_path)
        for name in names:
            handle = self._file(name)
            handle.write(line)
            handle.flush()

    def close(self) -> None:
        """Close the files (a later write reopens them in append mode)."""
        for handle in self._files.values():
            handle.close()
        self._files.clear()
