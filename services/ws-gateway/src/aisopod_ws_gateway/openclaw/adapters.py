"""OpenClaw's methods on ours: one table, one row per OpenClaw method (docs/openclaw.md).

A row names our method, how OpenClaw's params become ours (`params`), which other of our
methods it also reads (`also`, called with empty params), and how our answer becomes
OpenClaw's (`result`). A row without `result` and `also` is forwarded (its params mapped) and
its answer spliced without decoding. Every call goes through our own dispatch, so scopes,
rate limits and errors are exactly those of our methods. Pure functions only: the handler
(`handler.py`) runs them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from aisopod.config.sections.heartbeat import HeartbeatSection
from aisopod.errors import AisopodError, InvalidParams, NotFound
from aisopod.sessionkey import canonical_session_key
from aisopod_ws_gateway.openclaw.events import presence_entry, text_parts
from aisopod_ws_gateway.openclaw.usage import sessions_usage, usage_params
from aisopod_ws_gateway.openclaw.usagedetail import (
    logs_params,
    series_params,
    session_id,
    usage_logs,
    usage_timeseries,
)

Params = dict[str, Any]
SESSIONS_LIMIT = 1000
"""Our `sessions.list` limit; the Control UI asks for up to 10000."""
CRON_PAGE_MAX = 200
LOG_LEVELS = {"debug": 2, "info": 3, "warning": 4, "error": 5, "critical": 6}


@dataclass(frozen=True, slots=True)
class Context:
    """What a result builder may read besides our answers."""

    params: Params  # the OpenClaw request's params
    also: dict[str, Any]  # answers of the row's `also` methods
    version: str  # of this gateway
    elapsed_ms: int  # since the request arrived
    default_agent: str = "main"  # the configured one, for short session keys
    heartbeats: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """Agent id → its heartbeat in OpenClaw's shape (`heartbeat_summaries`)."""


@dataclass(frozen=True, slots=True)
class Adapter:
    ours: str
    params: Callable[[Params], Params] | None = None
    result: Callable[[Any, Context], Any] | None = None
    also: tuple[str, ...] = ()
    empty_on: tuple[type[AisopodError], ...] = ()
    """Errors of ours that are an empty answer in OpenClaw (a session not started yet)."""
    empty: Any = None
    two_phase: bool = False
    """`agent`: an `accepted` reply at once, the final one on the same id when done."""
    at_edge: bool = False
    """Answered from this process's own state when it is warm (`edgehealth.py`), with the
    checks of every method in `uses()`; else as the row says."""
    feed: str | None = None
    """Answered here: the connection joins (or leaves) one of `FEEDS`, live events from
    this gateway. `ours` calls nothing then; it names the method whose scope the feed needs
    (the data it carries)."""
    needs: tuple[str, ...] = field(default=())
    clocked: bool = False
    """`result` reads the clock: never reused for the same answers of ours (handler.py)."""

    @property
    def passthrough(self) -> bool:
        """Our answer is theirs: forwarded and spliced into the reply, never decoded."""
        return (
            self.result is None
            and not self.also
            and not self.two_phase
            and not self.empty_on
            and self.feed is None
        )

    def uses(self) -> tuple[str, ...]:
        return (self.ours, *self.also, *self.needs)


# --- params ------------------------------------------------------------------------------


def keep(*names: str) -> Callable[[Params], Params]:
    """Only these params (ours reject unknown ones); OpenClaw sends many extras."""
    return lambda p: {k: p[k] for k in names if k in p}


def none(p: Params) -> Params:
    return {}


def all_jobs(p: Params) -> Params:
    return {"includeDisabled": True}


def _sessions_params(p: Params) -> Params:
    out = keep("agentId", "search", "activeMinutes")(p)
    limit = p.get("limit")
    if isinstance(limit, int) and not isinstance(limit, bool):
        out["limit"] = max(1, min(limit, SESSIONS_LIMIT))
    return out


def _history_params(p: Params) -> Params:
    out = keep("sessionKey")(p)
    limit = p.get("limit")
    if isinstance(limit, int) and not isinstance(limit, bool):
        out["limit"] = max(1, min(limit, 1000))
    return out


