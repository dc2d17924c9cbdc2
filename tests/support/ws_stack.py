"""What the WebSocket suites need from a running stack: replica URLs, readiness of the
edge route and of the auth service, and temporary changes of the live configuration.

Everything is real: the handshake goes through Traefik's `/ws` route to a ws-gateway,
which checks the edge proof and the connection limit (ratelimit over NATS) and verifies
credentials with the auth service.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import nats
import yaml

from aisopod.compat.natspy import flush_in_order
from aisopod.config.model import GatewayConfig
from aisopod.config.store import ConfigStore
from aisopod.settings import nats_servers


@dataclass
class WsStack:
    url: str  # through Traefik
    replicas: list[str]  # each ws-gateway replica directly
    token: str
    nats_url: str
    nats_password: str
    # What Traefik adds: a suite that connects to a replica directly plays the edge.
    edge: dict[str, str]

    async def nats(self) -> nats.NATS:
        return await nats.connect(
            nats_servers(self.nats_url), user="admin", password=self.nats_password
        )


def replica_urls(stack: Any) -> list[str]:
    routes = yaml.safe_load((stack.state_dir / "traefik" / "dynamic" / "routes.yml").read_text())
    servers = routes["http"]["services"]["ws-gateway"]["loadBalancer"]["servers"]
    return [s["url"].replace("http://", "ws://") + "/ws" for s in servers]


async def require_ws_stack(stack: Any) -> WsStack:
    env = WsStack(
        url=stack.ws_url,
        replicas=replica_urls(stack),
        token=stack.admin_token,
        nats_url=stack.nats_url,
        nats_password=stack.nats_password("admin"),
        edge={"X-Aisopod-Edge": edge_secret(stack)},
    )
    return env


def edge_secret(stack: Any) -> str:
    """The stack's edge proof (the launcher's secret; only the edge services read it)."""
    return (stack.state_dir / "secrets" / "edge-secret").read_text().strip()


@contextlib.asynccontextmanager
async def live_gateway_config(env: WsStack, **changes: Any) -> AsyncIterator[None]:
    """Change the `gateway` section of the live config; restored afterwards. Waits until
    every replica applies it (its hello policy / behaviour is then current)."""
    nc = await env.nats()
    store = ConfigStore(await nc.jetstream().key_value("config"))
    before = await store.load()
    document = before.config.document()
    document["gateway"] = {**document["gateway"], **changes}
    changed = await store.write(GatewayConfig.model_validate(document), before.hash)
    try:
        await _applied(env, changed.hash)
        yield
    finally:
        current = await store.load()
        restored = await store.write(before.config, current.hash)
        await _applied(env, restored.hash)
        await nc.close()


async def _applied(env: WsStack, config_hash: str) -> None:
    nc = await env.nats()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            inbox = nc.new_inbox()
            hashes: list[str] = []

            async def on_reply(msg: Any, hashes: list[str] = hashes) -> None:
                import orjson

                body = orjson.loads(msg.data)
                if body.get("service") == "ws-gateway":
                    hashes.append(body.get("hash"))

            sub = await nc.subscribe(inbox, cb=on_reply)
            await nc.publish("aisopod.control.config.report", b"{}", reply=inbox)
            await flush_in_order(nc, 5)
            await asyncio.sleep(0.2)
            await sub.unsubscribe()
            if len(hashes) >= len(env.replicas) and all(h == config_hash for h in hashes):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"ws-gateway replicas did not apply {config_hash}: {hashes}")
    finally:
        await nc.close()
