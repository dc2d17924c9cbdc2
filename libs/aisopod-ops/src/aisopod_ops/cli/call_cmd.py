"""`aisopod call <method> [--params JSON]`: one RPC through the gateway's WebSocket.

A client of docs/protocol/websocket.md: wait for `connect.challenge`, send `connect` with the admin
token (from `<state dir>/secrets/admin-token` unless given), send the request, print the
result as JSON. The gateway URL comes from `--url` or the running stack's record
(`<state dir>/stack.json`). `GatewayClient` is shared by `aisopod config` and `aisopod logs`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from aisopod_ops.launcher.paths import repo_root

PROTOCOL = 1


class GatewayError(Exception):
    """An error reply (`code`, `message`, `data`) or a failed connection (code None)."""

    def __init__(self, message: str, code: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="gateway URL (http(s):// or ws(s)://…/ws)")
    parser.add_argument("--token", default=None, help="default: the state dir's admin token")
    parser.add_argument("--state-dir", type=Path, default=None, help="default: ./var")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")


def ws_url(url: str) -> str:
    if url.startswith(("ws://", "wss://")):
        return url
    base = url.rstrip("/")
    base = "ws://" + base[7:] if base.startswith("http://") else base
    base = "wss://" + base[8:] if base.startswith("https://") else base
    return base if base.endswith("/ws") else base + "/ws"


def resolve(args: argparse.Namespace) -> tuple[str, str]:
    """(WebSocket URL, token) from the flags, the environment or the state dir."""
    state = args.state_dir or Path(os.environ.get("AISOPOD_STATE_DIR") or repo_root() / "var")
    url = args.url or os.environ.get("AISOPOD_URL")
    if url is None:
        record = state / "stack.json"
        if not record.exists():
            raise GatewayError(f"no --url and no running stack recorded in {record}")
        url = json.loads(record.read_text())["http_url"]
    token = args.token or os.environ.get("AISOPOD_TOKEN")
    if token is None:
        path = state / "secrets" / "admin-token"
        if not path.exists():
            raise GatewayError(f"no --token and no admin token at {path}")
        token = path.read_text().strip()
    return ws_url(url), token


class GatewayClient:
    """One authenticated operator connection; `call` is one request/response."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._ws: Any = None

    async def __aenter__(self) -> GatewayClient:
        from websockets.asyncio.client import connect  # the CLI's only WebSocket user

        try:
            self._ws = await asyncio.wait_for(
                connect(self.url, max_size=64 * 1024 * 1024, compression=None), self.timeout
            )
        except Exception as exc:
            raise GatewayError(f"cannot reach the gateway at {self.url}: {exc}") from exc
        try:
            await self._challenge()
            self.hello = await self.call(
                "connect",
                {
                    "minProtocol": PROTOCOL,
                    "maxProtocol": PROTOCOL,
                    "client": {
                        "id": "aisopod-cli",
                        "version": _version(),
                        "platform": sys.platform,
                        "mode": "cli",
                    },
                    "role": "operator",
                    "scopes": ["operator.admin"],
                    "auth": {"token": self.token},
                },
            )
        except BaseException:
            await self._ws.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def _frame(self) -> Any:
        try:
            raw = await asyncio.wait_for(self._ws.recv(), self.timeout)
        except TimeoutError:
            raise GatewayError("the gateway did not answer in time") from None
        except Exception as exc:  # closed: the close reason says why
            raise GatewayError(f"connection closed: {exc}") from exc
        return json.loads(raw)

    async def _challenge(self) -> None:
        while True:
            frame = await self._frame()
            if isinstance(frame, dict) and frame.get("method") == "connect.challenge":
                return

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        request_id = f"cli-{next(self._ids)}"
        request = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
        await self._ws.send(json.dumps(request))
        while True:
            frame = await self._frame()
            if not isinstance(frame, dict) or frame.get("id") != request_id:
                continue  # events and other frames
            if "error" in frame:
                error = frame["error"] or {}
                raise GatewayError(
                    str(error.get("message", "error")), error.get("code"), error.get("data")
                )
            return frame.get("result")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aisopod")
    except PackageNotFoundError:
        return "0"


def run_calls(args: argparse.Namespace, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    url, token = resolve(args)

    async def main() -> list[Any]:
        async with GatewayClient(url, token, timeout=args.timeout) as client:
            return [await client.call(method, params) for method, params in calls]

    return asyncio.run(main())


def report(exc: GatewayError) -> int:
    detail = f" {json.dumps(exc.data)}" if exc.data else ""
    code = f" ({exc.code})" if exc.code is not None else ""
    print(f"aisopod: {exc}{code}{detail}", file=sys.stderr)
    return 1


def register(commands: Any) -> None:
    call = commands.add_parser("call", help="call one gateway method over the WebSocket")
    call.add_argument("method", help="e.g. health, status, config.get")
    call.add_argument("--params", default="{}", help="JSON object, or @file")
    add_connection_args(call)
    call.set_defaults(handler=_call)


def load_json(text: str) -> Any:
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    return json.loads(text)


def _call(args: argparse.Namespace) -> int:
    try:
        params = load_json(args.params)
    except (OSError, ValueError) as exc:
        print(f"aisopod: --params: {exc}", file=sys.stderr)
        return 2
    if not isinstance(params, dict):
        print("aisopod: --params must be a JSON object", file=sys.stderr)
        return 2
    try:
        (result,) = run_calls(args, [(args.method, params)])
    except GatewayError as exc:
        return report(exc)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0
