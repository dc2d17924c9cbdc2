"""The OpenClaw method adapters as pure functions: OpenClaw params → ours, our answers →
OpenClaw's shapes (docs/openclaw.md, Methods)."""

from __future__ import annotations

import orjson

from aisopod.config.sections.heartbeat import HeartbeatSection
from aisopod.errors import NotFound
from aisopod_ws_gateway.openclaw.adapters import (
    ADAPTERS,
    Context,
    agent_final,
    heartbeat_summaries,
    implemented_methods,
)

AGENTS = {"defaultId": "main", "agents": [{"id": "main", "name": "Main", "model": None}]}
MODELS = {"models": [{"id": "echo/echo", "provider": "echo"}]}


def ctx(params: dict | None = None, **also: object) -> Context:
    return Context(params=params or {}, also=also, version="1.2.3", elapsed_ms=7)


def params_of(method: str, params: dict) -> dict:
    convert = ADAPTERS[method].params
    assert convert is not None
    return convert(params)


def result_of(method: str, ours: object, context: Context) -> object:
    build = ADAPTERS[method].result
    assert build is not None
    return build(ours, context)


def test_every_row_names_a_method_of_ours() -> None:
    from aisopod.catalogue import get_method

    for name, row in ADAPTERS.items():
        for method in row.uses():
            assert get_method(method) is not None, (name, method)


def test_health_summary_has_what_the_cli_prints() -> None:
    sessions = {"sessions": [{"key": "agent:main:main", "agentId": "main", "updatedAt": 5}]}
    ours = {"ok": True, "ts": 10, "services": {"runtime": {"ok": True, "instances": 1}}}
    summary = result_of("health", ours, ctx(**{"agents.list": AGENTS, "sessions.list": sessions}))
    assert summary["ok"] is True and summary["durationMs"] == 7
    assert summary["defaultAgentId"] == "main"
    assert summary["agents"][0]["agentId"] == "main" and summary["agents"][0]["isDefault"]
    assert summary["sessions"]["count"] == 1
    assert summary["heartbeatSeconds"] == 0 and summary["channels"] == {}


def test_health_and_status_show_the_configured_heartbeats() -> None:
    section = HeartbeatSection.model_validate(
        {
            "defaults": {"every": "45m"},
            "agents": {"ops": {"every": "90s"}, "main": {}, "idle": {"enabled": False}},
        }
    )
    beats = heartbeat_summaries(section)
    assert beats == {
        "main": {"enabled": True, "every": "45m", "everyMs": 2_700_000},
        "ops": {"enabled": True, "every": "90s", "everyMs": 90_000},
    }
    agents = {
        "defaultId": "main",
        "agents": [{"id": a, "name": a} for a in ("ops", "main", "idle", "other")],
    }
    sessions = {"sessions": []}
    context = Context(
        params={},
        also={"agents.list": agents, "sessions.list": sessions},
        version="1",
        elapsed_ms=0,
        heartbeats=beats,
    )
    summary = result_of("health", {"ok": True, "ts": 1}, context)
    by_agent = {a["agentId"]: a["heartbeat"] for a in summary["agents"]}
    assert by_agent["ops"] == beats["ops"] and by_agent["main"] == beats["main"]
    off = {"enabled": False, "every": "disabled", "everyMs": None}
    assert by_agent["idle"] == off and by_agent["other"] == off
    # As OpenClaw picks it: the first agent (in the list's order) with a heartbeat.
    assert summary["heartbeatSeconds"] == 90
    status = result_of("status", {"ok": True}, context)
    assert status["heartbeat"]["defaultAgentId"] == "main"
    assert {"agentId": "ops", **beats["ops"]} in status["heartbeat"]["agents"]
    assert {"agentId": "other", **off} in status["heartbeat"]["agents"]
    # Without any: off everywhere, 0 seconds.
    plain = result_of("health", {"ok": True}, ctx(**{"agents.list": agents, "sessions.list": {}}))
    assert plain["heartbeatSeconds"] == 0
    assert all(a["heartbeat"] == off for a in plain["agents"])


