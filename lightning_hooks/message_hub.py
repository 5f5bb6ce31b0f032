"""Runtime state shared between hooks: :class:`HistoryBuffer` and :class:`MessageHub`.

The API is MMEngine's (``update_scalar``, ``update_info``, ``get_scalar``,
``get_info``, ``pop_info``, ``state_dict``/``load_state_dict``,
``get_current_instance``), so code without trainer access can read runtime state.

Differences from MMEngine, on purpose (tensors kept until read, a ``state_dict`` of plain lists that
loads with ``weights_only=True``): see ``docs/comparison.md``.

Errors carry MMEngine's exception types (it uses ``assert``): a bad argument
raises :class:`MessageHubError` or :class:`ScalarTypeError`, which are also
``AssertionError`` (and ``TypeError``/``ValueError``), so code written against
MMEngine still catches them.
"""

from __future__ import annotations

import copy
import warnings
from collections import OrderedDict
from collections.abc import Callable
from itertools import repeat
from operator import attrgetter
from typing import Any, ClassVar, Optional, Union

import numpy as np
import torch

from .errors import MessageHubError, ScalarTypeError

__all__ = ["HistoryBuffer", "MessageHub", "MessageHubError", "ScalarTypeError"]

Number = Union[int, float]


def _as_numbers(history: Any) -> list[Number]:
    """Python numbers from a sequence, array or tensor of any shape (flattened)."""
    if isinstance(history, torch.Tensor):
        return history.detach().cpu().reshape(-1).tolist()
    if isinstance(history, np.ndarray):
        return history.reshape(-1).tolist()
    history = list(history)
    if all(isinstance(v, bool) or _is_scalar_like(v) for v in history):
        return [_to_number(v) for v in history]
    return np.asarray(history).reshape(-1).tolist()


def _as_array(numbers: list[Number]) -> np.ndarray:
    """A numpy array of ``numbers``: float64 when empty, as MMEngine's empty buffer."""
    return np.array(numbers) if numbers else np.array([], dtype=np.float64)


