"""The package's exceptions, in one place; every one is exported from :mod:`lightning_hooks`.

The errors for a setting the package cannot take (where MMEngine asserts), a
config it cannot honour, or a checkpoint it cannot write or resume from derive
from :class:`LightningHooksError`. Each one also keeps the built-in base class
it has always had (``ValueError``, ``AssertionError``, ``OSError``), so existing
``except`` clauses keep working. Other checks of a single argument raise a
built-in ``TypeError``, ``ValueError`` or ``KeyError``, as Python and MMEngine
do, with a message naming the argument and the value.

This module imports nothing from the package, so any module may import it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AveragingConfigError",
    "CheckpointConfigError",
    "CheckpointWriteError",
    "LightningHooksError",
    "LogProcessorConfigError",
    "MessageHubError",
    "OptimConfigError",
    "OptimKeyError",
    "ResumeError",
    "ScalarTypeError",
    "TrainLoopError",
    "UnsupportedHook",
    "UnsupportedHookError",
    "UnsupportedSamplerError",
]


class LightningHooksError(Exception):
    """Base class of the errors this package raises on purpose."""


class CheckpointConfigError(LightningHooksError, ValueError, AssertionError):
    """A bad CheckpointHook argument.

    It is a ``ValueError``, and also an ``AssertionError`` because MMEngine
    reports these cases with ``assert``; code written against MMEngine still
    catches it.
    """


class AveragingConfigError(LightningHooksError, ValueError, AssertionError):
    """A bad averaging or EMA argument.

    It is a ``ValueError`` and, for code written against MMEngine (which uses
    bare ``assert`` statements), also an ``AssertionError``.
    """


class LogProcessorConfigError(LightningHooksError, ValueError, AssertionError):
    """A bad ``LogProcessor`` setting, e.g. a ``custom_cfg`` entry (MMEngine raises ``AssertionError``)."""


class MessageHubError(LightningHooksError, ValueError, AssertionError):
    """An inconsistent ``MessageHub``/``HistoryBuffer`` argument (MMEngine raises ``AssertionError``)."""


class ScalarTypeError(LightningHooksError, TypeError, ValueError, AssertionError):
    """A value, count or window size that is not a single number.

    MMEngine raises ``TypeError`` in ``HistoryBuffer.update`` and
    ``AssertionError`` in ``MessageHub.update_scalar(s)``; this is both.
    """


class OptimConfigError(LightningHooksError, ValueError, AssertionError):
    """A bad ``optim_wrapper``, optimizer or parameter-scheduler setting.

    It is a ``ValueError``, and also an ``AssertionError`` because MMEngine checks several
    of these (``eta_min`` with ``eta_min_ratio``, ``last_step``, ``epoch_length``, an
    ``optim_wrapper`` without ``optimizer``, ...) with ``assert``; code written against
    MMEngine still catches it.
    """


class OptimKeyError(LightningHooksError, KeyError, ValueError):
    """A name the optimizer or a scheduler needs is unknown.

    A scheduled ``param_name`` the parameter groups lack, ``initial_<param_name>`` when
    resuming with ``last_step``, or an ``optim_wrapper.constructor``. A ``KeyError``, as
    MMEngine raises, and a ``ValueError``. The message reads as written (a plain
    ``KeyError`` would show it quoted).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class TrainLoopError(LightningHooksError, AttributeError, AssertionError):
    """The training loop lacks what a hook needs, e.g. ``stop_training`` (MMEngine raises ``AssertionError``)."""


class UnsupportedSamplerError(LightningHooksError, ValueError):
    """The training DataLoader's sampler cannot drive Lightning's loop (MMEngine's ``InfiniteSampler``)."""


class CheckpointWriteError(LightningHooksError, OSError):
    """A checkpoint could not be written (disk full, permissions, ...); the message names the file.

    Nothing was replaced or deleted: the previous checkpoints are intact.
    """


class ResumeError(LightningHooksError, FileNotFoundError):
    """``last_checkpoint`` names a checkpoint that is missing or cannot be read; nothing was trained.

    A ``FileNotFoundError``, as MMEngine raises in this case.
    """


@dataclass(frozen=True)
class UnsupportedHook:
    """One hook of a config that cannot be built: where it is, its type and why."""

    where: str
    type: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where} ({self.type}): {self.reason}"


class UnsupportedHookError(LightningHooksError, ValueError):
    """Raised when a config names hooks this package cannot run; ``unsupported`` lists them."""

    def __init__(self, unsupported: list[UnsupportedHook]) -> None:
        self.unsupported = unsupported
        lines = "\n".join(f"  - {u}" for u in unsupported)
        super().__init__(
            f"{len(unsupported)} hook(s) in the MMEngine config cannot run under lightning_hooks:\n{lines}\n"
            "Remove them from the config, port them (subclass lightning_hooks.Hook and register with "
            "lightning_hooks.HOOKS), or pass on_unsupported='warn' to leave them out with a warning."
        )
