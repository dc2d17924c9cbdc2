"""Fuzzing the frames a client may send (docs/quality.md, Bad input): no crash, every request
answered with a documented error or a result, the connection and the service keep serving.

Hypothesis generates the frames (bounded: 1000 cases); they go over one real socket in
order, each followed by a `health` probe that must be answered.
"""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aisopod.catalogue import CATALOGUE
from tests.support.ws_client import WsClient

CASES = 1000
DOCUMENTED = {
    -32700,
    -32600,
    -32601,
    -32602,
    -32603,
    -32001,
    -32003,
    -32004,
    -32008,
    -32009,
    -32011,
    -32013,
    -32029,
}

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
# Connection-local methods and a few forwarded ones, plus nonsense.
_methods = st.sampled_from(
    [
        "health",
        "subscribe",
        "unsubscribe",
        "system-presence",
        "node.list",
        "node.describe",
        "node.invoke",
        "node.event",
        "connect",
        "chat.send",
        "config.get",
        "nope",
        "",
    ]
) | st.text(max_size=12)
_request = st.fixed_dictionaries(
    {"method": _methods},
    optional={"jsonrpc": st.sampled_from(["2.0", "1.0", 2]), "id": _scalars, "params": _json},
)
_frames = st.one_of(
    _request.map(orjson.dumps),
    st.lists(_request | _json, max_size=5).map(orjson.dumps),
    _json.map(orjson.dumps),
    st.binary(max_size=40),
    st.text(max_size=40).map(str.encode),
)


def _collect() -> list[bytes]:
    frames: list[bytes] = []

    @settings(
        max_examples=CASES, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(_frames)
    def collect(frame: bytes) -> None:
        frames.append(frame)

    collect()
    return frames


async def test_fuzzed_frames_are_answered_and_the_socket_keeps_serving(gw) -> None:
    assert "node.invoke" in CATALOGUE
    frames = _collect()
    async with await WsClient.connect(gw.url, token="admin-token", subscribe=["none.*"]) as ws:
        for index, frame in enumerate(frames):
            try:
                text = frame.decode()
            except UnicodeDecodeError:
                await ws.send_raw(frame)  # a binary frame
            else:
                await ws.send_raw(text)
            probe = await ws.request("health", timeout=10)
            # Answered: a result, or the per-connection rate limit the fuzzing runs into.
            assert "result" in probe or probe["error"]["code"] == -32029, (index, frame, probe)
            while not ws._raw.empty():
                reply = ws._raw.get_nowait()
                for item in reply if isinstance(reply, list) else [reply]:
                    if "error" in item:
                        assert item["error"]["code"] in DOCUMENTED, (frame, item)
                        assert "Traceback" not in item["error"]["message"]
            # Requests with our probe's id shape would steal its reply; ids are random
            # scalars, so a collision is just an early reply, caught by the probe anyway.
    async with await WsClient.connect(gw.url, token="admin-token") as other:
        assert (await other.call("health"))["services"]
