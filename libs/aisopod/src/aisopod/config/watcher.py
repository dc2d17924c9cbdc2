"""Every service's live view of the configuration: watch KV, apply, report the hash.

Each instance answers `<prefix>.control.config.report` (no queue group: every instance
answers) with `{service, instance, hash}`, so `config.apply` can wait until all live
instances run the new document.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from aisopod import codec
from aisopod.bus import Bus
from aisopod.config.model import GatewayConfig
from aisopod.config.store import CONFIG_KEY, ConfigSnapshot, ConfigStore, snapshot_from

log = logging.getLogger("aisopod.config")

Listener = Callable[[GatewayConfig, GatewayConfig], Awaitable[None] | None]
"""Called with (new, old) after a change; raising logs and keeps the old behaviour."""


class ConfigWatcher:
    def __init__(self, bus: Bus, store: ConfigStore, *, service: str, instance: str) -> None:
        self.bus = bus
        self.store = store
        self.service = service
        self.instance = instance
        self._snapshot: ConfigSnapshot | None = None
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self._report_sub: Subscription | None = None
        self._changed = asyncio.Condition()
        self._stopping = False

    @property
    def current(self) -> GatewayConfig:
        if self._snapshot is None:
            raise RuntimeError("config not loaded yet")
        return self._snapshot.config

    @property
    def snapshot(self) -> ConfigSnapshot:
        if self._snapshot is None:
            raise RuntimeError("config not loaded yet")
        return self._snapshot

    def on_change(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        self._snapshot = await self.store.load()
        _tell_problems(self._snapshot)
        self._task = asyncio.create_task(self._watch(), name="config-watch")
        self._report_sub = await self.bus.nc.subscribe(
            self.bus.subjects.control("config.report"), cb=self._report
        )

    async def stop(self) -> None:
        if self._report_sub is not None:
            await self._report_sub.unsubscribe()
            self._report_sub = None
        if self._task is not None:
            self._stopping = True
            self._task.cancel()
            # nats-py's watcher may swallow one cancellation; never hang a shutdown on it.
            await asyncio.wait({self._task}, timeout=1.0)
            self._task = None

    async def wait_for_hash(self, config_hash: str, timeout: float) -> bool:
        """True once this instance applied `config_hash` (tests, config.apply)."""

        async def reached() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: self.snapshot.hash == config_hash)

        try:
            await asyncio.wait_for(reached(), timeout)
            return True
        except TimeoutError:
            return False

    async def wait_for_revision(self, revision: int, timeout: float) -> bool:
        """True once this instance runs the document stored at KV `revision` or later
        (read-your-writes at the edge: a later write may have replaced it)."""

        async def reached() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: self.snapshot.revision >= revision)

        if self._snapshot is not None and self._snapshot.revision >= revision:
            return True
        try:
            await asyncio.wait_for(reached(), timeout)
            return True
        except TimeoutError:
            return False

    async def _report(self, msg: Msg) -> None:
        if msg.reply and self._snapshot is not None:
            body = {"service": self.service, "instance": self.instance, "hash": self._snapshot.hash}
            await self.bus.nc.publish(msg.reply, codec.dumps(body))

    async def _watch(self) -> None:
        while not self._stopping:
            try:
                watcher = await self.store.kv.watch(CONFIG_KEY)
                async for entry in watcher:
                    if entry is None or entry.value is None or entry.operation is not None:
                        continue
                    await self._apply(entry.value, entry.revision or 0)
            except asyncio.CancelledError:
                raise
            except Exception:  # NATS restart or a bad document: keep the last good config
                log.warning("config watch interrupted; retrying", exc_info=True)
                await asyncio.sleep(0.5)

    async def _apply(self, data: bytes, revision: int) -> None:
        try:
            snapshot = snapshot_from(data, revision)
        except Exception:  # snapshot_from salvages bad documents; this is a bug's guard
            log.exception("stored configuration unreadable; keeping the previous one")
            return
        old = self._snapshot
        if old is not None and old.hash == snapshot.hash:
            self._snapshot = snapshot  # same document, newer revision: wake revision waiters
            async with self._changed:
                self._changed.notify_all()
            return
        _tell_problems(snapshot)
        self._snapshot = snapshot
        for listener in self._listeners:
            try:
                result = listener(snapshot.config, old.config if old else snapshot.config)
                if result is not None:
                    await result
            except Exception:
                log.exception("applying the new configuration failed in a listener")
        log.info("configuration applied", extra={"hash": snapshot.hash})
        async with self._changed:
            self._changed.notify_all()


def _tell_problems(snapshot: ConfigSnapshot) -> None:
    """Once per stored document: what of it this service does not use, and why."""
    if snapshot.problems:
        log.error(
            "the stored configuration fails validation; running without the parts that fail"
            " (repair with config.patch): %s",
            "; ".join(snapshot.problems),
            extra={"hash": snapshot.hash, "problems": list(snapshot.problems)},
        )
