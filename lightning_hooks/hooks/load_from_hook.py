"""LoadFromHook: MMEngine's ``load_from``, a weights-only load before the run, with a missing/unexpected-key report.

MMEngine's Runner loads ``load_from`` (when not resuming) with ``strict=False`` and
``revise_keys=[(r'^module\\.', '')]``, logging the keys the checkpoint lacks and the
ones the model lacks. This hook does the same in ``before_run`` on the LightningModule,
reading the file with ``torch.load(weights_only=True)``. ``revise_keys`` maps key prefixes
(e.g. ``[(r'^', 'model.')]`` when the LightningModule keeps the network as ``self.model``).
A ``fit`` that resumes from a checkpoint (``ckpt_path``, or the ``<work_dir>/last_checkpoint`` of
``resume=True``) skips it: the checkpoint's weights win, as in MMEngine.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

import torch

from ..fileio import check_weights_source, is_download_url, read_weights
from ..registry import HOOKS
from .hook import Hook

if TYPE_CHECKING:
    from ..runner import RunnerView

__all__ = ["LoadFromHook", "load_weights"]


def _revise(state_dict: Mapping[str, Any], revise_keys: Sequence[tuple[str, str]]) -> OrderedDict[str, Any]:
    """The state dict with each ``(pattern, replacement)`` applied to every key in turn.

    Its ``_metadata`` (each module's version, which ``_load_from_state_dict`` reads to convert
    older layouts) is kept as it was, as MMEngine's ``load_checkpoint`` keeps it.
    """
    metadata = getattr(state_dict, "_metadata", None)
    revised: OrderedDict[str, Any] = OrderedDict(state_dict)
    for pattern, replacement in revise_keys:
        compiled = re.compile(pattern)
        revised = OrderedDict((compiled.sub(replacement, key), value) for key, value in revised.items())
    if metadata is not None:
        revised._metadata = metadata  # type: ignore[attr-defined]
    return revised


def load_weights(
    model: torch.nn.Module,
    filename: str,
    revise_keys: Sequence[tuple[str, str]] = ((r"^module\.", ""),),
    strict: bool = False,
    state_dict_key: str = "state_dict",
) -> tuple[list[str], list[str]]:
    """Load the weights of ``filename`` into ``model``; returns (missing keys, unexpected keys).

    ``filename`` is a local path, an ``http(s)://`` URL or an fsspec URL (see
    :func:`~lightning_hooks.fileio.read_weights`), read with ``torch.load(weights_only=True)``; its
    ``state_dict_key`` entry (or the whole file, when it is a bare state dict) is loaded after
    ``revise_keys``' substitutions.
    """
    checkpoint = read_load_from(filename)
    return load_into(model, checkpoint, filename, revise_keys, strict, state_dict_key)


def read_load_from(filename: str) -> dict[str, Any]:
    """The checkpoint ``filename`` as a dict, read with ``weights_only=True`` (errors say what to do)."""
    try:
        checkpoint = read_weights(filename)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"load_from={filename!r} holds objects other than tensors (MMEngine's own checkpoints keep "
            "HistoryBuffer objects), which weights_only loading refuses. Extract the weights once from a file "
            "you trust, e.g. torch.save(torch.load(path, weights_only=False)['state_dict'], 'weights.pth'), "
            "and load that"
        ) from exc
    if not isinstance(checkpoint, dict):
        raise TypeError(f"load_from={filename!r} holds a {type(checkpoint).__name__}, not a state dict")
    return checkpoint


def load_into(
    model: torch.nn.Module,
    checkpoint: dict[str, Any],
    filename: str,
    revise_keys: Sequence[tuple[str, str]] = ((r"^module\.", ""),),
    strict: bool = False,
    state_dict_key: str = "state_dict",
) -> tuple[list[str], list[str]]:
    """Load ``checkpoint``'s weights (read from ``filename``) into ``model``, as :func:`load_weights` does."""
    if state_dict_key not in checkpoint and any(isinstance(v, dict) for v in checkpoint.values()):
        # not a bare state dict either (those hold tensors): loading the whole file would load nothing
        warnings.warn(
            f"load_from={filename!r} has no {state_dict_key!r} entry; its entries are {sorted(checkpoint)[:10]}. "
            "The whole file is loaded as the state dict, as MMEngine does; set state_dict_key to the entry "
            "holding the weights",
            UserWarning,
            stacklevel=2,
        )
    state_dict = _revise(checkpoint.get(state_dict_key, checkpoint), revise_keys)
    result = model.load_state_dict(state_dict, strict=strict)
    return list(result.missing_keys), list(result.unexpected_keys)


