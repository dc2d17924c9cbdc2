"""The health snapshot and `health.changed`: counted per deployment, published on a settled
change by one replica, delivered to operator.read clients."""

from __future__ import annotations

from nats.micro import add_service

from aisopod_ws_gateway.health import ChangeDetector
from tests.support.ws_client import WsClient


def test_a_change_counts_once_seen_twice_in_a_row() -> None:
    changes = ChangeDetector()
    assert changes.observe("a") is False  # the first observation only settles
    assert changes.observe("a") is False
    assert changes.observe("b") is False  # seen once: maybe a late reply
    assert changes.observe("a") is False  # it was: back to the settled state
    assert changes.observe("b") is False
    assert changes.observe("b") is True
    assert changes.observe("b") is False  # settled; no repeat


async def test_a_service_coming_and_going_is_published(gw) -> None:
    health = gw.gateway.health

    async def instances(name: str) -> int:
        await health.refresh()
        await health.refresh()
        return health.snapshot["services"][name]["instances"]

    before = await instances("auth")
    async with await WsClient.connect(gw.url, token="admin-token") as admin:
        service = await add_service(
            gw.nc, name="auth", version="0.0.0", metadata={"instance": "a-x", "prefix": gw.prefix}
        )
        stranger = await add_service(  # another deployment's: not ours to count
            gw.nc, name="auth", version="0.0.0", metadata={"instance": "a-y", "prefix": "other"}
        )
        assert await instances("auth") == before + 1
        up = await admin.next_event(lambda e: e["method"] == "health.changed", timeout=5)
        assert up["params"]["payload"]["services"]["auth"] == {"ok": True, "instances": before + 1}
        await service.stop()
        assert await instances("auth") == before
        down = await admin.next_event(lambda e: e["method"] == "health.changed", timeout=5)
        assert down["params"]["payload"]["services"]["auth"]["instances"] == before
        await stranger.stop()
