"""The console script and the subprocess mode of `FakeUpstream`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from aisopod_fake_upstream import FakeUpstream

SRC = Path(__file__).resolve().parents[1] / "src"


def test_cli_writes_ready_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    argv = [
        sys.executable,
        "-m",
        "aisopod_fake_upstream",
        "--port",
        "0",
        "--ready-file",
        str(ready),
    ]
    process = subprocess.Popen([*argv, "--model", "m1"], env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not ready.exists():
            assert process.poll() is None, "fake upstream exited early"
            assert time.monotonic() < deadline, "no ready file"
            time.sleep(0.01)
        info = orjson.loads(ready.read_bytes())
        assert info["pid"] == process.pid
        assert info["url"].startswith("http://127.0.0.1:")
        assert info["url"].endswith("/v1")
        models = httpx.get(f"{info['url']}/models", trust_env=False).json()
        assert [model["id"] for model in models["data"]] == ["m1"]
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
    assert not ready.exists()


def test_subprocess_mode_with_api_key() -> None:
    with FakeUpstream(subprocess=True, api_key="sk-sub") as fake:
        assert fake.pid != os.getpid()
        with openai.OpenAI(base_url=fake.base_url, api_key="sk-sub", max_retries=0) as sdk:
            fake.program(status=500, times=1)
            with pytest.raises(openai.InternalServerError):
                sdk.chat.completions.create(
                    model="fake-small", messages=[{"role": "user", "content": "a"}]
                )
            completion = sdk.chat.completions.create(
                model="fake-small", messages=[{"role": "user", "content": "a"}]
            )
            assert completion.choices[0].message.content == "echo: a"
        assert len(fake.requests) == 2
        missing = httpx.post(f"{fake.base_url}/chat/completions", json={}, trust_env=False)
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "invalid_api_key"
        pid = fake.pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
