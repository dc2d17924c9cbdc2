"""aisopod runtime service."""

import sys

__version__ = "0.1.0"

# httpx imports its command-line client (`httpx._main`: click, rich, pygments) whenever
# those happen to be installed, as they are in the development environment the local stack
# runs from: ~5.5 MiB of RSS the runtime never uses. Marking the module absent before
# httpx loads takes httpx's own fallback for an install without its `cli` extra (its
# `main` then only prints how to install it). Nothing changes when httpx is already loaded.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
