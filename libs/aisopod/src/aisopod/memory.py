"""Give back the memory a service's start-up left behind.

Start-up (imports, the catalogue's models, the first config and KV reads) leaves freed
blocks spread over glibc's heap; glibc keeps them, so they count in the process's RSS
for as long as it runs. After start-up the service collects its garbage, freezes what
survived (it lives as long as the process: the collector's full passes skip it from
then on) and asks glibc to return free pages to the kernel (`malloc_trim`).

Use does the same on a larger scale: a thousand WebSockets opened and closed leave their
objects' reference cycles uncollected and glibc's heap holding the freed pages. Once a
process that did work has gone quiet, `IdleSettle` collects and trims once (never during
load: a quiet check is what lets it run). docs/deployment.md, "Python services' memory",
has the figures.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Callable

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


def settle_after_use() -> bool:
    """Collect (without freezing: what is alive now may die later) and trim the heap."""
    gc.collect()
    return malloc_trim()


# Checked every CHECK_S seconds; a process is quiet when it spent at most QUIET_CPU_S of
# CPU since the last check (0.5 % of a core: idle timers, probes, heartbeats), and it
# settles only after BUSY_CPU_S of CPU since its last settle (work worth giving back
# after; an idle process never collects at all).
CHECK_S = 10.0
QUIET_CPU_S = 0.05
BUSY_CPU_S = 1.0


class IdleSettle:
    """Collect and trim once after each busy spell, when the process has gone quiet."""

    def __init__(
        self,
        *,
        check_s: float = CHECK_S,
        quiet_cpu_s: float = QUIET_CPU_S,
        busy_cpu_s: float = BUSY_CPU_S,
        cpu_clock: Callable[[], float] = time.process_time,
        settle: Callable[[], object] = settle_after_use,
    ) -> None:
        self.check_s = check_s
        self.quiet_cpu_s = quiet_cpu_s
        self.busy_cpu_s = busy_cpu_s
        self._cpu = cpu_clock
        self._settle = settle
        self._last = self._settled = cpu_clock()
        self.settles = 0

    def check(self) -> bool:
        """One check; True when it settled."""
        now = self._cpu()
        spent, self._last = now - self._last, now
        if spent > self.quiet_cpu_s or now - self._settled < self.busy_cpu_s:
            return False
        self._settle()
        # The settle's own CPU is neither work to settle after nor noise in the next check.
        self._last = self._settled = self._cpu()
        self.settles += 1
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.check_s)
            try:
                self.check()
            except Exception:  # a failed settle must never take the service down
                log.exception("idle settle failed")


_running: asyncio.Task[None] | None = None


def start_idle_settle() -> asyncio.Task[None] | None:
    """Start this process's idle settle, unless one runs already (services hosted together
    in one process share it): the task, which its starter cancels on stop, or None."""
    global _running
    loop = asyncio.get_running_loop()
    if _running is not None and not _running.done() and _running.get_loop() is loop:
        return None
    _running = asyncio.create_task(IdleSettle().run(), name="idle-settle")
    return _running
