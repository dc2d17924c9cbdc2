"""Test set-up and clean-up over NATS as the stack's `admin` user (not through the UI):
operator API tokens, and putting the live configuration back as it was.

Config writes through the gateway count toward the `control_writes` limit (3 per 60 s per
principal), so a test that makes the page write twice gives the other client a principal
of its own (an API token) and restores the config with the store directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import nats
import orjson

from aisopod.config.store import ConfigStore
from aisopod.principal import Principal
from tests.e2e.other_client import EventLoopThread

SETUP_PRINCIPAL = Principal(id="e2e-setup", scopes=("operator.admin",), auth_method="nats-admin")


class StackAdmin:
    def __init__(self, stack: Any, runner: EventLoopThread) -> None:
        self.stack = stack
        self.runner = runner

    async def _nats(self) -> nats.NATS:
        return await nats.connect(
            self.stack.nats_url, user="admin", password=self.stack.nats_password("admin")
        )

    async def _auth(self, verb: str, payload: dict[str, Any]) -> Any:
        nc = await self._nats()
        try:
            reply = await nc.request(
                f"aisopod.auth.{verb}",
                orjson.dumps(payload),
                timeout=10,
                headers=SETUP_PRINCIPAL.to_headers(),
            )
        finally:
            await nc.close()
        body = orjson.loads(reply.data)
        if "error" in body:
            raise RuntimeError(f"auth.{verb}: {body['error']}")
        return body["result"]

    @contextmanager
    def api_token(self, scopes: list[str], name: str) -> Iterator[str]:
        """An operator API token (`aisopod token create`), revoked afterwards."""
        created = self.runner.run(self._auth("token.create", {"scopes": scopes, "name": name}))
        try:
            yield created["token"]
        finally:
            self.runner.run(self._auth("token.revoke", {"tokenId": created["tokenId"]}))

    async def _config_store(self, nc: nats.NATS) -> ConfigStore:
        return ConfigStore(await nc.jetstream().key_value("config"))

    @contextmanager
    def config_restored(self) -> Iterator[None]:
        """Whatever the test writes, the stored config is the one from before afterwards."""

        async def load() -> Any:
            nc = await self._nats()
            try:
                return (await (await self._config_store(nc)).load()).config
            finally:
                await nc.close()

        async def restore(before: Any) -> None:
            nc = await self._nats()
            try:
                store = await self._config_store(nc)
                current = await store.load()
                if current.config.document() != before.document():
                    await store.write(before, current.hash)
            finally:
                await nc.close()

        before = self.runner.run(load())
        try:
            yield
        finally:
            self.runner.run(restore(before))