def _cron_add_params(p: Params) -> Params:
    """OpenClaw names the agent beside the payload and adds delivery and wake options we
    do not have; the job itself (name, schedule, turn) is the same."""
    schedule = p.get("schedule")
    if isinstance(schedule, dict):
        schedule = keep("kind", "expr", "tz", "everyMs", "at")(schedule)
    payload = p.get("payload")
    if isinstance(payload, dict):
        kind = payload.get("kind")
        payload = keep("kind", "message", "text", "sessionKey")(payload)
        agent_id = p.get("agentId")
        if kind == "agentTurn" and isinstance(agent_id, str):
            payload["agentId"] = agent_id
    out = keep("name", "enabled")(p)
    out.update({"schedule": schedule, "payload": payload})
    return out


def _agent_params(p: Params) -> Params:
    out = keep("message", "agentId", "sessionKey", "idempotencyKey")(p)
    timeout = p.get("timeout")  # seconds in OpenClaw
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0:
        out["timeoutMs"] = int(timeout * 1000)
    return out


# --- results -----------------------------------------------------------------------------


def _default_agent(ctx: Context) -> str:
    agents = ctx.also.get("agents.list") or {}
    return str(agents.get("defaultId") or "main")


def _sessions_of(ctx: Context) -> list[dict[str, Any]]:
    listing = ctx.also.get("sessions.list") or {}
    return list(listing.get("sessions") or [])


def _recent(sessions: list[dict[str, Any]], now: int) -> list[dict[str, Any]]:
    rows = sorted(sessions, key=lambda s: s.get("updatedAt") or 0, reverse=True)[:5]
    return [
        {
            "key": s.get("key"),
            "updatedAt": s.get("updatedAt"),
            "age": max(0, now - int(s.get("updatedAt") or now)),
        }
        for s in rows
    ]


HEARTBEAT_OFF: dict[str, Any] = {"enabled": False, "every": "disabled", "everyMs": None}
NO_HEARTBEATS: Mapping[str, dict[str, Any]] = {}
Heartbeats = Callable[[], Mapping[str, dict[str, Any]]]
"""The configured heartbeats (`heartbeat_summaries`): the same object for as long as the
configuration is the same, so its identity names it (`EdgeHealth` keys on it)."""


def heartbeat_summaries(section: HeartbeatSection) -> dict[str, dict[str, Any]]:
    """Each configured agent's heartbeat as OpenClaw's health names it: from the
    configuration, as OpenClaw's is (its `set-heartbeats` switch does not show there
    either). An agent not listed, or listed as disabled, is off."""
    out: dict[str, dict[str, Any]] = {}
    for agent_id in section.agents:
        beat = section.effective(agent_id)
        if beat is not None and beat.enabled:
            out[agent_id] = {"enabled": True, "every": beat.every, "everyMs": beat.every_ms}
    return out


def health_summary(ours: Any, ctx: Context) -> dict[str, Any]:
    """Our `{ok, ts, services}` as OpenClaw's HealthSummary, from the owner's answers (the
    path taken while the edge's parts are cold; `EdgeHealth` builds the same from them)."""
    now = int(time.time() * 1000)
    sessions = _sessions_of(ctx)
    per_agent: dict[str, int] = {}
    for s in sessions:
        per_agent[str(s.get("agentId"))] = per_agent.get(str(s.get("agentId")), 0) + 1
    agents = (ctx.also.get("agents.list") or {}).get("agents") or []
    return health_shape(
        ours,
        _default_agent(ctx),
        agents,
        SessionCounts(len(sessions), per_agent, _recent(sessions, now)),
        ctx.elapsed_ms,
        ctx.heartbeats,
    )


@dataclass(frozen=True, slots=True)
class SessionCounts:
    total: int
    per_agent: dict[str, int]
    recent: list[dict[str, Any]]  # {key, updatedAt, age}, newest first


