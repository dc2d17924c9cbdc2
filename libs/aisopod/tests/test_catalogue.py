"""The catalogue against the in-repo protocol reference (docs/protocol/) and its models."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import RootModel, ValidationError

from aisopod import errors
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
PROTOCOL_DOCS = REPO_ROOT / "docs/protocol"

SCOPE_CODES = {
    "R": Requirement.READ,
    "W": Requirement.WRITE,
    "A": Requirement.ADMIN,
    "AP": Requirement.APPROVALS,
    "P": Requirement.PAIRING,
    "N": Requirement.NODE,
    "*": Requirement.ANY,
}
OWNER_CODES = {
    "wg": ServiceName.WS_GATEWAY,
    "au": ServiceName.AUTH,
    "rt": ServiceName.RUNTIME,
}

# Who may call what, recorded a second time on purpose: the catalogue is the source of truth,
# and a change to a method's scope or owner must be made here too, deliberately (then
# `aisopod catalogue export` carries it into docs/protocol/methods.md). Columns: method,
# scope (R read, W write, A admin, AP approvals, P pairing, N role node, * any; `R/W`: read,
# write when the write param is given), owner (wg ws-gateway, au auth, rt runtime), idem.
AUTHORIZATION = """
connect                     *    wg
health                      *    wg
status                      R    rt
logs.tail                   R    rt
system-presence             R    wg
subscribe                   *    wg
unsubscribe                 *    wg
agents.list                 R    rt
agents.create               A    rt
agents.update               A    rt
agents.delete               A    rt
agents.files.list           R    rt
agents.files.get            R    rt
agents.files.set            A    rt
agent.identity.get          R    rt
agent                       W    rt idem
agent.wait                  W    rt
chat.send                   W    rt idem
chat.abort                  W    rt
chat.history                R    rt
chat.inject                 A    rt
sessions.list               R    rt
sessions.preview            R    rt
sessions.resolve            R    rt
sessions.send               W    rt idem
sessions.patch              A    rt
sessions.reset              A    rt
sessions.compact            A    rt
sessions.delete             A    rt
sessions.usage              R    rt
usage.status                R    rt
usage.cost                  R    rt
usage.sessions              R    rt
sessions.usage.series       R    rt
sessions.usage.logs         R    rt
node.list                   R    wg
node.describe               R    wg
node.invoke                 W    wg idem
node.invoke.result          N    wg
node.event                  N    wg
node.pair.request           P    au
node.pair.list              P    au
node.pair.approve           P    au
node.pair.reject            P    au
node.pair.verify            P    au
node.rename                 P    au
node.pair.remove            P    au
config.get                  R    rt
config.schema               R    rt
config.set                  A    rt
config.patch                A    rt
config.apply                A    rt
cron.status                 R    rt
cron.list                   R    rt
cron.add                    A    rt
cron.update                 A    rt
cron.run                    A    rt
cron.remove                 A    rt
cron.runs                   R    rt
wake                        W    rt idem
system-event                A    rt idem
last-heartbeat              R    rt
set-heartbeats              A    rt
models.list                 R    rt
models.voicewake            R/W  rt
skills.status               R    rt
skills.bins                 N    rt
skills.install              A    rt
skills.update               A    rt
device.pair.list            P    au
device.pair.approve         P    au
device.pair.reject          P    au
device.pair.remove          P    au
device.token.rotate         P    au
device.token.revoke         P    au
exec.approval.request       AP   rt
exec.approval.waitDecision  AP   rt
exec.approval.resolve       AP   rt
exec.approvals.pending      AP   rt
exec.approvals.get          A    rt
exec.approvals.set          A    rt
exec.approvals.node.get     A    rt
exec.approvals.node.set     A    rt
update.status               R    rt
update.run                  A    rt
plugins.list                R    rt
wizard.start                A    rt
wizard.next                 A    rt
wizard.cancel               A    rt
wizard.status               A    rt
tools.catalog               R    rt
tools.invoke                W    rt
"""


def doc_text(name: str) -> str:
    return (PROTOCOL_DOCS / name).read_text(encoding="utf-8")


def table_rows(text: str) -> list[list[str]]:
    """Cells of every markdown table row whose first cell names something in backticks."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("| `") and not line.startswith("| [`"):
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


