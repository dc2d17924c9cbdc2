"""Import nats-py in the launcher without `importlib.metadata`.

nats-py reads its own version at import (`nats/aio/client.py` calls
`importlib.metadata.version("nats-py")`), which loads `importlib.metadata` and the `email`
parser it reads distributions' METADATA with: ~3.5 MiB that the supervising launcher
would keep for as long as the stack runs, for nothing else (docs/deployment.md, "The
launcher's own memory"). While nats-py is imported, `importlib.metadata` is a stand-in
whose `version("nats-py")` reads the version from the name of nats-py's `.dist-info`
directory; anything else asked of it (or a nats-py installed without one) loads and
answers with the real module. Afterwards the stand-in is gone from `sys.modules`, so
later imports (the forked start-up child's pydantic) get the real `importlib.metadata`.
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any

DISTRIBUTION = "nats-py"
DIST_INFO_PREFIX = "nats_py-"  # the distribution's name as wheels spell directories
DIST_INFO_SUFFIX = ".dist-info"
METADATA_MODULE = "importlib.metadata"


def dist_info_version(paths: list[str]) -> str | None:
    """nats-py's version from the first `nats_py-<version>.dist-info` on `paths`."""
    for entry in paths:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith(DIST_INFO_PREFIX) and name.endswith(DIST_INFO_SUFFIX):
                return name[len(DIST_INFO_PREFIX) : -len(DIST_INFO_SUFFIX)]
    return None


def _real_metadata() -> types.ModuleType:
    """The real `importlib.metadata`, replacing the stand-in wherever it is registered."""
    stand_in = sys.modules.get(METADATA_MODULE)
    if isinstance(stand_in, _StandIn):
        del sys.modules[METADATA_MODULE]
    import importlib.metadata as real

    return real


class _StandIn(types.ModuleType):
    """`importlib.metadata` while nats-py is imported: its version cheaply, the real module
    for anything else."""

    def version(self, distribution_name: str) -> str:
        if distribution_name == DISTRIBUTION:
            found = dist_info_version(sys.path)
            if found is not None:
                return found
        real_version: str = _real_metadata().version(distribution_name)
        return real_version

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            # The import system's own probes (`__path__`, `__spec__`…): a module's
            # attributes, not the library's API.
            raise AttributeError(name)
        return getattr(_real_metadata(), name)


def import_nats() -> None:
    """Import nats-py's client with the stand-in; nothing to do when `importlib.metadata`
    is already loaded (nothing to save: nats-py is imported as usual where it is used) or
    nats-py is."""
    if METADATA_MODULE in sys.modules or "nats.aio.client" in sys.modules:
        return
    stand_in = _StandIn(METADATA_MODULE)
    sys.modules[METADATA_MODULE] = stand_in
    try:
        import nats.aio.client  # noqa: F401
    finally:
        if sys.modules.get(METADATA_MODULE) is stand_in:
            del sys.modules[METADATA_MODULE]
