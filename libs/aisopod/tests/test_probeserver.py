"""The probe server of auth, ratelimit and runtime answers as their Starlette routes did:
bodies, status codes, headers, HEAD, 404/405, keep-alive, refusals, and uvicorn's
lifecycle (host and setup first, port last; stop closes the port, then the setup)."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from aisopod.host import STARTUP_FAILED_EXIT_CODE, ServiceHost
from aisopod.probeserver import MAX_HEAD, ProbeApp, ProbeServer
from aisopod.services import ServiceName
from aisopod.settings import ServiceSettings


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _host(nats_url: str, tmp_path: Path, drain_timeout_s: float = 2) -> ServiceHost:
    # The runtime seeds the configuration (CONFIG_WRITERS): a host of its own starts alone.
    settings = ServiceSettings(
        service=ServiceName.RUNTIME.value,
        host="127.0.0.1",
        port=_port(),
        instance="runtime-7",
        nats_url=nats_url,
        subject_prefix="p" + uuid.uuid4().hex[:8],
        state_dir=tmp_path,
        drain_timeout_s=drain_timeout_s,
    )
    return ServiceHost(settings, ServiceName.RUNTIME, "9.9.9")


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


async def _exchange(port: int, raw: bytes) -> bytes:
    """Send `raw`, read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data


Served = tuple[ServiceHost, dict[str, bool]]


@pytest.fixture
async def served(nats_url: str, tmp_path: Path) -> AsyncIterator[Served]:
    host = _host(nats_url, tmp_path)
    state = {"ready": True, "set_up": False, "torn_down": False}

    @asynccontextmanager
    async def setup(host: ServiceHost) -> AsyncIterator[None]:
        host.add_ready_check("flag", lambda: state["ready"])
        state["set_up"] = True
        yield
        state["torn_down"] = True

    server = ProbeServer(ProbeApp(host, setup))
    task = asyncio.create_task(server.serve())
    await _until(lambda: _listening(host.settings.port), "the probe port opens")
    assert state["set_up"]  # the setup ran before the port opened
    yield host, state
    server.should_exit = True
    await asyncio.wait_for(task, 15)
    assert state["torn_down"]
    assert not await _listening(host.settings.port)


async def test_probe_answers_as_the_routes_did(served: Served) -> None:
    host, state = served
    base = f"http://127.0.0.1:{host.settings.port}"
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        for path in ("/health", "/healthz", "/health?x=1"):
            response = await client.get(path)
            assert response.status_code == 200, path
            assert response.json() == {
                "ok": True,
                "service": "runtime",
                "version": "9.9.9",
                "instance": "runtime-7",
            }
            assert response.headers["content-type"] == "application/json"
            assert response.headers["cache-control"] == "no-store"
            assert response.headers.get_list("x-content-type-options") == ["nosniff"]
            assert response.headers.get_list("referrer-policy") == ["no-referrer"]
            assert "date" in response.headers and "server" not in response.headers
        for path in ("/ready", "/readyz"):
            response = await client.get(path)
            assert response.status_code == 200
            assert response.json() == {"ready": True, "reasons": []}
        state["ready"] = False
        response = await client.get("/ready")
        assert response.status_code == 503
        assert response.json() == {"ready": False, "reasons": ["flag"]}
        assert response.headers["cache-control"] == "no-store"
        state["ready"] = True

        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"] == CONTENT_TYPE_LATEST
        assert "# TYPE aisopod_ready gauge" in metrics.text

        head = await client.head("/health")
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) == len((await client.get("/health")).content)

        wrong = await client.post("/health", content=b"{}")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD"
        missing = await client.get("/docs")
        assert missing.status_code == 404 and missing.text == "Not Found"
        assert missing.headers.get_list("x-content-type-options") == ["nosniff"]