def health_shape(
    ours: Any,
    default_id: str,
    agents: list[dict[str, Any]],
    sessions: SessionCounts,
    ms: int,
    heartbeats: Mapping[str, dict[str, Any]],
) -> dict[str, Any]:
    """The HealthSummary (we have no channels: empty). `heartbeatSeconds` is the interval
    of the first agent with a heartbeat, as OpenClaw picks it; 0 when none has one.
    `services` stays for whoever wants ours."""
    store = {"path": "nats-kv:sessions", "count": sessions.total, "recent": sessions.recent}
    beating = [heartbeats[a["id"]] for a in agents if a.get("id") in heartbeats]
    every_ms = beating[0]["everyMs"] if beating else None
    return {
        "ok": bool(ours.get("ok")),
        "ts": ours.get("ts"),
        "durationMs": ms,
        "channels": {},
        "channelOrder": [],
        "channelLabels": {},
        "heartbeatSeconds": round(every_ms / 1000) if every_ms else 0,
        "defaultAgentId": default_id,
        "agents": [
            {
                "agentId": a.get("id"),
                "name": a.get("name"),
                "isDefault": a.get("id") == default_id,
                "heartbeat": heartbeats.get(str(a.get("id")), HEARTBEAT_OFF),
                "sessions": {**store, "count": sessions.per_agent.get(str(a.get("id")), 0)},
            }
            for a in agents
        ],
        "sessions": store,
        "services": ours.get("services", {}),
    }


def status_summary(ours: Any, ctx: Context) -> dict[str, Any]:
    default_id = _default_agent(ctx)
    now = int(time.time() * 1000)
    sessions = _sessions_of(ctx)
    return {
        "runtimeVersion": ctx.version,
        "heartbeat": {
            "defaultAgentId": default_id,
            "agents": [
                {"agentId": a.get("id"), **ctx.heartbeats.get(str(a.get("id")), HEARTBEAT_OFF)}
                for a in (ctx.also.get("agents.list") or {}).get("agents") or []
            ],
        },
        "channelSummary": [],
        "queuedSystemEvents": [],
        "sessions": {
            "paths": ["nats-kv:sessions"],
            "count": ours.get("sessions", len(sessions)),
            "defaults": {"model": None, "contextTokens": None},
            "recent": _recent(sessions, now),
            "byAgent": [],
        },
        "services": ours.get("services", {}),
        "connections": ours.get("connections"),
        "uptimeMs": ours.get("uptimeMs"),
    }


def presence_list(ours: Any, ctx: Context) -> list[dict[str, Any]]:
    return [presence_entry(e) for e in ours if isinstance(e, dict)]


def config_snapshot(ours: Any, ctx: Context) -> dict[str, Any]:
    config = ours.get("config", {})
    return {
        "path": "nats-kv:config",
        "exists": True,
        "raw": orjson.dumps(config, option=orjson.OPT_INDENT_2).decode(),
        "parsed": config,
        "resolved": config,
        "valid": True,
        "config": config,
        "hash": ours.get("hash"),
        "issues": [],
        "warnings": [],
        "legacyIssues": [],
    }


def cron_job(job: dict[str, Any]) -> dict[str, Any]:
    payload = {k: v for k, v in (job.get("payload") or {}).items() if v is not None}
    agent_id = payload.pop("agentId", None)
    return {
        "id": job.get("jobId"),
        "name": job.get("name"),
        "enabled": job.get("enabled"),
        "agentId": agent_id or "main",
        "schedule": job.get("schedule"),
        "payload": payload,
        "sessionTarget": "isolated",
        "wakeMode": "now",
        "state": {
            "nextRunAtMs": job.get("nextRunAtMs"),
            "lastRunAtMs": job.get("lastRunAtMs"),
            "lastStatus": job.get("lastStatus"),
        },
        "nextRunAtMs": job.get("nextRunAtMs"),
    }


def cron_page(ours: Any, ctx: Context) -> dict[str, Any]:
    """Our whole list as one of OpenClaw's pages; the revision names the list's content,
    so a client paging through a list that changed can tell."""
    jobs = [cron_job(j) for j in ours.get("jobs", [])]
    agent_id = ctx.params.get("agentId")
    if isinstance(agent_id, str):
        jobs = [j for j in jobs if j["agentId"] == agent_id]
    offset = ctx.params.get("offset")
    offset = offset if isinstance(offset, int) and offset >= 0 else 0
    limit = ctx.params.get("limit")
    limit = max(1, min(limit, CRON_PAGE_MAX)) if isinstance(limit, int) else CRON_PAGE_MAX
    page = jobs[offset : offset + limit]
    more = offset + len(page) < len(jobs)
    revision = hashlib.sha256(orjson.dumps(ours.get("jobs", []))).hexdigest()[:16]
    return {
        "jobs": page,
        "snapshotRevision": revision,
        "total": len(jobs),
        "offset": offset,
        "limit": limit,
        "hasMore": more,
        "nextOffset": offset + len(page) if more else None,
        "deliveryPreviews": {},
    }


