"""OpenClaw v4 frames (docs/openclaw.md): `{type:"req"}` in, `{type:"res"}` and
`{type:"event"}` out. Pure: no I/O.

Requests decode to the same `Call`s as JSON-RPC, named by their OpenClaw method; the
adapters (`adapters.py`) translate them. Errors take OpenClaw's ErrorShape
`{code, message, details?, retryable?, retryAfterMs?}`. Broadcast events carry no `seq`
(optional in v4): a per-connection seq would force encoding each event once per client.
"""

from __future__ import annotations

from typing import Any

import orjson

from aisopod.codec import dumps
from aisopod.errors import (
    AisopodError,
    Forbidden,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    NotPaired,
    ParseError,
    RateLimited,
    Timeout,
    Unavailable,
)
from aisopod.jsonrpc import Call, Decoded, Rejected, RequestId
from aisopod_ws_gateway.openclaw.events import EVENTS

PROTOCOL = 4
MIN_PROBE_PROTOCOL = 3
"""`gateway probe`/`status` connect with 3..4; anything else must include 4."""
CAPABILITIES: list[str] = []
_RESULT_PREFIX = b'{"result":'


def error_shape(error: AisopodError) -> dict[str, Any]:
    """Our error as OpenClaw's ErrorShape (mapping table in docs/openclaw.md)."""
    data = {k: v for k, v in error.data.items() if v is not None}
    shape: dict[str, Any] = {"code": "INVALID_REQUEST", "message": error.message}
    if isinstance(error, Forbidden) and data.get("code") == "MISSING_SCOPE":
        scope = data.get("requiredScope")
        shape["code"] = "FORBIDDEN"
        data = {"code": "MISSING_SCOPE", "missingScope": scope, "requiredScopes": [scope]}
    elif isinstance(error, Forbidden):
        shape["code"] = "FORBIDDEN"
    elif isinstance(error, NotPaired):
        shape["code"] = "NOT_PAIRED"
        shape["message"] = "pairing required"
        data = {"code": "PAIRING_REQUIRED", "reason": "not-paired"} | {
            k: v for k, v in data.items() if k != "code"
        }
    elif isinstance(error, Unavailable | InternalError | RateLimited | Timeout):
        shape["code"] = "UNAVAILABLE"
        shape["retryable"] = True
        retry_after = data.get("retryAfterMs")
        if isinstance(retry_after, int) and retry_after >= 0:
            shape["retryAfterMs"] = retry_after
    elif isinstance(error, InvalidParams):
        shape["message"] = f"invalid params: {error.message}"
    elif data.get("code") == "FILE_CHANGED":  # agents.files.set: OpenClaw's conflict shape
        data = {"type": "agent_file_conflict", "name": data.get("name")} | (
            {"currentHash": data["currentHash"]} if data.get("currentHash") else {}
        )
    elif isinstance(error, MethodNotFound):
        # Exact text: the CLI's legacy cron probe matches "unknown method: <name>".
        pass
    data.pop("retryable", None)
    if data:
        shape["details"] = data
    return shape


