"""Authorization matrices over the whole catalogue, against the real stack (docs/quality.md,
Security): every method × every role/scope set, every event × every role/scope set, and
default deny for what the catalogue does not name.

Generated from `aisopod.catalogue` (CATALOGUE, EVENT_AUDIENCE): a new method or event is
covered without touching this file. The expected verdicts come from the rules of
docs/protocol/websocket.md written out here (admin grants every scope, write grants read,
node-only methods need the node role, `*` needs a connection, an event without a rule
reaches admins only), not from `aisopod.scopes`, so the implementation is not checked
against itself.

Nothing runs destructively: every call carries an unknown parameter, which each method's
params model rejects (INVALID_PARAMS) after the edge's scope check (ws-gateway
`dispatch.Dispatcher.handle` checks the requirement before a local handler or the owner
validates params). So an allowed call answers INVALID_PARAMS, a denied one FORBIDDEN.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from nats.errors import NoRespondersError
from pydantic import ValidationError

from aisopod.catalogue import CATALOGUE, EVENT_AUDIENCE
from aisopod.catalogue.spec import MethodSpec
from aisopod.scopes import Requirement
from tests.support.ws_client import RpcError, WsClient
from tests.support.ws_stack import WsStack, require_ws_stack

pytestmark = pytest.mark.integration

FORBIDDEN = -32003
INVALID_PARAMS = -32602
METHOD_NOT_FOUND = -32601
PROBE = "securityMatrixProbe"  # no params model has it: validation fails after the scope check

# docs/protocol/websocket.md, Authorization: what holding a scope satisfies.
SATISFIES: dict[str, set[str]] = {
    "operator.admin": {
        "operator.admin",
        "operator.read",
        "operator.write",
        "operator.approvals",
        "operator.pairing",
    },
    "operator.write": {"operator.write", "operator.read"},
    "operator.read": {"operator.read"},
    "operator.approvals": {"operator.approvals"},
    "operator.pairing": {"operator.pairing"},
}


@dataclass(frozen=True)
class Who:
    role: str
    scopes: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.role}[{','.join(self.scopes) or '-'}]"


# Every single operator scope, none, and the node role (also asking for admin: a node never
# gets operator scopes).
WHO = [
    Who("operator", ()),
    *(Who("operator", (scope,)) for scope in SATISFIES),
    Who("node", ()),
    Who("node", ("operator.admin",)),
]


def expected_allowed(who: Who, requirement: Requirement) -> bool:
    if requirement is Requirement.ANY:
        return True
    if requirement is Requirement.NODE:
        return who.role == "node"
    if who.role != "operator":
        return False
    return any(requirement.value in SATISFIES[s] for s in who.scopes)


def probes(spec: MethodSpec) -> Iterator[tuple[dict[str, Any], Requirement]]:
    """Params that fail validation, each with the requirement the call must meet."""
    yield {PROBE: True}, spec.requirement
    if spec.write_when_param and spec.write_requirement:
        # The write form of a read/write method (models.voicewake with `triggers`).
        yield {PROBE: True, spec.write_when_param: "x"}, spec.write_requirement


METHODS = [spec for name, spec in CATALOGUE.items() if name != "connect"]


@pytest.fixture(scope="module")
async def env(stack) -> WsStack:
    return await require_ws_stack(stack)


async def connect_as(url: str, env: WsStack, who: Who, **kwargs: Any) -> WsClient:
    client = {"id": "security-matrix", "version": "1", "platform": "python", "mode": "test"}
    if who.role == "node":
        client["instanceId"] = f"matrix-{uuid.uuid4().hex[:8]}"
    # The edge proof too, for a replica reached directly (through Traefik it is replaced).
    return await WsClient.connect(
        url,
        token=env.token,
        role=who.role,
        scopes=list(who.scopes),
        client=client,
        headers=env.edge,
        **kwargs,
    )


def test_every_probe_fails_validation_so_no_call_has_effects() -> None:
    """The premise of the matrix: no method's params model accepts the probe."""
    accepting = []
    for spec in METHODS:
        for params, _ in probes(spec):
            try:
                spec.params.model_validate(params)
            except ValidationError:
                continue
            accepting.append(spec.name)
    assert accepting == [], "these params models accept unknown fields; probe them otherwise"