@HOOKS.register_module()
class LoadFromHook(Hook):
    """Load a checkpoint's weights into the LightningModule before the run (MMEngine's ``load_from``).

    Args:
        filename: the checkpoint (a Lightning or MMEngine checkpoint whose weights load with
            ``weights_only=True``, or a bare state dict): a local path, an ``http(s)://`` URL
            (downloaded once into torch's hub cache, as MMEngine does) or an fsspec URL.
        revise_keys: ``(pattern, replacement)`` regular expressions applied to every key in turn.
        strict: fail on missing or unexpected keys (MMEngine: False, and they are logged).
        state_dict_key: the checkpoint entry holding the weights.
    """

    priority = "VERY_HIGH"

    def __init__(
        self,
        filename: str,
        revise_keys: Sequence[Sequence[str]] = ((r"^module\.", ""),),
        strict: bool = False,
        state_dict_key: str = "state_dict",
    ) -> None:
        if not isinstance(filename, str) or not filename:
            raise TypeError(f"filename must be a non-empty str, got {filename!r}")
        check_weights_source(filename)
        pairs = []
        for pair in revise_keys:
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
                raise TypeError(f"revise_keys must be (pattern, replacement) pairs of str, got {pair!r}")
            try:
                re.compile(pair[0])
            except re.error as exc:
                raise ValueError(
                    f"LoadFromHook: revise_keys pattern {pair[0]!r} is not a regular expression: {exc}"
                ) from None
            pairs.append((pair[0], pair[1]))
        if not isinstance(strict, bool):
            raise TypeError(f"LoadFromHook: strict must be True or False, got {strict!r}")
        if not isinstance(state_dict_key, str):
            raise TypeError(f"LoadFromHook: state_dict_key must be a str, got {state_dict_key!r}")
        self.filename = filename
        self.revise_keys = pairs
        self.strict = bool(strict)
        self.state_dict_key = state_dict_key
        self.loaded: Optional[tuple[list[str], list[str]]] = None

    def before_run(self, runner: RunnerView) -> None:
        """Load the weights, unless this ``fit`` resumes from a checkpoint (``ckpt_path``, or auto-resume's).

        The resumed checkpoint's weights would replace them: they are not loaded first.
        """
        resume_from = runner.resume_checkpoint()
        if resume_from is not None:
            runner.logger.info(f"load_from={self.filename} skipped: resuming from {resume_from}")
            return
        if is_download_url(self.filename) and runner.world_size > 1:
            self._download_on_rank_zero_first(runner)
        checkpoint = read_load_from(self.filename)
        # MMEngine's Runner.load_checkpoint: the hooks see (and may edit) the checkpoint first
        runner.call_hook("after_load_checkpoint", checkpoint=checkpoint)
        missing, unexpected = load_into(
            runner.model, checkpoint, self.filename, self.revise_keys, self.strict, self.state_dict_key
        )
        self.loaded = (missing, unexpected)
        runner.logger.info(f"Load checkpoint from {self.filename}")
        if missing:
            runner.logger.warning(f"missing keys in source state_dict: {', '.join(missing)}")
        if unexpected:
            runner.logger.warning(f"unexpected key in source state_dict: {', '.join(unexpected)}")

    def _download_on_rank_zero_first(self, runner: RunnerView) -> None:
        """Rank 0 downloads the file into the cache before the other ranks read it there, as MMEngine does.

        A failed download is raised on every rank, so no rank waits for the others forever.
        """
        error = None
        if runner.rank == 0:
            try:
                read_weights(self.filename)
            except Exception as exc:  # reported on every rank below
                error = f"{type(exc).__name__}: {exc}"
        error = runner.broadcast(error)
        if error is not None:
            raise RuntimeError(f"load_from={self.filename!r} could not be downloaded on rank 0: {error}")

    def __repr__(self) -> str:
        return f"LoadFromHook(filename={self.filename!r}, revise_keys={self.revise_keys!r}, strict={self.strict})"