def cron_status(ours: Any, ctx: Context) -> dict[str, Any]:
    jobs = ours.get("jobs", [])
    wakes = [j["nextRunAtMs"] for j in jobs if j.get("enabled") and j.get("nextRunAtMs")]
    return {"enabled": True, "jobs": len(jobs), "nextWakeAtMs": min(wakes, default=None)}


def log_lines(ours: Any, ctx: Context) -> dict[str, Any]:
    """Our structured lines as the JSON lines the CLI parses (tslog's shape: the message
    under "0", level and date under "_meta")."""
    lines = []
    for line in ours.get("lines", []):
        date = datetime.fromtimestamp(line.get("ts", 0) / 1000, UTC).isoformat()
        date = date.replace("+00:00", "Z")
        level = str(line.get("level", "info")).lower()
        record = {
            "0": line.get("message", ""),
            "_meta": {
                "date": date,
                "logLevelId": LOG_LEVELS.get(level, 3),
                "logLevelName": level.upper(),
                "name": line.get("service"),
            },
            "time": date,
        }
        lines.append(orjson.dumps(record).decode())
    cursor = ours.get("cursor", 0)
    return {
        "file": "aisopod",
        "cursor": cursor,
        "size": cursor,
        "lines": lines,
        "truncated": False,
        "reset": bool(ours.get("reset")),
    }


def pair_list(ours: Any, ctx: Context) -> dict[str, Any]:
    pending = []
    for entry in ours.get("pending", []):
        client = entry.get("client") if isinstance(entry.get("client"), dict) else {}
        pending.append({**entry, "ts": entry.get("requestedAt"), "clientId": client.get("id")})
    return {**ours, "pending": pending}


def _model_ref(model: dict[str, Any]) -> str:
    return str(model.get("id"))


def _default_model(ctx: Context) -> str | None:
    models = (ctx.also.get("models.list") or {}).get("models") or []
    return _model_ref(models[0]) if models else None


def agents_list(ours: Any, ctx: Context) -> dict[str, Any]:
    """`model.primary` must be set, or the Control UI blocks sending ("No AI provider")."""
    fallback = _default_model(ctx)
    return {
        "defaultId": ours.get("defaultId"),
        "mainKey": "main",
        "scope": "per-sender",
        "agents": [
            {
                "id": a.get("id"),
                "name": a.get("name"),
                "kind": "agent",
                "model": {"primary": a.get("model") or fallback},
            }
            for a in ours.get("agents", [])
        ],
    }


def agent_identity(ours: Any, ctx: Context) -> dict[str, Any]:
    """OpenClaw's avatar falls back to the emoji; `avatarStatus` says what kind it is."""
    out = {k: ours[k] for k in ("agentId", "name", "nameSource", "emoji") if ours.get(k)}
    avatar = ours.get("avatar") or ours.get("emoji")
    if avatar:
        out["avatar"] = avatar
        if avatar.startswith(("http://", "https://")):
            out["avatarStatus"] = "remote"
        elif avatar.startswith("data:"):
            out["avatarStatus"] = "data"
    return out


def _agent_file(agent_id: str, file: dict[str, Any]) -> dict[str, Any]:
    """Ours → OpenClaw's file entry (a path instead of our revision)."""
    out: dict[str, Any] = {
        "name": file["name"],
        "path": f"{_workspace(agent_id)}/{file['name']}",
        "missing": bool(file.get("missing")),
    }
    for ours, theirs in (("size", "size"), ("updatedAt", "updatedAtMs"), ("hash", "hash")):
        if file.get(ours) is not None:
            out[theirs] = file[ours]
    if file.get("content") is not None:
        out["content"] = file["content"]
    return out


def _workspace(agent_id: str) -> str:
    """OpenClaw names a directory; our files live in KV `agents` (`files.<agentId>`)."""
    return f"agentfiles/{agent_id}"


def agent_files_list(ours: Any, ctx: Context) -> dict[str, Any]:
    agent_id = ours["agentId"]
    return {
        "agentId": agent_id,
        "workspace": _workspace(agent_id),
        "files": [_agent_file(agent_id, f) for f in ours.get("files", [])],
    }


