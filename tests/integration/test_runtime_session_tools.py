"""`sessions.preview` and `sessions.resolve` on the shared stack (two runtime replicas)."""

from __future__ import annotations

import uuid

import pytest

from aisopod.errors import Conflict, InvalidParams, NotFound
from tests.integration.runtime_support import (  # noqa: F401 (fixture)
    RuntimeClient,
    new_session,
    rt_fixture,
)

pytestmark = pytest.mark.integration


async def _exchange(rt: RuntimeClient, key: str, message: str) -> None:
    reply = await rt.call("sessions.send", {"sessionKey": key, "message": message, "wait": True})
    assert reply["status"] == "ok"


async def test_preview_many_sessions_in_one_call(rt: RuntimeClient) -> None:
    first, second = new_session("prev"), new_session("prev")
    await _exchange(rt, first, "one")
    await _exchange(rt, first, "two " + "x" * 400)
    await _exchange(rt, second, "alone")
    await rt.call("chat.inject", {"sessionKey": second, "message": "noted", "label": "note"})
    missing = new_session("never")
    short = second.removeprefix("agent:main:")
    result = await rt.call(
        "sessions.preview", {"keys": [first, missing, short, second], "limit": 3}
    )
    previews = result["previews"]
    # Repeats (here the short and the canonical form of one key) count once, in order.
    assert [p["key"] for p in previews] == [first, missing, second]
    by_key = {p["key"]: p for p in previews}
    assert by_key[missing] == {"key": missing, "status": "missing", "messages": []}
    lines = by_key[first]["messages"]
    assert [m["role"] for m in lines] == ["assistant", "user", "assistant"]
    assert lines[0]["text"] == "echo: one"
    # A long message is cut to one line of 200 characters, ending with an ellipsis.
    assert len(lines[1]["text"]) == 200 and lines[1]["text"].endswith("…")
    assert lines[1]["text"].startswith("two xxx")
    assert all(isinstance(m["ts"], int) and m["ts"] > 0 for m in lines)
    assert [m["text"] for m in by_key[second]["messages"]] == ["alone", "echo: alone", "noted"]
    assert by_key[second]["status"] == "ok"

    await rt.call("sessions.reset", {"key": first})
    emptied = await rt.call("sessions.preview", {"keys": [first]})
    assert emptied["previews"] == [{"key": first, "status": "empty", "messages": []}]


async def test_preview_is_bounded(rt: RuntimeClient) -> None:
    with pytest.raises(InvalidParams):
        await rt.call("sessions.preview", {"keys": [new_session() for _ in range(51)]})
    with pytest.raises(InvalidParams):
        await rt.call("sessions.preview", {"keys": [new_session()], "limit": 11})
    with pytest.raises(InvalidParams):
        await rt.call("sessions.preview", {"keys": []})
    with pytest.raises(InvalidParams):  # a malformed key fails the call, naming the key
        await rt.call("sessions.preview", {"keys": ["agent:bad id:x"]})


async def test_resolve_by_key_and_by_label(rt: RuntimeClient) -> None:
    key = new_session("res")
    await _exchange(rt, key, "hello")
    label = f"Inbox {uuid.uuid4().hex[:8]}"
    await rt.call("sessions.patch", {"key": key, "label": label})

    by_key = await rt.call("sessions.resolve", {"key": key.removeprefix("agent:main:")})
    assert by_key["key"] == key and by_key["entry"]["label"] == label
    by_label = await rt.call("sessions.resolve", {"label": f"  {label.upper()} "})
    assert by_label["key"] == key and by_label["entry"]["lastMessage"] == "echo: hello"
    narrowed = await rt.call("sessions.resolve", {"label": label, "agentId": "main"})
    assert narrowed["key"] == key

    with pytest.raises(NotFound) as unknown_key:
        await rt.call("sessions.resolve", {"key": new_session("nope")})
    assert unknown_key.value.detail_code == "SESSION_NOT_FOUND"
    with pytest.raises(NotFound) as unknown_label:
        await rt.call("sessions.resolve", {"label": f"no such {uuid.uuid4().hex}"})
    assert unknown_label.value.detail_code == "SESSION_NOT_FOUND"
    with pytest.raises(NotFound):  # the label exists, but not for that agent
        await rt.call("sessions.resolve", {"label": label, "agentId": "someone-else"})

    twin = new_session("res")
    await _exchange(rt, twin, "hello again")
    await rt.call("sessions.patch", {"key": twin, "label": label})
    with pytest.raises(Conflict) as ambiguous:
        await rt.call("sessions.resolve", {"label": label})
    assert ambiguous.value.detail_code == "AMBIGUOUS_LABEL"
    assert set(ambiguous.value.data["keys"]) == {key, twin}


async def test_resolve_takes_exactly_one_way(rt: RuntimeClient) -> None:
    for params in ({}, {"key": "main", "label": "x"}, {"key": "main", "agentId": "main"}):
        with pytest.raises(InvalidParams):
            await rt.call("sessions.resolve", params)
