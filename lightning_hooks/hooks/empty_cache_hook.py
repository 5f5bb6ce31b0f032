"""EmptyCacheHook: hand the accelerator's cached, unused memory back to the driver at chosen points.

MMEngine's hook only knows CUDA (and MUSA) and empties the CUDA cache whenever
CUDA exists, even when the model trains on another device. This one asks the
runner which device the Trainer computes on and empties that device's cache
(``torch.cuda``, ``torch.xpu``, ``torch.mps``, or any other ``torch.<device>``
module with an ``empty_cache`` function); on CPU it does nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Optional, Union

import torch

from ..registry import HOOKS
from .hook import DATA_BATCH, Hook

if TYPE_CHECKING:
    from ..runner import RunnerView

__all__ = ["EmptyCacheHook", "release_function_for"]

ReleaseFn = Callable[[], None]


def release_function_for(device: Union[torch.device, str, None]) -> Optional[ReleaseFn]:
    """The function that empties ``device``'s caching allocator, or None when there is nothing to release.

    CPU memory is not cached by torch, so CPU (and an unknown device) gives None.
    """
    if device is None:
        return None
    device_type = torch.device(device).type
    if device_type == "cpu":
        return None
    backend = getattr(torch, device_type, None)
    release = getattr(backend, "empty_cache", None)
    return release if callable(release) else None


@HOOKS.register_module()
class EmptyCacheHook(Hook):
    """Release the accelerator's cached memory before/after epochs and after iterations.

    It acts in training, validation and test alike (MMEngine's generic
    ``_before_epoch``/``_after_epoch``/``_after_iter``), so its call counts are
    MMEngine's: with the defaults, once after every train, val and test epoch.

    Args:
        before_epoch: release before each epoch.
        after_epoch: release after each epoch.
        after_iter: release after each iteration. This makes every iteration
            wait for the allocator and re-allocate its memory; it is known to slow
            training 2-2.5x (diffusers#2563), so a warning is issued.
        release_fn: what to call to release memory. By default (None) it is
            chosen at ``before_run`` from the Trainer's device (nothing on CPU).
            Pass a function to release something else, or to count releases.
    """

    priority = "NORMAL"

    def __init__(
        self,
        before_epoch: bool = False,
        after_epoch: bool = True,
        after_iter: bool = False,
        *,
        release_fn: Optional[ReleaseFn] = None,
    ) -> None:
        for name, value in (("before_epoch", before_epoch), ("after_epoch", after_epoch), ("after_iter", after_iter)):
            if not isinstance(value, bool):
                raise TypeError(f"EmptyCacheHook: {name} must be True or False, got {value!r}")
        if release_fn is not None and not callable(release_fn):
            raise TypeError(
                f"EmptyCacheHook: release_fn must be a callable taking no arguments or None, got {release_fn!r}"
            )
        if after_iter:
            warnings.warn(
                "EmptyCacheHook(after_iter=True) empties the allocator cache after every iteration, "
                "which makes each iteration re-allocate its memory and can slow training 2-2.5x; "
                "prefer after_epoch=True.",
                UserWarning,
                stacklevel=2,
            )
        self._do_before_epoch = before_epoch
        self._do_after_epoch = after_epoch
        self._do_after_iter = after_iter
        self._given_release = release_fn
        self.release_fn: Optional[ReleaseFn] = release_fn

    def before_run(self, runner: RunnerView) -> None:
        """Choose the release function from the device the Trainer computes on (unless one was given)."""
        if self._given_release is None:
            self.release_fn = release_function_for(getattr(runner, "device", None))

    def _release(self) -> None:
        if self.release_fn is not None:
            self.release_fn()

    def _before_epoch(self, runner: RunnerView, mode: str = "train") -> None:
        if self._do_before_epoch:
            self._release()

    def _after_epoch(self, runner: RunnerView, mode: str = "train") -> None:
        if self._do_after_epoch:
            self._release()

    def _after_iter(
        self,
        runner: RunnerView,
        batch_idx: int,
        data_batch: DATA_BATCH = None,
        outputs: Optional[Union[Sequence, dict]] = None,
        mode: str = "train",
    ) -> None:
        if self._do_after_iter:
            self._release()

    def __repr__(self) -> str:
        return (
            f"EmptyCacheHook(before_epoch={self._do_before_epoch}, after_epoch={self._do_after_epoch}, "
            f"after_iter={self._do_after_iter})"
        )