class OpenClawCodec:
    name = "openclaw"

    def decode(self, data: bytes) -> Decoded:
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            return Decoded((Rejected(ParseError("invalid JSON: the frame is not JSON"), ""),))
        if not isinstance(body, dict):
            return Decoded((Rejected(InvalidRequest("a frame must be a JSON object"), ""),))
        request_id = body.get("id")
        if not isinstance(request_id, str) or not request_id:
            return Decoded((Rejected(InvalidRequest("id must be a non-empty string"), ""),))
        if body.get("type") != "req":
            return Decoded((Rejected(InvalidRequest('type must be "req"'), request_id),))
        method = body.get("method")
        if not isinstance(method, str) or not method:
            return Decoded(
                (Rejected(InvalidRequest("method must be a non-empty string"), request_id),)
            )
        params = body.get("params")
        if params is not None and not isinstance(params, dict):
            return Decoded((Rejected(InvalidRequest("params must be an object"), request_id),))
        traceparent = body.get("traceparent")  # the caller's trace context (aisopod.tracing)
        return Decoded(
            (
                Call(
                    method,
                    params,
                    request_id,
                    traceparent=traceparent if isinstance(traceparent, str) else None,
                ),
            )
        )

    def result(self, request_id: RequestId, result: Any) -> bytes:
        return dumps({"type": "res", "id": request_id, "ok": True, "payload": result})

    def error(self, request_id: RequestId, error: AisopodError) -> bytes:
        return dumps({"type": "res", "id": request_id, "ok": False, "error": error_shape(error)})

    def splice(self, request_id: RequestId, reply: bytes) -> bytes | None:
        if not reply.startswith(_RESULT_PREFIX) or not reply.endswith(b"}"):
            return None
        return b"".join(
            (
                b'{"type":"res","id":',
                orjson.dumps(request_id),
                b',"ok":true,"payload":',
                reply[len(_RESULT_PREFIX) : -1],
                b"}",
            )
        )

    def batch(self, responses: list[bytes]) -> bytes:  # pragma: no cover - v4 has no batches
        raise AssertionError("OpenClaw frames never come as a batch")

    def notification(self, method: str, params: Any, ts: int | None = None) -> bytes | None:
        row = EVENTS.get(method)
        if row is None:
            return None
        name, reshape = row
        payload = reshape(params, 0) if reshape is not None else params
        return dumps({"type": "event", "event": name, "payload": payload})

    def event(self, name: str, seq: int, ts: int, payload_json: bytes) -> bytes | None:
        row = EVENTS.get(name)
        if row is None:
            return None
        oc_name, reshape = row
        if reshape is None:
            body = payload_json or b"null"
        else:
            body = dumps(reshape(orjson.loads(payload_json or b"null"), ts))
        return b"".join(
            (b'{"type":"event","event":', orjson.dumps(oc_name), b',"payload":', body, b"}")
        )

    def challenge(self, nonce: str, ts: int) -> bytes:
        payload = {"nonce": nonce, "ts": ts, "capabilities": CAPABILITIES}
        return dumps({"type": "event", "event": "connect.challenge", "payload": payload})

    def first_frame_error(self) -> InvalidRequest:
        return InvalidRequest(
            "invalid handshake: first request must be connect", code="CONNECT_REQUIRED"
        )

    def check_protocol(self, raw: dict[str, Any]) -> None:
        low, high = raw.get("minProtocol"), raw.get("maxProtocol")
        if not isinstance(low, int) or not isinstance(high, int) or not low <= PROTOCOL <= high:
            raise InvalidRequest(
                f"protocol mismatch: this server speaks {PROTOCOL}, the client {low}..{high}",
                code="PROTOCOL_MISMATCH",
                expectedProtocol=PROTOCOL,
                minimumProbeProtocol=MIN_PROBE_PROTOCOL,
            )

    def connect_params(self, raw: dict[str, Any]) -> dict[str, Any]:
        """OpenClaw's connect in our terms: its protocol numbers are not ours (checked
        above), and its `auth` may carry several credentials (the Control UI sends token
        and password with the same value): the first of token, password, deviceToken is
        used. The device signature covers the token, so it travels with the proof."""
        params = {k: v for k, v in raw.items() if k not in ("minProtocol", "maxProtocol")}
        auth = raw.get("auth")
        if isinstance(auth, dict):
            for name in ("token", "password", "deviceToken"):
                value = auth.get(name)
                if isinstance(value, str) and value:
                    params["auth"] = {name: value}
                    break
            else:
                params.pop("auth")
            device = raw.get("device")
            token = auth.get("token") or auth.get("deviceToken")
            if isinstance(device, dict) and isinstance(token, str):
                params["device"] = device | {"signedToken": token}
        return params

    def hello_reply(
        self,
        request_id: RequestId,
        head: dict[str, Any],
        features: tuple[dict[str, list[str]], bytes],
        tail: dict[str, Any],
    ) -> bytes:
        return self.result(request_id, self.hello(head | {"features": features[0]} | tail))

    def hello(self, hello: dict[str, Any]) -> dict[str, Any]:
        """Our hello as OpenClaw's `hello-ok`."""
        from aisopod_ws_gateway.openclaw.adapters import implemented_methods

        ours = hello["features"]["methods"]
        server = hello["server"]
        # No `buildId`: the Control UI stops with "Refresh required" when it differs from
        # its own. `features.methods` lists only what works: the UI gates optional calls.
        return {
            "type": "hello-ok",
            "protocol": PROTOCOL,
            "server": {"version": server["version"], "connId": server["connId"]},
            "features": {
                "methods": implemented_methods(ours),
                "events": sorted(
                    {EVENTS[e][0] for e in hello["features"]["events"] if e in EVENTS}
                ),
                "capabilities": CAPABILITIES,
            },
            "auth": hello["auth"],
            "policy": hello["policy"],
        }


OPENCLAW = OpenClawCodec()
