"""The ``lightning-hooks`` command: ``demo``, ``publish`` and ``inspect``.

``publish CKPT --keys meta state_dict`` does what MMEngine's ``CheckpointHook``
does with ``published_keys`` at the end of training, for any existing
checkpoint: keep only the given top-level keys and write
``<stem>-<first 8 hex digits of sha256(pickle.dumps(kept))>.pth`` next to it.
The name is the one MMEngine would give the same dict.

``inspect CKPT`` summarises a checkpoint written by this package (or by
MMEngine): epoch, iteration, best score, whether EMA weights are in it, and
its top-level keys with their sizes.

Both accept a sharded checkpoint directory (``ModelParallelStrategy``'s
``epoch_N.pth/``) too: it is consolidated in this process into one ordinary
checkpoint, so ``publish`` writes one file that loads with ``weights_only=True``.

Checkpoints are read with ``torch.load(weights_only=True)``, which cannot run
code from the file. ``--trust`` allows full unpickling, needed for MMEngine's
own checkpoints (they hold ``HistoryBuffer`` objects); use it only on files
you trust. A file that cannot be read (truncated, corrupt, not a checkpoint)
is reported in one line with exit status 2.

The commands read one file, so this module imports neither Lightning nor the
hooks: torch is imported when a checkpoint is loaded, and ``demo`` imports its
module only when it runs.
"""

from __future__ import annotations

import argparse
import json
import os.path as osp
import pickle
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Optional

__all__ = [
    "CheckpointReadError",
    "inspect_checkpoint",
    "load_checkpoint",
    "main",
    "publish_checkpoint",
    "publish_dict",
]

#: What torch's safe unpickler says when a file holds a class it will not build (torch >= 2.1 wordings).
#: torch's wording of a class or function weights_only refuses ("Unsupported global: GLOBAL x.y", or
#: "unsupported GLOBAL posix.system whose module posix is blocked").
_UNSAFE_GLOBAL = re.compile(r"unsupported (?:global|class):?\s*(?:GLOBAL\s+)?([\w.]+)", re.IGNORECASE)


class CheckpointReadError(ValueError):
    """A checkpoint file that cannot be read: truncated, corrupt, not a checkpoint, or not trusted."""


