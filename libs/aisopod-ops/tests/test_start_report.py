"""A stack that does not come up says why: each child that was not ready, running or how it
ended (and what died before), what its probe answers now, and the tail of its log; and the
error a test sees (spawn.py) carries that report whole."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from aisopod_ops.launcher.ports import free_port
from aisopod_ops.launcher.probe import http_answer, http_probe
from aisopod_ops.launcher.process import Child, ChildSpec
from aisopod_ops.launcher.spawn import start_failure
from aisopod_ops.launcher.startreport import FAILED_MARKER, child_report, log_tail

DEADLINE_S = 60.0


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE_S:.0f}s: {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def not_ready_server() -> AsyncIterator[str]:
    """A /ready that answers 503 with its reasons, as a service waiting for NATS does."""
    body = b'{"ready":false,"reasons":["nats"]}'

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/ready"


async def test_http_answer_tells_the_status_and_the_reasons(not_ready_server: str) -> None:
    answer = await http_answer(not_ready_server)
    assert answer == f'GET {not_ready_server}: 503 {{"ready":false,"reasons":["nats"]}}'


async def test_http_answer_tells_why_nothing_answered() -> None:
    url = f"http://127.0.0.1:{free_port()}/ready"  # picked free, nothing listens
    answer = await http_answer(url)
    assert answer.startswith(f"GET {url}: ConnectionRefusedError")


def _child(tmp_path: Path, code: str, probe_url: str) -> Child:
    return Child(
        ChildSpec(
            name="http-api-2",
            argv=[sys.executable, "-c", code],
            env={},
            log_file=tmp_path / "logs" / "http-api-2.log",
            probe=http_probe(probe_url),
            probe_urls=(probe_url,),
        )
    )


async def test_a_child_that_keeps_dying_is_reported_with_its_exit_codes_and_log(
    tmp_path: Path,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/ready"
    child = _child(
        tmp_path,
        "import sys; print('starting'); print('OSError: [Errno 98] address already in use');"
        " sys.exit(3)",
        url,
    )
    await child.start()
    try:
        await _until(lambda: len(child.exit_codes) >= 2, "two exits of the child")
        report = await child_report(child)
    finally:
        await child.stop()
    first, answer, log_heading, *tail = report.splitlines()
    assert first.startswith("--- http-api-2: ")
    assert "died " in first and "(exit codes 3, 3" in first
    assert answer.startswith(f"  GET {url}: ConnectionRefusedError")
    assert log_heading == f"  last lines of {tmp_path / 'logs' / 'http-api-2.log'}:"
    assert "    OSError: [Errno 98] address already in use" in tail


async def test_a_running_child_that_is_not_ready_is_reported_with_its_reasons(
    tmp_path: Path, not_ready_server: str
) -> None:
    child = _child(
        tmp_path,
        "import time; print('waiting for NATS', flush=True); time.sleep(600)",
        not_ready_server,
    )
    await child.start()
    try:
        log_file = child.spec.log_file
        await _until(lambda: "waiting for NATS" in log_file.read_text(), "the child's line")
        report = await child_report(child)
        assert report.splitlines() == [
            f"--- http-api-2: running (pid {child.pid})",
            f'  GET {not_ready_server}: 503 {{"ready":false,"reasons":["nats"]}}',
            f"  last lines of {log_file}:",
            "    waiting for NATS",
        ]
    finally:
        await child.stop()


def test_log_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {n}\n" for n in range(1000)))
    assert log_tail(log, lines=3) == "line 997\nline 998\nline 999"
    assert log_tail(tmp_path / "missing.log").startswith("(no log: ")
    (tmp_path / "empty.log").write_text("")
    assert log_tail(tmp_path / "empty.log") == "(empty log)"


def test_the_start_error_carries_the_launchers_report_whole(tmp_path: Path) -> None:
    console = tmp_path / "state-launcher.log"
    report = "\n".join(f"    report line {n}" for n in range(400))  # far over 3000 chars
    console.write_text(f"{'x' * 5000}\n{FAILED_MARKER} not ready after 60s: http-api-2\n{report}\n")
    text = start_failure(console, tmp_path / "state")
    assert f"{FAILED_MARKER} not ready after 60s: http-api-2\n{report}\n" in text
    assert text.startswith("x" * 100) and len(text) < 3000 + len(report) + 100


def test_without_a_report_the_start_error_carries_every_childs_log(tmp_path: Path) -> None:
    console = tmp_path / "state-launcher.log"
    console.write_text("launcher started\n")
    logs = tmp_path / "state" / "logs"
    logs.mkdir(parents=True)
    (logs / "http-api-2.log").write_text("Traceback ...\nTimeoutError: nats: timeout\n")
    (logs / "nats.log").write_text("Server is ready\n")
    text = start_failure(console, tmp_path / "state")
    assert text.startswith("launcher started\n")
    assert "--- http-api-2.log:\nTraceback ...\nTimeoutError: nats: timeout" in text
    assert "--- nats.log:\nServer is ready" in text
