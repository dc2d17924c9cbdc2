"""The catalogue against the spec (methods.md, protocol.md) and its params/result models."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import RootModel, ValidationError

from aisopod.catalogue import (
    CATALOGUE,
    EVENT_AUDIENCE,
    build_catalogue,
    event_visible,
    get_method,
    methods_for,
)
from aisopod.catalogue.approvals import ExecApprovalWaitResult
from aisopod.catalogue.events import audience_of
from aisopod.catalogue.spec import MethodSpec
from aisopod.catalogue.system import StatusResult
from aisopod.scopes import Requirement
from aisopod.services import ServiceName
from aisopod.wire import EmptyParams, Params, Result

REPO_ROOT = Path(__file__).resolve().parents[3]
CATALOGUE_SRC = REPO_ROOT / "libs/aisopod/src/aisopod/catalogue"
# The spec lives in `shared/` beside the repo root (`../shared/spec`); a copy inside the
# repo (`shared/spec`) is accepted too.
SPEC_DIRS = (REPO_ROOT.parent / "shared/spec", REPO_ROOT / "shared/spec")

SCOPE_CODES = {
    "R": Requirement.READ,
    "W": Requirement.WRITE,
    "A": Requirement.ADMIN,
    "AP": Requirement.APPROVALS,
    "P": Requirement.PAIRING,
    "N": Requirement.NODE,
    "*": Requirement.ANY,
    "—": Requirement.ANY,
}
OWNER_CODES = {
    "wg": ServiceName.WS_GATEWAY,
    "au": ServiceName.AUTH,
    "rt": ServiceName.RUNTIME,
}


def spec_text(name: str) -> str:
    for folder in SPEC_DIRS:
        if (folder / name).is_file():
            return (folder / name).read_text(encoding="utf-8")
    tried = ", ".join(str(folder / name) for folder in SPEC_DIRS)
    pytest.fail(f"spec file {name} not found (tried {tried}); the catalogue test needs it")


def table_rows(text: str) -> list[list[str]]:
    """Cells of every markdown table row whose first cell names something in backticks."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows.append(cells)
    return rows


def expand_names(cell: str) -> list[str]:
    """`a` / `b` → [a, b]; `x.y.get` / `.set` → [x.y.get, x.y.set]; `a`, `b` → [a, b]."""
    names = re.findall(r"`([^`]+)`", cell)
    first = names[0]
    stem = first.rsplit(".", 1)[0]
    return [stem + n if n.startswith(".") else n for n in names]


def parse_scope(cell: str) -> tuple[Requirement, Requirement | None]:
    """`R` → (READ, None); `R (get) / W (set)` → (READ, WRITE)."""
    codes = [re.sub(r"\(.*?\)", "", part).strip() for part in cell.split("/")]
    reqs = [SCOPE_CODES[c] for c in codes]
    return reqs[0], (reqs[1] if len(reqs) > 1 else None)


def spec_methods() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for method_cell, scope_cell, owner_cell, shape_cell in table_rows(spec_text("methods.md")):
        requirement, write_requirement = parse_scope(scope_cell)
        for name in expand_names(method_cell):
            assert name not in out, f"{name} listed twice in methods.md"
            out[name] = {
                "requirement": requirement,
                "write_requirement": write_requirement,
                "owner": OWNER_CODES[owner_cell],
                "idempotent": "(idem)" in shape_cell,
            }
    return out


