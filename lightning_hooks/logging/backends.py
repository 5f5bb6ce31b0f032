"""Building LoggerHook's writers from MMEngine-style ``vis_backends`` settings.

``vis_backends`` is the list MMEngine gives its Visualizer, e.g.
``[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend'),
dict(type='WandbVisBackend', init_kwargs=dict(project='p'))]``. Every backend
writes under ``<log_dir>/vis_data`` unless it names its own ``save_dir``.
A TensorBoard or W&B backend is not created when the Trainer already has a
Lightning logger of that kind: the scalars reach that logger anyway, and
writing them twice would duplicate every chart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Protocol

from .lightning_writer import LightningLoggersWriter
from .local_writer import LocalJsonWriter
from .tensorboard_writer import TensorboardWriter
from .wandb_writer import WandbWriter

__all__ = ["BACKEND_TYPES", "DEFAULT_VIS_BACKENDS", "ScalarWriter", "build_writers", "check_vis_backends"]


class ScalarWriter(Protocol):
    """What LoggerHook needs from a writer."""

    def add_scalars(self, scalars: dict[str, Any], step: int = 0, file_path: Any = None) -> None: ...

    def close(self) -> None: ...


#: MMEngine's backend names, and the keyword arguments each accepts here.
BACKEND_TYPES: dict[str, tuple[str, ...]] = {
    "LocalVisBackend": ("save_dir", "scalar_save_file"),
    "TensorboardVisBackend": ("save_dir",),
    "WandbVisBackend": ("save_dir", "init_kwargs", "define_metric_cfg", "commit"),
}
#: The Visualizer MMEngine's Runner builds by default: JSON lines only.
DEFAULT_VIS_BACKENDS: list[dict[str, Any]] = [{"type": "LocalVisBackend"}]

#: Lightning logger class names that already cover a backend.
_COVERED_BY = {"TensorboardVisBackend": ("TensorBoardLogger",), "WandbVisBackend": ("WandbLogger",)}


def check_vis_backends(vis_backends: Any) -> list[dict[str, Any]]:
    """Validate ``vis_backends`` and return plain dict copies; errors name the bad entry and the valid choices."""
    if isinstance(vis_backends, Mapping):
        vis_backends = [vis_backends]
    if not isinstance(vis_backends, Sequence) or isinstance(vis_backends, str):
        raise TypeError(
            f"vis_backends must be a list of dicts such as dict(type='LocalVisBackend'), got {vis_backends!r}"
        )
    checked = []
    for index, entry in enumerate(vis_backends):
        if not isinstance(entry, Mapping) or "type" not in entry:
            raise TypeError(f"vis_backends[{index}] must be a dict with a 'type' key, got {entry!r}")
        kind = entry["type"]
        if kind not in BACKEND_TYPES:
            raise ValueError(f"vis_backends[{index}] has unknown type {kind!r}; valid types: {list(BACKEND_TYPES)}")
        unknown = sorted(set(entry) - {"type", *BACKEND_TYPES[kind]})
        if unknown:
            raise ValueError(
                f"vis_backends[{index}] ({kind}) got unsupported arguments {unknown}; "
                f"supported: {list(BACKEND_TYPES[kind])}"
            )
        checked.append(dict(entry))
    return checked


def build_writers(
    vis_backends: list[dict[str, Any]],
    save_dir: str,
    trainer_loggers: Sequence[Any],
    lightning_logged: AbstractSet[str] = frozenset(),
) -> list[Any]:
    """The writers for one run: the configured backends, then the Trainer's own loggers.

    ``lightning_logged``: names Lightning writes to its loggers itself; they are not forwarded there.
    """
    logger_kinds = {type(lg).__name__ for lg in trainer_loggers}
    writers: list[Any] = []
    for entry in vis_backends:
        kwargs = dict(entry)
        kind = kwargs.pop("type")
        if logger_kinds.intersection(_COVERED_BY.get(kind, ())):
            continue
        kwargs.setdefault("save_dir", save_dir)
        if kind == "LocalVisBackend":
            writers.append(LocalJsonWriter(**kwargs))
        elif kind == "TensorboardVisBackend":
            writers.append(TensorboardWriter(**kwargs))
        else:
            writers.append(WandbWriter(**kwargs))
    if trainer_loggers:
        writers.append(LightningLoggersWriter(trainer_loggers, lightning_logged))
    return writers
