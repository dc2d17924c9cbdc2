"""The two codecs without sockets: frames in, frames out (docs/openclaw.md)."""

from __future__ import annotations

import orjson
import pytest

from aisopod.errors import (
    Forbidden,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    NotPaired,
    RateLimited,
    Unauthenticated,
)
from aisopod.jsonrpc import Call, Rejected
from aisopod_ws_gateway.codec import JSONRPC
from aisopod_ws_gateway.openclaw.frames import OPENCLAW, error_shape


def test_req_decodes_to_a_call_with_its_string_id() -> None:
    frame = b'{"type":"req","id":"1:abc","method":"health"}'
    (item,) = OPENCLAW.decode(frame).items
    assert item == Call("health", None, "1:abc")


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"not json", "invalid JSON: the frame is not JSON"),
        (b"[]", "a frame must be a JSON object"),
        (b'{"type":"req","id":7,"method":"x"}', "id must be a non-empty string"),
        (b'{"type":"res","id":"1","method":"x"}', 'type must be "req"'),
        (b'{"type":"req","id":"1","method":""}', "method must be a non-empty string"),
        (b'{"type":"req","id":"1","method":"x","params":[1]}', "params must be an object"),
    ],
)
def test_malformed_frames_are_rejected_with_a_reason(frame: bytes, message: str) -> None:
    (item,) = OPENCLAW.decode(frame).items
    assert isinstance(item, Rejected)
    assert item.error.message == message


def test_res_frames_ok_error_and_spliced() -> None:
    assert orjson.loads(OPENCLAW.result("a", {"x": 1})) == {
        "type": "res",
        "id": "a",
        "ok": True,
        "payload": {"x": 1},
    }
    spliced = OPENCLAW.splice("a", b'{"result":{"x":1}}')
    assert spliced is not None and orjson.loads(spliced)["payload"] == {"x": 1}
    assert OPENCLAW.splice("a", b'{"error":{}}') is None
    error = orjson.loads(OPENCLAW.error("a", MethodNotFound("unknown method: no.such")))
    assert error["ok"] is False
    assert error["error"]["code"] == "INVALID_REQUEST"
    assert error["error"]["message"] == "unknown method: no.such"


def test_error_shapes_follow_the_mapping_table() -> None:
    scope = error_shape(Forbidden("x", code="MISSING_SCOPE", requiredScope="operator.read"))
    assert scope == {
        "code": "FORBIDDEN",
        "message": "x",
        "details": {
            "code": "MISSING_SCOPE",
            "missingScope": "operator.read",
            "requiredScopes": ["operator.read"],
        },
    }
    paired = error_shape(NotPaired("device not paired", requestId="r1"))
    assert paired["code"] == "NOT_PAIRED"
    assert paired["details"] == {
        "code": "PAIRING_REQUIRED",
        "reason": "not-paired",
        "requestId": "r1",
    }
    limited = error_shape(RateLimited("slow down", retryAfterMs=250))
    assert limited["code"] == "UNAVAILABLE"
    assert limited["retryable"] is True and limited["retryAfterMs"] == 250
    token = error_shape(Unauthenticated("invalid token", code="AUTH_TOKEN_MISMATCH"))
    assert token["code"] == "INVALID_REQUEST"
    assert token["details"]["code"] == "AUTH_TOKEN_MISMATCH"
    assert (
        error_shape(InvalidParams("limit: too big"))["message"] == "invalid params: limit: too big"
    )


def test_events_are_renamed_reshaped_or_not_sent() -> None:
    chat = {"runId": "k", "sessionKey": "s", "seq": 2, "state": "delta", "delta": "lo"}
    chat["message"] = {"role": "assistant", "content": "hello"}
    frame = OPENCLAW.event("chat.event", 9, 1000, orjson.dumps(chat))
    assert frame is not None
    body = orjson.loads(frame)
    assert body["type"] == "event" and body["event"] == "chat" and "seq" not in body
    assert body["payload"]["message"]["content"] == [{"type": "text", "text": "hello"}]
    assert body["payload"]["deltaText"] == "lo"
    assert OPENCLAW.event("config.changed", 1, 1, b"{}") is None
    cron = OPENCLAW.event("cron.event", 1, 1, b'{"jobId":"j"}')
    assert cron is not None and orjson.loads(cron) == {
        "type": "event",
        "event": "cron",
        "payload": {"jobId": "j"},
    }
    tick = OPENCLAW.notification("tick", {"ts": 5})
    assert tick is not None and orjson.loads(tick)["event"] == "tick"
    assert OPENCLAW.notification("node.event", {}) is None


