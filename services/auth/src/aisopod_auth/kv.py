"""Typed access to the auth service's KV entries: pydantic records, escaped keys, CAS.

Every record the service stores is a pydantic model; `Entries` reads and writes them in one
bucket, and `update` retries a read-modify-write on a concurrent change, so two replicas (or
two operators) never overwrite each other's change.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Generic, TypeVar

from nats.js.errors import (
    APIError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KeyValue
from pydantic import BaseModel

from aisopod import codec
from aisopod.errors import Conflict
from aisopod.jsread import snapshot

M = TypeVar("M", bound=BaseModel)

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_CAS_ATTEMPTS = 8
# JetStream's "wrong last sequence": nats-py maps it to KeyWrongLastSequenceError on
# update/create but leaves a conditional delete's as a bare APIError.
_WRONG_LAST_SEQUENCE = 10071


def key_token(value: str) -> str:
    """One safe KV key segment for a free-form value (node ids hold `:`, IPv6 addresses
    too); anything outside `[A-Za-z0-9_-]` becomes `=XX`, so distinct values never collide."""
    return _KEY_UNSAFE.sub(lambda m: "".join(f"={b:02X}" for b in m.group().encode()), value)


class Entries(Generic[M]):
    """Records of one model type under one key prefix of a bucket."""

    def __init__(self, kv: KeyValue, prefix: str, model: type[M]) -> None:
        self.kv = kv
        self.prefix = prefix
        self.model = model

    def key(self, name: str) -> str:
        return f"{self.prefix}.{key_token(name)}"

    async def get(self, name: str) -> tuple[M, int] | None:
        """The record and its revision, or None."""
        try:
            entry = await self.kv.get(self.key(name))
        except (KeyNotFoundError, KeyDeletedError):
            return None
        if entry.value is None or entry.operation is not None:
            return None
        return self.model.model_validate(codec.loads(entry.value)), entry.revision or 0

    async def load(self, name: str) -> M | None:
        found = await self.get(name)
        return found[0] if found else None

    async def put(self, name: str, record: M) -> int:
        return await self.kv.put(self.key(name), codec.dumps(record.model_dump(mode="json")))

    async def create(self, name: str, record: M) -> int:
        """Store a new record; raises KeyWrongLastSequenceError when it exists."""
        return await self.kv.create(self.key(name), codec.dumps(record.model_dump(mode="json")))

    async def replace(self, name: str, record: M, revision: int) -> int:
        """Write only if the stored revision is still `revision`."""
        data = codec.dumps(record.model_dump(mode="json"))
        return await self.kv.update(self.key(name), data, last=revision)

    async def delete(self, name: str, revision: int | None = None) -> None:
        """Delete; with `revision`, only if it is still the stored one (raises
        KeyWrongLastSequenceError otherwise, like `replace`)."""
        try:
            await self.kv.delete(self.key(name), last=revision)
        except KeyWrongLastSequenceError:
            raise
        except APIError as exc:
            if getattr(exc, "err_code", None) == _WRONG_LAST_SEQUENCE:
                raise KeyWrongLastSequenceError(description=exc.description) from exc
            raise

    async def update(self, name: str, change: Callable[[M | None], M | None]) -> M | None:
        """Read-modify-write with compare-and-set; `change` gets the current record (or
        None) and returns the new one (None deletes). Retries on a concurrent write."""
        for _ in range(_CAS_ATTEMPTS):
            found = await self.get(name)
            current, revision = found if found else (None, 0)
            new = change(current)
            try:
                if new is None:
                    if current is not None:
                        await self.delete(name, revision)
                elif revision:
                    await self.replace(name, new, revision)
                else:
                    await self.create(name, new)
                return new
            except KeyWrongLastSequenceError:
                continue
        raise Conflict("the record changed concurrently; try again", code="CONCURRENT_UPDATE")

    async def all(self) -> list[M]:
        """Every record under the prefix (small sets: devices, nodes, pending requests).
        A complete read (`aisopod.jsread`): nats-py's watcher could end its snapshot early
        and a listing came back short."""
        entries = await snapshot(self.kv, f"{self.prefix}.>")
        return [self.model.model_validate(codec.loads(e.value)) for e in entries if e.value]
