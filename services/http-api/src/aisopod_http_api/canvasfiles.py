"""The `canvas` object store as files: safe names, content types, a cache, change events.

Object names are URL paths below `/canvas/`. A name is accepted only when every segment is
a plain name (no `..`, `.`, empty segments, backslashes or control characters) after
percent-decoding, so no path escapes the store (it has no directories to escape into, but
clients and caches must not see two URLs for one object either).

Changes (puts and deletes, by any writer: the runtime's canvas tool, the CLI) reach every
subscriber through one watcher of the store's metadata; a subscriber that falls behind
loses old notices, never blocks the others (live reload only needs "something changed").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import posixpath
import re
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import unquote

from nats.js.errors import NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from aisopod.contracts.tools import CANVAS_RESERVED
from aisopod.errors import InvalidParams, NotFound

log = logging.getLogger("aisopod.http_api.canvas")

INDEX = "index.html"
RESERVED = CANVAS_RESERVED
CACHE_BYTES = 32 * 1024 * 1024
_BAD_SEGMENT = re.compile(r"[\x00-\x1f\x7f\\]")
_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".md": "text/markdown",
    ".txt": "text/plain",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".wasm": "application/wasm",
    ".woff2": "font/woff2",
    ".csv": "text/csv",
    ".xml": "application/xml",
    ".pdf": "application/pdf",
}


def object_name(path: str) -> str:
    """The object name of a path below `/canvas/` (already or still percent-encoded).

    Raises InvalidParams for traversal or malformed names; "" and "dir/" mean index.html.
    """
    decoded = unquote(path)
    if unquote(decoded) != decoded:
        raise InvalidParams("doubly encoded canvas path refused")
    if decoded.startswith("/"):
        raise InvalidParams("canvas path must be relative")
    segments = decoded.split("/")
    if segments[-1] == "":
        segments[-1] = INDEX
    for segment in segments:
        if segment in ("", ".", "..") or _BAD_SEGMENT.search(segment):
            raise InvalidParams("canvas path traversal refused")
    name = "/".join(segments)
    if posixpath.normpath(name) != name:
        raise InvalidParams("canvas path traversal refused")
    return name


def content_type(name: str) -> str:
    suffix = posixpath.splitext(name)[1].lower()
    kind = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/json", "image/svg+xml"):
        kind += "; charset=utf-8"
    return kind


@dataclass(frozen=True, slots=True)
class CanvasObject:
    name: str
    data: bytes
    etag: str


@dataclass(frozen=True, slots=True)
class CanvasChange:
    name: str
    deleted: bool


class Subscription:
    def __init__(self, size: int = 64) -> None:
        self._changes: deque[CanvasChange] = deque(maxlen=size)
        self._event = asyncio.Event()

    def push(self, change: CanvasChange) -> None:
        self._changes.append(change)
        self._event.set()

    async def next(self) -> CanvasChange:
        while not self._changes:
            self._event.clear()
            await self._event.wait()
        return self._changes.popleft()

    async def changes(self, quiet_s: float) -> AsyncIterator[CanvasChange | None]:
        """Each change as it comes, and None after every `quiet_s` without one (an SSE
        stream's cue to send a keep-alive ping)."""
        while True:
            try:
                async with asyncio.timeout(quiet_s):
                    change = await self.next()
            except TimeoutError:
                yield None
                continue
            yield change


class CanvasFiles:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._cache: OrderedDict[str, CanvasObject] = OrderedDict()  # by nuid
        self._cached_bytes = 0
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="canvas-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=1.0)

    async def read(self, name: str) -> CanvasObject:
        try:
            info = await self.store.get_info(name)
        except ObjectNotFoundError:
            raise NotFound(f"no canvas file {name!r}") from None
        key = info.nuid or name
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        try:
            result = await self.store.get(name)
        except ObjectNotFoundError:
            raise NotFound(f"no canvas file {name!r}") from None
        digest = (info.digest or key).split("=", 1)[-1].rstrip("=")
        obj = CanvasObject(name, result.data or b"", f'"{digest}"')
        self._remember(key, obj)
        return obj

    async def names(self, prefix: str) -> list[str]:
        """Names of the live objects that start with `prefix`."""
        try:
            infos = await self.store.list(ignore_deletes=True)
        except NotFoundError:
            return []
        return sorted(
            i.name for i in infos if i.name and i.name.startswith(prefix) and not i.deleted
        )

    async def write(self, name: str, data: bytes) -> None:
        await self.store.put(name, data)

    def _remember(self, key: str, obj: CanvasObject) -> None:
        if len(obj.data) > CACHE_BYTES // 4:
            return
        self._cache[key] = obj
        self._cached_bytes += len(obj.data)
        while self._cached_bytes > CACHE_BYTES and self._cache:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= len(old.data)

    @contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        subscription = Subscription()
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    async def _watch(self) -> None:
        delay = 0.2
        while True:
            watcher = None
            try:
                watcher = await self.store.watch(updates_only=True)
                delay = 0.2
                async for info in watcher:
                    if info is None or not info.name:
                        continue
                    change = CanvasChange(info.name, bool(info.deleted))
                    for subscriber in list(self._subscribers):
                        subscriber.push(change)
            except asyncio.CancelledError:
                if watcher is not None:
                    with contextlib.suppress(Exception):
                        await watcher.stop()
                raise
            except Exception:  # NATS restart: watch again
                log.warning("canvas watch interrupted; retrying", exc_info=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