def agent_file(ours: Any, ctx: Context) -> dict[str, Any]:
    agent_id = ours["agentId"]
    out = {
        "agentId": agent_id,
        "workspace": _workspace(agent_id),
        "file": _agent_file(agent_id, ours["file"]),
    }
    return {"ok": True, **out} if "ok" in ours else out


def models_list(ours: Any, ctx: Context) -> dict[str, Any]:
    return {
        "models": [
            {
                "id": m.get("id"),
                "name": m.get("id"),
                "provider": m.get("provider"),
                "contextWindow": m.get("contextWindow"),
            }
            for m in ours.get("models", [])
        ]
    }


def chat_metadata(ours: Any, ctx: Context) -> dict[str, Any]:
    models = ours.get("models", [])
    return {
        "models": [
            {
                "id": m.get("id"),
                "provider": m.get("provider"),
                "tags": ["default"] if i == 0 else [],
                "available": True,
            }
            for i, m in enumerate(models)
        ],
        "commands": [],
    }


def auth_status(ours: Any, ctx: Context) -> dict[str, Any]:
    providers = sorted({str(m.get("provider")) for m in ours.get("models", [])})
    return {"providers": [{"provider": p, "status": "ok"} for p in providers]}


def session_row(
    entry: dict[str, Any], model: str | None = None, *, titles: bool = True
) -> dict[str, Any]:
    """One of our session entries as a row of OpenClaw's session list. `derivedTitle`
    (when `titles`) is OpenClaw's: the label, else the title the runtime recorded from
    the first user message (docs/openclaw.md, The sessions sidebar)."""
    key = entry.get("key")
    row = {
        "key": key,
        "sessionId": session_id(str(key)),
        "agentId": entry.get("agentId"),
        "kind": "direct",
        "label": entry.get("label"),
        "displayName": entry.get("label") or key,
        "updatedAt": entry.get("updatedAt"),
        "model": entry.get("model") or model,
        "lastMessagePreview": entry.get("lastMessage"),
    }
    title = entry.get("label") or entry.get("title")
    if titles and title:
        row["derivedTitle"] = title
    return row


def session_described(ours: Any, ctx: Context) -> dict[str, Any]:
    return {"session": session_row(ours.get("entry") or {})}


def approval_list(ours: Any, ctx: Context) -> list[dict[str, Any]]:
    """Our pending exec approvals as OpenClaw's approval records (its `request` holds what
    is asked; `commandArgv` is our `argv`)."""
    return [
        {
            "id": a.get("id"),
            "approvalKind": "exec",
            "request": {
                "command": a.get("command"),
                "commandArgv": a.get("argv"),
                "cwd": a.get("cwd"),
                "nodeId": a.get("nodeId"),
                "host": "node" if a.get("nodeId") else "gateway",
                "agentId": a.get("agentId"),
                "sessionKey": a.get("sessionKey"),
                "runId": a.get("runId"),
                "toolCallId": a.get("toolCallId"),
            },
            "createdAtMs": a.get("createdAtMs"),
            "expiresAtMs": a.get("expiresAtMs"),
        }
        for a in ours.get("approvals", [])
    ]


def sessions_list(ours: Any, ctx: Context) -> dict[str, Any]:
    sessions = [] if ctx.params.get("spawnedBy") else ours.get("sessions", [])
    model = _default_model(ctx)
    titles = bool(ctx.params.get("includeDerivedTitles"))
    rows = [session_row(s, model, titles=titles) for s in sessions]
    return {
        "ts": int(time.time() * 1000),
        "path": "nats-kv:sessions",
        "count": len(rows),
        "totalCount": len(rows),
        "defaults": {"modelProvider": model.split("/")[0] if model else None, "model": model},
        "sessions": rows,
    }


def history_message(message: dict[str, Any]) -> dict[str, Any]:
    """Our transcript message in OpenClaw's shape. A user message carries
    `<runId>:user` as its idempotency key: the Control UI settles a sent message by it."""
    run_id = message.get("runId")
    out: dict[str, Any] = {
        "id": message.get("id"),
        "role": message.get("role"),
        "content": text_parts(message.get("content")),
        "timestamp": message.get("ts"),
        "__openclaw": {"id": message.get("id"), "runId": run_id},
    }
    if run_id and message.get("role") == "user":
        out["idempotencyKey"] = f"{run_id}:user"
    compaction = message.get("compaction")
    if isinstance(compaction, dict):  # marked as OpenClaw marks its compaction entries
        out["__openclaw"].update(
            kind="compaction",
            tokensBefore=compaction.get("tokensBefore"),
            tokensAfter=compaction.get("tokensAfter"),
        )
    return out