def spec_events() -> set[str]:
    text = spec_text("protocol.md")
    section = text.split("## Events", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for row in table_rows(section):
        names.update(expand_names(row[0]))
    return names


# --- the catalogue matches the spec --------------------------------------------------------


def test_parser_reads_all_tables() -> None:
    methods = spec_methods()
    # Spot checks of the expansion rules, so an empty or broken parse cannot pass silently.
    assert {"subscribe", "unsubscribe", "sessions.reset", "sessions.delete"} <= set(methods)
    assert {"node.pair.reject", "device.pair.reject", "exec.approvals.set"} <= set(methods)
    assert {"wizard.next", "wizard.cancel", "wizard.status"} <= set(methods)
    assert len(methods) > 60


def test_method_names_match_spec() -> None:
    assert set(CATALOGUE) == set(spec_methods())


def test_requirements_owners_and_idempotency_match_spec() -> None:
    mismatches = []
    for name, want in spec_methods().items():
        spec = CATALOGUE[name]
        got = {
            "requirement": spec.requirement,
            "write_requirement": spec.write_requirement,
            "owner": spec.owner,
            "idempotent": spec.idempotent,
        }
        if got != want:
            mismatches.append((name, got, want))
    assert not mismatches


def test_idempotent_methods_take_an_idempotency_key() -> None:
    for spec in CATALOGUE.values():
        field = spec.params.model_fields.get("idempotency_key")
        if spec.idempotent:
            assert field is not None and field.alias == "idempotencyKey", spec.name
            assert not field.is_required(), spec.name
        else:
            assert field is None, spec.name


def test_models_are_wire_models_and_have_json_schemas() -> None:
    for spec in CATALOGUE.values():
        assert issubclass(spec.params, Params), spec.name
        assert spec.result is not None, spec.name
        assert issubclass(spec.result, (Result, RootModel)), spec.name
        assert spec.params.model_json_schema(by_alias=True)["type"] == "object"
        assert spec.result.model_json_schema(by_alias=True)


def test_only_connect_ignores_unknown_fields() -> None:
    lenient = {s.name for s in CATALOGUE.values() if s.params.model_config["extra"] == "ignore"}
    assert lenient == {"connect"}


def test_lookup_and_owner_listing() -> None:
    assert get_method("chat.send") is CATALOGUE["chat.send"]
    assert get_method("chat.sendd") is None
    auth = {s.name for s in methods_for(ServiceName.AUTH)}
    assert auth == {n for n, m in spec_methods().items() if m["owner"] is ServiceName.AUTH}
    assert methods_for(ServiceName.RATELIMIT) == []
    owned = sum(len(methods_for(s)) for s in ServiceName)
    assert owned == len(CATALOGUE)


def test_duplicate_names_raise() -> None:
    spec = MethodSpec("x.y", ServiceName.RUNTIME, Requirement.READ, EmptyParams, None)
    assert list(build_catalogue([spec])) == ["x.y"]
    with pytest.raises(ValueError, match=r"x\.y"):
        build_catalogue([spec, spec])


def test_catalogue_imports_no_io_library() -> None:
    forbidden = {"nats", "asyncio", "fastapi", "starlette", "uvicorn", "httpx", "socket"}
    for path in sorted(CATALOGUE_SRC.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not roots & forbidden, f"{path.name} imports {roots & forbidden}"


# --- params validation ---------------------------------------------------------------------

KEY = "agent:main:main"
HEX64 = "ab" * 32

VALID: list[tuple[str, dict[str, Any]]] = [
    ("health", {}),
    ("logs.tail", {"cursor": 10, "limit": 5000, "service": "runtime", "level": "error"}),
    ("subscribe", {"events": ["chat.*", "tick"], "sessionKeys": [KEY]}),
    ("agents.create", {"name": "Helper", "id": "helper", "tools": ["web.search"]}),
    ("agents.update", {"agentId": "main", "model": None}),
    ("agent", {"message": "hi", "idempotencyKey": "k1", "wait": True, "timeoutMs": 5000}),
    ("agent.wait", {"runId": "r1"}),
    ("chat.send", {"sessionKey": KEY, "message": "hello", "idempotencyKey": "abc"}),
    (
        "chat.send",
        {
            "sessionKey": KEY,
            "message": "x",
            "attachments": [
                {"mimeType": "image/png", "content": "iVBORw0KGgo=", "fileName": "a.png"}
            ],
        },
    ),
    ("chat.history", {"sessionKey": KEY, "limit": 1000}),
    ("chat.inject", {"sessionKey": KEY, "message": "note", "label": "system"}),
    ("sessions.list", {"agentId": "main", "limit": 10, "activeMinutes": 60, "search": "x"}),
    ("sessions.patch", {"key": KEY, "label": None, "thinkingLevel": "high"}),
    ("sessions.delete", {"key": KEY}),
    ("node.invoke", {"nodeId": "mac-1", "command": "system.run", "params": {"argv": ["ls"]}}),
    ("node.invoke.result", {"id": "i1", "ok": False, "error": {"message": "boom"}}),
    ("node.pair.request", {"nodeId": "mac-1", "caps": ["camera"], "commands": ["camera.snap"]}),
    ("config.set", {"config": {"gateway": {"port": 1}}, "baseHash": "h1"}),
    ("config.apply", {"patch": {"a": None}, "baseHash": "h1"}),
    (
        "cron.add",
        {
            "name": "daily",
            "schedule": {"kind": "cron", "expr": "0 9 * * *", "tz": "Europe/Berlin"},
            "payload": {"kind": "systemEvent", "text": "wake"},
        },
    ),
    (
        "cron.add",
        {
            "name": "often",
            "schedule": {"kind": "every", "everyMs": 60000},
            "payload": {"kind": "agentTurn", "message": "go", "agentId": "main"},
        },
    ),
    (
        "cron.add",
        {
            "name": "once",
            "schedule": {"kind": "at", "at": "2030-01-01T09:00:00Z"},
            "payload": {"kind": "systemEvent", "text": "hi"},
            "enabled": False,
        },
    ),
    ("cron.update", {"jobId": "j1", "patch": {"enabled": False}}),
    ("models.voicewake", {}),
    ("models.voicewake", {"triggers": ["hey pod"]}),
    ("device.pair.approve", {"requestId": "q1", "scopes": ["operator.read"]}),
    ("device.token.rotate", {"deviceId": HEX64, "role": "node"}),
    ("exec.approval.request", {"command": "rm -rf build", "argv": ["rm", "-rf", "build"]}),
    ("exec.approval.resolve", {"id": "a1", "decision": "allow-always"}),
    ("exec.approvals.set", {"ask": "on-miss", "allowlist": ["/usr/bin/ls"]}),
    ("wizard.next", {"sessionId": "w1", "answer": {"stepId": "provider", "value": "openai"}}),
    ("tools.invoke", {"tool": "web.search", "args": {"q": "x"}, "sessionKey": KEY}),
]

INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("health", {"x": 1}, "unknown field"),
    ("logs.tail", {"limit": 5001}, "limit over 5000"),
    ("logs.tail", {"level": "loud"}, "level not in enum"),
    ("agents.create", {}, "missing name"),
    ("agents.create", {"name": "a", "id": "bad id"}, "agent id with a space"),
    ("agents.update", {"agentId": "main"}, "nothing to update"),
    ("agents.update", {"agentId": "main", "name": None}, "name cleared"),
    ("agent", {"message": ""}, "empty message"),
    ("agent", {"message": "hi", "idempotencyKey": ""}, "empty idempotency key"),
    ("agent", {"message": "hi", "idempotencyKey": "k" * 201}, "idempotency key too long"),
    ("agent", {"message": "hi", "timeoutMs": 0}, "zero timeout"),
    ("chat.send", {"sessionKey": "", "message": "hi"}, "empty session key"),
    ("chat.send", {"sessionKey": KEY, "message": "   "}, "blank message"),
    ("chat.send", {"sessionKey": KEY, "message": "x" * (1024 * 1024 + 1)}, "message > 1 MiB"),
    ("chat.send", {"sessionKey": KEY, "message": 5}, "message not a string"),
    (
        "chat.send",
        {"sessionKey": KEY, "message": "x", "session_key": KEY},
        "snake and camel both given",
    ),
    ("chat.history", {"sessionKey": KEY, "limit": 1001}, "history limit over 1000"),
    ("chat.history", {"limit": 10}, "missing session key"),
    ("sessions.patch", {"key": KEY}, "nothing to patch"),
    ("sessions.patch", {"key": KEY, "sendPolicy": "maybe"}, "send policy not in enum"),
    ("node.invoke", {"nodeId": "a.b", "command": "x"}, "node id with a dot"),
    ("node.invoke.result", {"id": "i1"}, "missing ok"),
    ("config.set", {"config": {}}, "missing baseHash"),
    ("config.patch", {"patch": {}, "baseHash": ""}, "empty baseHash"),
    ("config.apply", {"baseHash": "h"}, "neither config nor patch"),
    ("config.apply", {"config": {}, "patch": {}, "baseHash": "h"}, "both config and patch"),
    (
        "cron.add",
        {
            "name": "x",
            "schedule": {"kind": "weekly"},
            "payload": {"kind": "systemEvent", "text": "t"},
        },
        "unknown schedule kind",
    ),
    (
        "cron.add",
        {
            "name": "x",
            "schedule": {"kind": "every", "everyMs": 10},
            "payload": {"kind": "systemEvent", "text": "t"},
        },
        "interval too short",
    ),
    (
        "cron.add",
        {
            "name": "x",
            "schedule": {"kind": "cron", "expr": "* *"},
            "payload": {"kind": "systemEvent", "text": "t"},
        },
        "cron expr fields",
    ),
    (
        "cron.add",
        {
            "name": "x",
            "schedule": {"kind": "at", "at": "2030-01-01T09:00:00"},
            "payload": {"kind": "systemEvent", "text": "t"},
        },
        "naive time",
    ),
    (
        "cron.add",
        {
            "name": "x",
            "schedule": {"kind": "cron", "expr": "0 9 * * *"},
            "payload": {"kind": "agentTurn", "text": "t"},
        },
        "payload fields mixed",
    ),
    ("cron.update", {"jobId": "j1", "patch": {}}, "empty patch"),
    ("models.voicewake", {"triggers": "hey"}, "triggers not a list"),
    ("device.pair.approve", {"requestId": "q1", "scopes": ["operator.root"]}, "unknown scope"),
    ("device.token.rotate", {"deviceId": "XYZ", "role": "node"}, "device id not sha256 hex"),
    ("device.token.revoke", {"deviceId": HEX64, "role": "admin"}, "unknown role"),
    ("exec.approval.request", {"command": "ls", "timeoutMs": -1}, "negative timeout"),
    ("exec.approval.resolve", {"id": "a1", "decision": "allow"}, "decision not in enum"),
    ("exec.approvals.set", {"ask": "sometimes", "allowlist": []}, "ask not in enum"),
    ("wizard.next", {"sessionId": "w1", "answer": {"stepId": "colour", "value": 1}}, "step"),
    ("tools.invoke", {"tool": "web.search"}, "missing args"),
]


@pytest.mark.parametrize(("method", "params"), VALID, ids=[m for m, _ in VALID])
def test_valid_params_pass(method: str, params: dict[str, Any]) -> None:
    CATALOGUE[method].params.model_validate(params)


@pytest.mark.parametrize(("method", "params", "why"), INVALID, ids=[w for _, _, w in INVALID])
def test_invalid_params_fail(method: str, params: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError):
        CATALOGUE[method].params.model_validate(params)


def test_every_domain_has_validation_examples() -> None:
    domains = {m.split(".")[0] for m, _ in VALID} | {m.split(".")[0] for m, _, _ in INVALID}
    assert {"logs", "agents", "chat", "sessions", "node", "config", "cron", "models"} <= domains
    assert {"device", "exec", "wizard", "tools"} <= domains


def test_defaults() -> None:
    history = CATALOGUE["chat.history"].params.model_validate({"sessionKey": KEY})
    assert history.limit == 200
    request = CATALOGUE["exec.approval.request"].params.model_validate({"command": "ls"})
    assert request.timeout_ms == 120_000
    cron_list = CATALOGUE["cron.list"].params.model_validate({})
    assert cron_list.include_disabled is False


# --- camelCase on the wire -----------------------------------------------------------------


@pytest.mark.parametrize(("method", "params"), VALID, ids=[m for m, _ in VALID])
def test_params_round_trip(method: str, params: dict[str, Any]) -> None:
    model = CATALOGUE[method].params
    first = model.model_validate(params)
    wire = first.wire()
    assert model.model_validate(wire) == first
    assert not any("_" in key for key in wire), wire


def test_snake_case_attributes_camel_case_wire() -> None:
    params = CATALOGUE["chat.send"].params(
        session_key=KEY, message="hi", idempotency_key="k", timeout_ms=10
    )
    assert params.wire() == {
        "sessionKey": KEY,
        "message": "hi",
        "idempotencyKey": "k",
        "timeoutMs": 10,
    }
    job = CATALOGUE["cron.add"].params(
        name="often",
        schedule={"kind": "every", "every_ms": 60000},
        payload={"kind": "agentTurn", "message": "go", "agent_id": "main"},
    )
    assert job.wire()["schedule"] == {"kind": "every", "everyMs": 60000}
    assert job.wire()["payload"] == {"kind": "agentTurn", "message": "go", "agentId": "main"}


def test_patch_params_keep_explicit_nulls_on_the_wire() -> None:
    patch = CATALOGUE["sessions.patch"].params.model_validate({"key": KEY, "label": None})
    assert patch.wire() == {"key": KEY, "label": None}
    update = CATALOGUE["agents.update"].params.model_validate({"agentId": "a", "tools": None})
    assert update.wire() == {"agentId": "a", "tools": None}


def test_results_keep_extras_and_nulls_that_matter() -> None:
    status = StatusResult.model_validate(
        {
            "services": {"runtime": {"instances": [{"id": "rt-1", "version": "0.1.0"}]}},
            "connections": 2,
            "agents": 1,
            "sessions": 3,
            "uptimeMs": 1000,
            "secrets": {"natsUrl": "nats://x"},
        }
    )
    assert status.wire()["secrets"] == {"natsUrl": "nats://x"}
    assert ExecApprovalWaitResult(id="a1", decision=None).wire() == {"id": "a1", "decision": None}


def test_list_results_are_root_models() -> None:
    presence = CATALOGUE["system-presence"].result
    assert presence is not None and issubclass(presence, RootModel)
    entry = {
        "key": "c1",
        "connId": "c1",
        "client": {"id": "ui"},
        "role": "operator",
        "since": 1,
        "lastSeenMs": 2,
    }
    dumped = presence.model_validate([entry]).model_dump(by_alias=True, exclude_none=True)
    assert dumped == [entry]


# --- connect -------------------------------------------------------------------------------

CLIENT = {"id": "cli", "version": "1.0", "platform": "linux", "mode": "cli"}


def test_connect_ignores_unknown_fields_and_defaults_to_operator() -> None:
    connect = CATALOGUE["connect"]
    assert connect.requirement is Requirement.ANY
    assert connect.owner is ServiceName.WS_GATEWAY
    params = connect.params.model_validate(
        {"client": {**CLIENT, "future": 1}, "locale": "de", "auth": {"token": "s3cret", "x": 2}}
    )
    assert params.role == "operator" and params.scopes == []
    assert (params.min_protocol, params.max_protocol) == (1, 1)
    assert params.auth.token == "s3cret"
    assert "s3cret" not in repr(params)


def test_connect_full_params() -> None:
    params = CATALOGUE["connect"].params.model_validate(
        {
            "minProtocol": 1,
            "maxProtocol": 2,
            "client": {**CLIENT, "displayName": "Mac", "instanceId": "i-1"},
            "role": "node",
            "scopes": ["operator.read", "operator.unknown"],
            "device": {
                "id": HEX64,
                "publicKey": "pk",
                "signature": "sig",
                "signedAt": 1764240000000,
                "nonce": "n",
            },
            "caps": ["camera"],
            "commands": ["camera.snap"],
            "subscribe": ["chat.*"],
            "resume": {"lastSeq": 41},
        }
    )
    assert params.device.signed_at == 1764240000000
    assert params.resume.last_seq == 41


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"client": CLIENT, "minProtocol": 2, "maxProtocol": 1},
        {"client": CLIENT, "role": "root"},
        {"client": CLIENT, "auth": {"token": "t", "password": "p"}},
        {"client": CLIENT, "device": {"id": "nothex"}},
    ],
    ids=["no client", "min over max", "bad role", "two credentials", "bad device"],
)
def test_connect_rejects(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CATALOGUE["connect"].params.model_validate(params)


# --- models.voicewake: read to get, write to set -------------------------------------------


def test_voicewake_requirement_depends_on_triggers() -> None:
    spec = CATALOGUE["models.voicewake"]
    assert spec.requirement_for({}) is Requirement.READ
    assert spec.requirement_for(None) is Requirement.READ
    assert spec.requirement_for({"triggers": None}) is Requirement.READ
    assert spec.requirement_for({"triggers": ["hey"]}) is Requirement.WRITE
    assert spec.requirement_for({"triggers": []}) is Requirement.WRITE
    assert CATALOGUE["chat.send"].requirement_for({"triggers": []}) is Requirement.WRITE
    assert CATALOGUE["chat.history"].requirement_for({"triggers": []}) is Requirement.READ


# --- events --------------------------------------------------------------------------------

READER = ("operator", ["operator.read"])
WRITER = ("operator", ["operator.write"])
ADMIN = ("operator", ["operator.admin"])
APPROVER = ("operator", ["operator.approvals"])
PAIRER = ("operator", ["operator.pairing"])
NODE = ("node", [])
BARE = ("operator", [])


def test_event_rules_cover_the_protocol_events_table() -> None:
    assert set(EVENT_AUDIENCE) == spec_events()


@pytest.mark.parametrize(
    ("event", "who", "visible"),
    [
        ("tick", NODE, True),
        ("tick", BARE, True),
        ("presence.changed", READER, True),
        ("presence.changed", WRITER, True),
        ("presence.changed", BARE, False),
        ("presence.changed", NODE, False),
        ("chat.event", READER, True),
        ("chat.event", NODE, False),
        ("exec.approval.requested", READER, False),
        ("exec.approval.requested", APPROVER, True),
        ("exec.approval.resolved", ADMIN, True),
        ("device.pair.requested", PAIRER, True),
        ("node.pair.resolved", WRITER, False),
        ("voicewake.changed", NODE, True),
        ("voicewake.changed", READER, True),
        ("update.progress", WRITER, False),
        ("update.available", ADMIN, True),
        ("connect.challenge", ADMIN, False),
        ("shutdown", READER, False),
        ("node.invoke.request", NODE, False),
        ("no.such.event", WRITER, False),
        ("no.such.event", NODE, False),
        ("no.such.event", ADMIN, True),
    ],
)
def test_event_visible(event: str, who: tuple[str, list[str]], visible: bool) -> None:
    role, scopes = who
    assert event_visible(event, role, scopes) is visible


def test_nodes_get_chat_events_of_subscribed_sessions_only() -> None:
    assert event_visible("chat.event", "node", [], session_subscribed=True)
    assert not event_visible("config.changed", "node", [], session_subscribed=True)
    assert not event_visible("chat.event", "operator", [], session_subscribed=True)


def test_event_flags() -> None:
    chat = audience_of("chat.event")
    assert chat.is_droppable({"state": "delta"})
    assert not chat.is_droppable({"state": "final"})
    assert audience_of("tick").is_droppable()
    assert audience_of("presence.changed").is_droppable({"presence": []})
    assert not audience_of("config.changed").is_droppable()
    agent = audience_of("agent.event")
    assert agent.origin_only({"stream": "tool"})
    assert not agent.origin_only({"stream": "assistant"})
    addressed = {name for name, rule in EVENT_AUDIENCE.items() if rule.connection_only}
    assert addressed == {"connect.challenge", "shutdown", "node.invoke.request"}
    assert audience_of("no.such.event").requirements == (Requirement.ADMIN,)