def _is_scalar_like(value: Any) -> bool:
    """True for values MMEngine accepts as scalars: numbers and one-element arrays or tensors."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float, np.number)):
        return True
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.size == 1 if isinstance(value, np.ndarray) else value.numel() == 1
    return False


def _to_number(value: Any) -> Number:
    if isinstance(value, torch.Tensor):
        return value.item()
    if isinstance(value, (np.ndarray, np.number)):
        return value.item()
    return value


#: numpy sums blocks of up to this many float64 values with 8 running partial sums.
_PAIRWISE_BLOCK = 128
#: ``set(map(type, values))`` of values that are all floats.
_FLOAT_ONLY = {float}
#: Pending device tensors of one key are brought to the host together once this many have queued.
_FLUSH_AT = 4096
_DTYPE, _IS_CPU, _NDIM = attrgetter("dtype"), attrgetter("is_cpu"), attrgetter("ndim")
_F32 = {torch.float32}
#: Dtypes whose values a float32 tensor holds exactly: a float32 stack of them reads as ``t.item()`` would.
_EXACT_IN_F32 = {torch.float32, torch.float16, torch.bfloat16}
_TENSOR_ONLY = {torch.Tensor}
_ONE = {1}
_NUMEL = torch.Tensor.numel
#: ``(dtype, is_cpu, ndim)`` of a tensor; a 0-d float32 tensor on the CPU is read with ``float`` where it is.
_HOST_SCALAR = attrgetter("dtype", "is_cpu", "ndim")
_HOST_FLOAT32 = {(torch.float32, True, 0)}


def _numpy_float_sum(values: list[float]) -> float:
    """``np.array(values).sum()`` for 1 to 128 Python floats, bit for bit, without numpy.

    numpy's add-reduction starts from 0.0 and adds the pairwise sum of the data: a plain
    loop below 8 values, else 8 interleaved partial sums combined as
    ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))`` and then the remainder.
    """
    n = len(values)
    if n < 8:
        res = 0.0
        for value in values:
            res += value
        return 0.0 + res
    r0, r1, r2, r3, r4, r5, r6, r7 = values[:8]
    end = n - n % 8
    for i in range(8, end, 8):
        r0 += values[i]
        r1 += values[i + 1]
        r2 += values[i + 2]
        r3 += values[i + 3]
        r4 += values[i + 4]
        r5 += values[i + 5]
        r6 += values[i + 6]
        r7 += values[i + 7]
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(end, n):
        res += values[i]
    return 0.0 + res


def _tensor_items(tensors: list[torch.Tensor]) -> list[Number]:
    """``[t.item() for t in tensors]``, MMEngine's reading (a float64 stays a double, an integer an int),
    with one device-to-host copy per device and dtype rather than one per tensor."""
    if len(tensors) < 2:
        return [t.item() for t in tensors]
    groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for index, tensor in enumerate(tensors):
        groups.setdefault((tensor.device, tensor.dtype), []).append(index)
    numbers: list[Number] = [0] * len(tensors)
    for indices in groups.values():
        values = torch.stack([tensors[i].reshape(()) for i in indices]).tolist()
        for index, value in zip(indices, values, strict=True):
            numbers[index] = value
    return numbers


class HistoryBuffer:
    """The history of one scalar: its values and counts, with windowed statistics.

    Args:
        log_history: initial values (any shape; a 2-D array is flattened, as
            MMEngine's first ``update`` does).
        count_history: initial counts, ints or floats (same length as ``log_history``).
        max_length: the oldest entries are dropped beyond this many.
    """

    _statistics_methods: ClassVar[dict[str, Callable[..., Any]]] = {}

    def __init__(
        self,
        log_history: Any = (),
        count_history: Any = (),
        max_length: int = 1_000_000,
    ) -> None:
        self.max_length = max_length
        if len(log_history) != len(count_history):
            raise MessageHubError(
                f"The lengths of log_history and count_history should be equal, got {len(log_history)} "
                f"and {len(count_history)}"
            )
        self._values: list[Number] = _as_numbers(log_history)
        #: Whether MMEngine's numpy history would be an integer array: built from ints only, no float
        #: since. Otherwise it is float64 (an empty buffer's too), and every value here is a float.
        self._int_history = bool(self._values) and all(type(v) is int for v in self._values)
        if not self._int_history:
            self._values = [float(v) for v in self._values]
        self._counts: list[Number] = _as_numbers(count_history)
        if len(self._values) > max_length:
            warnings.warn(
                f"The length of history buffer({len(self._values)}) exceeds the max_length({max_length}), "
                "the first few elements will be ignored.",
                UserWarning,
                stacklevel=2,
            )
        self._pending: list[tuple[Any, Number]] = []
        #: Values of count 1 added through :meth:`appender`, newer than everything above; see :meth:`_settle`.
        self._inbox: list[Any] = []
        self._trim()

    # -- writing -----------------------------------------------------------------
    def update(self, log_val: Any, count: Number = 1) -> None:
        """Append a value with its count (an int or a float, as MMEngine allows).

        Tensors are kept on their device until the buffer is read. While
        tensors are pending, plain numbers queue behind them, so the history
        keeps the order of the updates.
        """
        if self._inbox:
            self._settle()
        kind = type(log_val)
        if (kind is float or kind is int) and type(count) is int and not self._pending:
            if kind is not float or self._int_history:
                log_val = self._typed(log_val)
            self._values.append(log_val)  # the common host-side case, kept cheap
            self._counts.append(count)
            if len(self._values) > self.max_length:
                self._trim()
            return
        if type(count) is not int:
            if isinstance(count, (np.ndarray, torch.Tensor)) or not isinstance(count, (int, float, np.number)):
                raise ScalarTypeError(f"count must be an int or a float, got {count!r}")
            count = _to_number(count)
        if isinstance(log_val, torch.Tensor):
            if log_val.numel() != 1:
                raise ScalarTypeError(
                    f"log_val must be a single number: a scalar tensor must have one element, got shape "
                    f"{tuple(log_val.shape)}"
                )
            self._pending.append((log_val.detach() if log_val.requires_grad else log_val, count))
        elif _is_scalar_like(log_val):
            if not self._pending:
                self._append(log_val, count)
                return
            self._pending.append((_to_number(log_val), count))
        else:
            raise ScalarTypeError(f"log_val must be a number or a one-element array/tensor, got {log_val!r}")
        if len(self._pending) >= _FLUSH_AT:
            self._flush()

    def appender(self) -> Callable[[Any], None]:
        """A function that adds one value of count 1, for producers that record every iteration.

        It is the ``append`` of a list (an inbox), so a call runs no Python code: RuntimeInfoHook
        and IterTimerHook record learning rates, losses and times this way. The caller gives only
        what :meth:`update` accepts with count 1: a float or an int, or a one-element tensor that
        does not require grad. The inbox joins the history, in order, before the buffer is read
        or updated in any other way; :meth:`current` and :meth:`mean` over a window of floats
        that all wait in the inbox read them there, and leave them for the next read (at most
        4,096 values wait). The function stays valid for the buffer's life (a hub's
        ``load_state_dict`` loads into the existing buffer).
        """
        return self._inbox.append

    def _settle(self) -> None:
        """Move the inbox into the history: floats, and 0-d float32 tensors on the CPU read as floats, straight
        in when nothing is pending; anything else behind the pending tensors (read at the next flush)."""
        inbox = self._inbox
        if not inbox:
            return
        items = inbox.copy()
        inbox.clear()  # the same list: appenders handed out keep working
        kinds = set(map(type, items))  # every check below runs without a Python loop
        numbers = None
        if not self._pending:  # else anything new queues behind the pending tensors
            if kinds == _FLOAT_ONLY:
                numbers = items
            elif kinds == _TENSOR_ONLY and set(map(_HOST_SCALAR, items)) == _HOST_FLOAT32:
                numbers = list(map(float, items))  # 0-d float32 on the CPU: nothing to copy or wait for
        if numbers is not None:
            if self._int_history:  # floats joining integers: the history becomes float
                self._typed_all(numbers)
            values = self._values
            values.extend(numbers)
            self._counts.extend([1] * len(numbers))
            if len(values) > self.max_length:
                self._trim()
            return
        if kinds == _TENSOR_ONLY and set(map(_NUMEL, items)) == _ONE:
            self._pending.extend(zip(items, repeat(1)))
            if len(self._pending) >= _FLUSH_AT:
                self._flush()
            return
        for value in items:  # anything else: each is checked as update() checks it
            if type(value) is not float and not _is_scalar_like(value):
                raise ScalarTypeError(
                    f"a value given to HistoryBuffer.appender() must be a number or a one-element tensor, got {value!r}"
                )
        self._pending.extend(zip(items, repeat(1)))
        if len(self._pending) >= _FLUSH_AT:
            self._flush()

    def _load(self, other: HistoryBuffer) -> None:
        """Take ``other``'s history in place (a state being loaded); what the inbox held is dropped with the old one."""
        self._inbox.clear()
        self._values, self._counts, self._pending = other._values, other._counts, other._pending
        self._int_history, self.max_length = other._int_history, other.max_length

    def _typed(self, number: Number) -> Number:
        """``number`` as MMEngine's numpy history holds it: a float in a float history; a float
        joining an integer history makes it a float history (``np.append`` upcasts the array)."""
        if self._int_history:
            if type(number) is int or type(number) is bool:
                return int(number)
            self._int_history = False
            self._values = [float(v) for v in self._values]
        return float(number)

    def _typed_all(self, numbers: list[Number]) -> list[Number]:
        """:meth:`_typed` for several numbers in order (the upcast, if any, applies to all of them)."""
        if self._int_history and all(type(v) is int or type(v) is bool for v in numbers):
            return [int(v) for v in numbers]
        if self._int_history:
            self._int_history = False
            self._values = [float(v) for v in self._values]
        return numbers if all(type(v) is float for v in numbers) else [float(v) for v in numbers]

    def _push_tensor(self, log_val: torch.Tensor, count: Number) -> None:
        """Queue a one-element tensor already checked by the caller; it stays on its device until read."""
        if self._inbox:
            self._settle()
        pending = self._pending
        pending.append((log_val.detach() if log_val.requires_grad else log_val, count))
        if len(pending) >= _FLUSH_AT:
            self._flush()

    def _append(self, log_val: Any, count: Number) -> None:
        number = self._typed(_to_number(log_val))
        self._values.append(number)
        self._counts.append(count)
        if len(self._values) > self.max_length:
            self._trim()

    def _flush(self) -> None:
        """Bring pending tensors to the host with a single synchronisation, keeping the update order."""
        if self._inbox:
            self._settle()
        pending = self._pending
        if not pending:
            return
        if len(pending) > 1 and self._flush_float32(pending):
            return
        host = iter(_tensor_items([v for v, _ in self._pending if isinstance(v, torch.Tensor)]))
        flushed = self._typed_all([next(host) if isinstance(v, torch.Tensor) else v for v, _ in self._pending])
        self._values.extend(flushed)
        self._counts.extend(c for _, c in self._pending)
        self._pending.clear()
        self._trim()

    def _flush_float32(self, pending: list[tuple[Any, Number]]) -> bool:
        """The usual pending history, 0-d tensors that stack to float32 (a loss per iteration), in one
        copy; False for anything else (the general path, :func:`_tensor_items`).

        The values are ``t.item()``'s, as MMEngine reads them: only float32, float16 and bfloat16
        are stacked, whose values a float32 stack holds exactly. 0-d float32 tensors on the CPU
        are read one by one instead: there is no copy to batch, and ``float(t)`` on each costs
        less than building the stack.
        """
        tensors, counts = zip(*pending, strict=True)
        try:
            dtypes = set(map(_DTYPE, tensors))
            cpu_float32 = dtypes == _F32 and all(map(_IS_CPU, tensors)) and not any(map(_NDIM, tensors))
        except AttributeError:  # a number behind the tensors
            return False
        if cpu_float32:  # nothing to copy: read each number, cheaper than stacking them first
            return self._take(pending, list(map(float, tensors)), counts)
        if not dtypes <= _EXACT_IN_F32:  # float64 stays a double and an integer an int, as .item() gives them
            return False
        try:
            stacked = torch.stack(tensors)
        except (TypeError, RuntimeError):  # a number behind the tensors, shapes or devices that differ
            return False
        if stacked.dtype is not torch.float32 or stacked.dim() != 1:
            return False
        return self._take(pending, stacked.tolist(), counts)

    def _take(self, pending: list[tuple[Any, Number]], numbers: list[float], counts: tuple[Number, ...]) -> bool:
        """Append the flushed floats and their counts to the history; the pending list is emptied."""
        if self._int_history:
            self._typed_all(numbers)
        values = self._values
        values.extend(numbers)
        self._counts.extend(counts)
        pending.clear()
        if len(values) > self.max_length:
            self._trim()
        return True

    def _trim(self) -> None:
        overflow = len(self._values) - self.max_length
        if overflow > 0:
            del self._values[:overflow]
            del self._counts[:overflow]

    # -- reading -----------------------------------------------------------------
    @property
    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """``(values, counts)`` as numpy arrays: values are float64 unless the buffer was built from ints
        and no float joined since (then int64), as in MMEngine's numpy history."""
        self._flush()
        return _as_array(self._values), _as_array(self._counts)

    def __len__(self) -> int:
        return len(self._values) + len(self._pending) + len(self._inbox)

    def _window(self, window_size: Optional[int]) -> tuple[list[Number], list[Number]]:
        if self._inbox or self._pending:
            self._flush()
        if window_size is None:
            return self._values, self._counts
        if isinstance(window_size, bool) or not isinstance(window_size, int):
            raise ScalarTypeError(f"The type of window size should be int, but got {type(window_size)}")
        return self._values[-window_size:], self._counts[-window_size:]

    def mean(self, window_size: Optional[int] = None) -> float:
        """Sum of the last ``window_size`` values over the sum of their counts.

        The sums are numpy's (pairwise summation), so the result is MMEngine's to the last bit;
        a short window of floats with int counts (a log line's usual case) is summed in Python
        in numpy's exact order, without building arrays.
        """
        inbox = self._inbox
        if type(window_size) is int and 0 < window_size <= len(inbox) < _FLUSH_AT and window_size <= _PAIRWISE_BLOCK:
            newest = inbox[-window_size:]  # the window is all in the inbox, newer than anything else
            if set(map(type, newest)) == _FLOAT_ONLY:
                return _numpy_float_sum(newest) / float(window_size)
        if inbox:
            self._settle()  # floats join the history here; anything else is then pending
        if self._pending:
            self._flush()
        if type(window_size) is int:  # a log line's case, without _window's checks
            values, counts = self._values[-window_size:], self._counts[-window_size:]
        else:
            values, counts = self._window(window_size)
        n = len(values)
        if 0 < n <= _PAIRWISE_BLOCK and not self._int_history and counts.count(1) == n:
            return _numpy_float_sum(values) / float(n)  # every count is 1: their sum is exactly n
        return float(_as_array(values).sum() / _as_array(counts).sum())

    def max(self, window_size: Optional[int] = None) -> Number:
        """Largest of the last ``window_size`` values (all values when None); NaN wins, as in numpy."""
        values, _ = self._window(window_size)
        return _as_array(values).max().item()

    def min(self, window_size: Optional[int] = None) -> Number:
        """Smallest of the last ``window_size`` values (all values when None); NaN wins, as in numpy."""
        values, _ = self._window(window_size)
        return _as_array(values).min().item()

    def current(self) -> Number:
        """The most recent value."""
        inbox = self._inbox
        if 0 < len(inbox) < _FLUSH_AT and type(inbox[-1]) is float:
            return inbox[-1]  # appended last, newer than anything else
        if inbox:
            self._settle()
        if self._pending:
            self._flush()
        if not self._values:
            raise ValueError("HistoryBuffer._log_history is an empty array! Please make sure update has been called.")
        return self._values[-1]

    @classmethod
    def register_statistics(cls, method: Callable[..., Any]) -> Callable[..., Any]:
        """Register an extra statistic, usable through :meth:`statistics` and LogProcessor's ``custom_cfg``."""
        cls._statistics_methods[method.__name__] = method
        return method

    @classmethod
    def statistic_function(cls, method_name: str) -> Optional[Callable[..., Any]]:
        """The function :meth:`statistics` calls for ``method_name`` (its first argument is the
        buffer), or None for a name that is neither built in nor registered."""
        if method_name in cls._statistics_methods:
            return cls._statistics_methods[method_name]
        if method_name in ("mean", "max", "min", "current"):
            return getattr(HistoryBuffer, method_name)  # type: ignore[no-any-return]
        return None

    def statistics(self, method_name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the statistic named ``method_name`` (``mean``, ``max``, ``min``, ``current`` or a registered one)."""
        if method_name in self._statistics_methods:
            return self._statistics_methods[method_name](self, *args, **kwargs)
        if method_name in ("mean", "max", "min", "current"):
            return getattr(self, method_name)(*args, **kwargs)
        known = ["mean", "max", "min", "current", *self._statistics_methods]
        raise KeyError(f"{method_name!r} is not a registered statistic; available: {known}")

    def state_dict(self) -> dict[str, Any]:
        """Plain-type state: values, counts and max_length."""
        self._flush()
        return {"log_history": list(self._values), "count_history": list(self._counts), "max_length": self.max_length}

    @classmethod
    def from_state(cls, state: Any) -> HistoryBuffer:
        """Rebuild a buffer from :meth:`state_dict`, or copy one given as a buffer (ours or MMEngine's)."""
        if isinstance(state, dict):
            return cls(state["log_history"], state["count_history"], state.get("max_length", 1_000_000))
        values, counts = state.data
        return cls(
            list(np.asarray(values).tolist()),
            list(np.asarray(counts).tolist()),
            getattr(state, "max_length", 1_000_000),
        )

    def __repr__(self) -> str:
        return f"HistoryBuffer(len={len(self)})"


class MessageHub:
    """Scalars (with history) and runtime information shared by hooks.

    Instances are named; :meth:`get_instance` creates or fetches one by name and
    :meth:`get_current_instance` returns the most recently created one, as
    MMEngine's ``ManagerMixin`` does. The bridge creates one per run, named after
    the experiment.
    """

    _instances: ClassVar[OrderedDict[str, MessageHub]] = OrderedDict()

    def __init__(
        self,
        name: str = "mmengine",
        log_scalars: Optional[dict[str, HistoryBuffer]] = None,
        runtime_info: Optional[dict[str, Any]] = None,
        resumed_keys: Optional[dict[str, bool]] = None,
    ) -> None:
        self.instance_name = name
        self._log_scalars: OrderedDict[str, HistoryBuffer] = _as_ordered_dict("log_scalars", log_scalars)
        self._runtime_info: OrderedDict[str, Any] = _as_ordered_dict("runtime_info", runtime_info)
        self._resumed_keys: OrderedDict[str, bool] = _as_ordered_dict("resumed_keys", resumed_keys)
        _check_hub_contents(self._log_scalars, self._runtime_info, self._resumed_keys)
        type(self)._instances[name] = self
        type(self)._instances.move_to_end(name)

    # -- instance management ------------------------------------------------------
    def make_current(self) -> MessageHub:
        """Make this hub the current one (what :meth:`get_current_instance` returns), registered under its name.

        The bridge calls it when a second run of the same bridge starts, so the hub keeps
        its content across runs and code without trainer access reads this run's hub.
        """
        type(self)._instances[self.instance_name] = self
        type(self)._instances.move_to_end(self.instance_name)
        return self

    @classmethod
    def get_instance(cls, name: str, **kwargs: Any) -> MessageHub:
        """Return the hub called ``name``, creating it if needed; it becomes the current one."""
        if name in cls._instances:
            cls._instances.move_to_end(name)
            return cls._instances[name]
        return cls(name, **kwargs)

    @classmethod
    def get_current_instance(cls) -> MessageHub:
        """The most recently created or fetched hub (one named ``'mmengine'`` is created if none exists, as MMEngine)."""
        if not cls._instances:
            return cls("mmengine")
        return next(reversed(cls._instances.values()))

    @classmethod
    def check_instance_created(cls, name: str) -> bool:
        """Whether a hub called ``name`` exists."""
        return name in cls._instances

    # -- scalars -------------------------------------------------------------------
    def _set_resumed(self, key: str, resumed: bool) -> None:
        if key in self._resumed_keys and self._resumed_keys[key] is not resumed:
            raise AssertionError(
                f"{key} used to be {self._resumed_keys[key]}, but got {resumed} now. resumed keys cannot be modified repeatedly."
            )
        self._resumed_keys[key] = resumed

    def update_scalar(self, key: str, value: Any, count: int = 1, resumed: bool = True) -> None:
        """Append ``value`` to the history of ``key``; tensors are not synchronised until read."""
        if type(count) is not int and (isinstance(count, bool) or not isinstance(count, int)):
            raise ScalarTypeError(f"The type of count must be int, but got {type(count).__name__}: {count!r}")
        kind = type(value)
        if kind is torch.Tensor:  # a loss, every iteration: one element check, no second one in the buffer
            if value.numel() != 1:
                raise ScalarTypeError(
                    f"update_scalar({key!r}): the value must be a number or a one-element array/tensor, got {value!r}"
                )
        elif kind is not float and kind is not int and not _is_scalar_like(value):
            raise ScalarTypeError(
                f"update_scalar({key!r}): the value must be a number or a one-element array/tensor, got {value!r}"
            )
        buffer = self._log_scalars.get(key)
        if buffer is None or self._resumed_keys.get(key) is not resumed:
            self._set_resumed(key, resumed)
            if buffer is None:
                buffer = self._log_scalars[key] = HistoryBuffer()
        if buffer._inbox:
            buffer._settle()
        if kind is torch.Tensor:  # kept on its device until read (HistoryBuffer._push_tensor, inline)
            pending = buffer._pending
            pending.append((value.detach() if value.requires_grad else value, count))
            if len(pending) >= _FLUSH_AT:
                buffer._flush()
        elif kind is float and not buffer._pending and not buffer._int_history:  # a time or an lr: append inline
            values = buffer._values
            values.append(value)
            buffer._counts.append(count)
            if len(values) > buffer.max_length:
                buffer._trim()
        else:
            buffer.update(value, count)

    def scalar_appender(self, key: str, resumed: bool = True) -> Callable[[Any], None]:
        """A function that appends one value (count 1) to ``key``'s history without running Python code.

        For hooks that record a scalar every iteration; see :meth:`HistoryBuffer.appender` for
        what it accepts. The key is created (and its resumed flag set) now, as by
        :meth:`update_scalar`. Asking again is cheap and brings what was appended into the history.
        """
        buffer = self._log_scalars.get(key)
        if buffer is None or self._resumed_keys.get(key) is not resumed:
            self._set_resumed(key, resumed)
            if buffer is None:
                buffer = self._log_scalars[key] = HistoryBuffer()
        buffer._settle()
        return buffer.appender()

    def update_scalars(self, log_dict: dict[str, Any], resumed: bool = True) -> None:
        """Update several scalars; a value may be ``dict(value=..., count=...)``."""
        if not isinstance(log_dict, dict):
            raise ScalarTypeError(f"`log_dict` must be a dict, but got {type(log_dict).__name__}")
        for key, value in log_dict.items():
            if isinstance(value, dict):
                if "value" not in value:
                    raise MessageHubError(f"update_scalars: value must be defined in {value} (key {key!r})")
                count = value.get("count", 1)
                if _is_scalar_like(count):
                    count = _to_number(count)
                self.update_scalar(key, value["value"], count, resumed)
            else:
                self.update_scalar(key, value, resumed=resumed)

    def get_scalar(self, key: str) -> HistoryBuffer:
        """The :class:`HistoryBuffer` of ``key`` (by reference)."""
        if key not in self._log_scalars:
            raise KeyError(f"{key} is not found in Messagehub.log_buffers: instance name is: {self.instance_name}")
        return self._log_scalars[key]

    log_scalars: OrderedDict[str, HistoryBuffer] = property(  # type: ignore[assignment]
        attrgetter("_log_scalars"), doc="The live key → HistoryBuffer mapping (read in C: every log line reads it)."
    )

    # -- runtime info -----------------------------------------------------------------
    def update_info(self, key: str, value: Any, resumed: bool = True) -> None:
        """Set runtime information ``key`` (overwrites)."""
        if self._resumed_keys.get(key) is not resumed:
            self._set_resumed(key, resumed)
        self._runtime_info[key] = value

    def update_info_dict(self, info_dict: dict[str, Any], resumed: bool = True) -> None:
        """Set several runtime-information keys."""
        if not isinstance(info_dict, dict):
            raise ScalarTypeError(f"`info_dict` must be a dict, but got {type(info_dict).__name__}")
        for key, value in info_dict.items():
            self.update_info(key, value, resumed=resumed)

    def get_info(self, key: str, default: Any = None) -> Any:
        """Runtime information ``key`` (by reference), or ``default``."""
        return self._runtime_info.get(key, default)

    def pop_info(self, key: str, default: Any = None) -> Any:
        """Remove and return runtime information ``key``."""
        return self._runtime_info.pop(key, default)

    runtime_info: OrderedDict[str, Any] = property(  # type: ignore[assignment]
        attrgetter("_runtime_info"), doc="The live key → value mapping (read in C)."
    )

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Resumable keys only, as plain types (tensors moved to the CPU).

        A runtime value that cannot be deep-copied (a loss tensor that still
        holds its graph, an object refusing copies) is kept by reference with a
        warning naming its key, as MMEngine does.
        """
        scalars = {k: v.state_dict() for k, v in self._log_scalars.items() if self._resumed_keys.get(k, False)}
        infos = {}
        for key, value in self._runtime_info.items():
            if not self._resumed_keys.get(key, False):
                continue
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu()
            infos[key] = _copy_or_reference(key, value)
        return {"log_scalars": scalars, "runtime_info": infos, "resumed_keys": dict(self._resumed_keys)}

    def load_state_dict(self, state_dict: Union[dict[str, Any], MessageHub]) -> None:
        """Load :meth:`state_dict` output, MMEngine's message-hub state, or another hub.

        As MMEngine: a scalar that is not a history is skipped with a warning; a
        runtime value that cannot be deep-copied is kept by reference with a
        warning; a resumed flag is kept only for keys the hub now holds (a
        ``True`` flag for a key missing from the state warns; MMEngine also
        warns for ``False`` flags, which only name keys that were not saved).
        """
        if isinstance(state_dict, MessageHub) or not isinstance(state_dict, dict):
            source = state_dict
            state_dict = {
                "log_scalars": dict(source.log_scalars),
                "runtime_info": dict(source.runtime_info),
                "resumed_keys": dict(getattr(source, "_resumed_keys", {})),
            }
        missing = [k for k in ("log_scalars", "runtime_info", "resumed_keys") if k not in state_dict]
        if missing:
            raise MessageHubError(f"The loaded `state_dict` of `MessageHub` must contain keys {missing}")
        for key, value in state_dict["log_scalars"].items():
            if not (isinstance(value, dict) or hasattr(value, "data")):
                warnings.warn(f"{key} in message_hub is not HistoryBuffer, just skip resuming it.", stacklevel=2)
                continue
            loaded = HistoryBuffer.from_state(value)
            existing = self._log_scalars.get(key)
            if existing is None:
                self._log_scalars[key] = loaded
            else:
                existing._load(loaded)  # the same object: appenders handed out stay valid
        for key, value in state_dict["runtime_info"].items():
            self._runtime_info[key] = _copy_or_reference(key, value)
        for key, value in state_dict["resumed_keys"].items():
            if key not in self._log_scalars and key not in self._runtime_info:
                if not value:
                    continue  # a key that was never meant to be saved: nothing is lost
                warnings.warn(
                    f"resumed key: {key} is not defined in message_hub, just skip resuming this key.", stacklevel=2
                )
                continue
            self._resumed_keys[key] = bool(value)


class IterationRecorder:
    """One hub's entry points for hooks that record values every training iteration.

    A training iteration runs between forward/backward passes that evict the interpreter's
    caches, so each Python call there is expensive. Hooks keep one recorder per hub and
    write through it without calls: ``appenders[name](value)`` adds a value of count 1 (see
    :meth:`HistoryBuffer.appender`) and ``info[key] = value`` sets runtime information in
    the hub's live dict. :meth:`record` is the first, checked write of a name. A recorder
    is built again now and then (the hooks do it every 4096 iterations) so that appended
    values never pile up unread.
    """

    __slots__ = ("appenders", "hub", "info")

    def __init__(self, hub: MessageHub) -> None:
        self.hub = hub
        self.info = hub.runtime_info
        #: ``name`` -> the append function of its buffer, once :meth:`record` saw a value that may use it.
        self.appenders: dict[str, Callable[[Any], None]] = {}

    def record(self, key: str, name: str, value: Any) -> None:
        """Add ``value`` to ``key`` through :meth:`MessageHub.update_scalar` (which checks it).

        A float, or a one-element tensor without grad, also makes the name's appender
        available for the next iterations.
        """
        self.hub.update_scalar(key, value)
        if type(value) is float or (type(value) is torch.Tensor and not value.requires_grad):
            self.appenders[name] = self.hub.scalar_appender(key)

    def set_info(self, key: str, value: Any) -> None:
        """Set runtime information through :meth:`MessageHub.update_info`, which records the key's resumed flag."""
        self.hub.update_info(key, value)


def _copy_or_reference(key: str, value: Any) -> Any:
    """A deep copy of ``value``, or ``value`` itself (with a warning naming ``key``) when it cannot be copied."""
    try:
        return copy.deepcopy(value)
    except Exception as error:  # any refusal to copy falls back to the reference, as in MMEngine
        warnings.warn(
            f"{key} in message_hub cannot be copied ({type(error).__name__}: {error}), just return its reference.",
            UserWarning,
            stacklevel=3,
        )
        return value


def _as_ordered_dict(name: str, value: Optional[dict[str, Any]]) -> OrderedDict[str, Any]:
    if value is None:
        return OrderedDict()
    if not isinstance(value, dict):
        raise TypeError(f"{name} should be a dict or `None`, but got {type(value).__name__}")
    return OrderedDict(value)


def _check_hub_contents(
    log_scalars: dict[str, Any], runtime_info: dict[str, Any], resumed_keys: dict[str, bool]
) -> None:
    """MMEngine's constructor checks: histories are ``HistoryBuffer``; resumed keys name existing keys."""
    for key, value in log_scalars.items():
        if not isinstance(value, HistoryBuffer):
            raise MessageHubError(
                f"The type of log_scalars'value must be HistoryBuffer, but got {type(value).__name__} for {key!r}"
            )
    for key in resumed_keys:
        if key not in log_scalars and key not in runtime_info:
            raise MessageHubError(
                f"Key in `resumed_keys` must contained in `log_scalars` or `runtime_info`, but got {key!r}"
            )
