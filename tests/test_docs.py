"""Every ``python`` code block of README.md, docs/ and examples/README.md runs as written.

Each block runs in a fresh namespace holding only the placeholders of
``tests/docs_prelude.py`` (a tiny LightningModule, its data, an MMEngine config and
checkpoint on disk), in an empty temporary working directory. A block that cannot
run here (e.g. it needs 8 GPUs) carries a visible ``<!-- skip-test: why -->`` line
right above its fence; it is still compiled. The user-facing docs also name no
internal references (issue numbers, sections of internal notes).
"""

from __future__ import annotations

import linecache
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
from docs_prelude import MY_CFG, make_placeholders, write_placeholder_files

import lightning_hooks

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", ROOT / "examples" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SKIP_MARK = re.compile(r"<!--\s*skip-test:\s*(?P<why>.*?)\s*-->")
#: What write_placeholder_files puts into the working directory before a block runs.
PLACEHOLDER_FILES = {"configs", "mmengine_run"}
#: At most this many blocks may be skipped: the marker is for what truly cannot run on a CPU test machine.
MAX_SKIPPED = 2


@dataclass
class Block:
    where: str  # "docs/hooks/ema_hook.md:8", the line of the opening fence
    code: str
    skip: Optional[str]  # the reason given by a skip-test marker


def python_blocks(path: Path) -> list[Block]:
    """The fenced ``python`` blocks of one Markdown file, with the skip-test reason of each, if any."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = lines[i].strip()
        if fence.startswith("```python"):
            end = i + 1
            while end < len(lines) and not lines[end].strip().startswith("```"):
                end += 1
            previous = next((line for line in reversed(lines[:i]) if line.strip()), "")
            mark = SKIP_MARK.search(previous)
            where = f"{path.relative_to(ROOT)}:{i + 1}"
            blocks.append(Block(where, "\n".join(lines[i + 1 : end]) + "\n", mark.group("why") if mark else None))
            i = end
        i += 1
    return blocks


BLOCKS = [block for path in DOC_FILES for block in python_blocks(path)]
RUNNABLE = [b for b in BLOCKS if b.skip is None]
SKIPPED = [b for b in BLOCKS if b.skip is not None]


class _WarningCatcher(logging.Handler):
    """Keeps the package logger's warnings and errors."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def clean_registries():
    """Blocks register hooks (``@HOOKS.register_module()``); each block starts from the package's registry."""
    saved = {reg: dict(reg.module_dict) for reg in (lightning_hooks.HOOKS, lightning_hooks.AVERAGED_MODELS)}
    yield
    for reg, entries in saved.items():
        reg.module_dict.clear()
        reg.module_dict.update(entries)


def test_the_docs_have_code_blocks():
    """The collector finds the blocks (a broken fence pattern would make every other test vacuous)."""
    assert len(BLOCKS) >= 15, [b.where for b in BLOCKS]
    assert any(b.where.startswith("README.md") for b in RUNNABLE)
    assert any(b.where.startswith("docs/hooks/") for b in RUNNABLE)


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.where for b in RUNNABLE])
def test_code_block_runs_as_written(block, tmp_path, monkeypatch, clean_registries):
    monkeypatch.chdir(tmp_path)
    write_placeholder_files(str(tmp_path))
    namespace = {"__name__": "__main__", **make_placeholders()}
    linecache.cache[block.where] = (len(block.code), None, block.code.splitlines(True), block.where)  # tracebacks
    warnings_seen = _WarningCatcher()
    package_logger = logging.getLogger("lightning_hooks")  # it does not propagate: listen on it directly
    package_logger.addHandler(warnings_seen)
    try:
        exec(compile(block.code, block.where, "exec"), namespace)
    finally:
        package_logger.removeHandler(warnings_seen)
    # The package warns when a setting works against it (e.g. two checkpoint savers): the docs must not.
    assert not warnings_seen.messages, f"{block.where} makes lightning_hooks warn: {warnings_seen.messages}"
    # Nothing lands in the current directory that the block (or the config it reads) did not name.
    named = block.code + MY_CFG
    unnamed = [p.name for p in tmp_path.iterdir() if p.name not in PLACEHOLDER_FILES and p.name not in named]
    assert not unnamed, f"{block.where} wrote {unnamed} into the current directory without naming it"


def test_skipped_blocks_are_few_say_why_and_compile():
    assert len(SKIPPED) <= MAX_SKIPPED, [b.where for b in SKIPPED]
    for block in SKIPPED:
        assert len(block.skip or "") >= 10, f"{block.where}: say why the block cannot run"
        compile(block.code, block.where, "exec")


INTERNAL_REFERENCE = re.compile(
    r"\bissues?\s+#?\d+|\bthe issue\b|\bissue's\b|\bsection\s+\d+(\.\d+)*\s+of\s+the\s+reference"
    r"|\bthe reference\s*\(section|\breport of\b|\bthis task\b",
    re.IGNORECASE,
)


@pytest.mark.parametrize(
    "path", [*DOC_FILES, ROOT / "CHANGELOG.md", ROOT / "BENCHMARKS.md"], ids=lambda p: str(p.relative_to(ROOT))
)
def test_docs_name_no_internal_references(path):
    """Readers cannot follow "issue 5" or "section 13.2 of the reference": the docs explain in their own words."""
    text = path.read_text(encoding="utf-8")
    found = [f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}" for m in INTERNAL_REFERENCE.finditer(text)]
    assert not found, found