def test_cron_list_is_a_valid_inventory_page() -> None:
    jobs = [
        {
            "jobId": f"j{i}",
            "name": f"n{i}",
            "enabled": True,
            "schedule": {"kind": "every", "everyMs": 60000},
            "payload": {"kind": "agentTurn", "message": "hi", "agentId": "main"},
            "nextRunAtMs": 100 + i,
        }
        for i in range(3)
    ]
    assert params_of("cron.list", {"includeDisabled": False, "limit": 2, "offset": 0}) == {
        "includeDisabled": False
    }
    page = result_of("cron.list", {"jobs": jobs}, ctx({"limit": 2, "offset": 0}))
    assert [j["id"] for j in page["jobs"]] == ["j0", "j1"]
    assert page["jobs"][0]["state"]["nextRunAtMs"] == 100
    assert page["jobs"][0]["agentId"] == "main"
    assert page["total"] == 3 and page["hasMore"] and page["nextOffset"] == 2
    assert isinstance(page["snapshotRevision"], str) and page["snapshotRevision"]
    last = result_of("cron.list", {"jobs": jobs}, ctx({"limit": 2, "offset": 2}))
    assert [j["id"] for j in last["jobs"]] == ["j2"] and not last["hasMore"]
    assert result_of("cron.status", {"jobs": jobs}, ctx())["nextWakeAtMs"] == 100


def test_cron_add_moves_the_agent_into_the_payload_and_drops_delivery() -> None:
    sent = {
        "name": "t1",
        "enabled": True,
        "agentId": "main",
        "schedule": {"kind": "every", "everyMs": 3600000, "anchorMs": 1},
        "sessionTarget": "isolated",
        "wakeMode": "now",
        "payload": {"kind": "agentTurn", "message": "ping"},
        "delivery": {"mode": "announce", "channel": "last"},
    }
    assert params_of("cron.add", sent) == {
        "name": "t1",
        "enabled": True,
        "schedule": {"kind": "every", "everyMs": 3600000},
        "payload": {"kind": "agentTurn", "message": "ping", "agentId": "main"},
    }


def test_log_lines_become_json_strings_the_cli_parses() -> None:
    ours = {
        "cursor": 9,
        "lines": [{"ts": 0, "service": "runtime", "level": "info", "message": "up"}],
    }
    assert params_of("logs.tail", {"limit": 5, "maxBytes": 250000}) == {"limit": 5}
    out = result_of("logs.tail", ours, ctx())
    line = orjson.loads(out["lines"][0])
    assert line["0"] == "up" and line["_meta"]["logLevelName"] == "INFO"
    assert line["_meta"]["date"] == "1970-01-01T00:00:00Z"
    assert out["cursor"] == 9 and out["file"]


def test_agents_list_always_names_a_primary_model() -> None:
    out = result_of("agents.list", AGENTS, ctx(**{"models.list": MODELS}))
    assert out["agents"][0]["model"] == {"primary": "echo/echo"}


def test_agent_identity_avatar_falls_back_to_the_emoji_as_openclaw_does() -> None:
    assert ADAPTERS["agent.identity.get"].ours == "agent.identity.get"
    assert params_of("agent.identity.get", {"agentId": "main", "sessionKey": "main"}) == {
        "agentId": "main",
        "sessionKey": "main",
    }
    ours = {"agentId": "main", "name": "Molty", "nameSource": "workspace", "emoji": "🦞"}
    assert result_of("agent.identity.get", ours, ctx()) == {**ours, "avatar": "🦞"}
    remote = result_of("agent.identity.get", {**ours, "avatar": "https://x.test/a.png"}, ctx())
    assert remote["avatar"] == "https://x.test/a.png" and remote["avatarStatus"] == "remote"
    bare = result_of(
        "agent.identity.get", {"agentId": "a", "name": "A", "nameSource": "agent"}, ctx()
    )
    assert bare == {"agentId": "a", "name": "A", "nameSource": "agent"}


