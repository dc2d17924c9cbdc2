"""The JSON-RPC 2.0 codec of the WebSocket protocol: frames in, items and bytes out."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aisopod import jsonrpc
from aisopod.bus import encode_reply
from aisopod.errors import Forbidden, InvalidRequest, ParseError
from aisopod.jsonrpc import Call, Rejected


def test_request_with_and_without_jsonrpc_member() -> None:
    full = jsonrpc.decode(b'{"jsonrpc":"2.0","id":"r1","method":"health","params":{}}')
    short = jsonrpc.decode(b'{"id":7,"method":"health"}')
    assert full == jsonrpc.Decoded((Call("health", {}, "r1"),))
    assert short.items == (Call("health", None, 7),)
    assert not full.batch


def test_notification_has_no_id_member() -> None:
    (item,) = jsonrpc.decode(b'{"jsonrpc":"2.0","method":"node.event","params":{"a":1}}').items
    assert isinstance(item, Call) and item.notification and item.id is None
    (null_id,) = jsonrpc.decode(b'{"id":null,"method":"health"}').items
    assert isinstance(null_id, Call) and not null_id.notification


def test_parse_error_is_answered_with_null_id() -> None:
    (item,) = jsonrpc.decode(b"{not json").items
    assert isinstance(item, Rejected) and isinstance(item.error, ParseError) and item.id is None
    frame = orjson.loads(jsonrpc.encode_error(item.id, item.error))
    assert frame == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": item.error.message, "data": {"code": "PARSE_ERROR"}},
    }


@pytest.mark.parametrize(
    "frame",
    [
        b"[]",
        b"42",
        b'"health"',
        b'{"id":1}',
        b'{"id":1,"method":""}',
        b'{"id":1,"method":3}',
        b'{"id":true,"method":"health"}',
        b'{"id":[1],"method":"health"}',
        b'{"jsonrpc":"1.0","id":1,"method":"health"}',
        b'{"id":1,"method":"health","params":"x"}',
    ],
)
def test_invalid_requests(frame: bytes) -> None:
    (item,) = jsonrpc.decode(frame).items
    assert isinstance(item, Rejected) and isinstance(item.error, InvalidRequest)


def test_invalid_request_keeps_a_usable_id() -> None:
    (item,) = jsonrpc.decode(b'{"jsonrpc":"1.0","id":"x","method":"health"}').items
    assert isinstance(item, Rejected) and item.id == "x"


def test_batch_mixes_calls_notifications_and_invalid_items() -> None:
    decoded = jsonrpc.decode(b'[{"id":1,"method":"a"},{"method":"b"},5]')
    assert decoded.batch
    first, second, third = decoded.items
    assert first == Call("a", None, 1)
    assert isinstance(second, Call) and second.notification
    assert isinstance(third, Rejected)


def test_encoders_produce_jsonrpc_frames() -> None:
    assert orjson.loads(jsonrpc.encode_result("r", {"ok": True})) == {
        "jsonrpc": "2.0",
        "id": "r",
        "result": {"ok": True},
    }
    error = orjson.loads(jsonrpc.encode_error(3, Forbidden("no", requiredScope="operator.write")))
    assert error["error"]["data"] == {"code": "FORBIDDEN", "requiredScope": "operator.write"}
    batch = orjson.loads(jsonrpc.encode_batch([jsonrpc.encode_result(1, 1), b'{"x":2}']))
    assert batch == [{"jsonrpc": "2.0", "id": 1, "result": 1}, {"x": 2}]
    event = orjson.loads(jsonrpc.encode_event("chat.event", 42, 1000, b'{"state":"delta"}'))
    assert event == {
        "jsonrpc": "2.0",
        "method": "chat.event",
        "params": {"seq": 42, "ts": 1000, "payload": {"state": "delta"}},
    }
    tick = orjson.loads(jsonrpc.encode_notification("tick", {"ts": 5}, 5))
    assert tick == {"jsonrpc": "2.0", "method": "tick", "params": {"ts": 5, "payload": {"ts": 5}}}


def test_splice_reply_equals_reencoding() -> None:
    result = {"config": {"a": [1, 2, {"b": None}]}, "hash": "h"}
    spliced = jsonrpc.splice_reply("id-1", encode_reply(result))
    assert spliced is not None
    assert orjson.loads(spliced) == {"jsonrpc": "2.0", "id": "id-1", "result": result}
    assert jsonrpc.splice_reply(1, b'{"error":{"code":-32004}}') is None


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_member = st.sampled_from(["jsonrpc", "id", "method", "params"]) | st.text(max_size=8)
_objects = st.dictionaries(_member, _json, max_size=5)


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.binary(max_size=64), _json.map(orjson.dumps), _objects.map(orjson.dumps)))
def test_decode_never_raises_and_every_item_is_answerable(frame: bytes) -> None:
    decoded = jsonrpc.decode(frame)
    assert decoded.items
    for item in decoded.items:
        if isinstance(item, Rejected):
            # Every rejection encodes to a valid JSON-RPC error frame.
            out = orjson.loads(jsonrpc.encode_error(item.id, item.error))
            assert out["jsonrpc"] == "2.0" and isinstance(out["error"]["code"], int)
        else:
            assert isinstance(item.method, str) and item.method
            assert item.params is None or isinstance(item.params, (dict, list))
