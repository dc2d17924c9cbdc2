"""config.* and the wizard against the real stack (over NATS, as an edge would call them).

Every test that changes the live configuration restores it. Each write uses a fresh
principal, so the control-write limit (3 per 60 s per principal) never trips a test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aisopod import codec
from aisopod.bus import Bus
from aisopod.config.model import REDACTED
from aisopod.discovery import discover
from aisopod.errors import Conflict, InvalidParams, RateLimited
from aisopod.principal import Principal

pytestmark = pytest.mark.integration


def admin() -> Principal:
    return Principal(id=f"p2-{uuid.uuid4().hex[:10]}", scopes=("operator.admin",))


async def get(bus: Bus) -> dict[str, Any]:
    return await bus.call("config.get", {}, principal=admin())


@pytest.fixture
async def restore(bus: Bus) -> AsyncIterator[None]:
    """Put the document back as it was (the redacted form keeps the stored secrets)."""
    before = await get(bus)
    yield
    current = await get(bus)
    if current["hash"] != before["hash"]:
        params = {"config": before["config"], "baseHash": current["hash"]}
        result = await bus.call("config.apply", params, principal=admin(), timeout=30)
        assert result["hash"] == before["hash"]


async def stored_document(bus: Bus) -> dict[str, Any]:
    kv = await bus.js.key_value("config")
    return codec.loads((await kv.get("gateway")).value)


async def test_two_concurrent_patches_with_one_base_hash_one_conflicts(bus, restore) -> None:
    base = (await get(bus))["hash"]
    titles = [f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"]
    outcomes = await asyncio.gather(
        *(
            bus.call(
                "config.patch", {"patch": {"ui": {"title": t}}, "baseHash": base}, principal=admin()
            )
            for t in titles
        ),
        return_exceptions=True,
    )
    wins = [o for o in outcomes if isinstance(o, dict)]
    conflicts = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(wins) == 1 and len(conflicts) == 1, outcomes
    assert conflicts[0].detail_code == "STALE_BASE_HASH"
    now = await get(bus)
    assert now["hash"] == wins[0]["hash"]
    assert now["config"]["ui"]["title"] in titles
    assert wins[0]["config"]["ui"]["title"] == now["config"]["ui"]["title"]


async def test_stale_base_hash_is_conflict_and_invalid_config_writes_nothing(bus, restore) -> None:
    before = await get(bus)
    with pytest.raises(InvalidParams) as bad:
        await bus.call(
            "config.patch",
            {
                "patch": {"ui": {"title": 7}, "limits": {"rules": [{"name": "x"}]}},
                "baseHash": before["hash"],
            },
            principal=admin(),
        )
    locations = [tuple(e["loc"]) for e in bad.value.data["errors"]]
    assert ("ui", "title") in locations
    assert (await get(bus))["hash"] == before["hash"]
    with pytest.raises(Conflict):
        await bus.call(
            "config.set", {"config": before["config"], "baseHash": "0" * 64}, principal=admin()
        )


async def test_redacted_secrets_are_kept_and_config_changed_is_broadcast(bus, restore) -> None:
    before = await get(bus)
    fake = next(p for p in before["config"]["models"]["providers"] if p["id"] == "fake")
    assert fake["apiKey"] == REDACTED
    stored_key = next(
        p["apiKey"]
        for p in (await stored_document(bus))["models"]["providers"]
        if p["id"] == "fake"
    )
    document = before["config"]
    document["ui"]["title"] = f"kept-{uuid.uuid4().hex[:6]}"
    written = await bus.call(
        "config.set", {"config": document, "baseHash": before["hash"]}, principal=admin()
    )
    after = await stored_document(bus)
    assert next(p["apiKey"] for p in after["models"]["providers"] if p["id"] == "fake") == (
        stored_key
    )
    assert stored_key != REDACTED
    msg = await bus.js.get_last_msg("EVENTS", "aisopod.evt.config.changed")
    event = codec.loads(msg.data)
    assert event == {"hash": written["hash"], "paths": ["ui.title"]}


async def test_config_apply_reports_every_live_instance(bus, stack, restore) -> None:
    base = (await get(bus))["hash"]
    result = await bus.call(
        "config.apply",
        {"patch": {"ui": {"assistantName": f"n-{uuid.uuid4().hex[:6]}"}}, "baseHash": base},
        principal=admin(),
        timeout=30,
    )
    live = await discover(bus)
    reported = {(r["service"], r["instance"]) for r in result["instances"]}
    assert reported == {i.key for i in live}
    assert all(r["ok"] and r["hash"] == result["hash"] for r in result["instances"])
    assert result["complete"] is True
    assert result["applied"] == dict.fromkeys({i.service for i in live}, True)
    for service, pids in stack.pids.items():
        if service in result["applied"]:
            assert sum(1 for r in result["instances"] if r["service"] == service) == len(pids)


async def test_rate_limit_change_reaches_the_ratelimit_service_live(bus, restore) -> None:
    before = await get(bus)
    ratelimit_before = {i.micro_id for i in await discover(bus) if i.service == "ratelimit"}
    rule = f"p2_{uuid.uuid4().hex[:8]}"
    rules = [
        *before["config"]["limits"]["rules"],
        {"name": rule, "key": "principal", "limit": 2, "windowS": 60},
    ]
    result = await bus.call(
        "config.apply",
        {"patch": {"limits": {"rules": rules}}, "baseHash": before["hash"]},
        principal=admin(),
        timeout=30,
    )
    ratelimit_rows = [r for r in result["instances"] if r["service"] == "ratelimit"]
    assert ratelimit_rows and all(r["hash"] == result["hash"] for r in ratelimit_rows)
    # Applied live: the same processes, no restart.
    assert {i.micro_id for i in await discover(bus) if i.service == "ratelimit"} == ratelimit_before
    # Behaviour: the new rule admits 2, not 3.
    check = {"rule": rule, "key": f"principal:{uuid.uuid4().hex}"}
    first = await bus.request(bus.subjects.ratelimit("check"), check, timeout=2)
    second = await bus.request(bus.subjects.ratelimit("check"), check, timeout=2)
    third = await bus.request(bus.subjects.ratelimit("check"), check, timeout=2)
    assert [first["allowed"], second["allowed"], third["allowed"]] == [True, True, False]


async def four_title_patches(bus: Bus, who: Principal, prefix: str) -> list[str]:
    """Four changing config.patch writes by `who`, each on the current hash: "ok" or
    "limited" for each (a limited write always says when to retry)."""
    outcomes = []
    for n in range(4):
        current = (await get(bus))["hash"]
        try:
            await bus.call(
                "config.patch",
                {"patch": {"ui": {"title": f"{prefix}-{n}"}}, "baseHash": current},
                principal=who,
            )
            outcomes.append("ok")
        except RateLimited as exc:
            assert exc.retry_after_ms > 0
            outcomes.append("limited")
    return outcomes


async def test_control_writes_are_limited_per_principal(bus, restore) -> None:
    who = admin()
    assert await four_title_patches(bus, who, "rl") == ["ok", "ok", "ok", "limited"]


async def test_only_writes_that_change_the_config_use_the_write_budget(bus, restore) -> None:
    who = admin()
    before = await get(bus)
    for _ in range(3):  # stale baseHash: refused, not counted
        with pytest.raises(Conflict):
            stale = {"patch": {"ui": {"title": "x"}}, "baseHash": "0" * 64}
            await bus.call("config.patch", stale, principal=who)
    with pytest.raises(InvalidParams):  # invalid: refused, not counted
        invalid = {"patch": {"ui": {"title": 7}}, "baseHash": before["hash"]}
        await bus.call("config.patch", invalid, principal=who)
    same = {"ui": {"title": before["config"]["ui"]["title"]}}  # a no-op: answered, not counted
    unchanged = await bus.call(
        "config.patch", {"patch": same, "baseHash": before["hash"]}, principal=who
    )
    assert unchanged["hash"] == before["hash"]
    assert await four_title_patches(bus, who, "budget") == ["ok", "ok", "ok", "limited"]


async def test_wizard_walks_four_steps_and_applies_the_config(bus, restore) -> None:
    who = admin()
    state = await bus.call("wizard.start", {}, principal=who)
    session = state["sessionId"]
    assert state["status"] == "running" and state["step"]["stepId"] == "provider"
    with pytest.raises(InvalidParams):
        await bus.call(
            "wizard.next",
            {"sessionId": session, "answer": {"stepId": "model", "value": "echo"}},
            principal=who,
        )
    answers = [
        ("provider", "echo"),
        ("model", "echo"),
        ("authMode", "token"),
        ("agent", {"id": "helper", "instructions": "Be brief."}),
    ]
    for step, value in answers:
        assert state["step"]["stepId"] == step
        state = await bus.call(
            "wizard.next",
            {"sessionId": session, "answer": {"stepId": step, "value": value}},
            principal=who,
            timeout=30,
        )
    assert state["status"] == "done", state
    config = await get(bus)
    assert state["configHash"] == config["hash"]
    assert config["config"]["models"]["agents"]["defaultId"] == "helper"
    assert config["config"]["models"]["agents"]["model"] == "echo/echo"
    assert {p["id"] for p in config["config"]["models"]["providers"]} >= {"echo", "fake"}
    assert (await bus.call("wizard.status", {}, principal=who))["status"] == "done"


async def test_wizard_cancel_and_one_at_a_time(bus) -> None:
    who = admin()
    state = await bus.call("wizard.start", {}, principal=who)
    with pytest.raises(Conflict):
        await bus.call("wizard.start", {}, principal=who)
    cancelled = await bus.call("wizard.cancel", {"sessionId": state["sessionId"]}, principal=who)
    assert cancelled["status"] == "cancelled" and "step" not in cancelled
    again = await bus.call("wizard.start", {}, principal=who)
    await bus.call("wizard.cancel", {"sessionId": again["sessionId"]}, principal=who)
