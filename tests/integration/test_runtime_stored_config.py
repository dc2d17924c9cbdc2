"""The stack restarts on a stored configuration that fails validation, and can repair it.

Found in use: a provider `apiKey` of `sk-…` (the docs' placeholder, not ASCII) was stored by
a version without today's validation; after any restart the runtime failed at every start,
`/status` answered 503, and since the runtime serves `config.*`, nothing could fix it. Here
the document is written straight into KV, as that version or a hand edit would, on a
private stack (it restarts the whole stack), which is then stopped and started again, and
repaired with the CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aisopod import codec
from aisopod.config.store import CONFIG_KEY
from aisopod.settings import ServiceSettings
from aisopod.state import bucket_name
from tests.support.private_stack import RestartableStack

pytestmark = pytest.mark.integration

BROKEN = {
    "id": "broken",
    "kind": "openai",
    # Port 9 (discard) refuses: once repaired, a run reaches the provider and fails there.
    "baseUrl": "http://127.0.0.1:9/v1",
    "apiKey": "sk-\u2026",
    "models": [{"id": "gpt-4o-mini"}],
    "maxRetries": 0,
    "discoverModels": False,
}


class Stack(RestartableStack):
    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir, "--replicas", "1", "--scale", "runtime=1")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *(sys.executable, "-m", "aisopod_ops.cli", *args),
                *("--url", self.info["http_url"], "--token", self.info["admin_token"]),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.info["http_url"],
            headers={"Authorization": f"Bearer {self.info['admin_token']}"},
            timeout=30,
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("storedconfig") / "state"
    state.mkdir()
    running = Stack(state)
    running.start()
    try:
        yield running
    finally:
        running.stop()


async def write_bad_document(stack: Stack) -> None:
    """The stored document plus the broken provider, bypassing validation."""
    bus = await stack.bus()
    try:
        kv = await bus.js.key_value(bucket_name(ServiceSettings().subject_prefix, "config"))
        document = codec.loads((await kv.get(CONFIG_KEY)).value)
        document["models"]["providers"].append(BROKEN)
        await kv.put(CONFIG_KEY, codec.canonical(document))
    finally:
        await bus.close()


def run_once(http: httpx.Client, model: str) -> httpx.Response:
    return http.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
    )


async def test_the_stack_restarts_on_a_bad_stored_config_and_config_patch_repairs_it(
    stack: Stack,
) -> None:
    await write_bad_document(stack)
    stack.stop()
    stack.start()  # before: the runtime failed at every start, the stack never got ready

    with stack.http() as http:
        status = http.get("/status")
        assert status.status_code == 200, status.text
        unavailable = status.json()["internals"]["config"]["unavailableProviders"]
        assert "apiKey" in unavailable["broken"]
        # The other providers still answer (the default agent runs on echo).
        assert run_once(http, "aisopod/main").status_code == 200
        refused = run_once(http, "broken/gpt-4o-mini")
        assert refused.status_code == 503, refused.text
        assert "broken" in refused.text and "apiKey" in refused.text

    # The operator's way: `aisopod config get` says what is wrong, `config patch` fixes it.
    got = stack.cli("config", "get")
    assert got.returncode == 0, got.stderr
    assert "not in use" in got.stderr and "models.providers[1].apiKey" in got.stderr
    providers = json.loads(got.stdout)["config"]["models"]["providers"]
    fixed = [*providers, {**BROKEN, "apiKey": "sk-repaired"}]
    patched = stack.cli("config", "patch", json.dumps({"models": {"providers": fixed}}), "--apply")
    assert patched.returncode == 0, patched.stderr
    again = stack.cli("config", "get")
    assert again.returncode == 0 and "not in use" not in again.stderr, again.stderr

    with stack.http() as http:
        status = http.get("/status").json()
        assert "unavailableProviders" not in status["internals"]["config"]
        # Built now (`--apply` returned once every instance ran it): the request
        # reaches the provider, whose port refuses, instead of being refused here.
        reached = run_once(http, "broken/gpt-4o-mini")
        assert "is unavailable" not in reached.text, reached.text
        assert "connect" in reached.text.lower(), reached.text
