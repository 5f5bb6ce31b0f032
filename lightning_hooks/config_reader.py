"""Reading MMEngine config files: ``_base_`` merging, variables, ``{{_base_.x}}`` references.

An MMEngine config is a Python (or JSON/YAML) file of plain dicts. ``_base_``
names parent files; they are merged the way ``mmengine.Config.fromfile`` merges
them: a child's nested dict merges into the parent's key by key, a dict with
``_delete_=True`` replaces the parent's value, and anything else (lists
included) replaces it. ``{{ fileDirname }}``-style predefined variables,
``{{$ENV:default}}`` environment variables, ``{{_base_.key}}`` references and
``_base_.key`` attribute access inside Python files work as in MMEngine.

New-style "lazy import" configs (``with read_base():``) and bases in other
installed packages (``mmdet::...``) are read through ``mmengine.Config`` when
mmengine is installed (it stays an optional dependency), and are reported by
name when it is not.

This module only reads: it imports nothing from the rest of the package.
:mod:`lightning_hooks.config` turns what it reads into bridge and Trainer arguments.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import json
import os
import os.path as osp
import re
import sys
import types
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, Union

__all__ = ["NeedsMMEngineError", "load_mmengine_config", "merge_config", "read_config_file", "without_delete_keys"]

BASE_KEY = "_base_"
DELETE_KEY = "_delete_"
DEPRECATION_KEY = "_deprecation_"
#: Top-level names ``mmengine.Config`` keeps for itself and refuses in a config.
RESERVED_KEYS = frozenset({"filename", "text", "pretty_text", "env_variables"})


class NeedsMMEngineError(ValueError):
    """A config in a format only ``mmengine.Config`` reads (``with read_base():``, ``pkg::`` bases)."""


# --------------------------------------------------------------------------------------- merging
def without_delete_keys(obj: Any) -> Any:
    """``obj`` without the ``_delete_`` keys a merge leaves in dicts, at any depth.

    MMEngine keeps ``_delete_=True`` inside a merged dict when the base had no such key; its
    builders ignore the key. Dicts and lists are copied; anything else is kept as it is.
    """
    if isinstance(obj, Mapping):
        return {k: without_delete_keys(v) for k, v in obj.items() if k != DELETE_KEY}
    if isinstance(obj, list):
        return [without_delete_keys(v) for v in obj]
    return obj


def merge_config(child: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``child`` into a copy of ``base`` as MMEngine's ``Config`` does.

    Nested dicts merge key by key; a child dict with ``_delete_=True`` replaces the
    base value; any other value (a list too) replaces it. Neither input is modified.
    """
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, Mapping):
            value = dict(value)
            if key in merged and not value.pop(DELETE_KEY, False):
                if not isinstance(merged[key], Mapping):
                    raise TypeError(
                        f"{key}={value!r} in the child config cannot inherit from the base, where {key} is a "
                        f"{type(merged[key]).__name__}, not a dict; set {DELETE_KEY}=True to replace it"
                    )
                merged[key] = merge_config(value, merged[key])
            else:
                merged[key] = value
        else:
            merged[key] = value
    return merged


