"""The index of a sharded checkpoint directory (``.metadata``), read as data.

``torch.distributed.checkpoint`` reads its index with a plain ``pickle.load``, which can
run any code the file names. This module reads it with an unpickler that builds only
the index's own classes (listed exactly, by module and name), sizes, dtypes and paths,
and checks that every shard it names is a file directly inside the directory. A
directory chosen for the user (``resume=True``) or read without ``trust`` passes through
here before anything else unpickles its index.
"""

from __future__ import annotations

import os.path as osp
import pickle
from typing import Any, Optional

import torch

__all__ = ["SHARDED_INDEX_FILENAME", "read_sharded_index", "unsafe_index_reason"]

#: ``torch.distributed.checkpoint``'s index of a sharded checkpoint directory.
SHARDED_INDEX_FILENAME = ".metadata"

_METADATA = "torch.distributed.checkpoint.metadata"

#: Every global a ``.metadata`` written by ``torch.distributed.checkpoint`` refers to.
_ALLOWED_GLOBALS = frozenset(
    {
        (_METADATA, "Metadata"),
        (_METADATA, "MetadataIndex"),
        (_METADATA, "StorageMeta"),
        (_METADATA, "TensorProperties"),
        (_METADATA, "TensorStorageMetadata"),
        (_METADATA, "BytesStorageMetadata"),
        (_METADATA, "ChunkStorageMetadata"),
        (_METADATA, "_MEM_FORMAT_ENCODING"),
        ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
        ("collections", "OrderedDict"),
        ("torch", "Size"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("torch.serialization", "_get_layout"),  # looks a torch.layout up by name
        ("pathlib", "PosixPath"),  # the checkpoint id recorded at save time
        ("pathlib", "PurePosixPath"),
        ("pathlib", "WindowsPath"),
        ("pathlib", "PureWindowsPath"),
    }
)


class _IndexUnpickler(pickle.Unpickler):
    """Builds only the globals of :data:`_ALLOWED_GLOBALS` and torch's dtypes, layouts and memory formats."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if module == "torch" and "." not in name:
            value = getattr(torch, name, None)
            if isinstance(value, (torch.dtype, torch.layout, torch.memory_format)):
                return value
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name} from a sharded checkpoint's {SHARDED_INDEX_FILENAME}; pass trust=True "
            "(the CLI's --trust) only for checkpoints you trust"
        )


def _outside_shard(metadata: Any) -> Optional[str]:
    """The first shard file the index names that is not a plain file name (``../x``, ``/abs``, ``a/b``), or None."""
    storage = getattr(metadata, "storage_data", None)
    for info in (storage or {}).values():
        name = getattr(info, "relative_path", None)
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or osp.sep in name:
            return repr(name)
    return None


def read_sharded_index(directory: str) -> Any:
    """The ``Metadata`` of ``directory``'s index, built as data only.

    Raises :class:`pickle.UnpicklingError` for a global outside the index's own classes,
    and ``ValueError`` for a shard named outside the directory.
    """
    with open(osp.join(directory, SHARDED_INDEX_FILENAME), "rb") as handle:
        metadata = _IndexUnpickler(handle).load()
    if not hasattr(metadata, "state_dict_metadata"):
        raise ValueError(f"{SHARDED_INDEX_FILENAME} holds a {type(metadata).__name__}, not a checkpoint index")
    outside = _outside_shard(metadata)
    if outside is not None:
        raise ValueError(f"{SHARDED_INDEX_FILENAME} names a shard {outside} outside its directory")
    return metadata


def unsafe_index_reason(directory: str) -> Optional[str]:
    """Why ``directory``'s index cannot be read as data (see :func:`read_sharded_index`), or None when it can."""
    try:
        read_sharded_index(directory)
    except (pickle.UnpicklingError, ValueError) as exc:
        return str(exc)
    except Exception as exc:  # a truncated or foreign file: EOFError, AttributeError, ImportError...
        return f"its {SHARDED_INDEX_FILENAME} is not a readable checkpoint index ({type(exc).__name__}: {exc})"
    return None
