"""`agents.files.*` and `agent.identity.get` on the shared stack (two runtime replicas): the
files, their revisions and limits, and how they reach the model as the system prompt."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest

from aisopod.errors import Conflict, InvalidParams, NotFound
from tests.integration.runtime_support import (  # noqa: F401 (fixture)
    RuntimeClient,
    fake_requests,
    rt_fixture,
)

pytestmark = pytest.mark.integration

NAMES = ["AGENTS.md", "SOUL.md", "IDENTITY.md", "USER.md", "TOOLS.md", "MEMORY.md"]


async def _agent(rt: RuntimeClient, **fields: Any) -> str:
    agent_id = f"files-{uuid.uuid4().hex[:8]}"
    await rt.call("agents.create", {"id": agent_id, "name": "Filer", **fields})
    return agent_id


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_files_are_written_with_revisions_and_read_back(rt: RuntimeClient) -> None:
    agent_id = await _agent(rt)
    listed = await rt.call("agents.files.list", {"agentId": agent_id})
    assert listed == {
        "agentId": agent_id,
        "files": [{"name": name, "missing": True} for name in NAMES],
    }
    missing = await rt.call("agents.files.get", {"agentId": agent_id, "name": "SOUL.md"})
    assert missing["file"] == {"name": "SOUL.md", "missing": True}

    text = "# Rules\nAnswer in French.\n"
    put = await rt.call(
        "agents.files.set",
        {"agentId": agent_id, "name": "AGENTS.md", "content": text, "expectedRevision": 0},
    )
    assert put["ok"] is True
    file = put["file"]
    assert (file["revision"], file["hash"], file["size"]) == (1, sha256(text), len(text))
    got = await rt.call("agents.files.get", {"agentId": agent_id, "name": "AGENTS.md"})
    assert got["file"] == file  # either replica reads what the other wrote

    row = (await rt.call("agents.files.list", {"agentId": agent_id}))["files"][0]
    assert row["name"] == "AGENTS.md" and row["revision"] == 1 and "content" not in row

    # Optimistic concurrency: a stale revision or hash is refused and changes nothing.
    with pytest.raises(Conflict) as stale:
        await rt.call(
            "agents.files.set",
            {"agentId": agent_id, "name": "AGENTS.md", "content": "lost", "expectedRevision": 0},
        )
    assert stale.value.detail_code == "FILE_CHANGED"
    assert stale.value.data["currentRevision"] == 1
    assert stale.value.data["currentHash"] == sha256(text)
    with pytest.raises(Conflict):
        await rt.call(
            "agents.files.set",
            {
                "agentId": agent_id,
                "name": "AGENTS.md",
                "content": "lost",
                "expectedHash": sha256("something else"),
            },
        )
    unchanged = await rt.call("agents.files.get", {"agentId": agent_id, "name": "AGENTS.md"})
    assert unchanged["file"]["content"] == text

    second = await rt.call(
        "agents.files.set",
        {"agentId": agent_id, "name": "AGENTS.md", "content": "v2", "expectedHash": sha256(text)},
    )
    assert second["file"]["revision"] == 2
    third = await rt.call(
        "agents.files.set",
        {"agentId": agent_id, "name": "AGENTS.md", "content": "v3", "expectedRevision": 2},
    )
    assert third["file"]["revision"] == 3

    # Empty content removes the file; its revision stays, so an old reader cannot win.
    removed = await rt.call(
        "agents.files.set", {"agentId": agent_id, "name": "AGENTS.md", "content": ""}
    )
    assert removed["file"] == {"name": "AGENTS.md", "missing": True, "revision": 4}
    with pytest.raises(Conflict):
        await rt.call(
            "agents.files.set",
            {"agentId": agent_id, "name": "AGENTS.md", "content": "x", "expectedRevision": 0},
        )


async def test_limits_names_and_unknown_agents_are_refused(rt: RuntimeClient) -> None:
    agent_id = await _agent(rt)
    with pytest.raises(InvalidParams) as big:
        await rt.call(
            "agents.files.set",
            {"agentId": agent_id, "name": "MEMORY.md", "content": "x" * (64 * 1024 + 1)},
        )
    assert big.value.detail_code == "FILE_TOO_LARGE"
    assert big.value.data["limit"] == 64 * 1024
    at_limit = await rt.call(
        "agents.files.set",
        {"agentId": agent_id, "name": "MEMORY.md", "content": "é" * (32 * 1024)},
    )
    assert at_limit["file"]["size"] == 64 * 1024

    with pytest.raises(InvalidParams):
        await rt.call(
            "agents.files.set", {"agentId": agent_id, "name": "../etc/passwd", "content": "x"}
        )
    with pytest.raises(InvalidParams):
        await rt.call("agents.files.get", {"agentId": agent_id, "name": "BOOTSTRAP.md"})

    nobody = f"nobody-{uuid.uuid4().hex[:6]}"
    for method, params in (
        ("agents.files.list", {"agentId": nobody}),
        ("agents.files.get", {"agentId": nobody, "name": "SOUL.md"}),
        ("agents.files.set", {"agentId": nobody, "name": "SOUL.md", "content": "x"}),
        ("agent.identity.get", {"agentId": nobody}),
    ):
        with pytest.raises(NotFound) as unknown:
            await rt.call(method, params)
        assert unknown.value.detail_code == "AGENT_NOT_FOUND", method


async def test_files_are_the_agents_system_prompt(rt: RuntimeClient, stack: Any) -> None:
    agent_id = await _agent(rt, model="fake/fake-small", instructions="Be exact.")
    for name, content in (("SOUL.md", "Warm and brief.\n"), ("AGENTS.md", "Answer in French.")):
        await rt.call("agents.files.set", {"agentId": agent_id, "name": name, "content": content})
    await rt.call("agents.files.set", {"agentId": agent_id, "name": "USER.md", "content": "  \n"})
    marker = f"prompt-{uuid.uuid4().hex[:8]}"
    done = await rt.send_and_wait(f"agent:{agent_id}:main", marker)
    assert done["status"] == "ok"
    (request,) = fake_requests(stack.fake_url, marker)
    assert request["messages"][0] == {
        "role": "system",
        "content": "Be exact.\n\n# Agent files\n\n"
        "## AGENTS.md\n\nAnswer in French.\n\n## SOUL.md\n\nWarm and brief.\n",
    }

    # Deleting the agent removes its files: an agent made again with that id starts clean.
    await rt.call("agents.delete", {"agentId": agent_id})
    await rt.call("agents.create", {"id": agent_id, "name": "Again"})
    listed = await rt.call("agents.files.list", {"agentId": agent_id})
    assert all(f["missing"] for f in listed["files"])


async def test_identity_from_settings_and_identity_md(rt: RuntimeClient) -> None:
    agent_id = await _agent(rt, identity={"emoji": "🦞"})
    plain = await rt.call("agent.identity.get", {"agentId": agent_id})
    assert plain == {"agentId": agent_id, "name": "Filer", "nameSource": "agent", "emoji": "🦞"}

    identity_md = (
        "# IDENTITY.md\n\n- **Name:** Molty\n- Emoji: 🤖\n"
        "- Avatar: https://example.com/molty.png\n- Vibe: (pick something you like)\n"
    )
    await rt.call(
        "agents.files.set", {"agentId": agent_id, "name": "IDENTITY.md", "content": identity_md}
    )
    resolved = await rt.call("agent.identity.get", {"sessionKey": f"agent:{agent_id}:x"})
    assert resolved == {
        "agentId": agent_id,
        "name": "Molty",
        "nameSource": "workspace",
        "emoji": "🦞",  # the agent's own setting wins over the file
        "avatar": "https://example.com/molty.png",
        "avatarSource": "workspace",
    }
    await rt.call(
        "agents.update",
        {"agentId": agent_id, "identity": {"name": "Claw", "avatar": "C"}},
    )
    updated = await rt.call("agent.identity.get", {"agentId": agent_id})
    assert (updated["name"], updated["nameSource"]) == ("Claw", "config")
    assert (updated["avatar"], updated["avatarSource"]) == ("C", "config")
    assert updated["emoji"] == "🤖"  # identity is replaced whole: the file's emoji now

    default = await rt.call("agent.identity.get", {})
    assert default["agentId"] == "main"
    with pytest.raises(InvalidParams) as mismatch:
        await rt.call(
            "agent.identity.get", {"agentId": "main", "sessionKey": f"agent:{agent_id}:x"}
        )
    assert mismatch.value.detail_code == "AGENT_MISMATCH"