class _AttrDict(dict):
    """The ``_base_`` namespace a Python config sees: a dict whose keys are also attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the base configs define no {name!r}; they define: {', '.join(self)}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        """``_base_.a.b = value`` in a child config changes the base's value, as in MMEngine: to a copy
        of its dicts and lists (``ConfigDict`` copies them too), so later edits of ``value`` stay out."""
        self[name] = _AttrDict.wrap(value)

    def __delattr__(self, name: str) -> None:
        """``del _base_.a`` in a child config removes the key from the base, as in MMEngine."""
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f"the base configs define no {name!r}; they define: {', '.join(self)}") from None

    @classmethod
    def wrap(cls, obj: Any) -> Any:
        if isinstance(obj, dict):
            return cls({k: cls.wrap(v) for k, v in obj.items()})
        if isinstance(obj, (list, tuple)):
            return type(obj)(cls.wrap(v) for v in obj)
        return obj


def _unwrap(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(v) for v in obj)
    return obj


def _substitute_text(text: str, filename: str) -> str:
    """Predefined variables (``{{ fileDirname }}`` ...) and ``{{$ENV:default}}`` environment variables."""
    stem, ext = osp.splitext(osp.basename(filename))
    predefined = {
        "fileDirname": osp.dirname(filename),
        "fileBasename": osp.basename(filename),
        "fileBasenameNoExtension": stem,
        "fileExtname": ext,
    }
    for key, value in predefined.items():
        text = re.sub(r"\{\{\s*" + key + r"\s*\}\}", value.replace("\\", "/"), text)

    def env(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name, default)
        if not value:
            raise KeyError(f"{name!r} is not set in the environment and the config gives no default for it")
        return value

    return re.sub(r"\{\{['\"]?\s*\$(\w+)\s*:\s*(\S*?)\s*['\"]?\}\}", env, text)


def _mark_base_refs(text: str) -> tuple[str, dict[str, str]]:
    """Replace ``{{_base_.a.b}}`` by unique string markers, resolved after the bases are loaded."""
    refs: dict[str, str] = {}

    def mark(match: re.Match[str]) -> str:
        marker = f"__lh_base_ref_{len(refs)}__"
        refs[marker] = match.group(1)
        return f'"{marker}"'  # double quotes: valid in Python, YAML and JSON

    return re.sub(r"\{\{\s*" + BASE_KEY + r"\.([\w.]+)\s*\}\}", mark, text), refs


def _resolve_base_refs(obj: Any, refs: dict[str, str], base: Mapping[str, Any]) -> Any:
    if isinstance(obj, str) and obj in refs:
        value: Any = base
        for part in refs[obj].split("."):
            value = value[part]
        return copy.deepcopy(value)
    if isinstance(obj, dict):
        return {k: _resolve_base_refs(v, refs, base) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve_base_refs(v, refs, base) for v in obj)
    return obj


def _base_files(tree: ast.Module, filename: str) -> list[str]:
    if _is_lazy_import(tree):
        raise NeedsMMEngineError(
            f"{filename} is a new-style (lazy import) MMEngine config: it imports modules other than Python's "
            "own or has `with read_base():`, which only mmengine.Config reads; install mmengine, or use the "
            "classic form (`_base_ = [...]`, types named by strings)"
        )
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == BASE_KEY for t in node.targets):
            value = _base_value(node.value, filename)
            return [value] if isinstance(value, str) else list(value)
    return []


def _is_lazy_import(tree: ast.Module) -> bool:
    """Whether ``mmengine.Config`` reads the file as a new-style (lazy import) config.

    Its test, in its order: the first of these nodes decides (walking the whole tree) — an
    assignment to ``_base_`` (classic), a ``with`` block (``read_base``), a relative import, or an
    import of a module that is not Python's own (``from mmengine.hooks import CheckpointHook``,
    ``import torch``). A config importing only the standard library, or ``mmengine.config``, is classic.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id == BASE_KEY:
            return False
        if isinstance(node, ast.With):
            return True
        if isinstance(node, ast.ImportFrom):
            if node.level:
                return True
            if node.module == "mmengine" and [alias.name for alias in node.names] == ["Config"]:
                continue
            if isinstance(node.module, str) and not _is_python_module(node.module):
                return True
        if isinstance(node, ast.Import) and not all(_is_python_module(alias.name) for alias in node.names):
            return True
    return False


def _is_python_module(name: str) -> bool:
    """Python's own module (standard library or built in), or ``mmengine.config``, as MMEngine tells them apart."""
    if name.startswith("mmengine.config"):
        return True
    top = name.split(".")[0]
    return top in sys.builtin_module_names or top in sys.stdlib_module_names


