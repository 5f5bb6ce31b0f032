"""The suite's bookkeeping: every xfail links an existing section of docs/comparison.md, and README.md
lists every file of the suite."""

from __future__ import annotations

import re
from pathlib import Path

SUITE = Path(__file__).parent
ROOT = SUITE.parent.parent
LINK = re.compile(r"docs/comparison\.md#([a-z0-9_-]+)")


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_xfail_links_a_section_of_the_comparison():
    anchors = {
        github_anchor(line.lstrip("#"))
        for line in (ROOT / "docs" / "comparison.md").read_text().splitlines()
        if line.startswith("#")
    }
    linked = {}
    for path in SUITE.glob("test_*.py"):
        text = path.read_text()
        if "xfail(" in text and path.name != Path(__file__).name:
            found = LINK.findall(text)
            assert found, f"{path.name} has an xfail without a docs/comparison.md link"
            linked.update({anchor: path.name for anchor in found})
    assert linked
    missing = {anchor: name for anchor, name in linked.items() if anchor not in anchors}
    assert not missing, f"links to sections that docs/comparison.md does not have: {missing}"


def test_readme_lists_every_suite_file():
    readme = (SUITE / "README.md").read_text()
    for path in SUITE.glob("test_*.py"):
        if path.name != Path(__file__).name:
            assert f"`{path.name}`" in readme, f"README.md does not list {path.name}"
