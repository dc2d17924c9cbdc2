"""`tools.catalog` / `tools.invoke` on behalf of the HTTP surface (`/tools/invoke`).

http-api calls the ordinary RPC methods with one extra NATS header, `Aisopod-Surface: http`.
The runtime then also subtracts the `tools.httpDeny` list (tools that spawn sessions, edit
cron or config, or run commands) from what the catalogue shows and what may run. The
header is trusted for the same reason as the principal headers: only edges may publish
`rpc.>`; a WebSocket client cannot set NATS headers.

Errors stay the RPC ones: a denied or unknown tool is NOT_FOUND (404), bad args are
INVALID_PARAMS (400); a tool that ran and failed answers `{ok: false, result: {error}}`.
"""

from __future__ import annotations

from typing import Any

from aisopod.bus import Bus
from aisopod.principal import Principal

H_SURFACE = "Aisopod-Surface"
SURFACE_HTTP = "http"
# The first segment of canvas paths http-api serves itself (`/canvas/__aisopod/live.js`,
# `/canvas/__aisopod/events`); `canvas_write` refuses it, so no file can shadow them.
CANVAS_RESERVED = "__aisopod"


async def http_tool_catalog(bus: Bus, principal: Principal, *, timeout: float = 10.0) -> Any:
    """`{tools:[{name, description, parameters}]}` as the HTTP surface may see it."""
    return await _call(bus, "tools.catalog", {}, principal, timeout)


async def http_tool_invoke(
    bus: Bus,
    principal: Principal,
    tool: str,
    args: dict[str, Any],
    *,
    session_key: str | None = None,
    timeout: float = 70.0,
) -> Any:
    """`{ok, result}` of one tool call through the HTTP policy."""
    params: dict[str, Any] = {"tool": tool, "args": args}
    if session_key:
        params["sessionKey"] = session_key
    return await _call(bus, "tools.invoke", params, principal, timeout)


async def _call(
    bus: Bus, method: str, params: dict[str, Any], principal: Principal, timeout: float
) -> Any:
    headers = principal.to_headers() | {H_SURFACE: SURFACE_HTTP}
    return await bus.request(
        bus.subjects.rpc(method),
        params,
        timeout=timeout,
        headers=headers,
        unavailable=f"the owner of {method}",
    )