async def test_keep_alive_and_close(served: Served) -> None:
    host, _ = served
    port = host.settings.port
    # Two requests on one connection (pipelined), the second asking to close.
    data = await _exchange(
        port,
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert data.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert data.count(b"Connection: close\r\n") == 1
    # HTTP/1.0 closes unless asked to keep the connection.
    data = await _exchange(port, b"GET /health HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" in data


async def test_bad_requests_are_refused_and_closed(
    served: Served,
) -> None:
    host, _ = served
    port = host.settings.port
    cases = [
        (b"NONSENSE\r\n\r\n", b"HTTP/1.1 400 "),
        (b"GET /health HTTP/1.1\r\nbroken header\r\n\r\n", b"HTTP/1.1 400 "),
        (b"GET /health HTTP/1.1\r\nContent-Length: x\r\n\r\n", b"HTTP/1.1 400 "),
        (b"GET /health HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", b"HTTP/1.1 413 "),
        (b"POST /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"HTTP/1.1 501 "),
        (b"GET /health HTTP/1.1\r\nX: " + b"a" * (MAX_HEAD + 10) + b"\r\n\r\n", b"HTTP/1.1 431 "),
    ]
    for raw, status in cases:
        data = await _exchange(port, raw)
        assert data.startswith(status), (raw[:40], data[:60])
        assert b"Connection: close" in data and b"X-Content-Type-Options: nosniff" in data
    # A body announced by Content-Length is read and dropped; the connection goes on.
    data = await _exchange(
        port,
        b"GET /health HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    assert data.count(b"HTTP/1.1 200 OK\r\n") == 2


async def test_a_failed_start_is_logged_and_never_opens_the_port(
    nats_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    host = _host(nats_url, tmp_path)

    @asynccontextmanager
    async def refuse(_: ServiceHost) -> AsyncIterator[None]:
        raise RuntimeError("refused to start")
        yield

    server = ProbeServer(ProbeApp(host, refuse))
    with caplog.at_level(logging.ERROR, logger="aisopod.probes"):
        await asyncio.wait_for(server.serve(), 20)
    assert "startup failed" in caplog.text
    assert not server.started  # what `run_server` reads to exit non-zero
    assert not await _listening(host.settings.port)


_REFUSING_SERVICE = """
import sys
from contextlib import asynccontextmanager
from aisopod.host import ServiceHost
from aisopod.probeserver import ProbeApp, serve
from aisopod.services import ServiceName
from aisopod.settings import ServiceSettings

@asynccontextmanager
async def refuse(_):
    raise RuntimeError("refused to start")
    yield

settings = ServiceSettings(
    service="runtime", host="127.0.0.1", port=0, nats_url=sys.argv[1],
    subject_prefix=sys.argv[2], state_dir=sys.argv[3],
)
host = ServiceHost(settings, ServiceName.RUNTIME, "9.9.9")
if sys.argv[4] == "probe":
    serve(host, ProbeApp(host, refuse))
else:  # an ASGI service (http-api) under uvicorn, whose lifespan runs the setup
    from aisopod.app import create_app, serve as serve_asgi
    serve_asgi(host, create_app(host, refuse))
"""


@pytest.mark.parametrize("server", ["probe", "uvicorn"])
async def test_a_process_whose_start_failed_exits_non_zero(
    nats_url: str, tmp_path: Path, server: str
) -> None:
    # As a service process runs (`serve` → `run_server`): a supervisor must see the failure.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _REFUSING_SERVICE,
        nats_url,
        "p" + uuid.uuid4().hex[:8],
        str(tmp_path),
        server,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == STARTUP_FAILED_EXIT_CODE, stderr.decode()
    assert b"startup failed" in stderr  # uvicorn: "Application startup failed"


async def test_stop_closes_idle_connections_at_once(nats_url: str, tmp_path: Path) -> None:
    host = _host(nats_url, tmp_path)
    server = ProbeServer(ProbeApp(host))
    task = asyncio.create_task(server.serve())
    await _until(lambda: _listening(host.settings.port), "the probe port opens")
    reader, writer = await asyncio.open_connection("127.0.0.1", host.settings.port)
    writer.write(b"GET /health HTTP/1.1\r\n\r\n")
    await writer.drain()
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    server.should_exit = True  # the connection is idle (kept alive): closed, not waited for
    await asyncio.wait_for(task, 10)
    writer.close()


async def test_stop_waits_for_an_answer_under_way_not_for_the_drain_timeout(
    nats_url: str, tmp_path: Path
) -> None:
    # A drain timeout far beyond the test's deadline: the stop must end with the answer.
    host = _host(nats_url, tmp_path, drain_timeout_s=600)
    server = ProbeServer(ProbeApp(host))
    task = asyncio.create_task(server.serve())
    await _until(lambda: _listening(host.settings.port), "the probe port opens")
    reader, writer = await asyncio.open_connection("127.0.0.1", host.settings.port)
    writer.write(b"GET /health HTTP/1.1\r\nContent-Length: 4\r\n\r\nab")
    await writer.drain()

    async def reading_the_body() -> bool:
        return bool(server._connections) and not server._idle

    await _until(reading_the_body, "the server reads the request's body")
    server.should_exit = True  # a request under way: its answer is still given
    writer.write(b"cd")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 20)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" in answer
    await asyncio.wait_for(task, 20)
    writer.close()


async def test_force_exit_ends_a_stalled_request(nats_url: str, tmp_path: Path) -> None:
    host = _host(nats_url, tmp_path, drain_timeout_s=600)
    server = ProbeServer(ProbeApp(host))
    task = asyncio.create_task(server.serve())
    await _until(lambda: _listening(host.settings.port), "the probe port opens")
    _, writer = await asyncio.open_connection("127.0.0.1", host.settings.port)
    writer.write(b"GET /health HTTP/1.1\r\nContent-Length: 4\r\n\r\nab")  # never finished
    await writer.drain()
    server.should_exit = True
    server.force_exit = True  # a second signal: stop now
    await asyncio.wait_for(task, 20)
    writer.close()