async def _method_row(env: WsStack, who: Who) -> list[str]:
    """Call every method as `who`; the mismatches, as readable lines."""
    wrong: list[str] = []
    ws = await connect_as(env.url, env, who)
    granted = ws.hello["auth"]["scopes"]
    if sorted(granted) != sorted(s for s in who.scopes if who.role == "operator"):
        wrong.append(f"{who.label}: granted {granted}")
    try:
        for spec in METHODS:
            for params, requirement in probes(spec):
                reply = await ws.request(spec.name, params)
                error = reply.get("error") or {}
                code = error.get("code")
                allowed = expected_allowed(who, requirement)
                if allowed and code != INVALID_PARAMS:
                    wrong.append(f"{who.label} {spec.name}: expected INVALID_PARAMS, got {reply}")
                if not allowed:
                    data = error.get("data") or {}
                    detail = data.get("code")
                    if code != FORBIDDEN or detail not in ("MISSING_SCOPE", "UNAUTHORIZED_ROLE"):
                        wrong.append(f"{who.label} {spec.name}: expected FORBIDDEN, got {reply}")
                    elif detail == "MISSING_SCOPE" and data.get("requiredScope") != requirement:
                        wrong.append(f"{who.label} {spec.name}: wrong requiredScope {data}")
                    # More than 10 FORBIDDEN in a row close the socket: an allowed call
                    # in between resets the count.
                    await ws.call("health")
        assert not ws.closed.done(), f"{who.label}: socket closed {ws.closed.result()}"
    finally:
        await ws.close()
    return wrong


async def test_method_matrix_every_method_every_role_and_scope(env) -> None:
    rows = await asyncio.gather(*(_method_row(env, who) for who in WHO))
    wrong = [line for row in rows for line in row]
    assert wrong == [], "\n".join(wrong[:40])


async def test_unknown_methods_are_not_found_for_everyone(env) -> None:
    names = [f"security.unknown.{uuid.uuid4().hex[:6]}", "connect.", "config.get.x", ""]
    for who in WHO:
        async with await connect_as(env.url, env, who) as ws:
            for name in names:
                with pytest.raises(RpcError) as info:
                    await ws.call(name, {})
                assert info.value.code in (METHOD_NOT_FOUND, -32600), (who.label, name)
    # Nor is there anything behind the bus subject of an unknown method.
    nc = await env.nats()
    try:
        with pytest.raises(NoRespondersError):
            await nc.request(f"aisopod.rpc.{names[0]}", b"{}", timeout=2)
    finally:
        await nc.close()


def event_expected(who: Who, name: str) -> bool:
    rule = EVENT_AUDIENCE.get(name)
    if rule is None:  # docs/protocol/websocket.md: an event without a rule reaches admins only
        return who.role == "operator" and "operator.admin" in who.scopes
    return any(expected_allowed(who, req) for req in rule.requirements)


async def test_event_matrix_and_default_deny_of_an_event_without_a_rule(env) -> None:
    """Each broadcast event of the catalogue, and one it does not name, published on NATS
    (the admin user, as any service would): each connection receives exactly the events
    its role and scopes admit."""
    marker = uuid.uuid4().hex
    unknown = f"security.probe{marker[:8]}"
    names = [n for n, rule in EVENT_AUDIENCE.items() if not rule.connection_only] + [unknown]
    # All on one replica: its fan-out handles the stream in order, writing each frame to
    # every admitted socket before it takes the next event.
    url = env.replicas[0]
    clients = [await connect_as(url, env, who) for who in WHO]
    admin = await connect_as(url, env, Who("operator", ("operator.admin",)))
    nc = await env.nats()
    try:
        js = nc.jetstream()
        for name in names:
            await js.publish(f"aisopod.evt.{name}", orjson.dumps({"securityProbe": marker}))

        def probe_of(event: dict[str, Any]) -> bool:
            payload = (event.get("params") or {}).get("payload")
            return isinstance(payload, dict) and payload.get("securityProbe") == marker

        # The admin sees every event, so its last probe is a barrier: the fan-out has
        # passed every probe. A round trip on each other socket then flushes what the
        # fan-out wrote to it before (one TCP stream: frames arrive in order).
        await admin.next_event(lambda e: probe_of(e) and e["method"] == unknown, timeout=15)
        wrong = []
        for who, ws in zip(WHO, clients, strict=True):
            await ws.call("health")
            got = {e["method"] for e in ws.drain_events() if probe_of(e)}
            want = {n for n in names if event_expected(who, n)}
            if got != want:
                wrong.append(f"{who.label}: missing {want - got}, unexpected {got - want}")
        assert wrong == [], "\n".join(wrong)
    finally:
        await nc.close()
        await asyncio.gather(*(ws.close() for ws in [*clients, admin]))
