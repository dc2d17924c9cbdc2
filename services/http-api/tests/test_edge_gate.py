"""The edge proof and the gate in front of every route: refusals before anything is
believed, the verified-token cache and its invalidation by auth's closing order."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import nats

from aisopod.compat.natspy import flush_in_order
from aisopod.contracts.auth import VerifiedPrincipal
from aisopod_http_api.gate import TokenCache

FORGED = {
    "x-aisopod-principal": "operator:attacker",
    "x-aisopod-role": "operator",
    "x-aisopod-scopes": "operator.admin",
    "x-aisopod-auth-method": "token",
}


async def _bare(served) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    """A client that does not come through the edge (no proof)."""
    return httpx.AsyncClient(base_url=served.url, timeout=10, trust_env=False)


async def test_no_proof_is_refused_before_identity_is_read(served, admin) -> None:  # type: ignore[no-untyped-def]
    async with await _bare(served) as bare:
        bearer = {"authorization": admin["authorization"]}
        for path in ("/status", "/v1/models", "/tools/catalog", "/hooks/wake"):
            for headers in (FORGED, bearer, {**bearer, "x-aisopod-edge": "wrong"}):
                response = await bare.get(path, headers=headers)
                assert response.status_code == 403, (path, headers)
                error = response.json()["error"]
                assert "edge proof" in error["message"]
                assert response.headers["x-content-type-options"] == "nosniff"
        # Two copies (one forged next to Traefik's) are not a proof either.
        doubled = [("x-aisopod-edge", admin["x-aisopod-edge"]), ("x-aisopod-edge", "x")]
        response = await bare.get("/status", headers=[*bearer.items(), *doubled])
        assert response.status_code == 403
        # Probes act on nothing and stay open.
        for probe in ("/health", "/ready", "/healthz", "/readyz"):
            assert (await bare.get(probe)).status_code in (200, 503)


async def test_forged_identity_with_proof_is_not_believed(client: httpx.AsyncClient) -> None:
    response = await client.get("/status", headers=FORGED)
    assert response.status_code == 401


async def test_verified_tokens_are_cached_until_a_closing_order(served, reader) -> None:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(base_url=served.url, timeout=10, trust_env=False) as c:
        token = {**reader}

        def verifications() -> int:
            return len(served.runtime.params("auth.verify"))

        assert (await c.get("/status", headers=token)).status_code == 200
        before = verifications()
        for _ in range(3):
            assert (await c.get("/status", headers=token)).status_code == 200
        assert verifications() == before  # answered from the cache
        nc = await nats.connect(served.nats_url)
        try:
            order = {"principalId": "token:x", "reason": "token revoked"}
            await nc.publish(
                f"{served.prefix}.control.connections.close", json.dumps(order).encode()
            )
            await flush_in_order(nc, 5)
        finally:
            await nc.close()
        deadline = time.monotonic() + 10
        while verifications() == before:
            assert time.monotonic() < deadline, "the closing order did not empty the cache"
            assert (await c.get("/status", headers=token)).status_code == 200
            await asyncio.sleep(0.05)


async def test_wrong_tokens_always_reach_auth(client: httpx.AsyncClient, served) -> None:  # type: ignore[no-untyped-def]
    wrong = {"authorization": f"Bearer {uuid.uuid4().hex}"}
    before = len(served.runtime.params("auth.verify"))
    for _ in range(3):
        assert (await client.get("/status", headers=wrong)).status_code == 401
    assert len(served.runtime.params("auth.verify")) == before + 3


def test_token_cache_expires_and_stays_bounded() -> None:
    now = [100.0]
    cache = TokenCache(ttl_s=10.0, size=2, clock=lambda: now[0])
    principal = VerifiedPrincipal(id="p", role="operator", scopes=[], auth_method="token")
    one = TokenCache.key("one", None, False)
    assert TokenCache.key("one", "https://a", False) != one  # Origin is part of the key
    assert TokenCache.key("one", None, True) != one
    cache.put(one, principal)
    assert cache.get(one) == principal
    now[0] += 10.0
    assert cache.get(one) is None and len(cache) == 0
    for name in ("a", "b", "c"):
        cache.put(TokenCache.key(name, None, False), principal)
    assert len(cache) == 2 and cache.get(TokenCache.key("a", None, False)) is None
    cache.clear()
    assert len(cache) == 0


def test_an_auth_config_change_empties_the_cache_and_others_do_not() -> None:
    from aisopod.config.model import GatewayConfig
    from aisopod_http_api.gate import Gate

    gate = Gate(lambda: None)  # type: ignore[arg-type,return-value]  # no NATS needed here
    principal = VerifiedPrincipal(id="p", role="operator", scopes=[], auth_method="token")
    before = GatewayConfig()
    gate.cache.put(TokenCache.key("t", None, False), principal)
    gate.on_config(GatewayConfig.model_validate({"cors": {"maxAgeS": 5}}), before)
    assert len(gate.cache) == 1
    gate.on_config(GatewayConfig.model_validate({"auth": {"mode": "none"}}), before)
    assert len(gate.cache) == 0


def test_a_locked_out_address_skips_the_cache() -> None:
    import time as clock

    from aisopod_http_api.gate import Gate

    gate = Gate(lambda: None)  # type: ignore[arg-type,return-value]
    until = int(clock.time() * 1000) + 60_000
    gate.lock("198.51.100.7", until)
    gate.lock("2001:db8:1:2::/64", until)
    assert gate.locked("198.51.100.7")
    assert gate.locked("2001:db8:1:2::99")  # the same /64
    assert not gate.locked("198.51.100.8")
    gate.lock("198.51.100.9", int(clock.time() * 1000) - 1)
    assert not gate.locked("198.51.100.9")  # already over


def _snapshot(revision: int, document: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    from aisopod.config.model import GatewayConfig
    from aisopod.config.store import ConfigSnapshot

    return ConfigSnapshot(GatewayConfig.model_validate(document or {}), "h", revision)


def test_the_gate_keys_exemptions_by_route_class_per_revision() -> None:
    from aisopod.contracts.ratelimit import EdgeCheckResult
    from aisopod_http_api.gate import Gate

    current = [_snapshot(5)]
    gate = Gate(lambda: None, snapshot=lambda: current[0])  # type: ignore[arg-type,return-value]
    # The default classes: /ws, /openclaw (exact), / (every API path).
    assert gate.route_class(current[0], "/v1/chat/completions") == 2
    assert gate.route_class(current[0], "/v1/models/x") == 2
    exempt = EdgeCheckResult(
        allowed=True, limit=1, remaining=1, reset_ms=0, reason="exempt", config_revision=5
    )
    gate._keep(current[0], 2, "127.0.0.1", exempt)
    assert gate.exempt.admits(5, gate.route_class(current[0], "/status"), "127.0.0.1")
    # A reply that arrived after a change was applied is not kept.
    asked_under = current[0]
    current[0] = _snapshot(6, {"limits": {"routes": [{"pathPrefix": "/v1", "rule": "http"}]}})
    gate.exempt.clear()
    gate._keep(asked_under, 2, "127.0.0.1", exempt)
    assert len(gate.exempt) == 0
    # The classes follow the revision: under 6 /status is in none, /v1 is class 0.
    assert gate.route_class(current[0], "/status") is None
    assert gate.route_class(current[0], "/v1/models") == 0


def test_a_config_change_empties_the_exempt_verdicts() -> None:
    from aisopod.config.model import GatewayConfig
    from aisopod.contracts.ratelimit import EdgeCheckResult
    from aisopod_http_api.gate import Gate

    gate = Gate(lambda: None, snapshot=lambda: _snapshot(5))  # type: ignore[arg-type,return-value]
    exempt = EdgeCheckResult(
        allowed=True, limit=1, remaining=1, reset_ms=0, reason="exempt", config_revision=5
    )
    gate.exempt.remember(5, 2, "127.0.0.1", exempt)
    assert len(gate.exempt) == 1
    gate.on_config(GatewayConfig.model_validate({"cors": {"maxAgeS": 5}}), GatewayConfig())
    assert len(gate.exempt) == 0


def test_the_caches_given_are_the_ones_used_even_when_empty() -> None:
    from aisopod.exemptcache import ExemptCache
    from aisopod_http_api.gate import Gate

    # An empty cache is falsy (it has a length): `AISOPOD_EXEMPT_CACHE_MAX_AGE_S=0` once
    # fell back to the default cache that way.
    off, tokens = ExemptCache(max_age_s=0.0), TokenCache(ttl_s=1.0)
    gate = Gate(lambda: None, cache=tokens, exempt=off)  # type: ignore[arg-type,return-value]
    assert gate.exempt is off and gate.cache is tokens


def test_a_decision_from_the_caches_alone_admits_only_what_admit_would() -> None:
    """`admit_kept`: the cached verification and the kept exemption together admit with
    no NATS (the gate's bus factory here has none); anything less is False (ask)."""
    import time as clock

    from aisopod.contracts.ratelimit import EdgeCheckResult
    from aisopod_http_api.gate import EXEMPT_CACHED, Gate

    gate = Gate(lambda: None, snapshot=lambda: _snapshot(5))  # type: ignore[arg-type,return-value]
    principal = VerifiedPrincipal(
        id="token:t", role="operator", scopes=["operator.write"], auth_method="token"
    )
    ip, path, bearer = "127.0.0.1", "/v1/chat/completions", "Bearer t"
    kept = EdgeCheckResult(
        allowed=True, limit=1, remaining=1, reset_ms=0, reason="exempt", config_revision=5
    )
    assert gate.admit_kept(path, ip, bearer, None, "r1") is False  # nothing cached yet
    gate.cache.put(TokenCache.key("t", None, True), principal)
    assert gate.admit_kept(path, ip, bearer, None, "r1") is False  # no exemption kept
    gate.exempt.remember(5, gate.route_class(_snapshot(5), path), ip, kept)
    counted = EXEMPT_CACHED._value.get()
    caller = gate.admit_kept(path, ip, bearer, None, "r1")
    assert caller and (caller.id, caller.scopes, caller.client_ip, caller.trace_id) == (
        "token:t",
        ("operator.write",),
        ip,
        "r1",
    )
    assert EXEMPT_CACHED._value.get() == counted + 1
    # The cache key holds the Origin: another one, or none at all, is asked about.
    assert gate.admit_kept(path, ip, bearer, "https://elsewhere", "r1") is False
    assert gate.admit_kept(path, ip, None, None, "r1") is False
    assert gate.admit_kept(path, ip, "Basic dDp0", None, "r1") is False
    # /hooks has its own token: auth does not guard it, the kept exemption admits it.
    assert gate.admit_kept("/hooks/wake", ip, None, None, "r1") is None
    # Another address has no exemption kept; a locked-out one always reaches auth.
    assert gate.admit_kept(path, "127.0.0.2", bearer, None, "r1") is False
    gate.lock(ip, int(clock.time() * 1000) + 60_000)
    assert gate.admit_kept(path, ip, bearer, None, "r1") is False


def test_no_decision_from_the_caches_when_the_exempt_cache_is_off() -> None:
    from aisopod.contracts.ratelimit import EdgeCheckResult
    from aisopod.exemptcache import ExemptCache
    from aisopod_http_api.gate import Gate

    off = ExemptCache(max_age_s=0.0)
    gate = Gate(lambda: None, snapshot=lambda: _snapshot(5), exempt=off)  # type: ignore[arg-type,return-value]
    principal = VerifiedPrincipal(id="p", role="operator", scopes=[], auth_method="token")
    gate.cache.put(TokenCache.key("t", None, True), principal)
    kept = EdgeCheckResult(
        allowed=True, limit=1, remaining=1, reset_ms=0, reason="exempt", config_revision=5
    )
    off.remember(5, 2, "127.0.0.1", kept)  # refused by a cache that is off
    assert gate.admit_kept("/v1/models", "127.0.0.1", "Bearer t", None, "r") is False