def test_challenge_carries_nonce_and_ts_without_seq() -> None:
    body = orjson.loads(OPENCLAW.challenge("n1", 42))
    assert body["event"] == "connect.challenge"
    assert body["payload"]["nonce"] == "n1" and body["payload"]["ts"] == 42
    assert "seq" not in body


@pytest.mark.parametrize(("low", "high"), [(4, 4), (3, 4)])
def test_protocol_4_and_the_probe_window_pass(low: int, high: int) -> None:
    OPENCLAW.check_protocol({"minProtocol": low, "maxProtocol": high})


@pytest.mark.parametrize(("low", "high"), [(1, 1), (5, 6), (1, 3)])
def test_other_protocols_are_a_mismatch(low: int, high: int) -> None:
    with pytest.raises(InvalidRequest) as err:
        OPENCLAW.check_protocol({"minProtocol": low, "maxProtocol": high})
    assert err.value.data["expectedProtocol"] == 4
    assert err.value.data["minimumProbeProtocol"] == 3


def test_connect_auth_with_token_and_password_uses_one_and_keeps_the_signed_token() -> None:
    raw = {
        "minProtocol": 4,
        "maxProtocol": 4,
        "auth": {"token": "T", "password": "T"},
        "device": {"id": "d", "publicKey": "k", "signature": "s", "signedAt": 1, "nonce": "n"},
    }
    params = OPENCLAW.connect_params(raw)
    assert params["auth"] == {"token": "T"}
    assert params["device"]["signedToken"] == "T"
    assert "minProtocol" not in params


def test_hello_ok_has_no_build_id_and_lists_only_adapted_methods() -> None:
    ours = {
        "protocol": 1,
        "server": {"version": "1.0", "connId": "c", "instance": "i"},
        "features": {"methods": ["health", "agents.list", "sessions.list"], "events": ["tick"]},
        "auth": {"method": "token", "role": "operator", "scopes": ["operator.read"]},
        "policy": {"tickIntervalMs": 30000},
    }
    hello = OPENCLAW.hello(ours)
    assert hello["type"] == "hello-ok" and hello["protocol"] == 4
    assert "buildId" not in hello["server"]
    assert "health" in hello["features"]["methods"]
    assert "chat.send" not in hello["features"]["methods"]  # its method of ours is not allowed
    assert hello["features"]["events"] == ["tick"]


def test_jsonrpc_codec_is_the_protocol_as_before() -> None:
    assert orjson.loads(JSONRPC.result(1, True)) == {"jsonrpc": "2.0", "id": 1, "result": True}
    assert orjson.loads(JSONRPC.challenge("n", 1))["method"] == "connect.challenge"
    event = JSONRPC.event("tick", 3, 4, b'{"ts":4}')
    assert event is not None and orjson.loads(event)["params"] == {
        "seq": 3,
        "ts": 4,
        "payload": {"ts": 4},
    }


class CountingCodec:
    """Wraps a codec and counts its event encodings."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.encoded = 0

    def event(self, name: str, seq: int, ts: int, payload_json: bytes) -> bytes | None:
        self.encoded += 1
        return self.inner.event(name, seq, ts, payload_json)  # type: ignore[attr-defined]


def test_fan_out_encodes_an_event_once_per_codec_not_per_client() -> None:
    from aisopod_ws_gateway.fanout import EventFrames

    jsonrpc, openclaw = CountingCodec(JSONRPC), CountingCodec(OPENCLAW)
    frames = EventFrames("cron.event", 5, 6, b'{"jobId":"j"}')
    clients = [jsonrpc, openclaw] * 50  # the codec of each of 100 connections
    sent = [frames.get(codec) for codec in clients]  # type: ignore[arg-type]
    assert (jsonrpc.encoded, openclaw.encoded) == (1, 1)
    assert sent[0] is sent[2] and sent[1] is sent[3] and sent[0] != sent[1]
    dropped = EventFrames("config.changed", 5, 6, b"{}")
    assert dropped.get(openclaw) is None and dropped.get(openclaw) is None  # type: ignore[arg-type]
    assert openclaw.encoded == 2  # a codec without the event is asked once too