def _one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (torch's messages run to many lines)."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _damage(exc: BaseException) -> str:
    """A short account of why torch could not read a file: the exception type and its first sentence."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    if "WeightsUnpickler error:" in text:  # the safe unpickler's own reason, without torch's preamble
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation of torch.load", 1)[0]
    words = " ".join(text.split())
    first = words.split(". ", 1)[0].rstrip(".")
    return f"{type(exc).__name__}: {first}" if first else f"{type(exc).__name__} (the file ends too early)"


def load_checkpoint(path: str, trust: bool = False) -> dict[str, Any]:
    """Load a checkpoint on the CPU; only plain types and tensors unless ``trust``.

    Raises :class:`CheckpointReadError` (one line) for a file that is truncated or corrupt,
    or that holds objects ``weights_only=True`` refuses (then it names one and ``--trust``).
    """
    import torch  # here, not at import time: ``--help`` and argument errors need no torch

    if osp.isdir(path):
        return _load_sharded(path, trust)
    if not osp.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=not trust)
        except pickle.UnpicklingError as exc:
            unsafe = None if trust else _UNSAFE_GLOBAL.search(str(exc))
            if unsafe is not None:
                raise CheckpointReadError(
                    f"{path} holds objects other than tensors and plain types (e.g. {unsafe.group(1)}), so it "
                    "cannot be loaded safely (weights_only=True); if you trust the file, pass --trust"
                ) from exc
            raise CheckpointReadError(
                f"{path} is not a readable checkpoint (truncated or corrupt): {_damage(exc)}"
            ) from exc
        except Exception as exc:  # torch reports damage as RuntimeError, EOFError, KeyError, ...
            raise CheckpointReadError(
                f"{path} is not a readable checkpoint (truncated or corrupt): {_damage(exc)}"
            ) from exc
    for warning in caught:  # the load worked: what torch had to say still reaches the user
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if not isinstance(checkpoint, dict):
        raise CheckpointReadError(f"{path} does not hold a checkpoint dict but a {type(checkpoint).__name__}")
    return checkpoint


def _work_dir_hint(path: str) -> str:
    """For a run's work_dir: the checkpoint its ``last_checkpoint`` names (read as text, not followed)."""
    marker = osp.join(path, "last_checkpoint")
    try:
        with open(marker, encoding="utf-8") as f:
            named = f.read().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f"; it looks like a work_dir, whose last_checkpoint names {named}" if named else ""


def _load_sharded(path: str, trust: bool) -> dict[str, Any]:
    """A sharded checkpoint directory (ModelParallelStrategy) read into one dict with MMEngine's layout.

    Its pickled index and ``meta.pt`` are read with restricted loaders unless ``trust``;
    an incomplete or damaged directory is one :class:`CheckpointReadError`.
    """
    from .sharded_checkpoint import is_sharded_checkpoint, read_sharded_checkpoint

    if not is_sharded_checkpoint(path):
        raise CheckpointReadError(f"{path} is a directory but not a complete sharded checkpoint{_work_dir_hint(path)}")
    try:
        return read_sharded_checkpoint(path, trust=trust)
    except pickle.UnpicklingError as exc:
        if trust:
            raise CheckpointReadError(
                f"{path} is not a readable sharded checkpoint (truncated or corrupt): {_damage(exc)}"
            ) from exc
        raise CheckpointReadError(
            f"{path} holds objects other than tensors and plain types, so it cannot be loaded safely "
            "(weights_only=True); if you trust the directory, pass --trust"
        ) from exc
    except Exception as exc:  # torch.distributed.checkpoint reports damage in many types
        raise CheckpointReadError(
            f"{path} is not a readable sharded checkpoint (truncated or corrupt): {_damage(exc)}"
        ) from exc


def publish_checkpoint(path: str, keys: Sequence[str], trust: bool = False) -> tuple[str, list[str]]:
    """Write the published copy of the checkpoint file ``path``; returns ``(new path, removed keys)``."""
    return publish_dict(load_checkpoint(path, trust), path, keys)


def publish_dict(checkpoint: Mapping[str, Any], path: str, keys: Sequence[str]) -> tuple[str, list[str]]:
    """Keep ``keys`` of a loaded checkpoint and save it under MMEngine's published name for ``path``.

    The kept keys keep the checkpoint's own order, as in MMEngine. A key asked for but
    absent is an error (MMEngine would publish without it, silently).

    The file is written by :func:`lightning_hooks.publishing.write_published`, as CheckpointHook's
    ``published_keys`` writes it: atomically, named by the SHA-256 of the kept dict's pickle, as
    MMEngine names it. Pickling a tensor embeds the memory address of its storage, which differs
    for every loaded copy, so publishing the same file twice (here or in MMEngine) gives two
    different names; the hash tells copies apart but is not a content checksum.
    """
    if not keys:
        raise ValueError("give at least one key to keep, e.g. --keys meta state_dict")
    if len(set(keys)) != len(keys):
        raise ValueError(f"keys must not repeat, got {list(keys)}")
    missing = [k for k in keys if k not in checkpoint]
    if missing:
        raise KeyError(f"{path} has no key(s) {missing}; its keys are {list(checkpoint)}")
    from .publishing import write_published  # the same function CheckpointHook publishes with

    return write_published(checkpoint, path, keys)


def _nbytes(obj: Any) -> int:
    """Bytes of tensor data inside ``obj``, plus a pickled-size estimate of everything else."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, Mapping):
        return sum(_nbytes(v) for v in obj.values()) + len(pickle.dumps(list(obj.keys())))
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    try:
        return len(pickle.dumps(obj))
    except Exception:
        return 0


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def inspect_checkpoint(path: str, trust: bool = False) -> dict[str, Any]:
    """What a checkpoint holds: epoch, iter, best scores, EMA presence, top-level keys and sizes.

    ``epoch`` and ``iter`` are MMEngine's (from ``meta``: completed epochs and iterations, as in the
    file names). Lightning's own ``epoch``/``global_step`` are reported apart, since they count
    differently.
    """
    checkpoint = load_checkpoint(path, trust)
    meta = _section(checkpoint.get("meta"), "'meta'", path)
    hub = checkpoint.get("message_hub") or {}
    info = _section(
        hub.get("runtime_info") if isinstance(hub, Mapping) else getattr(hub, "runtime_info", None),
        "message hub's runtime_info",
        path,
    )
    best = {k: _scalar(v) for k, v in info.items() if k == "best_score" or k.startswith("best_score_")}
    best_ckpt = {k: v for k, v in info.items() if k == "best_ckpt" or k.startswith("best_ckpt_")}
    bridge_state = _bridge_state(checkpoint, path)
    return {
        "path": osp.abspath(path),
        # MMEngine's counters (meta): completed epochs and iterations; None when the file has no meta
        "epoch": meta.get("epoch"),
        "iter": meta.get("iter"),
        # Lightning's own counters, when it wrote the file: 0-based epoch and optimizer steps
        "lightning": {k: checkpoint[k] for k in ("epoch", "global_step") if k in checkpoint},
        "best_score": best,
        "best_ckpt": best_ckpt,
        "ema": "ema_state_dict" in checkpoint or any("EMA" in k for k in bridge_state),
        "hooks_with_state": sorted(bridge_state),
        "keys": {k: _nbytes(v) for k, v in checkpoint.items()},
        "file_bytes": osp.getsize(path),
    }


def _scalar(value: Any) -> Any:
    import torch

    return value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else value


def _section(value: Any, what: str, path: str) -> Mapping[str, Any]:
    """A part of the checkpoint that must be a dict (absent: empty); anything else is not a checkpoint read here."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise CheckpointReadError(f"{path}: its {what} is a {type(value).__name__}, not a dict, as in a checkpoint")
    return value


