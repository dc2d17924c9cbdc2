"""The Control UI's static files served from Python: the `--small` profile's stand-in for
Caddy (services/static-ui/Caddyfile), hosted in the one services process.

Caddy costs a small host ~50 MiB of RSS (its binary's pages) to serve a few files a person
loads once per visit; this ASGI app costs the services process ~2 MiB. It keeps the
Caddyfile's rules, so the browser sees the same thing:

- our paths get the security headers (CSP, frame denial, nosniff, no referrer); OpenClaw's
  bundle under `/openclaw/` keeps its own (its inline scripts need them);
- `/assets/*` (hashed build output) is cached for a year, and a missing one is a 404;
- a missing path that looks like a file (`.js`, `.css`, `.png`, …) is a 404 too, never the
  app shell served as JavaScript;
- everything else is the file, or `index.html` for the SPA's routes, revalidated each time
  (`no-cache`; ETag and Last-Modified answer 304);
- the API's paths, which reach this server only through Traefik's `http-api` failover while
  no http-api is ready (a draining one), get 503 in the API's own error shapes with a
  request id;
- text bodies over 1 KiB are gzipped when the client accepts it.

What Caddy does and this does not: zstd, byte ranges, precompressed sidecar files. None of
them matters for a UI of a few hundred KiB on a small host.
"""

from __future__ import annotations

import email.utils
import gzip
import mimetypes
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SECURITY_HEADERS = (
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; connect-src 'self' ws: wss:; "
        "img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'; object-src 'none'",
    ),
)
OPENCLAW_HEADERS = (("x-content-type-options", "nosniff"), ("referrer-policy", "no-referrer"))
OPENCLAW_PREFIX = "/openclaw/"
# The Control UI of OpenClaw reads this before it connects (Caddyfile, same body).
OPENCLAW_UI_CONFIG = (
    b'{"basePath":"/openclaw","assistantName":"aisopod","assistantAvatar":null,'
    b'"assistantAgentId":"main","serverVersion":null,"serverBuildId":null,'
    b'"embedSandbox":"strict","allowExternalEmbedUrls":false,'
    b'"automaticallyFetchFavicons":false,"communityInvite":null,"terminalEnabled":false,'
    b'"cliAgentsEnabled":false,"pluginAssetsRequireAuth":false,"pluginFrameGrants":[]}'
)
ASSET_SUFFIXES = frozenset(
    [
        ".js",
        ".mjs",
        ".css",
        ".map",
        ".svg",
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".webp",
        ".avif",
        ".ico",
        ".woff",
        ".woff2",
        ".ttf",
        ".otf",
        ".eot",
        ".json",
        ".txt",
        ".xml",
        ".wasm",
        ".webmanifest",
    ]
)
API_OPENAI = ("/v1",)
API_PLAIN = ("/hooks", "/tools", "/status", "/canvas", "/a2ui")
API_EXACT = ("/health", "/ready")
API_DOWN = "the API is unavailable: no http-api replica is up; retry shortly"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")
GZIP_MIN_BYTES = 1024
IMMUTABLE = "public, max-age=31536000, immutable"


