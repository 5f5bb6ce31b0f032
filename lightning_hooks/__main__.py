"""``python -m lightning_hooks`` and the ``lightning-hooks`` console script (see :mod:`lightning_hooks.cli`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Optional

from .cli import main as _cli_main

__all__ = ["main"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``lightning-hooks`` command; returns the exit status."""
    return _cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