def _base_value(node: ast.expr, filename: str) -> Any:
    """The value given to ``_base_``: a literal, or an expression of literals (``['a.py'] + ['b.py']``),
    evaluated on its own as MMEngine evaluates the file (a Python config is code)."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        pass
    try:
        value = eval(compile(ast.Expression(node), filename, "eval"), {"__builtins__": {}})
    except Exception as exc:
        raise ValueError(
            f"{filename}: _base_ must be a file name or a list of them, computed from literals only; "
            f"could not evaluate {ast.unparse(node)!r}: {exc}"
        ) from exc
    if not isinstance(value, str) and not (
        isinstance(value, (list, tuple)) and all(isinstance(name, str) for name in value)
    ):
        raise ValueError(f"{filename}: _base_ must be a file name or a list of them, got {value!r}")
    return value


def _pop_deprecation(own: dict[str, Any], filename: str) -> None:
    """Drop a file's ``_deprecation_`` note with MMEngine's warning: it belongs to that file, not to the merge."""
    info = own.pop(DEPRECATION_KEY, None)
    if info is None:
        return
    message = f"The config file {filename} will be deprecated in the future."
    if isinstance(info, Mapping):
        if "expected" in info:
            message += f" Please use {info['expected']} instead."
        if "reference" in info:
            message += f" More information can be found at {info['reference']}"
    warnings.warn(message, DeprecationWarning, stacklevel=3)


def _without_base_assign(tree: ast.Module) -> ast.Module:
    body = [
        node
        for node in tree.body
        if not (
            isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == BASE_KEY for t in node.targets)
        )
    ]
    return ast.Module(body=body, type_ignores=[])


def _load_plain(filename: str, text: str) -> dict[str, Any]:
    if filename.endswith(".json"):
        return json.loads(text)
    import yaml  # type: ignore[import-untyped]  # a dependency of lightning (PyYAML)

    return yaml.safe_load(text) or {}


def _resolve_base_path(name: str, filename: str) -> str:
    if "::" in name:
        raise NeedsMMEngineError(
            f"base config {name!r} in {filename} refers to another installed OpenMMLab package, which only "
            "mmengine.Config resolves; install mmengine, or copy that file next to your config and name it "
            "by a relative path"
        )
    return osp.join(osp.dirname(filename), name)


def read_config_file(path: Union[str, os.PathLike[str]]) -> dict[str, Any]:
    """Read a classic MMEngine config file (``.py``, ``.json``, ``.yaml``/``.yml``) with its ``_base_`` files merged.

    Returns plain dicts and lists: the same content ``mmengine.Config.fromfile(path).to_dict()`` gives.
    A Python config is code and is executed, as MMEngine executes it: read only configs you trust.
    Raises :class:`NeedsMMEngineError` for what only ``mmengine.Config`` reads
    (``with read_base():`` configs, ``pkg::`` bases); :func:`load_mmengine_config` then uses it.
    """
    filename = osp.abspath(osp.expanduser(os.fspath(path)))
    if not osp.isfile(filename):
        raise FileNotFoundError(f"MMEngine config file not found: {filename}")
    ext = osp.splitext(filename)[1]
    if ext not in (".py", ".json", ".yaml", ".yml"):
        raise ValueError(f"an MMEngine config must be a .py, .json, .yaml or .yml file, got {filename}")
    with open(filename, encoding="utf-8") as f:
        text, refs = _mark_base_refs(_substitute_text(f.read(), filename))

    if ext == ".py":
        tree = ast.parse(text, filename)
        base_names = _base_files(tree, filename)
    else:
        plain = _load_plain(filename, text)
        base_value = plain.get(BASE_KEY, [])
        base_names = [base_value] if isinstance(base_value, str) else list(base_value)

    base: dict[str, Any] = {}
    for name in base_names:
        parent = read_config_file(_resolve_base_path(name, filename))
        duplicate = base.keys() & parent.keys()
        if duplicate:
            raise KeyError(f"base configs of {filename} define the same keys: {sorted(duplicate)}")
        base.update(parent)

    if ext == ".py":
        namespace: dict[str, Any] = {BASE_KEY: _AttrDict.wrap(copy.deepcopy(base))}
        exec(compile(_without_base_assign(tree), filename, "exec"), namespace)
        base = _unwrap(namespace[BASE_KEY])  # with the child's `_base_.a.b = ...` assignments applied
        own = {
            key: _unwrap(value)
            for key, value in namespace.items()
            if key != BASE_KEY
            and not key.startswith("__")
            and not isinstance(value, (types.FunctionType, types.ModuleType))
        }
    else:
        own = {k: v for k, v in plain.items() if k != BASE_KEY}
    _pop_deprecation(own, filename)
    own = _resolve_base_refs(own, refs, base)
    merged = merge_config(own, base)
    reserved = sorted(RESERVED_KEYS & merged.keys())
    if reserved:
        raise KeyError(f"{filename}: {', '.join(reserved)} is reserved for config file (as in mmengine.Config)")
    return {k: v for k, v in merged.items() if not k.startswith("__")}


def load_mmengine_config(path: Union[str, os.PathLike[str]]) -> dict[str, Any]:
    """Read an MMEngine config file (``.py``, ``.json``, ``.yaml``/``.yml``) with its ``_base_`` files merged.

    Returns plain dicts and lists: the same content ``mmengine.Config.fromfile(path).to_dict()`` gives.
    Classic configs are read here; ``with read_base():`` configs and ``pkg::`` bases go through
    ``mmengine.Config`` when mmengine is installed, and raise a ``ValueError`` saying so when not.
    A Python config is code and is executed, as MMEngine executes it: read only configs you trust.
    """
    try:
        return read_config_file(path)
    except NeedsMMEngineError as refused:
        return _read_with_mmengine(path, refused)


def _read_with_mmengine(path: Union[str, os.PathLike[str]], refused: NeedsMMEngineError) -> dict[str, Any]:
    """``mmengine.Config.fromfile(path).to_dict()``, or ``refused`` when mmengine is not installed."""
    try:
        from mmengine.config import Config  # type: ignore[import-untyped]
    except ImportError:
        raise refused from None
    filename = osp.abspath(osp.expanduser(os.fspath(path)))
    try:
        with _mmengine_reads_yaml_safely():
            config = Config.fromfile(filename)
    except Exception as exc:
        raise NeedsMMEngineError(f"{refused}\nmmengine.Config could not read it either: {exc!r}") from exc
    return config_to_dict(config)


@contextlib.contextmanager
def _mmengine_reads_yaml_safely() -> Iterator[None]:
    """While ``mmengine.Config`` reads a config here, its YAML files are read with PyYAML's safe loader.

    mmengine loads YAML with PyYAML's full loader, which runs what a ``!!python/...`` tag names;
    a YAML or JSON config whose bases are all YAML or JSON is data here, also when a ``pkg::``
    base sends it through mmengine. An mmengine without the loader this swaps is refused.
    """
    import yaml

    try:
        from mmengine.fileio.handlers import yaml_handler  # type: ignore[import-untyped]
    except ImportError:
        yaml_handler = None
    if yaml_handler is None or not hasattr(yaml_handler, "Loader"):
        raise NeedsMMEngineError(
            "this mmengine version's YAML reading cannot be made safe (no mmengine.fileio.handlers.yaml_handler"
            ".Loader); use mmengine 0.10"
        )
    full = yaml_handler.Loader
    yaml_handler.Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        yield
    finally:
        yaml_handler.Loader = full


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain dicts from an ``mmengine.Config``; lazily imported classes become their import paths.

    ``Config.to_dict()`` already does both for new-style configs; older mmengine
    versions lack it, and then the config's items are copied.
    """
    to_dict = getattr(config, "to_dict", None)
    plain = to_dict() if callable(to_dict) else dict(config.items())
    return {key: value for key, value in plain.items() if not key.startswith("__")}
