"""Fixtures every test package may use: one real nats-server with JetStream per session.

Suites isolate themselves by a unique subject prefix (streams and buckets carry it), so a
single server serves them all and each package does not start its own. Every prefix reserves
its streams' `max_bytes` (about 5 GiB), so the server's file-store limit is set far above the
default share of the disk; the tests write only kilobytes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Every service the tests build in-process or start through the launcher (which passes its
# environment on) checks each RPC reply and run event against its declared model: a reply
# that breaks its model fails the test with INTERNAL_ERROR and an error in the log.
os.environ.setdefault("AISOPOD_VALIDATE_REPLIES", "1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    store = tmp_path_factory.mktemp("js")
    config = store / "nats.conf"
    config.write_text(
        f'listen: "127.0.0.1:{port}"\n'
        f'jetstream {{ store_dir: "{store}", max_file_store: 10T, max_memory_store: 1G }}\n'
    )
    binary = Path(sys.executable).parent / "nats-server"
    proc = subprocess.Popen(
        [str(binary), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.02)
    else:
        proc.terminate()
        raise RuntimeError(f"nats-server did not listen on {port} within 10 s")
    yield f"nats://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)
