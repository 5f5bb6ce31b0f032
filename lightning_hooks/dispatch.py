"""The priority-ordered hook list and its pre-resolved dispatch tables.

For each mount point the table holds the bound methods of only those hooks
that override it, in priority order. Calling a mount point that no hook uses
is a dict lookup and an empty loop; it never touches the hooks themselves.
The tables are rebuilt whenever a hook is registered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from operator import attrgetter
from typing import Any, Optional, Union

from . import hooks as _builtin_hooks  # noqa: F401  (importing them registers the built-in hooks in HOOKS)
from .hooks.hook import STAGES, Hook, dispatched_at, fires_at, overridden_stages
from .priority import get_priority, priority_name
from .registry import HOOKS, to_plain

__all__ = ["HookList", "build_hook", "hook_type_error", "overridden_stages"]  # overridden_stages: kept for old imports


def build_hook(cfg: Union[Hook, Mapping[str, Any]]) -> tuple[Hook, Optional[Any]]:
    """Build a hook from a config dict (or accept an instance); returns ``(hook, priority from the dict)``.

    The caller's dict is not modified (MMEngine pops ``priority`` from it).
    """
    if isinstance(cfg, Hook):
        return cfg, None
    if isinstance(cfg, Mapping):
        plain: dict[str, Any] = to_plain(cfg)
        priority = plain.pop("priority", None)
        hook = HOOKS.build(plain)
        if not isinstance(hook, Hook):
            raise TypeError(f"{plain.get('type')!r} built a {type(hook).__name__}, which is not a Hook subclass")
        return hook, priority
    raise TypeError(
        f"hook should be an instance of Hook or dict: a Hook instance or a config dict such as "
        f"dict(type='EMAHook'), got {type(cfg).__name__}: {cfg!r}"
    )


def hook_type_error(exc: TypeError, method: Any) -> TypeError:
    """MMEngine's message for a hook call that raised a TypeError: the error, then the hook."""
    return TypeError(f"{exc} in {getattr(method, '__self__', method)}")


class HookList:
    """Hooks sorted by priority (stable: ties keep registration order) plus dispatch tables."""

    def __init__(self, hooks: Iterable[Hook] = ()) -> None:
        self._hooks: list[Hook] = []
        self._priorities: list[int] = []
        self._tables: dict[str, tuple[Callable[..., Any], ...]] = {}
        for hook in hooks:
            self.register(hook)

    def __iter__(self) -> Iterator[Hook]:
        return iter(self._hooks)

    def __len__(self) -> int:
        return len(self._hooks)

    def __getitem__(self, index: int) -> Hook:
        return self._hooks[index]

    @property
    def hooks(self) -> list[Hook]:
        """The hooks in execution order (a copy)."""
        return list(self._hooks)

    def register(self, hook: Union[Hook, Mapping[str, Any]], priority: Optional[Any] = None) -> Hook:
        """Insert a hook after every registered hook of lower or equal priority value.

        The priority comes from ``priority``, else the config dict's ``priority``
        key, else the hook's ``priority`` attribute; an explicit one is written
        onto the instance, as MMEngine does.
        """
        hook, dict_priority = build_hook(hook)
        chosen = priority if priority is not None else dict_priority
        if chosen is not None:
            hook.priority = chosen
        value = get_priority(hook.priority)
        index = len(self._priorities)
        while index > 0 and self._priorities[index - 1] > value:
            index -= 1
        self._hooks.insert(index, hook)
        self._priorities.insert(index, value)
        self._tables.clear()
        return hook

    def remove(self, hook: Hook) -> None:
        """Take ``hook`` out of the list (identity match)."""
        for index, registered in enumerate(self._hooks):
            if registered is hook:
                del self._hooks[index]
                del self._priorities[index]
                self._tables.clear()
                return
        raise ValueError(f"{hook!r} is not registered")

    def table(self, stage: str) -> tuple[Callable[..., Any], ...]:
        """Bound methods to call at ``stage``, in order (resolved once and cached)."""
        methods = self._tables.get(stage)
        if methods is None:
            methods = tuple(getattr(hook, stage) for hook in self._hooks if dispatched_at(hook, stage))
            self._tables[stage] = methods
        return methods

    def call(self, stage: str, runner: Any, kwargs: Mapping[str, Any]) -> None:
        """Call ``stage`` on the hooks that use it, in order; a TypeError names the hook, as in MMEngine.

        The bridge's mount points and ``call_hook`` (on the bridge and on the runner view)
        all come here, except the two per-iteration training mount points, which the bridge
        calls itself from :attr:`tables` with the same error (:func:`hook_type_error`).
        """
        methods = self._tables.get(stage)
        if methods is None:
            methods = self.table(stage)
        for method in methods:
            try:
                method(runner, **kwargs)
            except TypeError as exc:
                raise hook_type_error(exc, method) from exc

    #: The resolved tables, by mount point (read-only use; :meth:`table` resolves a missing one). The
    #: bridge reads ``before_train_iter``/``after_train_iter`` here every iteration (the getter runs in
    #: C) and calls them with their keywords spelled out, which saves a frame and a dict per call.
    tables: Mapping[str, tuple[Callable[..., Any], ...]] = property(attrgetter("_tables"))  # type: ignore[assignment]

    def refresh(self) -> None:
        """Build every table again: hooks may have become idle, or busy, at some mount points."""
        self._tables.clear()
        self.resolve_all()

    def resolve_all(self) -> None:
        """Resolve the tables of every standard mount point now, so none is built during training."""
        for stage in STAGES:
            self.table(stage)

    def get_hooks_info(self) -> str:
        """MMEngine's per-stage table: ``(PRIORITY    ) ClassName`` lines under each mount point."""
        lines = []
        for stage in STAGES:
            names = [
                f"({priority_name(hook.priority):<12}) {type(hook).__name__:<35}"
                for hook in self._hooks
                if fires_at(hook, stage)
            ]
            if names:
                lines.append(f"{stage}:\n" + "\n".join(names) + "\n -------------------- ")
        return "\n".join(lines)

    def find(self, cls_or_name: Union[type, str]) -> list[Hook]:
        """Hooks that are instances of a class, or whose class has the given name."""
        if isinstance(cls_or_name, str):
            return [h for h in self._hooks if type(h).__name__ == cls_or_name]
        return [h for h in self._hooks if isinstance(h, cls_or_name)]