def test_agent_files_get_a_workspace_and_paths_and_keep_their_hash() -> None:
    listed = {
        "agentId": "main",
        "files": [
            {
                "name": "AGENTS.md",
                "missing": False,
                "size": 3,
                "revision": 2,
                "hash": "ab",
                "updatedAt": 5,
            },
            {"name": "SOUL.md", "missing": True},
        ],
    }
    out = result_of("agents.files.list", listed, ctx())
    assert out["workspace"] == "agentfiles/main"
    assert out["files"][0] == {
        "name": "AGENTS.md",
        "path": "agentfiles/main/AGENTS.md",
        "missing": False,
        "size": 3,
        "updatedAtMs": 5,
        "hash": "ab",
    }
    assert out["files"][1] == {
        "name": "SOUL.md",
        "path": "agentfiles/main/SOUL.md",
        "missing": True,
    }
    file = {"name": "SOUL.md", "missing": False, "revision": 1, "hash": "cd", "content": "hi"}
    got = result_of("agents.files.get", {"agentId": "main", "file": file}, ctx())
    assert "ok" not in got and got["file"]["content"] == "hi" and "revision" not in got["file"]
    put = result_of("agents.files.set", {"ok": True, "agentId": "main", "file": file}, ctx())
    assert put["ok"] is True and put["workspace"] == "agentfiles/main"
    assert params_of(
        "agents.files.set",
        {"agentId": "main", "name": "SOUL.md", "content": "x", "expectedHash": "e" * 64, "y": 1},
    ) == {"agentId": "main", "name": "SOUL.md", "content": "x", "expectedHash": "e" * 64}


def test_compaction_result_and_history_entry_in_openclaws_shape() -> None:
    assert params_of("sessions.compact", {"key": "main", "maxLines": 50, "agentId": "x"}) == {
        "key": "main"
    }
    record = {"lastCompactedId": "m7", "tokensBefore": 900, "tokensAfter": 80, "auto": False}
    ours = {"key": "agent:main:main", "compacted": True, "summary": "s", "compaction": record}
    assert result_of("sessions.compact", ours, ctx()) == {
        "ok": True,
        "key": "agent:main:main",
        "compacted": True,
        "result": {"summary": "s", "tokensBefore": 900, "tokensAfter": 80},
    }
    short = {"key": "k", "compacted": False, "reason": "nothing to compact"}
    assert result_of("sessions.compact", short, ctx()) == {"ok": True, **short}
    history = {
        "messages": [{"id": "c", "role": "system", "content": "s", "ts": 1, "compaction": record}]
    }
    (entry,) = result_of("chat.history", history, ctx())["messages"]
    assert entry["__openclaw"] == {
        "id": "c",
        "runId": None,
        "kind": "compaction",
        "tokensBefore": 900,
        "tokensAfter": 80,
    }


def test_a_file_conflict_has_openclaws_details() -> None:
    from aisopod.errors import Conflict
    from aisopod_ws_gateway.openclaw.frames import error_shape

    conflict = Conflict(
        "SOUL.md changed", code="FILE_CHANGED", name="SOUL.md", currentRevision=3, currentHash="ab"
    )
    assert error_shape(conflict) == {
        "code": "INVALID_REQUEST",
        "message": "SOUL.md changed",
        "details": {"type": "agent_file_conflict", "name": "SOUL.md", "currentHash": "ab"},
    }


def test_sessions_list_clamps_the_limit_and_answers_spawned_by_empty() -> None:
    assert params_of("sessions.list", {"limit": 10000, "includeGlobal": True}) == {"limit": 1000}
    ours = {"sessions": [{"key": "agent:main:main", "agentId": "main", "updatedAt": 1}]}
    out = result_of("sessions.list", ours, ctx(**{"models.list": MODELS}))
    assert out["count"] == 1 and out["defaults"] == {"modelProvider": "echo", "model": "echo/echo"}
    spawned = result_of("sessions.list", ours, ctx({"spawnedBy": "x"}, **{"models.list": MODELS}))
    assert spawned["sessions"] == []


def test_history_user_messages_carry_run_id_colon_user() -> None:
    ours = {
        "sessionKey": "agent:main:main",
        "messages": [
            {"id": "m1", "role": "user", "content": "hi", "ts": 1, "runId": "K"},
            {"id": "m2", "role": "assistant", "content": "echo: hi", "ts": 2, "runId": "K"},
        ],
    }
    assert params_of("chat.history", {"sessionKey": "main", "cursor": "c", "maxBytes": 9}) == {
        "sessionKey": "main"
    }
    user, answer = result_of("chat.history", ours, ctx())["messages"]
    assert user["idempotencyKey"] == "K:user"
    assert user["content"] == [{"type": "text", "text": "hi"}]
    assert "idempotencyKey" not in answer
    assert ADAPTERS["chat.startup"].empty_on == (NotFound,)


