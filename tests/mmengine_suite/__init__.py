"""MMEngine 0.10.7's unit tests, re-expressed against lightning_hooks (see README.md here)."""
