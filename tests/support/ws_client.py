"""A plain JSON-RPC 2.0 WebSocket client for tests and benchmarks (docs/protocol/websocket.md).

Real client behaviour, nothing stubbed: it connects with the `websockets` library, reads the
`connect.challenge`, sends `connect` (token, password, device token, or a Bearer header on
the upgrade; optionally an Ed25519 device proof over the nonce), and keeps reading in the
background: responses resolve their request by `id`, server events go to a queue.

    async with await WsClient.connect(stack.ws_url, token=stack.admin_token) as ws:
        health = await ws.call("health")
        await ws.call("subscribe", {"events": ["chat.*"]})
        event = await ws.next_event("chat.event", timeout=5)
        print(ws.last_seq)               # resume point: WsClient.connect(..., resume=seq)

Errors come back as `RpcError` (code, message, data); `ws.closed` tells how the socket ended
(`await ws.wait_closed()` → `(code, reason)`). `connect(..., handshake=False)` stops after
the challenge, for tests of the handshake itself (`send_raw`, `recv_raw`); other keyword
arguments go to `websockets.asyncio.client.connect` (e.g. `sock=` a pre-tuned socket).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from aisopod.contracts.auth import signature_payload

ADMIN_SCOPES = ("operator.admin",)
DEFAULT_CLIENT = {"id": "aisopod-tests", "version": "1", "platform": "python", "mode": "test"}


class RpcError(Exception):
    """An error response: JSON-RPC `code`, `message`, and `data` (`data["code"]` refines)."""

    def __init__(self, error: dict[str, Any]) -> None:
        self.code = int(error.get("code", 0))
        self.message = str(error.get("message", ""))
        self.data: dict[str, Any] = error.get("data") or {}
        super().__init__(f"{self.code} {self.detail}: {self.message}")

    @property
    def detail(self) -> str:
        """`data.code`, e.g. MISSING_SCOPE."""
        return str(self.data.get("code", ""))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class DeviceKey:
    """An Ed25519 device identity; `proof()` signs the contract's canonical string."""

    private: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def device_id(self) -> str:
        return hashlib.sha256(self.public_raw).hexdigest()

    def proof(
        self,
        *,
        nonce: str,
        client_id: str,
        role: str,
        scopes: list[str],
        signed_at: int | None = None,
    ) -> dict[str, Any]:
        signed_at = signed_at if signed_at is not None else int(time.time() * 1000)
        payload = signature_payload(
            device_id=self.device_id,
            client_id=client_id,
            role=role,
            scopes=scopes,
            signed_at=signed_at,
            nonce=nonce,
        )
        return {
            "id": self.device_id,
            "publicKey": b64url(self.public_raw),
            "signature": b64url(self.private.sign(payload)),
            "signedAt": signed_at,
            "nonce": nonce,
        }


