"""A connection admitted without a NATS round trip (an exempt address's upgrade) uses the
verified-credential cache only once the round trip started with its 101 is back, and
looks the cache up after it: a revocation delivered before that round trip's answer is
applied first (credentials.py, `order`). Sans NATS: the bus and the round trip are
stand-ins, the cache and the verifier are the real ones."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aisopod.contracts.auth import Credentials, VerifyRequest
from aisopod_ws_gateway.credentials import Verifier

ANSWER = {
    "principal": {"id": "admin", "role": "operator", "scopes": [], "authMethod": "token"},
    "generation": "auth-1",
}


class Bus:
    """`auth.verify` answered at once, counted."""

    def __init__(self) -> None:
        self.asked = 0
        self.nc = SimpleNamespace(is_connected=True, stats={"reconnects": 0})

    async def request(self, *_args: Any, **_kwargs: Any) -> dict[str, Any]:
        self.asked += 1
        return ANSWER


def verifier() -> tuple[Verifier, Bus]:
    bus = Bus()
    limits = SimpleNamespace(ipv6_prefix=64)
    host: Any = SimpleNamespace(
        bus=SimpleNamespace(request=bus.request, nc=bus.nc, subjects=SimpleNamespace(auth=str)),
        config=SimpleNamespace(current=SimpleNamespace(limits=limits)),
    )
    verify = Verifier(host, ttl_s=60.0)
    verify.cache.generation("auth-1")  # heard auth start: its answers may be kept
    return verify, bus


REQUEST = VerifyRequest(
    auth=Credentials(token="admin-token"), role="operator", scopes=[], client_ip="127.0.0.1"
)


async def test_the_cache_is_looked_up_after_the_round_trip_is_back() -> None:
    verify, bus = verifier()
    await verify.verify(REQUEST)  # asked and kept
    await verify.verify(REQUEST)
    assert bus.asked == 1
    round_trip: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    pending = asyncio.ensure_future(verify.verify(REQUEST, round_trip))
    await asyncio.sleep(0)  # it runs up to its wait for the round trip
    assert not pending.done() and bus.asked == 1
    verify.cache.clear()  # a revocation delivered before the round trip's answer
    round_trip.set_result(None)
    await pending
    assert bus.asked == 2  # asked again: the revoked entry was not used


async def test_a_round_trip_back_already_costs_nothing_and_a_failed_one_asks() -> None:
    verify, bus = verifier()
    await verify.verify(REQUEST)
    back: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    back.set_result(None)
    await verify.verify(REQUEST, back)
    assert bus.asked == 1  # from the cache
    failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    failed.set_exception(TimeoutError())
    await verify.verify(REQUEST, failed)
    assert bus.asked == 2
    cancelled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cancelled.cancel()
    await verify.verify(REQUEST, cancelled)
    assert bus.asked == 3
    await verify.verify(REQUEST)  # an upgrade that was asked about: the cache as before
    assert bus.asked == 3


def test_the_handshake_keys_the_cache_as_the_request_it_builds_only_on_a_miss() -> None:
    """A `connect` looks the cache up under the key of the request auth would be asked
    (built only on a miss), and a password or a device proof is never looked up."""
    from aisopod.catalogue.system import ConnectParams
    from aisopod_ws_gateway.credentials import question_of
    from aisopod_ws_gateway.handshake import Handshake

    client = {"id": "cli", "version": "1", "platform": "linux", "mode": "cli"}
    device = {
        "id": "d" * 64,
        "publicKey": "k" * 43,
        "signature": "s" * 86,
        "signedAt": 1,
        "nonce": "n",
    }
    variants: list[dict[str, Any]] = [
        {"client": client, "auth": {"token": "t"}, "scopes": ["operator.admin"]},
        {"client": client, "auth": {"token": "t"}, "scopes": []},
        {"client": client, "auth": {"deviceToken": "dt"}, "role": "node"},
        {"client": client},  # nothing but the upgrade's bearer, or nothing at all
        {"client": client, "auth": {"password": "p"}},
        {"client": client, "auth": {"token": "t"}, "device": device},
    ]
    conns = [
        SimpleNamespace(bearer=None, origin=None, ip="127.0.0.1", nonce="x"),
        SimpleNamespace(bearer="b", origin="http://localhost:1", ip="10.0.0.7", nonce="y"),
    ]
    for raw in variants:
        params = ConnectParams.model_validate(raw)
        for conn in conns:
            c: Any = conn
            built = question_of(Handshake._request(c, params))
            lazy = Handshake._question(c, params)
            assert (lazy.key() if lazy else None) == (built.key() if built else None), raw
            if "password" in raw.get("auth", {}) or "device" in raw:
                assert lazy is None
