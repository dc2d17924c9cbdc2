"""OpenClaw node hosts and OpenClaw operators' node commands, without sockets: the frames
recorded between `openclaw node run` (openclaw 2026.9.6), the OpenClaw CLI and the real
OpenClaw gateway (fixtures/openclaw_node_host.jsonl) go through our codec and adapters and
come out as our models, and ours come out in the shapes recorded (docs/openclaw.md, Nodes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from aisopod.catalogue.nodes import NodeEventParams, NodeInvokeParams, NodeInvokeResultParams
from aisopod.catalogue.system import ConnectParams
from aisopod.errors import InvalidParams, MethodNotFound, Unavailable
from aisopod.jsonrpc import Call
from aisopod.scopes import Role
from aisopod_ws_gateway.openclaw.adapters import ABSENT, ADAPTERS, Context, implemented_methods
from aisopod_ws_gateway.openclaw.frames import OPENCLAW, error_shape

CAPTURE = Path(__file__).parent / "fixtures" / "openclaw_node_host.jsonl"
FRAMES: list[dict[str, Any]] = [orjson.loads(line) for line in CAPTURE.read_bytes().splitlines()][
    1:
]
NODE_ID = "16b4ce92be4e69b32a49d0c47514b900b0d03305c05acd41c0b4add1757a232d"


def sent(method: str, by: str | None = None) -> list[dict[str, Any]]:
    """The params of every recorded request of `method` (from the node host or an operator)."""
    return [
        f["frame"]["params"]
        for f in FRAMES
        if f["dir"] == "c2s"
        and f["frame"].get("method") == method
        and (by is None or (f["conn"] == "node") == (by == "node"))
    ]


def events(name: str) -> list[dict[str, Any]]:
    return [f["frame"]["payload"] for f in FRAMES if f["frame"].get("event") == name]


def answer_to(request_params: dict[str, Any], method: str) -> dict[str, Any]:
    ids = {
        f["frame"]["id"]
        for f in FRAMES
        if f["frame"].get("method") == method and f["frame"]["params"] == request_params
    }
    (res,) = [
        f["frame"] for f in FRAMES if f["frame"].get("type") == "res" and f["frame"]["id"] in ids
    ]
    return res


def ctx(params: dict[str, Any]) -> Context:
    return Context(params=params, also={}, version="1", elapsed_ms=0)


def test_the_node_hosts_connect_is_our_node_connect() -> None:
    (connect,) = sent("connect", by="node")
    params = ConnectParams.model_validate(OPENCLAW.connect_params(connect))
    assert params.role is Role.NODE and params.scopes == []
    assert params.client.id == "node-host" and params.client.mode == "node"
    assert "system.which" in params.commands and "system" in params.caps
    assert params.device is not None and params.device.id == NODE_ID
    # v3 signs the connect token: it travels with the proof to the auth service.
    assert params.device.signed_token == "<token>"


def test_invoke_request_to_a_node_carries_params_as_json_text() -> None:
    ours = {
        "id": "abc",
        "nodeId": NODE_ID,
        "command": "system.which",
        "params": {"bins": ["echo"]},
        "timeoutMs": 30000,
    }
    frame = orjson.loads(OPENCLAW.notification("node.invoke.request", ours) or b"")
    assert frame["type"] == "event" and frame["event"] == "node.invoke.request"
    recorded = events("node.invoke.request")
    assert recorded and all(set(frame["payload"]) <= set(r) for r in recorded)
    assert frame["payload"]["paramsJSON"] == '{"bins":["echo"]}'
    assert "params" not in frame["payload"]
    no_params = orjson.loads(
        OPENCLAW.notification("node.invoke.request", ours | {"params": None}) or b""
    )
    assert no_params["payload"]["paramsJSON"] is None


def test_every_recorded_node_result_becomes_our_result() -> None:
    results = sent("node.invoke.result", by="node")
    assert {r["ok"] for r in results} == {True, False}
    to_ours = ADAPTERS["node.invoke.result"].params
    assert to_ours is not None
    for recorded in results:
        ours = NodeInvokeResultParams.model_validate(to_ours(recorded))
        assert ours.id == recorded["id"] and ours.ok is recorded["ok"]
        if recorded["ok"]:
            assert ours.payload == orjson.loads(recorded["payloadJSON"])
        else:
            assert ours.error is not None and ours.error.code == "INVALID_REQUEST"
            assert ours.error.message == recorded["error"]["message"]


def test_a_node_result_with_bad_json_or_a_huge_message_is_refused_or_cut() -> None:
    to_ours = ADAPTERS["node.invoke.result"].params
    assert to_ours is not None
    with pytest.raises(InvalidParams) as info:
        to_ours({"id": "a", "ok": True, "payloadJSON": "{not json"})
    assert info.value.detail_code == "BAD_JSON_FIELD"
    with pytest.raises(InvalidParams):
        to_ours({"id": "a", "ok": True, "payloadJSON": 5})
    long = to_ours({"id": "a", "ok": False, "error": {"code": "X", "message": "m" * 10_000}})
    assert len(NodeInvokeResultParams.model_validate(long).error.message) == 4096  # type: ignore[union-attr]


def test_recorded_node_events_become_ours() -> None:
    recorded = sent("node.event", by="node")
    assert {e["event"] for e in recorded} >= {"node.host.stats", "exec.finished"}
    to_ours = ADAPTERS["node.event"].params
    assert to_ours is not None
    for event in recorded:
        ours = NodeEventParams.model_validate(to_ours(event))
        assert ours.event == event["event"] and ours.payload == orjson.loads(event["payloadJSON"])


def test_an_operators_invoke_maps_to_ours_and_our_answer_to_theirs() -> None:
    to_ours = ADAPTERS["node.invoke"].params
    build = ADAPTERS["node.invoke"].result
    assert to_ours is not None and build is not None
    for recorded in sent("node.invoke"):
        NodeInvokeParams.model_validate(to_ours(recorded))
    (request,) = [p for p in sent("node.invoke") if p["idempotencyKey"] == "k1"]
    theirs = answer_to(request, "node.invoke")["payload"]
    ours = {"ok": True, "payload": theirs["payload"]}
    assert build(ours, ctx(request)) == theirs


def test_a_failed_node_command_is_an_error_naming_the_nodes_own() -> None:
    build = ADAPTERS["node.invoke"].result
    assert build is not None
    (request,) = [p for p in sent("node.invoke") if p["idempotencyKey"] == "k3"]
    recorded = answer_to(request, "node.invoke")["error"]
    failure = {"code": "INVALID_REQUEST", "message": "Error: INVALID_REQUEST: bins required"}
    with pytest.raises(Unavailable) as info:
        build({"ok": False, "error": failure}, ctx(request))
    shape = error_shape(info.value)
    assert shape["code"] == recorded["code"] == "UNAVAILABLE"
    assert shape["message"] == recorded["message"]
    assert shape["details"]["nodeError"] == recorded["details"]["nodeError"]
    assert shape["details"]["nodeCommandDispatched"] is True


def test_node_list_and_describe_carry_what_the_cli_resolves_nodes_by() -> None:
    node = {
        "nodeId": NODE_ID,
        "displayName": "capnode",
        "platform": "linux",
        "caps": ["system"],
        "commands": ["system.which"],
        "connected": True,
        "paired": True,
    }
    build_list = ADAPTERS["node.list"].result
    build_one = ADAPTERS["node.describe"].result
    assert build_list is not None and build_one is not None
    listed = build_list({"nodes": [node]}, ctx({}))
    (recorded,) = [
        f["frame"]["payload"]
        for f in FRAMES
        if f["step"] == "status" and "nodes" in (f["frame"].get("payload") or {})
    ]
    assert set(listed) == set(recorded) == {"ts", "nodes"}
    common = {"nodeId", "displayName", "platform", "caps", "commands", "connected", "paired"}
    assert common | {"approvalState"} <= set(listed["nodes"][0]) & set(recorded["nodes"][0])
    described = build_one(node, ctx({"nodeId": NODE_ID}))
    assert described["nodeId"] == NODE_ID and isinstance(described["ts"], int)


def test_pending_node_requests_carry_ts_and_decisions_keep_the_token() -> None:
    pending = {"requestId": "r1", "nodeId": "n1", "requestedAt": 5, "caps": [], "commands": []}
    build = ADAPTERS["node.pair.list"].result
    decide = ADAPTERS["node.pair.approve"].result
    assert build is not None and decide is not None
    assert build({"pending": [pending], "paired": []}, ctx({}))["pending"][0]["ts"] == 5
    approved = {"requestId": "r1", "nodeId": "n1", "decision": "approved", "token": "t"}
    assert decide(approved, ctx({})) == approved | {"node": {"nodeId": "n1"}}


def test_a_node_is_told_only_of_methods_it_may_call() -> None:
    offered = implemented_methods(["node.invoke.result", "node.event"])
    assert offered == ["node.event", "node.invoke.result"]


PUBLICATIONS = ("node.runnerInventory.update", "node.skills.update", "node.pluginTools.update")


def test_the_node_hosts_publications_are_answered_as_a_gateway_without_them() -> None:
    """After its connect the host offers worker hosting, skills and plugin tools. We have
    none of them: each is OpenClaw's `unknown method`, which the host takes as unsupported."""
    for method in PUBLICATIONS:
        (params,) = sent(method, by="node")
        (frame,) = [
            f["frame"] for f in FRAMES if f["dir"] == "c2s" and f["frame"].get("method") == method
        ]
        (call,) = OPENCLAW.decode(orjson.dumps(frame)).items
        assert isinstance(call, Call) and call.method == method and call.params == params
        assert method not in ADAPTERS and ABSENT[method].unknown
        # The handler's answer, in OpenClaw's shape: the host matches code and message.
        shape = error_shape(MethodNotFound(f"unknown method: {method}"))
        assert shape["code"] == "INVALID_REQUEST"
        assert shape["message"] == f"unknown method: {method}"
    assert not set(PUBLICATIONS) & set(implemented_methods(["node.event"]))
