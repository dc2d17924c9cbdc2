"""JSON-RPC 2.0 framing of the WebSocket protocol (docs/protocol/websocket.md). Pure: no I/O.

`decode(text)` turns one WebSocket text frame into a `Decoded`: a single message or a batch
of them, each a `Call` (request or notification) or a `Rejected` item that already carries
its error. Frames without `"jsonrpc"` are accepted (the seed's shorthand); a wrong version
is INVALID_REQUEST. Encoding builds the server's frames as bytes; every frame carries
`"jsonrpc":"2.0"`. Results forwarded from a NATS owner are spliced, not re-encoded.

Dispatch, auth and events never see this module's dict shapes, only `Call`s and bytes, so a
second codec (OpenClaw's `{type:"req"|"res"|"event"}` frames) can sit beside this one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from aisopod.codec import dumps
from aisopod.errors import AisopodError, InvalidRequest, ParseError

RequestId = str | int | float | None

_NO_ID = object()
_HEAD = b'{"jsonrpc":"2.0","id":'
_RESULT_PREFIX = b'{"result":'


@dataclass(frozen=True, slots=True)
class Call:
    """A request (`notification` False: it gets a response) or a notification."""

    method: str
    params: Any
    id: RequestId = None
    notification: bool = False
    # The caller's W3C trace context (a `traceparent` member beside `params`): our span
    # for the call continues its trace (aisopod.tracing; malformed values are ignored).
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """An item that is not a valid request; answered with `error` (id null if unknown)."""

    error: AisopodError
    id: RequestId = None


Item = Call | Rejected


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one frame held: `items`, and whether they came as a batch (array)."""

    items: tuple[Item, ...]
    batch: bool = False


def decode(data: bytes | str) -> Decoded:
    """Decode one text frame. Never raises: unparseable input is a `Rejected` item."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return Decoded((Rejected(ParseError("invalid JSON: the frame is not JSON")),))
    if isinstance(body, list):
        if not body:
            return Decoded((Rejected(InvalidRequest("empty batch")),))
        return Decoded(tuple(_item(entry) for entry in body), batch=True)
    return Decoded((_item(body),))


def _item(body: Any) -> Item:
    if not isinstance(body, dict):
        return Rejected(InvalidRequest("a request must be a JSON object"))
    raw_id = body.get("id", _NO_ID)
    request_id: RequestId = None
    if raw_id is not _NO_ID:
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int, float, type(None))):
            return Rejected(InvalidRequest("id must be a string, a number or null"))
        request_id = raw_id
    version = body.get("jsonrpc", "2.0")
    if version != "2.0":
        return Rejected(InvalidRequest('jsonrpc must be "2.0"'), request_id)
    method = body.get("method")
    if not isinstance(method, str) or not method:
        return Rejected(InvalidRequest("method must be a non-empty string"), request_id)
    params = body.get("params")
    if params is not None and not isinstance(params, (dict, list)):
        return Rejected(InvalidRequest("params must be an object or an array"), request_id)
    traceparent = body.get("traceparent")
    return Call(
        method,
        params,
        request_id,
        notification=raw_id is _NO_ID,
        traceparent=traceparent if isinstance(traceparent, str) else None,
    )


# --- encoding ------------------------------------------------------------------------------


def encode_result(request_id: RequestId, result: Any) -> bytes:
    return dumps({"jsonrpc": "2.0", "id": request_id, "result": result})


def encode_error(request_id: RequestId, error: AisopodError) -> bytes:
    return dumps({"jsonrpc": "2.0", "id": request_id, "error": error.to_wire()})


def splice_reply(request_id: RequestId, reply: bytes) -> bytes | None:
    """The response frame for a NATS owner's `{"result": …}` reply, without re-encoding the
    result; None when the reply is not that exact shape (errors are decoded instead)."""
    if not reply.startswith(_RESULT_PREFIX) or not reply.endswith(b"}"):
        return None
    return _HEAD + orjson.dumps(request_id) + b"," + reply[1:]


def encode_batch(responses: list[bytes]) -> bytes:
    """A batch response from encoded responses (their order is the completion order)."""
    return b"[" + b",".join(responses) + b"]"


def encode_notification(method: str, payload: Any, ts: int | None = None) -> bytes:
    """A server → client event that is not in the EVENTS stream (challenge, tick, shutdown,
    targeted frames): the broadcast shape `params: {ts, payload}`, only without `seq`."""
    stamp = ts if ts is not None else int(time.time() * 1000)
    return dumps({"jsonrpc": "2.0", "method": method, "params": {"ts": stamp, "payload": payload}})


def encode_event(method: str, seq: int, ts: int, payload_json: bytes) -> bytes:
    """A broadcast event frame around an already encoded payload (the stream message body):
    built once per event, written to every client that may see it."""
    return b"".join(
        (
            b'{"jsonrpc":"2.0","method":',
            orjson.dumps(method),
            b',"params":{"seq":',
            str(seq).encode(),
            b',"ts":',
            str(ts).encode(),
            b',"payload":',
            payload_json or b"null",
            b"}}",
        )
    )