def _under(prefixes: tuple[str, ...], path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


class ControlUi:
    """ASGI app: GET/HEAD of the built UI in `root`, OpenClaw's bundle at `/openclaw/`."""

    def __init__(self, root: Path, openclaw_root: Path | None = None) -> None:
        self.root = root.resolve()
        self.openclaw_root = openclaw_root.resolve() if openclaw_root else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        reply = self.answer(scope["method"], scope["path"], headers)
        await reply.send(send, head_only=scope["method"] == "HEAD")

    # -- routing, as the Caddyfile's handle blocks ---------------------------------------
    def answer(self, method: str, path: str, headers: dict[str, str]) -> Reply:
        if _under(API_OPENAI, path) or _under(API_PLAIN, path) or path in API_EXACT:
            return self._api_down(path, headers)
        if method not in ("GET", "HEAD"):
            return _error(405, "Method Not Allowed")
        if path == OPENCLAW_PREFIX + "control-ui-config.json":
            reply = Reply(200, OPENCLAW_UI_CONFIG, "application/json")
            reply.headers.append(("cache-control", "no-store"))
            return reply
        if path.startswith(OPENCLAW_PREFIX):
            return self._openclaw(path[len(OPENCLAW_PREFIX) - 1 :], headers)
        file = _inside(self.root, path)
        if path.startswith("/assets/"):
            if file is None:
                return _error(404, "Not Found")
            return _file(file, headers, IMMUTABLE, SECURITY_HEADERS)
        if file is None and Path(path).suffix.lower() in ASSET_SUFFIXES:
            return _error(404, "Not Found")
        target = file or _inside(self.root, "/index.html")
        if target is None:
            return _error(404, "Not Found")
        return _file(target, headers, "no-cache", SECURITY_HEADERS)

    def _openclaw(self, path: str, headers: dict[str, str]) -> Reply:
        if self.openclaw_root is None:
            return _error(404, "Not Found")
        target = _inside(self.openclaw_root, path) or _inside(self.openclaw_root, "/index.html")
        if target is None:
            return _error(404, "Not Found")
        return _file(target, headers, "no-cache", OPENCLAW_HEADERS)

    @staticmethod
    def _api_down(path: str, headers: dict[str, str]) -> Reply:
        if _under(API_OPENAI, path):
            body = (
                b'{"error":{"message":"' + API_DOWN.encode() + b'","type":"service_unavailable",'
                b'"param":null,"code":"service_unavailable"}}'
            )
        else:
            body = (
                b'{"ok":false,"error":{"type":"unavailable","message":"'
                + API_DOWN.encode()
                + b'"}}'
            )
        reply = Reply(503, body, "application/json")
        given = headers.get("x-request-id", "")
        request_id = given if SANE_REQUEST_ID.fullmatch(given) else str(uuid.uuid4())
        reply.headers += [
            ("cache-control", "no-store"),
            ("retry-after", "1"),
            ("x-request-id", request_id),
            *SECURITY_HEADERS,
        ]
        return reply


class Reply:
    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        self.status = status
        self.body = body
        self.headers: list[tuple[str, str]] = [("content-type", content_type)]

    async def send(self, send: Send, head_only: bool) -> None:
        headers = [*self.headers, ("content-length", str(len(self.body)))]
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": b"" if head_only else self.body})


def _inside(root: Path, url_path: str) -> Path | None:
    """The regular file `url_path` names under `root`, or None (missing, a directory, or
    outside `root` through `..` or a symlink)."""
    relative = url_path.lstrip("/")
    if "\x00" in relative:
        return None
    candidate = (root / relative).resolve()
    if candidate != root and root not in candidate.parents:
        return None
    return candidate if candidate.is_file() else None


def _file(
    path: Path, headers: dict[str, str], cache: str, extra: tuple[tuple[str, str], ...]
) -> Reply:
    stat = path.stat()
    etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type == "application/javascript":
        content_type += "; charset=utf-8"
    common = [("etag", etag), ("last-modified", modified), ("cache-control", cache), *extra]
    if headers.get("if-none-match") == etag:
        reply = Reply(304, b"", content_type)
        reply.headers = common  # a 304 has no body, so no type or length to speak of
        return reply
    body = path.read_bytes()
    reply = Reply(200, body, content_type)
    reply.headers += common
    if content_type.startswith(COMPRESSIBLE):
        reply.headers.append(("vary", "Accept-Encoding"))
        accepted = {e.split(";")[0].strip() for e in headers.get("accept-encoding", "").split(",")}
        if "gzip" in accepted and len(body) > GZIP_MIN_BYTES:
            reply.body = gzip.compress(body, compresslevel=6, mtime=0)
            reply.headers.append(("content-encoding", "gzip"))
    return reply


def _error(status: int, text: str) -> Reply:
    """Every error page, OpenClaw's included, has our headers (Caddyfile `handle_errors`)."""
    reply = Reply(status, f"{status} {text}".encode(), "text/plain; charset=utf-8")
    reply.headers += [("cache-control", "no-store"), *SECURITY_HEADERS]
    return reply


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