def section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def expected_methods() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for line in AUTHORIZATION.strip().splitlines():
        name, scope, owner, *flags = line.split()
        codes = scope.split("/")
        assert name not in out, f"{name} listed twice in AUTHORIZATION"
        out[name] = {
            "requirement": SCOPE_CODES[codes[0]],
            "write_requirement": SCOPE_CODES[codes[1]] if len(codes) > 1 else None,
            "owner": OWNER_CODES[owner],
            "idempotent": flags == ["idem"],
        }
    return out


def documented_events() -> set[str]:
    names: set[str] = set()
    for row in table_rows(section(doc_text("websocket.md"), "Events")):
        names.update(expand_names(row[0]))
    return names


def documented_error_codes() -> dict[int, str]:
    rows = table_rows(section(doc_text("websocket.md"), "Error codes"))
    return {int(row[0].strip("`")): row[1].strip("`") for row in rows}


# --- the catalogue matches the recorded contract and the reference ------------------------


def test_authorization_table_is_complete() -> None:
    methods = expected_methods()
    assert {"subscribe", "unsubscribe", "sessions.reset", "sessions.delete"} <= set(methods)
    assert len(methods) > 60


def test_method_names_match_the_authorization_table() -> None:
    assert set(CATALOGUE) == set(expected_methods())


def test_requirements_owners_and_idempotency_match_the_authorization_table() -> None:
    mismatches = []
    for name, want in expected_methods().items():
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


def test_every_method_has_a_section_in_the_reference() -> None:
    reference = doc_text("methods.md")
    missing = [name for name in CATALOGUE if f"\n### `{name}`\n" not in reference]
    assert not missing, (
        f"not in docs/protocol/methods.md: {missing}; run `aisopod catalogue export`"
    )


def test_error_codes_in_the_reference_match_the_error_tree() -> None:
    tree = {
        cls.code: cls.name
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.AisopodError)
    }
    assert documented_error_codes() == tree


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
    assert auth == {n for n, m in expected_methods().items() if m["owner"] is ServiceName.AUTH}
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
    ("sessions.preview", {"keys": [KEY, "work"], "limit": 10}),
    ("sessions.resolve", {"label": "inbox", "agentId": "main"}),
    ("sessions.resolve", {"key": "work"}),
    ("usage.status", {"since": 1, "until": 2, "agentId": "main", "bucket": "day"}),
    ("usage.cost", {}),
    ("sessions.usage", {"key": "work", "since": 0}),
    ("usage.sessions", {"since": 1, "until": 2, "agentId": "main", "key": "work", "limit": 1000}),
    ("sessions.usage.series", {"key": "work", "since": 1, "until": 2, "maxPoints": 1000}),
    ("sessions.usage.logs", {"key": KEY, "limit": 1000}),
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
    ("sessions.preview", {"keys": [KEY] * 51}, "too many sessions"),
    ("sessions.preview", {"keys": [KEY], "limit": 11}, "too many messages"),
    ("sessions.resolve", {}, "neither key nor label"),
    ("sessions.resolve", {"key": KEY, "label": "inbox"}, "both key and label"),
    ("sessions.resolve", {"key": KEY, "agentId": "main"}, "agentId beside a key"),
    ("usage.status", {"since": 5, "until": 5}, "empty window"),
    ("usage.status", {"since": 0, "until": 366 * 86_400_000 + 1}, "window over 366 days"),
    ("usage.cost", {"bucket": "week"}, "bucket not in enum"),
    ("sessions.usage", {}, "missing key"),
    ("usage.sessions", {"limit": 1001}, "limit over 1000"),
    ("usage.sessions", {"since": 0, "until": 366 * 86_400_000 + 1}, "window over 366 days"),
    ("usage.sessions", {"bucket": "day"}, "no buckets"),
    ("sessions.usage.series", {}, "missing key"),
    ("sessions.usage.series", {"key": KEY, "maxPoints": 0}, "no points"),
    ("sessions.usage.series", {"key": KEY, "maxPoints": 1001}, "points over 1000"),
    ("sessions.usage.series", {"key": KEY, "since": 0, "until": 366 * 86_400_000 + 1}, "window"),
    ("sessions.usage.logs", {"key": KEY, "limit": 1001}, "limit over 1000"),
    ("sessions.usage.logs", {"key": KEY, "since": 0}, "unknown field"),
    ("cron.status", {"verbose": True}, "unknown field"),
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
        "instance": "ws-gateway-1",
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


def test_event_rules_cover_the_reference_events_table() -> None:
    assert set(EVENT_AUDIENCE) == documented_events()


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
