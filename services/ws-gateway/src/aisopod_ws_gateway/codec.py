"""The wire format of a connection, chosen by the upgrade path (the server speaks first,
so the format cannot be sniffed): `/ws` speaks JSON-RPC 2.0, `/openclaw` OpenClaw v4.

A codec is sans-I/O: it turns one text frame into `Call`s and builds the server's frames as
bytes. Handshake, dispatch, fan-out and ticks only ever ask the connection's codec, so they
know no wire format. Fan-out encodes an event once per codec (`event` must not depend on
the connection), never once per client. A codec answering None for an event or
notification means "this format has no such frame": nothing is sent.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from aisopod import jsonrpc
from aisopod.catalogue.system import PROTOCOL_VERSION
from aisopod.codec import dumps
from aisopod.errors import AisopodError, InvalidRequest
from aisopod.jsonrpc import Decoded, RequestId


class Codec(Protocol):
    name: str

    def decode(self, data: bytes) -> Decoded: ...

    def result(self, request_id: RequestId, result: Any) -> bytes: ...

    def error(self, request_id: RequestId, error: AisopodError) -> bytes: ...

    def splice(self, request_id: RequestId, reply: bytes) -> bytes | None:
        """The response for a NATS owner's `{"result": …}` reply without re-encoding it;
        None when the reply is not that exact shape."""
        ...

    def batch(self, responses: list[bytes]) -> bytes: ...

    def notification(self, method: str, params: Any, ts: int | None = None) -> bytes | None:
        """A frame outside the EVENTS stream; `ts` (ms) defaults to now."""
        ...

    def event(self, name: str, seq: int, ts: int, payload_json: bytes) -> bytes | None: ...

    def challenge(self, nonce: str, ts: int) -> bytes: ...

    def first_frame_error(self) -> InvalidRequest: ...

    def check_protocol(self, raw: dict[str, Any]) -> None: ...

    def connect_params(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The `connect` params in our own terms (the catalogue's ConnectParams)."""
        ...

    def hello_reply(
        self,
        request_id: RequestId,
        head: dict[str, Any],
        features: tuple[dict[str, list[str]], bytes],
        tail: dict[str, Any],
    ) -> bytes:
        """The reply to `connect`: our hello is `head`, `features` (as a dict and as its
        JSON, encoded once per view) and `tail`."""
        ...


class JsonRpcCodec:
    """JSON-RPC 2.0, the gateway's own protocol (protocol.md)."""

    name = "jsonrpc"

    def decode(self, data: bytes) -> Decoded:
        return jsonrpc.decode(data)

    def result(self, request_id: RequestId, result: Any) -> bytes:
        return jsonrpc.encode_result(request_id, result)

    def error(self, request_id: RequestId, error: AisopodError) -> bytes:
        return jsonrpc.encode_error(request_id, error)

    def splice(self, request_id: RequestId, reply: bytes) -> bytes | None:
        return jsonrpc.splice_reply(request_id, reply)

    def batch(self, responses: list[bytes]) -> bytes:
        return jsonrpc.encode_batch(responses)

    def notification(self, method: str, params: Any, ts: int | None = None) -> bytes | None:
        return jsonrpc.encode_notification(method, params, ts)

    def event(self, name: str, seq: int, ts: int, payload_json: bytes) -> bytes | None:
        return jsonrpc.encode_event(name, seq, ts, payload_json)

    def challenge(self, nonce: str, ts: int) -> bytes:
        return jsonrpc.encode_notification("connect.challenge", {"nonce": nonce, "ts": ts})

    def first_frame_error(self) -> InvalidRequest:
        return InvalidRequest("the first request must be connect", code="CONNECT_REQUIRED")

    def check_protocol(self, raw: dict[str, Any]) -> None:
        low = raw.get("minProtocol", PROTOCOL_VERSION)
        high = raw.get("maxProtocol", PROTOCOL_VERSION)
        if not isinstance(low, int) or not isinstance(high, int):
            return  # the params model reports the type error
        if not low <= PROTOCOL_VERSION <= high:
            raise InvalidRequest(
                f"protocol mismatch: this server speaks {PROTOCOL_VERSION}, "
                f"the client {low}..{high}",
                code="PROTOCOL_MISMATCH",
                serverProtocol=PROTOCOL_VERSION,
            )

    def connect_params(self, raw: dict[str, Any]) -> dict[str, Any]:
        return raw

    def hello_reply(
        self,
        request_id: RequestId,
        head: dict[str, Any],
        features: tuple[dict[str, list[str]], bytes],
        tail: dict[str, Any],
    ) -> bytes:
        # `features` spliced in pre-encoded.
        return b"".join(
            (
                b'{"jsonrpc":"2.0","id":',
                orjson.dumps(request_id),
                b',"result":',
                dumps(head)[:-1],
                b',"features":',
                features[1],
                b",",
                dumps(tail)[1:],
                b"}",
            )
        )


JSONRPC = JsonRpcCodec()