def test_agent_takes_seconds_and_its_final_reply_carries_the_text() -> None:
    assert params_of(
        "agent",
        {
            "message": "hi",
            "agentId": "main",
            "deliver": False,
            "timeout": 600,
            "idempotencyKey": "K",
        },
    ) == {
        "message": "hi",
        "agentId": "main",
        "idempotencyKey": "K",
        "timeoutMs": 600000,
    }
    accepted = result_of("agent", {"runId": "K", "status": "accepted"}, ctx({"agentId": "main"}))
    assert accepted["runId"] == "K" and accepted["status"] == "accepted"
    history = {"messages": [{"role": "assistant", "content": "echo: hi", "runId": "K"}]}
    final = agent_final({"runId": "K", "status": "ok"}, history)
    assert final["status"] == "ok" and final["summary"] == "completed"
    assert final["result"]["payloads"] == [{"text": "echo: hi", "mediaUrl": None}]


def test_only_methods_whose_methods_of_ours_are_allowed_are_advertised() -> None:
    assert implemented_methods(["agents.list"]) == []
    assert implemented_methods(["agent.identity.get"]) == ["agent.identity.get"]
    assert "agent" not in implemented_methods(["agent", "chat.history"])  # needs agent.wait


def test_rows_that_only_map_params_splice_our_answer() -> None:
    spliced = {name for name, row in ADAPTERS.items() if row.passthrough}
    assert {"chat.send", "agent.wait", "device.pair.approve"} <= spliced
    assert not spliced & {"health", "agent", "chat.history", "cron.list"}


def test_pending_exec_approvals_become_openclaw_approval_records() -> None:
    ours = {
        "approvals": [
            {
                "id": "a1",
                "command": "ls -l",
                "argv": ["ls", "-l"],
                "nodeId": "n1",
                "sessionKey": "agent:main:main",
                "createdAtMs": 1,
                "expiresAtMs": 2,
            }
        ]
    }
    (record,) = result_of("exec.approval.list", ours, ctx())
    assert record["id"] == "a1" and record["approvalKind"] == "exec"
    assert record["request"]["command"] == "ls -l" and record["request"]["host"] == "node"
    assert record["request"]["commandArgv"] == ["ls", "-l"]
    assert (record["createdAtMs"], record["expiresAtMs"]) == (1, 2)


def test_sessions_describe_is_a_session_row_or_none() -> None:
    entry = {"key": "agent:main:x", "agentId": "main", "updatedAt": 3, "lastMessage": "hi"}
    described = result_of("sessions.describe", {"key": entry["key"], "entry": entry}, ctx())
    assert described["session"]["key"] == "agent:main:x"
    assert described["session"]["lastMessagePreview"] == "hi"
    row = ADAPTERS["sessions.describe"]
    assert NotFound in row.empty_on and row.empty == {"session": None}
    assert params_of("sessions.describe", {"key": "x", "agentId": "main"}) == {"key": "x"}


def test_heartbeat_methods_take_openclaws_params_and_answer_its_shapes() -> None:
    # system-event: OpenClaw's presence fields have no place with us; the event stays.
    presence = {"text": "build failed", "host": "mac", "ip": "10.0.0.2", "wake": True}
    assert params_of("system-event", presence) == {"text": "build failed", "wake": True}
    wake = {"mode": "now", "text": "hi", "sessionKey": "main", "extra": 1}
    assert params_of("wake", wake) == {"mode": "now", "text": "hi", "sessionKey": "main"}
    assert params_of("set-heartbeats", {"enabled": False}) == {"enabled": False}
    # last-heartbeat: OpenClaw answers the newest event itself, or null before the first.
    event = {"ts": 5, "status": "ok-token", "agentId": "main", "sessionKey": "agent:main:main"}
    ours = {"enabled": True, "last": event, "agents": []}
    assert result_of("last-heartbeat", ours, ctx()) == event
    assert result_of("last-heartbeat", {"enabled": True, "last": None, "agents": []}, ctx()) is None
    for method in ("wake", "system-event", "set-heartbeats"):
        assert ADAPTERS[method].passthrough
