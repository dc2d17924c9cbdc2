"""Streamed responses through the edge arrive whole: the real Traefik binary, the real
rendered configuration (the API route's whole middleware chain, the edge proof among
them), a backend that answers a streamed POST as early as it can.

The cut this guards against (docs/http-api.md, "Streams cut after their head"): with Go's
standard reverse proxy, a service that sends the head of a streamed response before the
proxy's transport has read the client's body to its end races the HTTP/1 server, which
closes that body when the head is flushed; the transport then drops the backend
connection and the client gets a `200` head and a cut body. The fast proxy reads the
whole body before it sends the request on, so the backend cannot answer early.

No timing: a run of streamed requests (bodies sent with their head, or in two writes)
that must all arrive complete, each backend having received the whole body.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from aisopod_ops.launcher import traefik
from aisopod_ops.launcher.edgesync import CORS_FILE, EDGE_PROOF_FILE, ROUTES_FILE

pytestmark = pytest.mark.integration

TOKEN = "stream-token"
EVENTS = 20


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StreamingBackend:
    """A raw HTTP/1.1 server: answers `/v1/*` with an SSE head as soon as it has the
    request head, then reads the body, then streams `EVENTS` events; anything else gets
    an empty 200."""

    port: int = 0
    bodies: list[int] = field(default_factory=list)
    # /v1/live/<id>: the first event, then nothing more until the client says it has it.
    heard: dict[str, asyncio.Event] = field(default_factory=dict)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.readuntil(b"\r\n\r\n")
                head, *lines = data.decode("latin-1").split("\r\n")
                headers = dict(
                    (k.strip().lower(), v.strip())
                    for k, _, v in (line.partition(":") for line in lines if line)
                )
                path = head.split(" ")[1]
                length = int(headers.get("content-length", "0"))
                if not path.startswith("/v1/"):
                    await self._empty(writer, reader, length)
                    continue
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
                )
                await writer.drain()
                body = await reader.readexactly(length)
                self.bodies.append(len(body))
                if path.startswith("/v1/live/"):
                    await self._live(writer, self.heard.setdefault(path, asyncio.Event()))
                    continue
                for n in range(EVENTS):
                    event = f"data: {json.dumps({'n': n, 'got': len(body)})}\n\n".encode()
                    writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                    await writer.drain()
                done = b"data: [DONE]\n\n"
                writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _live(self, writer: asyncio.StreamWriter, heard: asyncio.Event) -> None:
        first = b"data: first\n\n"
        writer.write(b"%x\r\n%s\r\n" % (len(first), first))
        await writer.drain()
        await heard.wait()
        last = b"data: [DONE]\n\n"
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(last), last))
        await writer.drain()

    async def _empty(
        self, writer: asyncio.StreamWriter, reader: asyncio.StreamReader, length: int
    ) -> None:
        if length:
            await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()


@dataclass
class Edge:
    url: str
    backend: StreamingBackend
    loop: asyncio.AbstractEventLoop


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    tmp = tmp_path_factory.mktemp("edge-stream")
    backend = StreamingBackend()
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(asyncio.start_server(backend.handle, "127.0.0.1", 0))
    backend.port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{backend.port}"
    up = traefik.Upstreams(ws_gateway=[url], http_api=[url], static_ui=[url])
    port, ping = _free_port(), _free_port()
    dynamic = tmp / "dynamic"
    dynamic.mkdir()
    routes = traefik.dynamic_config(up, entry_points=["web"])
    services = routes["http"]["services"]
    services["http-api"] = services.pop("http-api-replicas")  # no failover: nothing is down
    del services["http-api-down"]
    for service in services.values():
        service["loadBalancer"].pop("healthCheck", None)  # the raw backend has no /ready
    (dynamic / ROUTES_FILE).write_text(yaml.safe_dump(routes))
    (dynamic / CORS_FILE).write_text(yaml.safe_dump(traefik.cors_config([])))
    proof = traefik.edge_proof_config("streaming-edge-secret")
    (dynamic / EDGE_PROOF_FILE).write_text(yaml.safe_dump(proof))
    static = traefik.static_config(
        http_address=f"127.0.0.1:{port}",
        https_address=None,
        ping_address=f"127.0.0.1:{ping}",
        dynamic_dir=str(dynamic),
        trusted_ips=[],
    )
    (tmp / "traefik.yml").write_text(yaml.safe_dump(static))
    binary = Path(sys.executable).parent / "traefik"
    proc = subprocess.Popen(
        [str(binary), f"--configFile={tmp / 'traefik.yml'}"],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "traefik.log", "wb"),  # noqa: SIM115
    )
    edge_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                headers = {"authorization": f"Bearer {TOKEN}"}
                # 404 until Traefik has loaded the routes
                if httpx.get(f"{edge_url}/v1/ping", headers=headers, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError((tmp / "traefik.log").read_text()[-2000:])
            time.sleep(0.05)
        backend.bodies.clear()
        yield Edge(edge_url, backend, loop)
    finally:
        proc.terminate()
        proc.wait(20)
        # Handlers still waiting on a kept-alive connection end here, on the running loop:
        # left pending, they were finalised later by the garbage collector, after the loop
        # had gone (a PytestUnraisableExceptionWarning in whichever test ran then).
        asyncio.run_coroutine_threadsafe(_close_server(server), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _close_server(server: asyncio.Server) -> None:
    server.close()
    handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in handlers:
        task.cancel()
    await asyncio.gather(*handlers, return_exceptions=True)
    await server.wait_closed()


def _post(port: int, body: bytes, split: bool) -> bytes:
    """One streamed POST on a fresh connection; the body in one write with the head, or
    (split) in two writes: the head and half the body, then the rest."""
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: edge\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {TOKEN}\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        if split:
            sock.sendall(head + body[: len(body) // 2])
            sock.sendall(body[len(body) // 2 :])
        else:
            sock.sendall(head + body)
        received = b""
        try:
            while not received.endswith(b"\r\n0\r\n\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:  # a stream that never ends is as cut as one that breaks
            return received + b" [no end within 30 s]"
    return received


def _complete(response: bytes, body_length: int) -> bool:
    head, _, rest = response.partition(b"\r\n\r\n")
    return (
        head.startswith(b"HTTP/1.1 200")
        and rest.endswith(b"\r\n0\r\n\r\n")
        and rest.count(b"data: {") == EVENTS
        and f'"got": {body_length}'.encode() in rest
        and b"data: [DONE]" in rest
    )


def test_streamed_responses_through_the_edge_arrive_whole(edge: Edge) -> None:
    port = int(edge.url.rsplit(":", 1)[1])
    body = json.dumps({"model": "m", "stream": True, "messages": ["hello"]}).encode()
    cut = []
    for n in range(300):
        response = _post(port, body, split=n % 2 == 1)
        if not _complete(response, len(body)):
            cut.append((n, response[-400:]))
    assert not cut, f"{len(cut)} of 300 streamed responses were cut: {cut[:3]}"
    assert edge.backend.bodies.count(len(body)) >= 300


def test_events_reach_the_client_as_they_are_sent(edge: Edge) -> None:
    """SSE is streamed, not buffered to its end: the backend sends its second event only
    once the client has the first, so a proxy that held the stream back would never
    deliver it (the socket's timeout fails the test)."""
    port = int(edge.url.rsplit(":", 1)[1])
    path = "/v1/live/one"
    heard = asyncio.Event()
    edge.backend.heard[path] = heard
    body = b'{"stream":true}'
    head = (
        f"POST {path} HTTP/1.1\r\nhost: edge\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {TOKEN}\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + body)
        received = b""
        while b"data: first" not in received:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
        assert b"[DONE]" not in received
        edge.loop.call_soon_threadsafe(heard.set)
        while not received.endswith(b"\r\n0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    assert b"data: [DONE]" in received
