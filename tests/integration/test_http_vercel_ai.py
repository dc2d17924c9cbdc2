"""The Vercel AI SDK's OpenAI Responses provider (`@ai-sdk/openai` `.responses()`, with
`generateText` and `streamText` from `ai`), unchanged, against the real stack. It sends the
short message form (`{role, content}` without `type`). The script and its pinned npm
dependencies live in tests/clients/vercel-ai (installed by scripts/bootstrap.sh)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CLIENT = Path(__file__).resolve().parents[1] / "clients" / "vercel-ai"


def _run(stack, model: str, first: str, second: str) -> dict:
    node = shutil.which("node")
    if node is None or not (CLIENT / "node_modules" / "ai").is_dir():
        pytest.fail("node and tests/clients/vercel-ai/node_modules are needed: run bootstrap")
    env = {
        **os.environ,
        "AISOPOD_BASE_URL": stack.http_url + "/v1",
        "AISOPOD_TOKEN": stack.admin_token,
        "AISOPOD_MODEL": model,
    }
    done = subprocess.run(
        [node, "responses.mjs", first, second],
        cwd=CLIENT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("model", ["aisopod/main", "fake/fake-small"])
def test_generate_text_and_stream_text(stack, model: str) -> None:
    word = uuid.uuid4().hex[:8]
    result = _run(stack, model, f"hello {word}", f"one two three four five six {word}")
    generated, streamed = result["generated"], result["streamed"]
    assert generated["text"] == f"echo: hello {word}"
    assert generated["finishReason"] == "stop" and generated["outputTokens"] == 3
    assert generated["responseId"].startswith("resp_")
    assert streamed["text"] == f"echo: one two three four five six {word}"
    assert streamed["finishReason"] == "stop"
    assert streamed["deltas"] >= 2  # it streamed (the echo provider paces its chunks too)