def sessions_compact(ours: Any, ctx: Context) -> dict[str, Any]:
    """`{ok, key, compacted, reason?, result?{summary, tokensBefore, tokensAfter}}`."""
    out: dict[str, Any] = {"ok": True, "key": ours.get("key"), "compacted": ours["compacted"]}
    if ours.get("reason"):
        out["reason"] = ours["reason"]
    record = ours.get("compaction")
    if ours["compacted"] and isinstance(record, dict):
        out["result"] = {
            "summary": ours.get("summary"),
            "tokensBefore": record.get("tokensBefore"),
            "tokensAfter": record.get("tokensAfter"),
        }
    return out


def chat_history(ours: Any, ctx: Context) -> dict[str, Any]:
    return {
        "sessionKey": ours.get("sessionKey"),
        "messages": [history_message(m) for m in ours.get("messages", [])],
    }


def chat_abort(ours: Any, ctx: Context) -> dict[str, Any]:
    return {"ok": True, **ours}


def update_status(ours: Any, ctx: Context) -> dict[str, Any]:
    return {
        "sentinel": None,
        "updateAvailable": ours.get("available"),
        "effectiveChannel": "stable",
        "schedule": None,
        "instances": ours.get("instances", []),
    }


def stability(ours: Any, ctx: Context) -> dict[str, Any]:
    """`gateway stability`: we keep no diagnostic event ring; an honest empty one with the
    health snapshot's time."""
    limit = ctx.params.get("limit")
    return {
        "generatedAt": ours.get("ts"),
        "capacity": limit if isinstance(limit, int) else 0,
        "count": 0,
        "dropped": 0,
        "firstSeq": None,
        "lastSeq": None,
        "events": [],
    }


def agent_accepted(ours: Any, ctx: Context) -> dict[str, Any]:
    return {
        "runId": ours.get("runId"),
        "sessionKey": ctx.params.get("sessionKey") or "main",
        "agentId": ctx.params.get("agentId") or "main",
        "status": "accepted",
        "acceptedAt": int(time.time() * 1000),
    }


def agent_final(waited: dict[str, Any], history: dict[str, Any]) -> dict[str, Any]:
    """The second `agent` reply: the run's verdict and its assistant text."""
    run_id = waited.get("runId")
    texts = [
        part.get("text")
        for m in history.get("messages", [])
        if m.get("runId") == run_id and m.get("role") == "assistant"
        for part in text_parts(m.get("content"))
        if part.get("type") == "text"
    ]
    status = waited.get("status")
    return {
        "runId": run_id,
        "status": status,
        "summary": "completed" if status == "ok" else str(status),
        "result": {
            "payloads": [{"text": t, "mediaUrl": None} for t in texts if t],
            "meta": {"startedAt": waited.get("startedAt"), "endedAt": waited.get("endedAt")},
        },
        "error": waited.get("error"),
    }


def usage_report(ours: Any, ctx: Context) -> dict[str, Any]:
    return sessions_usage(ours, ctx.params, int(time.time() * 1000))


def provider_quotas(ours: Any, ctx: Context) -> dict[str, Any]:
    """OpenClaw's `usage.status` is the providers' own plan and quota windows, read from
    their accounts; we read none (our usage is `sessions.usage`): OpenClaw's answer when
    no provider reports any."""
    return {"updatedAt": int(time.time() * 1000), "providers": []}


def last_heartbeat(ours: Any, ctx: Context) -> Any:
    """OpenClaw answers the newest heartbeat event itself (null before the first)."""
    return ours.get("last")


# --- the table -----------------------------------------------------------------------------

_EMPTY_HISTORY: dict[str, Any] = {"sessionKey": None, "messages": []}