class WsClient:
    # Headers on every upgrade: a suite that talks to a ws-gateway directly (no Traefik)
    # plays the edge by putting the edge proof here.
    default_headers: ClassVar[dict[str, str]] = {}

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.challenge: dict[str, Any] = {}
        self.hello: dict[str, Any] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.last_seq = 0
        self.closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._raw: asyncio.Queue[Any] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._stalled = False

    # -- connecting ---------------------------------------------------------------------
    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        token: str | None = None,
        password: str | None = None,
        device_token: str | None = None,
        bearer: str | None = None,
        role: str = "operator",
        scopes: Iterable[str] = ADMIN_SCOPES,
        client: dict[str, Any] | None = None,
        device: DeviceKey | None = None,
        subscribe: list[str] | None = None,
        resume: int | None = None,
        caps: list[str] | None = None,
        commands: list[str] | None = None,
        origin: str | None = None,
        headers: dict[str, str] | None = None,
        extra_params: dict[str, Any] | None = None,
        handshake: bool = True,
        timeout: float = 10.0,
        max_size: int | None = 16 * 1024 * 1024,
        max_queue: int | None = 1024,
        **connect_kwargs: Any,
    ) -> WsClient:
        """Open a socket, read the challenge and (unless `handshake=False`) complete the
        handshake; a failed handshake raises `RpcError` (the socket is then closed)."""
        extra = {**cls.default_headers, **(headers or {})}
        if bearer:
            extra["Authorization"] = f"Bearer {bearer}"
        ws = await ws_connect(
            url,
            additional_headers=extra or None,
            origin=origin,  # type: ignore[arg-type]
            compression=None,
            max_size=max_size,
            max_queue=max_queue,
            open_timeout=timeout,
            ping_interval=None,
            **connect_kwargs,
        )
        self = cls(ws)
        first = orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
        if first.get("method") != "connect.challenge":
            await ws.close()
            raise AssertionError(f"expected connect.challenge, got {first}")
        self.challenge = first["params"]["payload"]
        self._reader = asyncio.create_task(self._read())
        if not handshake:
            return self
        scope_list = list(scopes)
        info = dict(client or DEFAULT_CLIENT)
        params: dict[str, Any] = {
            "minProtocol": 1,
            "maxProtocol": 1,
            "client": info,
            "role": role,
            "scopes": scope_list,
        }
        auth = {
            k: v
            for k, v in (("token", token), ("password", password), ("deviceToken", device_token))
            if v is not None
        }
        if auth:
            params["auth"] = auth
        if device is not None:
            params["device"] = device.proof(
                nonce=self.challenge["nonce"], client_id=info["id"], role=role, scopes=scope_list
            )
        if subscribe is not None:
            params["subscribe"] = subscribe
        if resume is not None:
            params["resume"] = {"lastSeq": resume}
        if caps is not None:
            params["caps"] = caps
        if commands is not None:
            params["commands"] = commands
        params.update(extra_params or {})
        try:
            self.hello = await self.call("connect", params, timeout=timeout)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aenter__(self) -> WsClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # -- requests -----------------------------------------------------------------------
    async def request(
        self, method: str, params: Any = None, *, timeout: float = 10.0
    ) -> dict[str, Any]:
        """The raw response frame of one request."""
        request_id = f"r{next(self._ids)}"
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        frame: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            frame["params"] = params
        try:
            await self.ws.send(orjson.dumps(frame).decode())
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)

    async def call(self, method: str, params: Any = None, *, timeout: float = 10.0) -> Any:
        """The result of one request, or raise `RpcError`."""
        response = await self.request(method, params, timeout=timeout)
        if "error" in response:
            raise RpcError(response["error"])
        return response.get("result")

    async def notify(self, method: str, params: Any = None) -> None:
        frame: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            frame["params"] = params
        await self.ws.send(orjson.dumps(frame).decode())

    async def batch(
        self, frames: list[dict[str, Any]], *, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Send `frames` as one batch; returns the response array the server sent."""
        future = asyncio.get_running_loop().create_future()
        self._pending[("batch",)] = future
        try:
            await self.ws.send(orjson.dumps(frames).decode())
            return await asyncio.wait_for(future, timeout)  # type: ignore[return-value]
        finally:
            self._pending.pop(("batch",), None)

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def recv_raw(self, timeout: float = 10.0) -> Any:
        """The next frame that matched no pending request (decoded JSON)."""
        return await asyncio.wait_for(self._raw.get(), timeout)

    # -- events -------------------------------------------------------------------------
    async def next_event(
        self,
        name: str | Callable[[dict[str, Any]], bool] | None = None,
        *,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """The next server event (a frame with `method`), optionally the next one named
        `name` (or matching a predicate on the frame); others before it are skipped."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no event {name!r} within {timeout}s")
            event = await asyncio.wait_for(self.events.get(), remaining)
            if name is None or (event["method"] == name if isinstance(name, str) else name(event)):
                return event

    def drain_events(self) -> list[dict[str, Any]]:
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out

    # -- flow control (tests of slow consumers) -----------------------------------------
    def stall(self) -> None:
        """Stop reading: frames pile up in the socket buffers, as with a stuck client."""
        if self._reader is not None:
            self._stalled = True
            self._reader.cancel()
            self._reader = None

    def unstall(self) -> None:
        if self._reader is None:
            self._stalled = False
            self._reader = asyncio.create_task(self._read())

    # -- closing ------------------------------------------------------------------------
    async def wait_closed(self, timeout: float = 10.0) -> tuple[int, str]:
        return await asyncio.wait_for(asyncio.shield(self.closed), timeout)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._reader, 5)

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                self._dispatch(orjson.loads(message))
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            if self._stalled:
                return  # stopped reading on purpose: the socket is still open
            self._finish()
            raise
        self._finish()

    def _finish(self) -> None:
        rcvd = self.ws.protocol.close_rcvd
        code, reason = (rcvd.code, rcvd.reason) if rcvd else (1006, "")
        if not self.closed.done():
            self.closed.set_result((code, reason))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError(f"socket closed: {code} {reason}"))

    def _dispatch(self, frame: Any) -> None:
        if isinstance(frame, list):
            future = self._pending.get(("batch",))
            if future is not None and not future.done():
                future.set_result(frame)  # type: ignore[arg-type]
            else:
                self._raw.put_nowait(frame)
            return
        if isinstance(frame, dict) and "method" in frame and "id" not in frame:
            params = frame.get("params") or {}
            seq = params.get("seq") if isinstance(params, dict) else None
            if isinstance(seq, int):
                self.last_seq = max(self.last_seq, seq)
            self.events.put_nowait(frame)
            return
        future = self._pending.get(frame.get("id")) if isinstance(frame, dict) else None
        if future is not None and not future.done():
            future.set_result(frame)
        else:
            self._raw.put_nowait(frame)


def node_client(instance_id: str, client_id: str = "itest-node") -> dict[str, str]:
    """The `client` of a test node's `connect`: its `instanceId` is the node id."""
    return {
        "id": client_id,
        "version": "1",
        "platform": "linux",
        "mode": "node",
        "instanceId": instance_id,
    }
