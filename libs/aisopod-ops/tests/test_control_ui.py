"""The Control UI's static server of `--small` (launcher/control_ui.py) keeps the
Caddyfile's rules: headers, caching, 404s for missing files, the SPA fallback, OpenClaw's
bundle and the API-down answers."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path

import httpx
import pytest

from aisopod_ops.launcher.control_ui import ControlUi

CSP = "content-security-policy"


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    ui = tmp_path / "dist"
    (ui / "assets").mkdir(parents=True)
    (ui / "index.html").write_text("<!doctype html><title>aisopod</title>")
    (ui / "assets" / "index-abc.js").write_text("console.log('ui');\n" * 200)
    (ui / "favicon.svg").write_text("<svg/>")
    openclaw = tmp_path / "openclaw"
    openclaw.mkdir()
    (openclaw / "index.html").write_text("<!doctype html><title>openclaw</title>")
    (tmp_path / "secret.txt").write_text("not for the web")
    return ui, openclaw


def get(app: ControlUi, path: str, method: str = "GET", **headers: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ui") as client:
            return await client.request(method, path, headers=headers)

    return asyncio.run(go())


def test_app_shell_and_spa_routes_revalidate_with_security_headers(
    roots: tuple[Path, Path],
) -> None:
    app = ControlUi(*roots)
    shell = get(app, "/")
    assert shell.status_code == 200
    assert "aisopod" in shell.text
    assert shell.headers["cache-control"] == "no-cache"
    assert shell.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in shell.headers[CSP]
    assert shell.headers["content-type"] == "text/html; charset=utf-8"
    route = get(app, "/sessions/main")
    assert route.text == shell.text
    again = get(app, "/", **{"If-None-Match": shell.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    head = get(app, "/", method="HEAD")
    assert head.status_code == 200
    assert head.content == b""


def test_assets_are_immutable_and_missing_files_are_404(roots: tuple[Path, Path]) -> None:
    app = ControlUi(*roots)
    asset = get(app, "/assets/index-abc.js")
    assert asset.status_code == 200
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    for path in ("/assets/index-gone.js", "/assets/anything", "/logo.png", "/app.css"):
        missing = get(app, path)
        assert missing.status_code == 404, path
        assert missing.text == "404 Not Found"
        assert missing.headers["cache-control"] == "no-store"
        assert missing.headers["x-content-type-options"] == "nosniff"
    assert get(app, "/favicon.svg").headers["content-type"] == "image/svg+xml"


def test_nothing_outside_the_root_is_served(roots: tuple[Path, Path]) -> None:
    app = ControlUi(*roots)
    for path in ("/../secret.txt", "/assets/../../secret.txt", "/%2e%2e/secret.txt"):
        reply = app.answer("GET", path, {})
        assert b"not for the web" not in reply.body, path
    assert app.answer("GET", "/../secret.txt", {}).status == 404


def test_text_is_gzipped_when_the_client_accepts_it(roots: tuple[Path, Path]) -> None:
    app = ControlUi(*roots)
    reply = app.answer("GET", "/assets/index-abc.js", {"accept-encoding": "gzip, br"})
    assert ("content-encoding", "gzip") in reply.headers
    assert gzip.decompress(reply.body) == (roots[0] / "assets" / "index-abc.js").read_bytes()
    plain = app.answer("GET", "/assets/index-abc.js", {})
    assert ("content-encoding", "gzip") not in plain.headers


def test_api_paths_answer_503_in_the_apis_shapes(roots: tuple[Path, Path]) -> None:
    app = ControlUi(*roots)
    openai = get(app, "/v1/chat/completions", method="POST", **{"X-Request-Id": "req-1"})
    assert openai.status_code == 503
    assert openai.json()["error"]["code"] == "service_unavailable"
    assert openai.headers["x-request-id"] == "req-1"
    assert openai.headers["retry-after"] == "1"
    plain = get(app, "/hooks/agent", method="POST", **{"X-Request-Id": "bad id!"})
    assert plain.status_code == 503
    assert plain.json()["error"]["type"] == "unavailable"
    assert plain.headers["x-request-id"] != "bad id!"
    assert get(app, "/health").status_code == 503
    assert get(app, "/", method="POST").status_code == 405


def test_openclaw_bundle_keeps_its_own_headers(roots: tuple[Path, Path]) -> None:
    app = ControlUi(*roots)
    config = get(app, "/openclaw/control-ui-config.json")
    assert json.loads(config.text)["basePath"] == "/openclaw"
    page = get(app, "/openclaw/chat")
    assert "openclaw" in page.text
    assert CSP not in page.headers
    assert page.headers["cache-control"] == "no-cache"
    without = ControlUi(roots[0])
    assert get(without, "/openclaw/chat").status_code == 404