ADAPTERS: dict[str, Adapter] = {
    # OpenClaw method        our method            params / result / also
    "health": Adapter(
        "health", params=none, result=health_summary, also=("agents.list", "sessions.list"),
        at_edge=True, clocked=True,
    ),
    "status": Adapter(
        "status", params=none, result=status_summary, also=("agents.list", "sessions.list")
    ),
    "system-presence": Adapter("system-presence", params=none, result=presence_list),
    "config.get": Adapter("config.get", params=none, result=config_snapshot),
    "cron.list": Adapter("cron.list", params=keep("includeDisabled"), result=cron_page),
    "cron.status": Adapter("cron.list", params=all_jobs, result=cron_status),
    "cron.add": Adapter("cron.add", params=_cron_add_params, result=lambda r, c: cron_job(r)),
    "cron.remove": Adapter("cron.remove", params=lambda p: {"jobId": p.get("id", p.get("jobId"))}),
    "cron.run": Adapter("cron.run", params=lambda p: {"jobId": p.get("id", p.get("jobId"))}),
    "logs.tail": Adapter("logs.tail", params=keep("cursor", "limit"), result=log_lines),
    "device.pair.list": Adapter("device.pair.list", params=none, result=pair_list),
    "device.pair.approve": Adapter("device.pair.approve", params=keep("requestId")),
    "device.pair.reject": Adapter("device.pair.reject", params=keep("requestId")),
    "device.pair.remove": Adapter("device.pair.remove", params=keep("deviceId")),
    "agents.list": Adapter("agents.list", params=none, result=agents_list, also=("models.list",)),
    "agent.identity.get": Adapter(
        "agent.identity.get", params=keep("agentId", "sessionKey"), result=agent_identity
    ),
    # OpenClaw's `maxLines` (cut the transcript to N lines, no summary) has no equivalent
    # here: dropped, and the call summarises with the configured keepTurns.
    "sessions.compact": Adapter("sessions.compact", params=keep("key"), result=sessions_compact),
    "agents.files.list": Adapter(
        "agents.files.list", params=keep("agentId"), result=agent_files_list
    ),
    "agents.files.get": Adapter(
        "agents.files.get", params=keep("agentId", "name"), result=agent_file
    ),
    "agents.files.set": Adapter(
        "agents.files.set",
        params=keep("agentId", "name", "content", "expectedHash"),
        result=agent_file,
    ),
    "models.list": Adapter("models.list", params=none, result=models_list),
    "models.authStatus": Adapter("models.list", params=none, result=auth_status),
    "chat.metadata": Adapter("models.list", params=none, result=chat_metadata),
    "sessions.list": Adapter(
        "sessions.list", params=_sessions_params, result=sessions_list, also=("models.list",),
        clocked=True,
    ),
    "chat.history": Adapter(
        "chat.history", params=_history_params, result=chat_history,
        empty_on=(NotFound,), empty=_EMPTY_HISTORY,
    ),
    "chat.startup": Adapter(
        "chat.history", params=_history_params, result=chat_history,
        empty_on=(NotFound,), empty=_EMPTY_HISTORY,
    ),
    "chat.send": Adapter("chat.send", params=keep("sessionKey", "message", "idempotencyKey")),
    "chat.abort": Adapter("chat.abort", params=keep("sessionKey", "runId"), result=chat_abort),
    "agent": Adapter(
        "agent", params=_agent_params, result=agent_accepted, two_phase=True,
        needs=("agent.wait", "chat.history"),
    ),
    "agent.wait": Adapter("agent.wait", params=keep("runId", "timeoutMs")),
    "update.status": Adapter("update.status", params=none, result=update_status),
    "wake": Adapter("wake", params=keep("mode", "text", "sessionKey", "agentId")),
    "system-event": Adapter(
        "system-event", params=keep("text", "sessionKey", "idempotencyKey", "wake")
    ),
    "last-heartbeat": Adapter("last-heartbeat", params=none, result=last_heartbeat),
    "set-heartbeats": Adapter("set-heartbeats", params=keep("enabled")),
    "diagnostics.stability": Adapter("health", params=none, result=stability),
    # The Control UI's calls beyond the CLI's (docs/openclaw.md, The Control UI's calls).
    "exec.approval.list": Adapter("exec.approvals.pending", params=none, result=approval_list),
    "sessions.describe": Adapter(
        "sessions.resolve", params=keep("key"), result=session_described,
        empty_on=(NotFound,), empty={"session": None},
    ),
    "sessions.subscribe": Adapter("sessions.list", feed="sessions.changed"),
    # The usage page (docs/openclaw.md, Usage).
    "sessions.usage": Adapter(
        "usage.sessions", params=usage_params, result=usage_report, clocked=True
    ),
    "sessions.usage.timeseries": Adapter(
        "sessions.usage.series", params=series_params, result=usage_timeseries
    ),
    "sessions.usage.logs": Adapter(
        "sessions.usage.logs", params=logs_params, result=usage_logs,
        empty_on=(NotFound,), empty={"logs": []},
    ),
    "usage.status": Adapter("models.list", params=none, result=provider_quotas, clocked=True),
    "sessions.messages.subscribe": Adapter("chat.history", feed="chat"),
    "sessions.messages.unsubscribe": Adapter("chat.history", feed="-chat"),
}  # fmt: skip

