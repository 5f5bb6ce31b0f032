"""JSON-lines scalar files, as MMEngine's ``LocalVisBackend`` writes them.

Every call appends one JSON object (the scalars plus ``step``) to
``<save_dir>/scalars.json`` and to ``<save_dir>/<file_path>`` (the
``<timestamp>.json`` LoggerHook names). Files are opened once, without a buffer, and
each line reaches the file in one ``write`` call, instead of being reopened for every
line as MMEngine does.
"""

from __future__ import annotations

import json
import os
import os.path as osp
from collections.abc import Callable
from io import FileIO
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any, Optional

from .scalars import json_ready

__all__ = ["LocalJsonWriter"]


def _build_encoder() -> Optional[Callable[[Any, int], Any]]:
    """The C encoder ``json.dumps`` builds for every call, with its default settings, built once.

    Without circular-reference markers: a tag that refers to itself is a RecursionError, as it
    is in :func:`json_ready`. None where the C accelerator is missing (``json.dumps`` is used).
    """
    if c_make_encoder is None:
        return None
    settings = json.JSONEncoder()
    return c_make_encoder(  # type: ignore[no-any-return]
        None,
        settings.default,
        encode_basestring_ascii,
        None,
        settings.key_separator,
        settings.item_separator,
        False,
        False,
        True,
    )


_ENCODE = _build_encoder()
_EOL = os.linesep.encode("ascii")


def _json_line(scalars: dict[str, Any], step: Any) -> bytes:
    """``json.dumps(json_ready(scalars))`` with ``step`` added unless there, and a line end, as bytes.

    Values JSON holds as they are (a training line's floats and ints) go straight to the encoder;
    a tensor, an array or a numpy number makes it raise TypeError, and then :func:`json_ready`
    converts the tag first, as always. Both give ``json.dumps``'s text, which is ASCII. The line
    ends with ``os.linesep``, as a file opened in text mode would write it.
    """
    if _ENCODE is not None:
        try:
            if "step" in scalars or not scalars or type(step) is not int:
                text = "".join(_ENCODE(scalars if "step" in scalars else {**scalars, "step": step}, 0))
            else:
                text = f'{"".join(_ENCODE(scalars, 0))[:-1]}, "step": {step}}}'  # '{...}' closed after the step
            return text.encode("ascii") + _EOL
        except TypeError:
            pass
    record = dict(json_ready(scalars))
    record.setdefault("step", step)
    return json.dumps(record).encode("ascii") + _EOL


def _write_rest(handle: FileIO, line: bytes, written: Optional[int]) -> None:
    """Finish a ``write`` that took only ``written`` bytes of ``line`` (an interrupted or partial write)."""
    view = memoryview(line)
    done = written or 0
    while done < len(line):
        step = handle.write(view[done:])
        if not step:
            raise OSError(f"could not append to {handle.name}: no bytes written")
        done += step


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
        self._files: dict[str, FileIO] = {}
        self._open_targets: Optional[tuple[Optional[str], tuple[FileIO, ...]]] = None

    def _file(self, name: str) -> FileIO:
        """The file ``name``, opened for appending without a buffer: each line is one ``write`` call."""
        handle = self._files.get(name)
        if handle is None:
            os.makedirs(self.save_dir, exist_ok=True)
            handle = self._files[name] = FileIO(osp.join(self.save_dir, name), "a")
        return handle

    def add_scalars(self, scalars: dict[str, Any], step: int = 0, file_path: Optional[str] = None) -> None:
        """Append the scalars, with ``step`` added unless they already hold one."""
        cached = self._open_targets  # self._targets(file_path), its cached case inline
        handles = cached[1] if cached is not None and cached[0] == file_path else self._targets(file_path)
        line = _json_line(scalars, step)
        for handle in handles:
            written = handle.write(line)
            if written != len(line):
                _write_rest(handle, line, written)

    def _targets(self, file_path: Optional[str]) -> tuple[FileIO, ...]:
        """The open files a line goes to: ``scalars.json``, then ``file_path`` if given (checked once)."""
        cached = self._open_targets
        if cached is not None and cached[0] == file_path:
            return cached[1]
        names = [self.scalar_save_file]
        if file_path is not None:
            if not file_path.endswith(".json"):
                raise ValueError(f"file_path must end with '.json', got {file_path!r}")
            if file_path == self.scalar_save_file:
                raise ValueError(f"file_path must differ from scalar_save_file {self.scalar_save_file!r}")
            names.append(file_path)
        handles = tuple(self._file(name) for name in names)
        self._open_targets = (file_path, handles)
        return handles

    def close(self) -> None:
        """Close the files (a later write reopens them in append mode)."""
        for handle in self._files.values():
            handle.close()
        self._files.clear()
        self._open_targets = None
