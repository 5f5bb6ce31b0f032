"""The package's shape: a lazy root, no import cycles, one home for each kind of thing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import lightning_hooks

PACKAGE = Path(lightning_hooks.__file__).resolve().parent


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_importing_the_package_imports_neither_lightning_nor_the_hooks():
    out = run_python(
        "import lightning_hooks, sys;"
        "assert 'lightning' not in sys.modules, 'lightning imported';"
        "assert 'lightning_hooks.hooks' not in sys.modules, 'hooks imported';"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    assert out.returncode == 0, out.stderr


def test_the_command_line_entry_does_not_import_lightning():
    out = run_python("import sys, lightning_hooks.__main__; assert 'lightning' not in sys.modules")
    assert out.returncode == 0, out.stderr


def test_every_public_name_loads_and_is_listed():
    for name in lightning_hooks.__all__:
        assert getattr(lightning_hooks, name) is not None, name
    assert set(lightning_hooks.__all__) <= set(dir(lightning_hooks))
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = lightning_hooks.no_such_name


def test_registries_are_filled_when_reached_from_the_root():
    out = run_python(
        "import lightning_hooks as lh; assert 'EMAHook' in lh.HOOKS.module_dict, sorted(lh.HOOKS.module_dict);"
        "assert 'ExponentialMovingAverage' in lh.AVERAGED_MODELS.module_dict"
    )
    assert out.returncode == 0, out.stderr


def test_default_hooks_cannot_be_changed_in_place():
    with pytest.raises(TypeError):
        lightning_hooks.DEFAULT_HOOKS["timer"] = {"type": "EMAHook"}  # type: ignore[index]
    with pytest.raises(TypeError):
        lightning_hooks.DEFAULT_HOOKS["checkpoint"]["interval"] = 5  # type: ignore[index]


def test_errors_share_one_base_and_keep_their_builtin_bases():
    from lightning_hooks import (
        AveragingConfigError,
        CheckpointConfigError,
        CheckpointWriteError,
        LightningHooksError,
        MessageHubError,
        ScalarTypeError,
        UnsupportedHookError,
    )

    assert issubclass(CheckpointConfigError, (ValueError, AssertionError))
    assert issubclass(CheckpointConfigError, AssertionError) and issubclass(AveragingConfigError, AssertionError)
    assert issubclass(AveragingConfigError, ValueError) and issubclass(UnsupportedHookError, ValueError)
    assert issubclass(CheckpointWriteError, OSError)
    assert issubclass(ScalarTypeError, (TypeError, AssertionError)) and issubclass(MessageHubError, AssertionError)
    errors = (CheckpointConfigError, AveragingConfigError, CheckpointWriteError, UnsupportedHookError)
    for error in (*errors, MessageHubError, ScalarTypeError):
        assert issubclass(error, LightningHooksError)


def test_the_docs_name_every_error():
    from lightning_hooks import errors

    docs = (PACKAGE.parent / "docs" / "index.md").read_text(encoding="utf-8")
    classes = [name for name in errors.__all__ if isinstance(getattr(errors, name), type)]
    raised = [name for name in classes if issubclass(getattr(errors, name), BaseException)]
    assert len(raised) >= 10
    assert [name for name in raised if f"`{name}`" not in docs] == []
    assert set(raised) <= set(lightning_hooks.__all__)


# ------------------------------------------------------------------------------- import graph
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import that runs (module level or inside functions), leaving out ``if TYPE_CHECKING:`` blocks."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """Package module -> the package modules it imports at run time."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                targets = [origin] + [f"{origin}.{alias.name}" for alias in node.names]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_no_module_imports_another_that_imports_it_back():
    graph = import_graph()
    assert "lightning_hooks.bridge" in graph["lightning_hooks.demo"]  # the graph sees real imports
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_the_config_reader_imports_nothing_from_the_package_and_the_translator_not_the_bridge():
    graph = import_graph()
    assert graph["lightning_hooks.config_reader"] == set()
    assert "lightning_hooks.bridge" not in graph["lightning_hooks.config"]


def test_only_the_shim_reaches_into_lightnings_private_attributes():
    private = ("_results", "_checkpoint_connector", "_num_ready_batches_reached", "_get_cache", "_forked_name")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "_lightning.py":
            continue
        text = path.read_text(encoding="utf-8")
        offenders += [f"{path.name}: {word}" for word in private if f".{word}" in text]
    assert offenders == []
