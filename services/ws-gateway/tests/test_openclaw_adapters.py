"""The OpenClaw method adapters as pure functions: OpenClaw params → ours, our answers →
OpenClaw's shapes (docs/openclaw.md, Methods)."""

from __future__ import annotations

import orjson
import pytest

from aisopod.errors import NotFound
from aisopod_ws_gateway.openclaw.adapters import ADAPTERS, Context, agent_final, implemented_methods

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
    identity = result_of("agent.identity.get", AGENTS, ctx())
    assert identity == {"agentId": "main", "name": "Main", "avatar": None}
    with pytest.raises(NotFound):
        result_of("agent.identity.get", AGENTS, ctx({"agentId": "nobody"}))


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
    assert implemented_methods(["agents.list"]) == ["agent.identity.get"]
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
