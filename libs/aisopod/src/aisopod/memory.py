"""Give back the memory a service's start-up left behind.

Start-up (imports, the catalogue's models, the first config and KV reads) leaves freed
blocks spread over glibc's heap; glibc keeps them, so they count in the process's RSS
for as long as it runs. After start-up the service collects its garbage, freezes what
survived (it lives as long as the process: the collector's full passes skip it from
then on) and asks glibc to return free pages to the kernel (`malloc_trim`).
docs/deployment.md, "Python services' memory", has the figures.
"""

from __future__ import annotations

import gc
import logging
import os

log = logging.getLogger("aisopod.memory")


def glibc_version() -> str | None:
    """glibc's version, or None on another C library (musl in Alpine images, macOS)."""
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError, AttributeError):
        return None
    return value if value and value.startswith("glibc") else None


def malloc_trim() -> bool:
    """Return the C heap's free pages to the kernel; False (and nothing done) without
    glibc, whose `malloc_trim` this is."""
    if glibc_version() is None:
        return False
    import ctypes  # only here: ~1 MiB that a process without glibc need not load

    try:
        libc = ctypes.CDLL(None)
        libc.malloc_trim(0)
    except (OSError, AttributeError) as exc:
        log.debug("malloc_trim unavailable: %s", exc)
        return False
    return True


def settle_after_start() -> bool:
    """Collect, freeze the survivors, trim the heap; True when the heap was trimmed."""
    gc.collect()
    gc.freeze()
    return malloc_trim()
