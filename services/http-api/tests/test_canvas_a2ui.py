"""/canvas (object store files, traversal, live reload) and /a2ui (page, surfaces, actions)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import nats
import pytest
from nats.js.object_store import ObjectStore

from aisopod.errors import InvalidParams
from aisopod_http_api.a2ui import Surface
from aisopod_http_api.canvasfiles import content_type, object_name


@pytest.fixture
async def store(served) -> AsyncIterator[ObjectStore]:
    nc = await nats.connect(served.nats_url)
    yield await nc.jetstream().object_store(f"{served.prefix}_canvas")
    await nc.close()


def test_object_names() -> None:
    assert object_name("") == "index.html"
    assert object_name("a/b/") == "a/b/index.html"
    assert object_name("a/b.css") == "a/b.css"
    for bad in ("../x", "a/../../x", "a//b", "./a", "a/%2e%2e/b", "%252e%252e/x", "a\\b", "/abs"):
        with pytest.raises(InvalidParams):
            object_name(bad)
    assert content_type("x.html") == "text/html; charset=utf-8"
    assert content_type("x.png") == "image/png"
    assert content_type("x.unknown-ext") == "application/octet-stream"


async def test_files_and_live_reload(client: httpx.AsyncClient, store, reader) -> None:
    base = f"t{uuid.uuid4().hex[:8]}"
    await store.put(f"{base}/index.html", b"<html><body><h1>hi</h1></body></html>")
    await store.put(f"{base}/app.css", b"h1{color:red}")
    page = await client.get(f"/canvas/{base}/", headers=reader)
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.text.endswith(
        f'<script src="/canvas/__aisopod/live.js" data-canvas="{base}/index.html" defer>'
        "</script></body></html>"
    )
    css = await client.get(f"/canvas/{base}/app.css", headers=reader)
    assert css.text == "h1{color:red}" and css.headers["content-type"].startswith("text/css")
    again = await client.get(
        f"/canvas/{base}/app.css", headers={**reader, "if-none-match": css.headers["etag"]}
    )
    assert again.status_code == 304
    script = await client.get("/canvas/__aisopod/live.js", headers=reader)
    assert "EventSource" in script.text
    assert (await client.get(f"/canvas/{base}/missing.js", headers=reader)).status_code == 404
    assert (await client.get(f"/canvas/{base}/app.css")).status_code == 401


async def test_traversal_is_refused(client: httpx.AsyncClient, reader) -> None:
    for path in ("/canvas/%2e%2e/secret", "/canvas/a/%2e%2e/%2e%2e/x", "/canvas/a/..%2f..%2fx"):
        response = await client.get(path, headers=reader)
        assert response.status_code == 400, path
        assert "traversal" in response.json()["error"]["message"]


async def _events(client: httpx.AsyncClient, url: str, headers: dict, want: int) -> list[tuple]:
    found: list[tuple] = []
    async with client.stream("GET", url, headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        buffer = ""
        async for text in response.aiter_text():
            buffer += text
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
                if "event" in lines:
                    found.append((lines["event"], json.loads(lines["data"])))
                if len(found) >= want:
                    return found
    return found


async def test_canvas_change_events(served, store, reader) -> None:
    name = f"live-{uuid.uuid4().hex[:8]}.html"
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        task = asyncio.create_task(_events(client, "/canvas/__aisopod/events", reader, 1))
        await asyncio.sleep(0.3)  # the stream is open; then the store changes
        await store.put(name, b"<p>v2</p>")
        events = await asyncio.wait_for(task, 5)
    assert events[0] == ("change", {"name": name, "deleted": False})


SURFACE = {
    "surfaceId": "form",
    "title": "Deploy?",
    "components": [
        {"type": "markdown", "markdown": "Ship **v2**?"},
        {
            "type": "card",
            "title": "Options",
            "children": [
                {"type": "button", "id": "yes", "label": "Ship it", "action": "approve"},
                {"type": "textField", "id": "note", "label": "Note"},
            ],
        },
        {"type": "list", "items": [{"type": "text", "text": "one"}]},
        {"type": "image", "src": "https://example.com/x.png", "alt": "x"},
    ],
}


async def test_a2ui_page_and_surfaces(
    client: httpx.AsyncClient, served, store, admin, reader
) -> None:
    page = await client.get("/a2ui/", headers=reader)
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert '<script src="/a2ui/a2ui.js"' in page.text and "<script>" not in page.text
    js = await client.get("/a2ui/a2ui.js", headers=reader)
    assert js.headers["content-type"].startswith("text/javascript") and ".innerHTML" not in js.text
    name = f"a2ui-{uuid.uuid4().hex[:8]}"
    session = f"agent:main:{name}"
    pushed = await client.post(
        "/a2ui/surfaces", json={"sessionKey": name, "surface": SURFACE}, headers=admin
    )
    assert pushed.status_code == 200, pushed.text
    # where an agent's canvas_write puts it too (no ':' in canvas paths)
    assert (await store.get_info(f"a2ui/main/{name}/form.json")).size > 0
    listed = await client.get("/a2ui/surfaces", params={"sessionKey": session}, headers=reader)
    stored = Surface.model_validate(SURFACE).wire()  # with the defaults filled in
    assert stored["components"][1]["children"][0]["style"] == "primary"
    assert listed.json()["surfaces"] == [stored]
    events = await _events(client, f"/a2ui/events?sessionKey={session}", reader, 1)
    assert events == [("surface", stored)]
    bad = {**SURFACE, "components": [{"type": "script", "src": "evil"}]}
    refused = await client.post(
        "/a2ui/surfaces", json={"sessionKey": session, "surface": bad}, headers=admin
    )
    assert refused.status_code == 400
    action = await client.post(
        "/a2ui/actions",
        json={
            "sessionKey": session,
            "surfaceId": "form",
            "componentId": "note",
            "action": "submit",
            "value": "after lunch",
        },
        headers=admin,
    )
    assert action.status_code == 200 and action.json()["runId"]
    sent = served.runtime.params("chat.send")[-1]
    assert sent["sessionKey"] == session
    assert (
        sent["message"]
        == '[a2ui action] surface=form component=note action=submit value="after lunch"'
    )