FEEDS = ("sessions.changed", "chat", "-chat")
"""`sessions.changed`: this gateway's events for each change of the `sessions` bucket
(sessionindex.py). `chat`: our `chat.event` and `agent.event` (as OpenClaw's `chat` and
`agent`), which carry a session's messages live; joining re-admits them when the
connection's subscription had left them out. `-chat` leaves nothing: those events go to
every connection that may read them, as OpenClaw's `chat` events do; we send no separate
`session.message` feed that could be left."""


@dataclass(frozen=True, slots=True)
class Absent:
    """An OpenClaw feature aisopod does not have: the answer OpenClaw itself gives without
    it (an empty list, or its own UNAVAILABLE). Never advertised in `features.methods`, so
    the Control UI keeps such features hidden; it calls some of them regardless."""

    answer: Any = None
    unavailable: str | None = None
    unknown: bool = False
    """Answer `unknown method: <name>`: what an OpenClaw gateway without the feature
    answers, and what the node host takes as "not supported here" (it then stops sending
    it, without an error)."""


ABSENT: dict[str, Absent] = {
    # OpenClaw method                 what OpenClaw answers without the feature
    "plugin.approval.list": Absent([]),          # no plugin approvals: our plugins ask none
    "openclaw.approval.list": Absent([]),        # no OpenClaw system agent
    "question.list": Absent({"questions": []}),  # agents have no ask-the-user tool
    "tasks.list": Absent({"tasks": []}),         # no ledger of detached work (see docs)
    "progressCard.get": Absent({"card": None}),  # no progress cards
    "sessions.branches.list": Absent({"branches": []}),  # transcripts are linear
    "talk.catalog": Absent({
        "modes": [], "transports": [], "brains": [],
        "speech": {"providers": []},
        "transcription": {"ready": False, "providers": []},
        "realtime": {"ready": False, "providers": []},
    }),  # no voice: nothing is ready
    "sessions.observer.visibility": Absent(unavailable="Session observer is unavailable."),
    "sessions.companion.state": Absent(unavailable="Side chat is unavailable."),
}  # fmt: skip


def implemented_methods(ours: list[str]) -> list[str]:
    """The OpenClaw methods a connection may call: those whose methods of ours it may."""
    allowed = set(ours)
    return sorted(name for name, row in ADAPTERS.items() if set(row.uses()) <= allowed)


def session_key_param(params: Params, default_agent: str) -> str:
    """The canonical key of a `key` param (OpenClaw's session methods name it so)."""
    key = params.get("key")
    if not isinstance(key, str) or not key.strip():
        raise InvalidParams("key is required", code="SESSION_KEY_REQUIRED")
    agent_id = params.get("agentId")
    owner = agent_id if isinstance(agent_id, str) and agent_id else default_agent
    return canonical_session_key(key.strip(), owner)


# Node hosts and OpenClaw operators' node commands: their rows live beside their helpers.
from aisopod_ws_gateway.openclaw.nodes import NODE_ABSENT, NODE_ADAPTERS  # noqa: E402

ADAPTERS.update(NODE_ADAPTERS)
ABSENT.update(NODE_ABSENT)

# A node's own exec policy in OpenClaw's approvals-file shape.
from aisopod_ws_gateway.openclaw.execapprovals import EXEC_APPROVAL_ADAPTERS  # noqa: E402

ADAPTERS.update(EXEC_APPROVAL_ADAPTERS)