def _bridge_state(checkpoint: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The HookBridge's per-hook state in Lightning's ``callbacks`` entry, if any."""
    for key, state in _section(checkpoint.get("callbacks"), "'callbacks'", path).items():
        if "HookBridge" in str(key) and isinstance(state, Mapping):
            return dict(state.get("hooks", {}))
    return {}


def format_inspection(report: Mapping[str, Any]) -> str:
    """The human-readable form of :func:`inspect_checkpoint`'s report."""
    lines = [
        f"checkpoint : {report['path']} ({_human(report['file_bytes'])})",
        f"epoch      : {report['epoch']}",
        f"iter       : {report['iter']}",
    ]
    if report["lightning"]:
        lightning = ", ".join(f"{k} {v}" for k, v in report["lightning"].items())
        lines.append(f"Lightning  : {lightning} (its epoch is 0-based, global_step counts optimizer steps)")
    if report["best_score"]:
        for key, score in report["best_score"].items():
            name = key.replace("best_score", "best_ckpt")
            where = report["best_ckpt"].get(name)
            lines.append(f"{key:<11}: {score}" + (f"  ({where})" if where else ""))
    else:
        lines.append("best_score : none recorded")
    lines.append(f"EMA        : {'yes' if report['ema'] else 'no'}")
    if report["hooks_with_state"]:
        lines.append(f"hook state : {', '.join(report['hooks_with_state'])}")
    lines.append("keys:")
    width = max((len(k) for k in report["keys"]), default=0)
    for key, size in report["keys"].items():
        lines.append(f"  {key:<{width}}  {_human(size):>10}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lightning-hooks`` command."""
    parser = argparse.ArgumentParser(
        prog="lightning-hooks", description="MMEngine's hook system for PyTorch Lightning: tools."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,publish,inspect}")
    demo = sub.add_parser("demo", help="train a small CNN on scikit-learn's digits with HookBridge", add_help=False)
    demo.add_argument("demo_args", nargs=argparse.REMAINDER, help="arguments of python -m lightning_hooks.demo")
    publish = sub.add_parser("publish", help="keep only some top-level keys of a checkpoint, MMEngine-style")
    publish.add_argument("checkpoint", help="the checkpoint file (.pth/.ckpt)")
    publish.add_argument("--keys", nargs="+", default=["meta", "state_dict"], help="top-level keys to keep")
    publish.add_argument("--trust", action="store_true", help="allow full unpickling (only for files you trust)")
    inspect = sub.add_parser("inspect", help="summarise a checkpoint")
    inspect.add_argument("checkpoint", help="the checkpoint file (.pth/.ckpt)")
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")
    inspect.add_argument("--trust", action="store_true", help="allow full unpickling (only for files you trust)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["demo"]:  # the demo has its own parser and --help
        from .demo import main as demo_main

        return demo_main(args_list[1:], prog="lightning-hooks demo")
    args = build_parser().parse_args(args_list)
    try:
        if args.command == "publish":
            target, removed = publish_checkpoint(args.checkpoint, args.keys, args.trust)
            if removed:
                print(f"removed keys: {', '.join(removed)}")
            print(f"published {args.checkpoint} to {target}")
        elif args.command == "inspect":
            report = inspect_checkpoint(args.checkpoint, args.trust)
            print(json.dumps(report, indent=2, default=str) if args.json else format_inspection(report))
    except (OSError, KeyError, ValueError) as exc:  # CheckpointReadError is a ValueError
        print(f"lightning-hooks {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    return 0
