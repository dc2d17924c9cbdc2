"""One example exchange per method and the errors particular to it. Pure data, no I/O.

The method reference (`aisopod catalogue export` → docs/protocol/methods.md) shows these;
a test validates every example against the method's params and result models, so an
example cannot drift from the code. Errors every method shares (INVALID_PARAMS, FORBIDDEN,
UNAVAILABLE, RATE_LIMITED) are derived from the method's spec and not repeated here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from pydantic import JsonValue

KEY = "agent:main:main"
DEVICE = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
HASH = "3b1f5e0c7d2a"
T0 = 1764240000000


@dataclass(frozen=True, slots=True)
class MethodExample:
    """`errors`: each entry starts with the error name, then `data.code` and when."""

    params: dict[str, JsonValue]
    result: JsonValue
    errors: tuple[str, ...] = field(default=())


# What a client author should know beyond the catalogue's one-line description: defaults,
# side effects, what a field means in practice. Shown under the method's heading.
NOTES: Mapping[str, str] = MappingProxyType(
    {
        "connect": "The first request of every connection; the whole exchange is described "
        "in websocket.md (Handshake).",
        "health": "Answered by the ws-gateway itself from a snapshot of the services it "
        "refreshes every 5 s; open to any connected client.",
        "status": "Versions and instances of every service (NATS micro discovery), and the "
        "numbers of connections, agents and sessions. Admins also get secrets and internals "
        "as extra fields.",
        "usage.status": "Adds up the usage ledger (one record per finished run that called "
        "a model, whatever its outcome) over `[since, until)`: totals, per provider, model "
        "and agent, and a series of hour or day buckets (UTC) for charts. `budgets` lists "
        "every configured monthly budget with its month's spend.",
        "usage.cost": "The same window priced at the per-model prices of the configuration "
        "(`models.providers[].models[].cost`, USD per million tokens), so a corrected price "
        "applies to the past; models without a price count 0 and are listed in `unpriced`.",
        "sessions.usage": "One session's tokens and cost over the window (default: the last "
        "30 days). A session that is gone but still has usage in the window answers too.",
        "usage.sessions": "Every session with runs in `[since, until)` (default: the last 30 "
        "days), most recently active first, each with its totals and its quarter-hour cells "
        "per agent and model; `cells` holds the same for all sessions, rows beyond `limit` "
        "included, so totals never depend on the limit. Quarter hours let a client add days "
        "up in any time zone. Whole sealed hours come from hourly per-session roll-ups, "
        "only the window's edges from the run records.",
        "sessions.usage.series": "One point per run of the session concluded in the "
        "window (the ledger stamps a run when it concludes), oldest first, priced at the "
        "current prices; past `maxPoints` runs, consecutive runs are added up so the points "
        "still cover the whole window. Reads only this session's records of the window.",
        "sessions.usage.logs": "The transcript as `chat.history` shows it (the newest "
        "`limit` messages, after a compaction its summary first), and in `runs` the usage "
        "record of each run those messages belong to: a run's tokens and cost go with its "
        "final answer.",
        "logs.tail": "Reads the `LOGS` stream. Without `cursor`: the newest lines; pass the "
        "returned `cursor` back to get the lines after it. A cursor that fell out of the "
        "stream restarts at the oldest line held, with `reset: true`. `level` is a minimum.",
        "system-presence": "Every connected client across all ws-gateway replicas.",
        "subscribe": "Narrows the events this connection receives to those matching "
        "`events` (`*` one token, `>` the rest) and, for session events, to `sessionKeys`; "
        "never widens what its scopes admit. Session keys in the short form name the default "
        "agent's session, as everywhere. The result is the subscription after the call, "
        "with canonical keys.",
        "unsubscribe": "Removes patterns; while the connection still takes every event, "
        "excludes what they match instead.",
        "agents.list": "Every agent, the default one first; `defaultId` is the agent used "
        "when a call names none.",
        "agents.create": "Without `id`, one is derived from `name`. `model` is "
        "`<providerId>/<modelId>`; without it the configured default model is used.",
        "agents.update": "Omitted fields stay; `null` clears `model`, `instructions` or "
        "`tools` (`name` cannot be cleared).",
        "agents.delete": "The default agent cannot be deleted.",
        "agent": "Starts a turn of `agentId` (default: the default agent) in `sessionKey` "
        "(default: its `main` session). Without `wait` it answers at once with "
        "`accepted`; the output follows as `chat.event` and `agent.event`. With `wait` it "
        "answers when the run ended, with its status and result.",
        "agent.wait": "Waits until the run ends or `timeoutMs` passes; `status: timeout` "
        "means the wait ended, not the run (`endedAt` is then absent).",
        "chat.send": "Starts a turn in the session. A key without the `agent:` prefix "
        "belongs to the default agent (`work` is `agent:<defaultId>:work`). The answer "
        "streams as `chat.event` (`delta` …, then `final` with `usage`) and `agent.event`. "
        "`status: in_flight`: the turn waits for the session. Repeated with the same "
        "idempotency key, the answer names the same run as it is now (`started`, or how it "
        "ended: `ok`, `error` with `error`, `aborted`, `timeout`).",
        "chat.abort": "Aborts the session's unfinished runs (or only `runId`); the text "
        "produced so far is kept and a `chat.event` `aborted` is sent.",
        "chat.history": "The last `limit` messages of the session, oldest first, cut to "
        "512 KiB of JSON (the newest are kept).",
        "chat.inject": "Appends an assistant message without running the agent and "
        "broadcasts it as a `chat.event` `final`.",
        "sessions.list": "Filters: `agentId`, sessions active in the last `activeMinutes`, "
        "`search` in keys, labels and last messages.",
        "sessions.preview": "The last `limit` messages of each session in `keys` (either key "
        "form; repeats count once), each flattened to one line of at most 200 characters. "
        "An unknown session answers `status: missing` rather than failing the call.",
        "sessions.resolve": "The canonical key of a session named by `key` (either form) or by "
        "`label` (exact, ignoring case and outer spaces; `agentId` narrows the search).",
        "sessions.send": "Starts a run in another session like `chat.send` (agent to "
        "agent). With `wait`, answers `{runId, status, reply}` once the run ended.",
        "sessions.patch": "Changes an existing session: omitted fields stay; `null` clears. "
        "An unknown session is NOT_FOUND (sessions are created by their first message).",
        "sessions.compact": "Summarises the session's older turns through its model (the "
        "session's, else the agent's, else the default) and keeps the newest `keepTurns` as "
        "they are. The summary is appended as a `system` message carrying `compaction`; from "
        "then on `chat.history` and the model see that entry first, then only the kept and "
        "later messages (the older ones stay in the stream). A short session answers "
        "`compacted: false` with the reason; when the summary call fails nothing is written.",
        "agents.files.list": "The agent's workspace files, every allowed name with `missing` "
        "when it has none; no content (get it with agents.files.get).",
        "agents.files.get": "One file with its content, `revision` and `hash`; a file never "
        "written answers `missing: true`.",
        "agents.files.set": "Writes one file (at most 64 KiB of UTF-8). With `expectedRevision` "
        "or `expectedHash` the write happens only if the file is still the one read. An "
        "empty `content` removes the file. The files are the agent's system prompt, after its "
        "instructions, in the order AGENTS, SOUL, IDENTITY, USER, TOOLS, MEMORY.",
        "agent.identity.get": "The agent's display name, emoji and avatar: its `identity` "
        "settings first, then the `Name:`, `Emoji:` and `Avatar:` lines of its IDENTITY.md, "
        "then (name only) the agent's name.",
        "sessions.reset": "Aborts the session's unfinished runs and clears its transcript; "
        "the session and its settings stay.",
        "sessions.delete": "Aborts the session's unfinished runs and removes the session "
        "and its transcript.",
        "node.list": "Paired nodes and connected ones, each with `connected` and `paired`; "
        "a node that is away keeps the caps and commands it last declared.",
        "node.invoke": "Runs `command` on the node, whichever ws-gateway replica holds its "
        "connection; the node receives `node.invoke.request` and answers with "
        "`node.invoke.result`. Only commands the node declared in `connect` reach it; a "
        "direct `system.run` obeys the exec approval policy.",
        "node.invoke.result": "Sent by a node to answer a `node.invoke.request` `{id, …}`.",
        "node.event": "Sent by a node; broadcast as the event `node.event` "
        "`{nodeId, event, payload}`.",
        "node.pair.request": "Creates (or joins) a pending request; operators with "
        "`operator.pairing` get `node.pair.requested`. Once paired, `status` is "
        "`approved`.",
        "node.pair.approve": "The node's token is in the result, once: hand it to the node, "
        "which connects with role `node` and `auth.token`.",
        "node.pair.verify": "`ok` is false for an unknown node or a wrong token.",
        "node.pair.remove": "Forgets the paired node and its token and closes its live "
        "connections (the closing order `device.pair.remove` publishes, which also empties "
        "http-api's cache of verified tokens).",
        "node.rename": "Changes the display name; `connected` in the result is always false "
        "(auth knows pairing, not sockets: ask `node.describe`).",
        "config.get": "The configuration with secrets redacted, its `hash` (the `baseHash` "
        "of the next write) and its revision.",
        "config.schema": "The JSON Schema of the whole configuration document.",
        "config.set": "Replaces the whole document; it is validated, and redacted secrets "
        "keep their stored values.",
        "config.patch": "An RFC 7396 merge patch: `null` deletes a key, objects merge, "
        "anything else replaces. Only a write that changes the document counts toward the "
        "control-write limit.",
        "config.apply": "Like `config.set` (with `config`) or `config.patch` (with "
        "`patch`), then waits until every live service instance runs the new document; "
        "`applied` says, per service, whether all its instances do.",
        "cron.status": "Whether the scheduler fires jobs (config `cron.enabled`), how many jobs "
        "exist, are enabled and are running now, and the soonest enabled job's next run "
        "(`nextWakeAtMs`, null while cron is off or nothing is scheduled).",
        "cron.list": "Jobs with their next run times; disabled ones only with `includeDisabled`.",
        "cron.add": "`schedule`: a cron expression (5 or 6 fields, in `tz`, default UTC), "
        "an interval (`everyMs`, at least 1 s) or a time (`at`, with its offset). "
        "`payload`: an agent turn or a system event.",
        "cron.run": "Fires the job now, whatever its schedule.",
        "cron.runs": "The job's run records, newest first.",
        "wake": "Queues `text` as a system event for the session (default: the agent's main "
        "session; the agent: the default one). Mode `now` also starts the agent's heartbeat "
        "turn at once, quiet hours or not, unless `set-heartbeats` switched heartbeats off; "
        "`next-heartbeat` leaves the event for the session's next turn, whatever starts it.",
        "system-event": "Queues `text` for the session's next turn (at most 50 events or "
        "256 KiB per session); the turn's prompt starts with the queued events, and they "
        "stay in the transcript as one `system` message.",
        "last-heartbeat": "The newest heartbeat event (`null` before the first), whether "
        "heartbeats are switched on, and each configured agent's schedule with its next "
        "slot and last outcome (config `heartbeat`).",
        "set-heartbeats": "The live switch for every replica, kept across restarts: off, no "
        "heartbeat turn starts (scheduled slots are recorded as skipped; system events stay "
        "queued).",
        "models.list": "The models of the configured providers.",
        "models.voicewake": "Without `triggers`: reads them (`operator.read`). With them: "
        "replaces them (`operator.write`) and broadcasts `voicewake.changed`.",
        "skills.status": "Skills from the skills folder (`SKILL.md` front matter) and "
        "whether the binaries and environment variables each needs are present; `version` "
        "from the front matter, and for a skill `skills.install`/`update` put there its "
        "`sha256`, `source` and `installedAtMs` (null otherwise).",
        "skills.bins": "Every binary that some skill requires; callable by nodes.",
        "skills.install": "Only from a path under `skills.installPaths` or a URL under "
        "`skills.installUrls` (both empty by default). `sha256` is of the archive, or for a "
        "folder its tree digest (docs/runtime.md, Skills). Nothing changes unless every check "
        "passes; the skill appears at once in `skills.status` of every runtime sharing the "
        "folder.",
        "skills.update": "Like `skills.install`, for a skill that exists: the new version "
        "replaces the old in one rename; `previous` says what it replaced.",
        "device.pair.list": "Pending requests and paired devices; no token material.",
        "device.pair.approve": "`scopes` narrows what is granted (never beyond the request). "
        "The device receives its token in the `hello` of its next signed `connect`.",
        "device.pair.remove": "Forgets the device and closes its live connections.",
        "device.token.rotate": "Issues a new token (shown once) and closes the connections "
        "that used the old one; `scopes` must lie within the approved set.",
        "device.token.revoke": "Drops the token and closes the connections that used it; "
        "the approval stays.",
        "exec.approval.request": "Broadcasts `exec.approval.requested`; without a decision "
        "by `expiresAtMs` the request is denied.",
        "exec.approval.waitDecision": "`decision` is null when the wait ended first.",
        "exec.approval.resolve": "Broadcasts `exec.approval.resolved`; `allow-always` also "
        "adds the command to the allowlist.",
        "exec.approvals.pending": "Requests still waiting for a decision, oldest first, as "
        "`exec.approval.requested` announced them; one past its expiry is left out (expiry "
        "denies it). A client that (re)connects loads its queue here, then follows the events.",
        "exec.approvals.get": "`ask`: `always`, `on-miss` (commands not in the allowlist) "
        "or `off`; `hash` identifies this version of the policy.",
        "exec.approvals.set": "Replaces the policy whole. `baseHash` (the `hash` read) makes "
        "the write a compare-and-set: two operators editing at once do not overwrite each "
        "other silently.",
        "exec.approvals.node.get": "`policy` is the node's own (null: none) and `effective` "
        "the one `system.run` on that node obeys; `source` says whose it is.",
        "exec.approvals.node.set": "A node's own policy replaces the gateway-wide one for that "
        "node, whole; `policy: null` removes it. `baseHash` (the `hash` read, null for none) "
        "makes the write a compare-and-set.",
        "update.status": "`skew` when live instances run different versions.",
        "update.run": "Restarts every service instance, one at a time, each draining "
        "first; progress follows as `update.progress` events.",
        "plugins.list": "Entry points of the `aisopod.plugins` group (tools and providers).",
        "wizard.start": "Onboarding in four steps (provider, model, auth mode, first agent); "
        "the last answer writes the configuration.",
        "wizard.next": "Without `answer`: the current step again.",
        "wizard.status": "Without `sessionId`: the wizard currently running, if any.",
        "tools.catalog": "Tools with the JSON Schema of their arguments.",
        "tools.invoke": "Runs a tool under the tool policy (allow and deny lists), as an "
        "agent's tool call would.",
    }
)


_AGENT: dict[str, JsonValue] = {
    "id": "helper",
    "name": "Helper",
    "model": "echo/echo",
    "tools": ["web.search"],
}
_NODE: dict[str, JsonValue] = {
    "nodeId": "mac-1",
    "displayName": "Studio Mac",
    "platform": "macos",
    "caps": ["camera"],
    "commands": ["camera.snap", "system.run"],
    "connected": True,
    "paired": True,
}
_JOB: dict[str, JsonValue] = {
    "jobId": "j-7c1e",
    "name": "morning",
    "schedule": {"kind": "cron", "expr": "0 9 * * *", "tz": "Europe/Berlin"},
    "payload": {"kind": "agentTurn", "message": "plan my day"},
    "enabled": True,
    "createdAtMs": T0,
    "updatedAtMs": T0,
    "nextRunAtMs": T0 + 3_600_000,
    "lastRunAtMs": None,
    "lastStatus": None,
    "lastRunId": None,
    "running": False,
}
_WIZARD_STEP: dict[str, JsonValue] = {
    "stepId": "provider",
    "title": "Which model provider?",
    "input": "select",
    "options": [
        {"value": "echo", "label": "echo (offline)"},
        {"value": "openai", "label": "OpenAI"},
    ],
}
_SUBSCRIPTION: dict[str, JsonValue] = {"events": ["chat.*"], "sessionKeys": [KEY]}
_OK: dict[str, JsonValue] = {"ok": True}

_AGENT_NOT_FOUND = "NOT_FOUND `AGENT_NOT_FOUND`: no agent with this id"
_SESSION_NOT_FOUND = "NOT_FOUND `SESSION_NOT_FOUND`: no session with this key"
_JOB_NOT_FOUND = "NOT_FOUND `JOB_NOT_FOUND`: no job with this id"
_STALE_HASH = "CONFLICT: `baseHash` is not the current hash (read again with config.get)"
_CONFIG_RATE = "RATE_LIMITED: more than 3 configuration writes in 60 s by this principal"
_BAD_CONFIG = "INVALID_PARAMS: the resulting document fails the configuration model"
_APPROVAL_NOT_FOUND = "NOT_FOUND `APPROVAL_NOT_FOUND`: no approval with this id"
_PAIR_NOT_FOUND = "NOT_FOUND: no pending request with this id (or it was decided already)"
_PAIR_CHANGED = "CONFLICT: the request changed meanwhile (list and decide again)"
_BAD_MODEL = (
    "INVALID_PARAMS `BAD_MODEL_REF` (not `<providerId>/<modelId>`), `UNKNOWN_PROVIDER` "
    "(no such provider configured)"
)
_BAD_SESSION_KEY = (
    "INVALID_PARAMS `BAD_SESSION_KEY`: a key that starts with `agent:` but is not "
    "`agent:<agentId>:<name>`"
)
_NO_PROVIDER = (
    "INVALID_PARAMS `UNKNOWN_PROVIDER`: the run's model has no configured provider; "
    "UNAVAILABLE `PROVIDER_UNAVAILABLE` (`data.provider`, not retryable): it is configured "
    "but cannot be used, the message says why (docs/runtime-ops.md)"
)
_WIZARD_NOT_FOUND = "NOT_FOUND: no wizard session with this id"
_EVENTS_FULL = (
    "CONFLICT `SYSTEM_EVENTS_FULL`: the session already has 50 events (or 256 KiB) waiting"
)
_HEARTBEAT: dict[str, JsonValue] = {
    "ts": T0,
    "status": "ok-token",
    "agentId": "main",
    "sessionKey": KEY,
    "trigger": "schedule",
    "durationMs": 1840,
    "runId": "r-5e0",
    "dueAtMs": T0,
    "instance": "runtime-1",
    "indicatorType": "ok",
}
_BAD_WINDOW = (
    "INVALID_PARAMS `BAD_WINDOW`: `since` not before `until`, a window over 366 days, or "
    "hour buckets over 31 days"
)
_BUDGET = (
    "FORBIDDEN `BUDGET_EXHAUSTED`: the agent's or the API token's monthly budget is spent; "
    "`data` holds the budget (scope, id, month, spent, limits, resetsAt)"
)
_SKILL_SHA = "4e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce"
_POLICY_HASH = "9a1c3e5f7b2d4f6a8c0e1a3b5d7f9e2c4a6b8d0f1e3c5a7b9d2f4e6a8c0b1d3f"
_GATEWAY_POLICY_HASH = "f0883db564b0e976e6bd1d62deefbf47b1897be0fcbebdda51d404d57e6b927c"
_FILE_HASH = "5c0f8e0a4b1d2e3f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f"

EXAMPLES: Mapping[str, MethodExample] = MappingProxyType(
    {
        "connect": MethodExample(
            {
                "minProtocol": 1,
                "maxProtocol": 1,
                "client": {"id": "cli", "version": "1.4.0", "platform": "linux", "mode": "cli"},
                "role": "operator",
                "scopes": ["operator.read", "operator.write"],
                "auth": {"token": "<gateway token>"},
            },
            {
                "protocol": 1,
                "server": {"version": "0.1.0", "connId": "c-5f2a", "instance": "ws-gateway-1"},
                "features": {"methods": ["health", "chat.send"], "events": ["chat.event"]},
                "snapshot": {
                    "presence": [],
                    "health": {"ok": True, "ts": T0, "services": {}},
                    "uptimeMs": 120000,
                },
                "auth": {
                    "method": "token",
                    "role": "operator",
                    "scopes": ["operator.read", "operator.write"],
                },
                "policy": {
                    "maxPayload": 1048576,
                    "maxBufferedBytes": 8388608,
                    "tickIntervalMs": 30000,
                },
            },
            (
                "INVALID_REQUEST: `connect` sent twice, or another method before it",
                "UNAUTHENTICATED `AUTH_TOKEN_MISMATCH`, `AUTH_PASSWORD_MISMATCH`, "
                "`AUTH_DEVICE_TOKEN_INVALID`, `DEVICE_SIGNATURE_INVALID`: the credential failed",
                "NOT_PAIRED: the device waits for approval (`data.requestId`)",
                "FORBIDDEN `ORIGIN_NOT_ALLOWED`: a browser origin that is not allowed",
                "RATE_LIMITED `AUTH_RATE_LIMITED`: too many failed attempts from this address",
                "UNAVAILABLE: the auth service did not answer (the socket closes with 1013)",
                "INVALID_REQUEST `PROTOCOL_MISMATCH`: the server's protocol is outside "
                "`minProtocol`..`maxProtocol`",
            ),
        ),
        "health": MethodExample(
            {},
            {
                "ok": True,
                "ts": T0,
                "services": {"runtime": {"ok": True, "instances": 1}},
            },
        ),
        "status": MethodExample(
            {},
            {
                "services": {"runtime": {"instances": [{"id": "rt-1", "version": "0.1.0"}]}},
                "connections": 3,
                "agents": 1,
                "sessions": 4,
                "uptimeMs": 86400000,
            },
        ),
        "usage.status": MethodExample(
            {"since": T0, "until": T0 + 3600000, "bucket": "hour"},
            {
                "since": T0,
                "until": T0 + 3600000,
                "bucket": "hour",
                "totals": {
                    "runs": 12,
                    "calls": 15,
                    "promptTokens": 5400,
                    "completionTokens": 1300,
                    "cacheReadTokens": 2048,
                    "cacheWriteTokens": 0,
                    "totalTokens": 6700,
                },
                "byProvider": [
                    {
                        "provider": "openai",
                        **{
                            "runs": 12,
                            "calls": 15,
                            "promptTokens": 5400,
                            "completionTokens": 1300,
                            "cacheReadTokens": 2048,
                            "cacheWriteTokens": 0,
                            "totalTokens": 6700,
                        },
                    }
                ],
                "byModel": [
                    {
                        "model": "openai/gpt-4o-mini",
                        "provider": "openai",
                        **{
                            "runs": 12,
                            "calls": 15,
                            "promptTokens": 5400,
                            "completionTokens": 1300,
                            "cacheReadTokens": 2048,
                            "cacheWriteTokens": 0,
                            "totalTokens": 6700,
                        },
                    }
                ],
                "byAgent": [
                    {
                        "agentId": "main",
                        **{
                            "runs": 12,
                            "calls": 15,
                            "promptTokens": 5400,
                            "completionTokens": 1300,
                            "cacheReadTokens": 2048,
                            "cacheWriteTokens": 0,
                            "totalTokens": 6700,
                        },
                    }
                ],
                "series": [
                    {
                        "start": T0,
                        **{
                            "runs": 12,
                            "calls": 15,
                            "promptTokens": 5400,
                            "completionTokens": 1300,
                            "cacheReadTokens": 2048,
                            "cacheWriteTokens": 0,
                            "totalTokens": 6700,
                        },
                    }
                ],
                "budgets": [
                    {
                        "scope": "agent",
                        "id": "main",
                        "month": "2025-11",
                        "spentTokens": 6700,
                        "spentCostUsd": 0.00159,
                        "limitCostUsd": 5.0,
                        "exhausted": False,
                        "resetsAt": 1764547200000,
                    }
                ],
            },
            (_BAD_WINDOW,),
        ),
        "usage.cost": MethodExample(
            {"agentId": "main"},
            {
                "since": T0 - 2592000000,
                "until": T0,
                "bucket": "day",
                "currency": "USD",
                "totalUsd": 0.00159,
                "byModel": [
                    {
                        "model": "openai/gpt-4o-mini",
                        "provider": "openai",
                        "promptTokens": 5400,
                        "completionTokens": 1300,
                        "cacheReadTokens": 2048,
                        "cacheWriteTokens": 0,
                        "costUsd": 0.00159,
                        "priced": True,
                    }
                ],
                "byAgent": [{"agentId": "main", "costUsd": 0.00159}],
                "series": [{"start": T0 - 86400000, "costUsd": 0.00159}],
                "unpriced": [],
            },
            (_BAD_WINDOW,),
        ),
        "sessions.usage": MethodExample(
            {"key": KEY},
            {
                "key": KEY,
                "agentId": "main",
                "since": T0 - 2592000000,
                "until": T0,
                "totals": {
                    "runs": 12,
                    "calls": 15,
                    "promptTokens": 5400,
                    "completionTokens": 1300,
                    "cacheReadTokens": 2048,
                    "cacheWriteTokens": 0,
                    "totalTokens": 6700,
                },
                "byModel": [],
                "costUsd": 0.0,
            },
            (_SESSION_NOT_FOUND, _BAD_WINDOW),
        ),
        "usage.sessions": MethodExample(
            {"since": T0 - 86400000, "until": T0, "limit": 1},
            {
                "since": T0 - 86400000,
                "until": T0,
                "sessionCount": 1,
                "sessions": [
                    {
                        "key": KEY,
                        "agentId": "main",
                        "firstAt": T0 - 840000,
                        "lastAt": T0 - 60000,
                        "totals": {
                            "runs": 2,
                            "calls": 3,
                            "promptTokens": 900,
                            "completionTokens": 200,
                            "cacheReadTokens": 0,
                            "cacheWriteTokens": 0,
                            "totalTokens": 1100,
                        },
                        "costUsd": 0.000255,
                        "cells": [
                            {
                                "start": T0 - 900000,
                                "agentId": "main",
                                "model": "openai/gpt-4o-mini",
                                "provider": "openai",
                                "runs": 2,
                                "calls": 3,
                                "promptTokens": 900,
                                "completionTokens": 200,
                                "cacheReadTokens": 0,
                                "cacheWriteTokens": 0,
                                "totalTokens": 1100,
                                "inputCostUsd": 0.000135,
                                "outputCostUsd": 0.00012,
                                "cacheReadCostUsd": 0.0,
                                "cacheWriteCostUsd": 0.0,
                                "costUsd": 0.000255,
                                "priced": True,
                            }
                        ],
                    }
                ],
                "cells": [
                    {
                        "start": T0 - 900000,
                        "agentId": "main",
                        "model": "openai/gpt-4o-mini",
                        "provider": "openai",
                        "runs": 2,
                        "calls": 3,
                        "promptTokens": 900,
                        "completionTokens": 200,
                        "cacheReadTokens": 0,
                        "cacheWriteTokens": 0,
                        "totalTokens": 1100,
                        "inputCostUsd": 0.000135,
                        "outputCostUsd": 0.00012,
                        "cacheReadCostUsd": 0.0,
                        "cacheWriteCostUsd": 0.0,
                        "costUsd": 0.000255,
                        "priced": True,
                    }
                ],
            },
            (_BAD_WINDOW,),
        ),
        "sessions.usage.series": MethodExample(
            {"key": KEY, "since": T0 - 86400000, "until": T0, "maxPoints": 200},
            {
                "key": KEY,
                "agentId": "main",
                "since": T0 - 86400000,
                "until": T0,
                "runs": 1,
                "points": [
                    {
                        "ts": T0 - 60000,
                        "runs": 1,
                        "calls": 2,
                        "promptTokens": 600,
                        "completionTokens": 120,
                        "cacheReadTokens": 0,
                        "cacheWriteTokens": 0,
                        "totalTokens": 720,
                        "costUsd": 0.000162,
                        "priced": True,
                    }
                ],
            },
            (_SESSION_NOT_FOUND, _BAD_WINDOW),
        ),
        "sessions.usage.logs": MethodExample(
            {"key": KEY, "limit": 2},
            {
                "key": KEY,
                "agentId": "main",
                "messages": [
                    {"id": "m1", "role": "user", "content": "hello", "ts": T0, "runId": "r1"},
                    {
                        "id": "m2",
                        "role": "assistant",
                        "content": "hello",
                        "ts": T0 + 40,
                        "runId": "r1",
                        "model": "openai/gpt-4o-mini",
                    },
                ],
                "runs": [
                    {
                        "runId": "r1",
                        "model": "openai/gpt-4o-mini",
                        "totalTokens": 720,
                        "costUsd": 0.000162,
                        "priced": True,
                    }
                ],
            },
            (_SESSION_NOT_FOUND,),
        ),
        "logs.tail": MethodExample(
            {"limit": 2, "service": "runtime", "level": "warning"},
            {
                "cursor": 1042,
                "lines": [
                    {
                        "seq": 1042,
                        "ts": T0,
                        "service": "runtime",
                        "level": "warning",
                        "message": "provider slow",
                        "instance": "runtime-1",
                        "logger": "aisopod.runtime.models",
                    }
                ],
            },
        ),
        "system-presence": MethodExample(
            {},
            [
                {
                    "key": "c-5f2a",
                    "connId": "c-5f2a",
                    "client": {"id": "cli", "mode": "cli"},
                    "role": "operator",
                    "ip": "127.0.0.1",
                    "since": T0,
                    "lastSeenMs": T0 + 20000,
                    "instance": "ws-gateway-1",
                }
            ],
        ),
        "subscribe": MethodExample(_SUBSCRIPTION, _SUBSCRIPTION),
        "unsubscribe": MethodExample({"events": ["chat.*"]}, {"events": [], "sessionKeys": [KEY]}),
        "agents.list": MethodExample(
            {}, {"defaultId": "main", "agents": [{"id": "main", "name": "Main"}, _AGENT]}
        ),
        "agents.create": MethodExample(
            {"id": "helper", "name": "Helper", "model": "echo/echo", "tools": ["web.search"]},
            _AGENT,
            ("CONFLICT `AGENT_EXISTS`: an agent with this id exists", _BAD_MODEL),
        ),
        "agents.update": MethodExample(
            {"agentId": "helper", "model": None},
            {"id": "helper", "name": "Helper", "tools": ["web.search"]},
            (
                _AGENT_NOT_FOUND,
                _BAD_MODEL,
                "CONFLICT `CONCURRENT_UPDATE`: changed by another call meanwhile",
            ),
        ),
        "agents.delete": MethodExample(
            {"agentId": "helper"},
            _OK,
            (_AGENT_NOT_FOUND, "CONFLICT `DEFAULT_AGENT`: the default agent cannot be deleted"),
        ),
        "agent": MethodExample(
            {"message": "summarise my inbox", "agentId": "main", "idempotencyKey": "k-81"},
            {"runId": "run-4d1", "status": "accepted"},
            (
                _AGENT_NOT_FOUND,
                "INVALID_PARAMS `AGENT_MISMATCH`: `sessionKey` belongs to another agent",
                _BAD_SESSION_KEY,
                _NO_PROVIDER,
                _BUDGET,
            ),
        ),
        "agent.wait": MethodExample(
            {"runId": "run-4d1", "timeoutMs": 30000},
            {"runId": "run-4d1", "status": "ok", "startedAt": T0, "endedAt": T0 + 900},
            ("NOT_FOUND `RUN_NOT_FOUND`: no run with this id",),
        ),
        "chat.send": MethodExample(
            {"sessionKey": KEY, "message": "hello", "idempotencyKey": "k-82"},
            {"runId": "run-4d2", "status": "started"},
            (_AGENT_NOT_FOUND, _BAD_SESSION_KEY, _NO_PROVIDER, _BUDGET),
        ),
        "chat.abort": MethodExample({"sessionKey": KEY}, {"aborted": True, "runIds": ["run-4d2"]}),
        "chat.history": MethodExample(
            {"sessionKey": KEY, "limit": 2},
            {
                "sessionKey": KEY,
                "messages": [
                    {"id": "m1", "role": "user", "content": "hello", "ts": T0},
                    {"id": "m2", "role": "assistant", "content": "hello", "ts": T0 + 40},
                ],
            },
        ),
        "chat.inject": MethodExample(
            {"sessionKey": KEY, "message": "Reminder: standup at 10", "label": "note"},
            {"messageId": "m3"},
        ),
        "sessions.list": MethodExample(
            {"agentId": "main", "limit": 1},
            {
                "sessions": [
                    {"key": KEY, "agentId": "main", "updatedAt": T0, "lastMessage": "hello"}
                ]
            },
        ),
        "sessions.preview": MethodExample(
            {"keys": [KEY, "agent:main:gone"], "limit": 2},
            {
                "previews": [
                    {
                        "key": KEY,
                        "status": "ok",
                        "messages": [
                            {"role": "user", "text": "hello", "ts": T0},
                            {"role": "assistant", "text": "Hi! How can I help?", "ts": T0 + 900},
                        ],
                    },
                    {"key": "agent:main:gone", "status": "missing", "messages": []},
                ]
            },
        ),
        "sessions.resolve": MethodExample(
            {"label": "inbox"},
            {
                "key": KEY,
                "entry": {"key": KEY, "agentId": "main", "label": "inbox", "updatedAt": T0},
            },
            (
                _SESSION_NOT_FOUND,
                "CONFLICT `AMBIGUOUS_LABEL`: several sessions carry the label; "
                "`data.keys` lists them",
            ),
        ),
        "sessions.send": MethodExample(
            {"sessionKey": "agent:helper:main", "message": "check the weather", "wait": True},
            {"runId": "run-4d3", "status": "ok", "reply": "Sunny, 21 °C."},
            (
                "FORBIDDEN `SEND_DENIED`: the target session's send policy is `deny`",
                "INVALID_PARAMS `SELF_SEND`: an agent's run may not send into its own session",
                _AGENT_NOT_FOUND,
                _BAD_SESSION_KEY,
                _NO_PROVIDER,
                _BUDGET,
            ),
        ),
        "sessions.patch": MethodExample(
            {"key": KEY, "label": "inbox", "thinkingLevel": "low"},
            {
                "key": KEY,
                "entry": {
                    "key": KEY,
                    "agentId": "main",
                    "label": "inbox",
                    "updatedAt": T0,
                    "thinkingLevel": "low",
                },
            },
            (
                _SESSION_NOT_FOUND,
                _BAD_MODEL,
                "CONFLICT `CONCURRENT_UPDATE`: changed by another call meanwhile",
            ),
        ),
        "sessions.reset": MethodExample({"key": KEY}, _OK, (_SESSION_NOT_FOUND,)),
        "sessions.compact": MethodExample(
            {"key": KEY, "keepTurns": 2},
            {
                "key": KEY,
                "compacted": True,
                "entryId": "9b1c0e",
                "summary": "The user is planning a trip to Lisbon in May; flights are booked.",
                "compaction": {
                    "lastCompactedId": "7f3a21",
                    "compactedMessages": 38,
                    "keptMessages": 4,
                    "tokensBefore": 5210,
                    "tokensAfter": 610,
                    "auto": False,
                    "model": "openai/gpt-4o-mini",
                },
            },
            (
                _SESSION_NOT_FOUND,
                "CONFLICT `SESSION_BUSY`: a run of the session is in progress; "
                "`COMPACTING`: a compaction of it is already under way",
                "UNAVAILABLE `SUMMARY_FAILED`: the summary call failed or timed out "
                "(nothing was written)",
            ),
        ),
        "agents.files.list": MethodExample(
            {"agentId": "main"},
            {
                "agentId": "main",
                "files": [
                    {
                        "name": "AGENTS.md",
                        "missing": False,
                        "size": 412,
                        "revision": 3,
                        "hash": _FILE_HASH,
                        "updatedAt": T0,
                    },
                    {"name": "SOUL.md", "missing": True},
                ],
            },
            (_AGENT_NOT_FOUND,),
        ),
        "agents.files.get": MethodExample(
            {"agentId": "main", "name": "SOUL.md"},
            {
                "agentId": "main",
                "file": {
                    "name": "SOUL.md",
                    "missing": False,
                    "size": 23,
                    "revision": 1,
                    "hash": _FILE_HASH,
                    "updatedAt": T0,
                    "content": "Warm, brief, no emojis.",
                },
            },
            (_AGENT_NOT_FOUND, "INVALID_PARAMS: `name` is not one of the agent file names"),
        ),
        "agents.files.set": MethodExample(
            {
                "agentId": "main",
                "name": "SOUL.md",
                "content": "Warm, brief, no emojis.",
                "expectedRevision": 1,
            },
            {
                "ok": True,
                "agentId": "main",
                "file": {
                    "name": "SOUL.md",
                    "missing": False,
                    "size": 23,
                    "revision": 2,
                    "hash": _FILE_HASH,
                    "updatedAt": T0,
                    "content": "Warm, brief, no emojis.",
                },
            },
            (
                _AGENT_NOT_FOUND,
                "CONFLICT `FILE_CHANGED`: the file is no longer the revision (or hash) "
                "expected; `data.currentRevision` and `data.currentHash` say what it is now",
                "INVALID_PARAMS `FILE_TOO_LARGE` (over 64 KiB), `FILES_TOO_LARGE` (the "
                "agent's files together over 512 KiB)",
            ),
        ),
        "agent.identity.get": MethodExample(
            {"agentId": "main"},
            {
                "agentId": "main",
                "name": "Molty",
                "nameSource": "workspace",
                "emoji": "🦞",
                "avatar": "https://example.com/molty.png",
                "avatarSource": "config",
            },
            (_AGENT_NOT_FOUND, "INVALID_PARAMS `AGENT_MISMATCH`: `sessionKey` names another agent"),
        ),
        "sessions.delete": MethodExample({"key": KEY}, _OK, (_SESSION_NOT_FOUND,)),
        "node.list": MethodExample({}, {"nodes": [_NODE]}),
        "node.describe": MethodExample(
            {"nodeId": "mac-1"}, _NODE, ("NOT_FOUND `NODE_NOT_FOUND`: no such node",)
        ),
        "node.invoke": MethodExample(
            {"nodeId": "mac-1", "command": "camera.snap", "params": {"facing": "front"}},
            {"ok": True, "payload": {"format": "jpeg", "base64": "/9j/4AAQ..."}},
            (
                "UNAVAILABLE `NOT_CONNECTED`: the node is not connected to any replica",
                "TIMEOUT: the node did not answer within `timeoutMs`",
                "NOT_FOUND `NODE_NOT_FOUND`: no such node",
                "INVALID_PARAMS `COMMAND_NOT_DECLARED`: the node did not declare `command`",
                "FORBIDDEN `EXEC_APPROVAL_REQUIRED`: `system.run` of a command the exec "
                "policy would ask an operator about (run it through the `exec` tool)",
            ),
        ),
        "node.invoke.result": MethodExample(
            {"id": "5c0f9a1e2b3d4c5e", "ok": True, "payload": {"format": "jpeg"}},
            _OK,
            ("NOT_FOUND `INVOKE_NOT_FOUND`: no pending invoke with this id for this node",),
        ),
        "node.event": MethodExample({"event": "battery.low", "payload": {"percent": 9}}, _OK),
        "node.pair.request": MethodExample(
            {"nodeId": "mac-1", "displayName": "Studio Mac", "platform": "macos"},
            {"requestId": "pr-19", "status": "pending"},
        ),
        "node.pair.list": MethodExample(
            {},
            {
                "pending": [{"requestId": "pr-19", "nodeId": "mac-1", "requestedAt": T0}],
                "paired": [],
            },
        ),
        "node.pair.approve": MethodExample(
            {"requestId": "pr-19"},
            {
                "requestId": "pr-19",
                "nodeId": "mac-1",
                "decision": "approved",
                "token": "<node token, shown once>",
            },
            (_PAIR_NOT_FOUND, _PAIR_CHANGED),
        ),
        "node.pair.reject": MethodExample(
            {"requestId": "pr-19"},
            {"requestId": "pr-19", "nodeId": "mac-1", "decision": "rejected"},
            (_PAIR_NOT_FOUND, _PAIR_CHANGED),
        ),
        # An unknown node or a wrong token is `{"ok": false}`, not an error.
        "node.pair.verify": MethodExample({"nodeId": "mac-1", "token": "<node token>"}, _OK),
        "node.pair.remove": MethodExample(
            {"nodeId": "mac-1"}, _OK, ("NOT_FOUND: no paired node with this id",)
        ),
        "node.rename": MethodExample(
            {"nodeId": "mac-1", "displayName": "Studio Mac"},
            _NODE,
            ("NOT_FOUND: no paired node with this id",),
        ),
        "config.get": MethodExample(
            {},
            {
                "config": {"gateway": {"auth": {"mode": "token", "token": "__REDACTED__"}}},
                "hash": HASH,
                "revision": 7,
            },
        ),
        "config.schema": MethodExample(
            {}, {"type": "object", "title": "GatewayConfig", "properties": {}}
        ),
        "config.set": MethodExample(
            {"config": {"gateway": {"auth": {"mode": "token"}}}, "baseHash": HASH},
            {"hash": "a90c44e1b7f3"},
            (_STALE_HASH, _BAD_CONFIG, _CONFIG_RATE),
        ),
        "config.patch": MethodExample(
            {"patch": {"hooks": {"enabled": True}}, "baseHash": HASH},
            {"hash": "a90c44e1b7f3", "config": {"hooks": {"enabled": True}}},
            (_STALE_HASH, _BAD_CONFIG, _CONFIG_RATE),
        ),
        "config.apply": MethodExample(
            {"patch": {"hooks": {"enabled": True}}, "baseHash": HASH},
            {
                "hash": "a90c44e1b7f3",
                "applied": {"runtime": True, "ws-gateway": True},
                "complete": True,
                "instances": [
                    {
                        "service": "runtime",
                        "instance": "runtime-1",
                        "hash": "a90c44e1b7f3",
                        "ok": True,
                    },
                    {
                        "service": "ws-gateway",
                        "instance": "ws-gateway-1",
                        "hash": "a90c44e1b7f3",
                        "ok": True,
                    },
                ],
            },
            (_STALE_HASH, _BAD_CONFIG, _CONFIG_RATE),
        ),
        "cron.status": MethodExample(
            {},
            {
                "enabled": True,
                "jobs": 3,
                "enabledJobs": 2,
                "running": 0,
                "nextWakeAtMs": T0 + 3_600_000,
                "nextJobId": "j-7c1e",
            },
        ),
        "cron.list": MethodExample({"includeDisabled": True}, {"jobs": [_JOB]}),
        "cron.add": MethodExample(
            {
                "name": "morning",
                "schedule": {"kind": "cron", "expr": "0 9 * * *", "tz": "Europe/Berlin"},
                "payload": {"kind": "agentTurn", "message": "plan my day"},
            },
            _JOB,
            ("INVALID_PARAMS: the cron expression or time zone does not parse",),
        ),
        "cron.update": MethodExample(
            {"jobId": "j-7c1e", "patch": {"enabled": False}},
            {**_JOB, "enabled": False, "nextRunAtMs": None},
            (_JOB_NOT_FOUND, "CONFLICT `CRON_BUSY`: changed by another call meanwhile"),
        ),
        "cron.run": MethodExample({"jobId": "j-7c1e"}, {"runId": "cr-311"}, (_JOB_NOT_FOUND,)),
        "cron.remove": MethodExample(
            {"jobId": "j-7c1e"},
            _OK,
            (_JOB_NOT_FOUND, "CONFLICT `CRON_BUSY`: changed by another call meanwhile"),
        ),
        "cron.runs": MethodExample(
            {"jobId": "j-7c1e", "limit": 1},
            {
                "runs": [
                    {
                        "runId": "cr-311",
                        "jobId": "j-7c1e",
                        "status": "ok",
                        "trigger": "schedule",
                        "dueAtMs": T0,
                        "startedAt": T0,
                        "endedAt": T0 + 1200,
                        "error": None,
                        "instance": "runtime-1",
                        "agentRunId": "r-9d2",
                    }
                ]
            },
            (_JOB_NOT_FOUND,),
        ),
        "wake": MethodExample(
            {"mode": "now", "text": "the build on main failed"},
            {
                "ok": True,
                "mode": "now",
                "agentId": "main",
                "sessionKey": KEY,
                "queued": 1,
                "runId": "r-5e1",
            },
            (
                _AGENT_NOT_FOUND,
                "INVALID_PARAMS `AGENT_MISMATCH`: `agentId` is not the agent of `sessionKey`",
                _EVENTS_FULL,
            ),
        ),
        "system-event": MethodExample(
            {"text": "calendar: dentist at 15:00", "sessionKey": KEY},
            {"ok": True, "sessionKey": KEY, "queued": 2, "runId": None},
            (
                _AGENT_NOT_FOUND,
                "INVALID_PARAMS `AGENT_MISMATCH`: `agentId` is not the agent of `sessionKey`",
                _EVENTS_FULL,
            ),
        ),
        "last-heartbeat": MethodExample(
            {},
            {
                "enabled": True,
                "last": _HEARTBEAT,
                "agents": [
                    {
                        "agentId": "main",
                        "enabled": True,
                        "every": "30m",
                        "everyMs": 1_800_000,
                        "prompt": "Check the inbox. If nothing needs attention, reply "
                        "HEARTBEAT_OK.",
                        "sessionKey": KEY,
                        "quietHours": {
                            "start": "22:00",
                            "end": "07:00",
                            "timezone": "Europe/Berlin",
                        },
                        "nextDueAtMs": T0 + 1_800_000,
                        "running": False,
                        "last": _HEARTBEAT,
                    }
                ],
            },
        ),
        "set-heartbeats": MethodExample({"enabled": False}, {"ok": True, "enabled": False}),
        "models.list": MethodExample(
            {},
            {
                "models": [
                    {
                        "id": "echo/echo",
                        "provider": "echo",
                        "contextWindow": None,
                        "model": "echo",
                        "source": "config",
                    },
                    {
                        "id": "openai/gpt-4o-mini",
                        "provider": "openai",
                        "contextWindow": 128000,
                        "model": "gpt-4o-mini",
                        "source": "upstream",
                    },
                ]
            },
        ),
        "models.voicewake": MethodExample({"triggers": ["hey pod"]}, {"triggers": ["hey pod"]}),
        "skills.status": MethodExample(
            {},
            {
                "skills": [
                    {
                        "name": "screenshot",
                        "description": "capture the screen",
                        "eligible": False,
                        "missing": {"bins": ["scrot"], "env": []},
                        "requires": {"bins": ["scrot"], "env": []},
                        "version": "1.2.0",
                        "sha256": _SKILL_SHA,
                        "source": "https://skills.example.com/releases/screenshot-1.2.0.tgz",
                        "installedAtMs": T0,
                    }
                ]
            },
        ),
        "skills.bins": MethodExample({}, {"bins": ["scrot", "ffmpeg"]}),
        "skills.install": MethodExample(
            {
                "source": "https://skills.example.com/releases/weather-1.2.0.tar.gz",
                "sha256": _SKILL_SHA,
            },
            {
                "name": "weather",
                "version": "1.2.0",
                "sha256": _SKILL_SHA,
                "source": "https://skills.example.com/releases/weather-1.2.0.tar.gz",
                "installedAtMs": T0,
                "files": 3,
                "bytes": 4210,
            },
            (
                "FORBIDDEN `SOURCE_NOT_ALLOWED`: the path or URL is not under the allow-lists",
                "INVALID_PARAMS `CHECKSUM_MISMATCH`: the bytes do not match `sha256`",
                "INVALID_PARAMS `UNSAFE_ARCHIVE`: an absolute path, `..`, a link or a device",
                "INVALID_PARAMS `TOO_LARGE`: over the archive, unpacked or file-count limit",
                "INVALID_PARAMS `NO_SKILL_MD`: no SKILL.md at the top or in the one folder",
                "CONFLICT `SKILL_EXISTS`: installed already (use skills.update)",
                "UNAVAILABLE `DOWNLOAD_FAILED`: the URL did not answer 200 (no redirects)",
            ),
        ),
        "skills.update": MethodExample(
            {
                "name": "weather",
                "source": "/srv/skills/weather",
                "sha256": _SKILL_SHA,
            },
            {
                "name": "weather",
                "version": "1.3.0",
                "sha256": _SKILL_SHA,
                "source": "/srv/skills/weather",
                "installedAtMs": T0,
                "files": 3,
                "bytes": 4388,
                "previous": {"version": "1.2.0", "sha256": _POLICY_HASH},
            },
            ("NOT_FOUND `SKILL_NOT_FOUND`: no such skill installed (use skills.install)",),
        ),
        "device.pair.list": MethodExample(
            {},
            {
                "pending": [
                    {
                        "requestId": "dr-4",
                        "deviceId": DEVICE,
                        "role": "operator",
                        "scopes": ["operator.read"],
                        "requestedAt": T0,
                    }
                ],
                "paired": [],
            },
        ),
        "device.pair.approve": MethodExample(
            {"requestId": "dr-4", "scopes": ["operator.read"]},
            {"requestId": "dr-4", "deviceId": DEVICE, "decision": "approved"},
            (_PAIR_NOT_FOUND, _PAIR_CHANGED),
        ),
        "device.pair.reject": MethodExample(
            {"requestId": "dr-4"},
            {"requestId": "dr-4", "deviceId": DEVICE, "decision": "rejected"},
            (_PAIR_NOT_FOUND, _PAIR_CHANGED),
        ),
        "device.pair.remove": MethodExample(
            {"deviceId": DEVICE}, _OK, ("NOT_FOUND: no paired device with this id",)
        ),
        "device.token.rotate": MethodExample(
            {"deviceId": DEVICE, "role": "operator", "scopes": ["operator.read"]},
            {
                "deviceId": DEVICE,
                "role": "operator",
                "token": "<device token, shown once>",
                "scopes": ["operator.read"],
            },
            (
                "NOT_FOUND: the device is not approved for this role",
                "INVALID_PARAMS: `scopes` beyond the device's approved set",
            ),
        ),
        "device.token.revoke": MethodExample(
            {"deviceId": DEVICE, "role": "operator"},
            {"revokedAt": T0},
            ("NOT_FOUND: the device has no token for this role",),
        ),
        "exec.approval.request": MethodExample(
            {"command": "rm -rf build", "argv": ["rm", "-rf", "build"], "timeoutMs": 60000},
            {"id": "ap-8", "expiresAtMs": T0 + 60000},
        ),
        "exec.approval.waitDecision": MethodExample(
            {"id": "ap-8", "timeoutMs": 30000},
            {"id": "ap-8", "decision": "allow-once"},
            (_APPROVAL_NOT_FOUND,),
        ),
        "exec.approval.resolve": MethodExample(
            {"id": "ap-8", "decision": "allow-once"},
            _OK,
            (_APPROVAL_NOT_FOUND, "CONFLICT `ALREADY_RESOLVED`: decided before"),
        ),
        "exec.approvals.pending": MethodExample(
            {},
            {
                "approvals": [
                    {
                        "id": "a-5e0",
                        "command": "rm -rf build",
                        "cwd": "/home/me/app",
                        "agentId": "main",
                        "sessionKey": KEY,
                        "runId": "run-4d3",
                        "toolCallId": "call-1",
                        "requestedBy": "runtime",
                        "createdAtMs": T0,
                        "expiresAtMs": T0 + 120_000,
                    }
                ]
            },
        ),
        "exec.approvals.get": MethodExample(
            {}, {"ask": "on-miss", "allowlist": ["/usr/bin/ls"], "hash": _GATEWAY_POLICY_HASH}
        ),
        "exec.approvals.set": MethodExample(
            {
                "ask": "on-miss",
                "allowlist": ["/usr/bin/ls", "/usr/bin/git"],
                "baseHash": _GATEWAY_POLICY_HASH,
            },
            {
                "ask": "on-miss",
                "allowlist": ["/usr/bin/ls", "/usr/bin/git"],
                "hash": "e0b44d85b86e822a02356a459406a8b02e2f606d75e47db9910c672e365c5e12",
            },
            (
                "CONFLICT `POLICY_CHANGED`: `baseHash` is not the current hash "
                "(read again with exec.approvals.get)",
            ),
        ),
        "exec.approvals.node.get": MethodExample(
            {"nodeId": "mac-mini"},
            {
                "nodeId": "mac-mini",
                "policy": None,
                "hash": None,
                "effective": {"ask": "on-miss", "allowlist": ["/usr/bin/ls"]},
                "source": "gateway",
                "updatedAtMs": None,
                "updatedBy": None,
            },
        ),
        "exec.approvals.node.set": MethodExample(
            {"nodeId": "mac-mini", "policy": {"ask": "always", "allowlist": []}, "baseHash": None},
            {
                "nodeId": "mac-mini",
                "policy": {"ask": "always", "allowlist": []},
                "hash": _POLICY_HASH,
                "effective": {"ask": "always", "allowlist": []},
                "source": "node",
                "updatedAtMs": T0,
                "updatedBy": "operator",
            },
            (
                "CONFLICT `POLICY_CHANGED`: `baseHash` is not the current hash "
                "(read again with exec.approvals.node.get)",
            ),
        ),
        "update.status": MethodExample(
            {},
            {
                "instances": [
                    {"service": "runtime", "version": "0.1.0", "instance": "runtime-1"},
                    {"service": "ws-gateway", "version": "0.1.0", "instance": "ws-gateway-1"},
                ],
                "skew": False,
                "available": None,
                "installed": {"runtime": "0.1.0", "ws-gateway": "0.1.0"},
                "rollout": None,
            },
        ),
        "update.run": MethodExample(
            {},
            {"started": True, "rolloutId": "upd_5c0e9a1f2b3d4e6f", "total": 6},
            (
                "CONFLICT: a rolling restart is already running",
                "RATE_LIMITED: more than 3 in 60 s",
            ),
        ),
        "plugins.list": MethodExample(
            {},
            {
                "plugins": [
                    {
                        "name": "weather",
                        "kind": "tool",
                        "value": "aisopod_weather:tool",
                        "distribution": "aisopod-weather",
                        "version": "1.0.0",
                    }
                ]
            },
        ),
        "wizard.start": MethodExample(
            {},
            {"sessionId": "wz-1", "status": "running", "step": _WIZARD_STEP},
            ("CONFLICT: a wizard is already running",),
        ),
        "wizard.next": MethodExample(
            {"sessionId": "wz-1", "answer": {"stepId": "provider", "value": "echo"}},
            {
                "sessionId": "wz-1",
                "status": "running",
                "step": {"stepId": "model", "title": "Which model?", "input": "select"},
            },
            (
                _WIZARD_NOT_FOUND,
                "INVALID_PARAMS: the answer is for another step (`data.expected` names the "
                "current one), or its value is not acceptable",
                "CONFLICT: the wizard moved on meanwhile (read wizard.status)",
            ),
        ),
        "wizard.cancel": MethodExample(
            {"sessionId": "wz-1"},
            {"sessionId": "wz-1", "status": "cancelled"},
            (_WIZARD_NOT_FOUND,),
        ),
        "wizard.status": MethodExample(
            {},
            {"sessionId": "wz-1", "status": "done", "configHash": "a90c44e1b7f3"},
            (_WIZARD_NOT_FOUND,),
        ),
        "tools.catalog": MethodExample(
            {},
            {
                "tools": [
                    {
                        "name": "web.search",
                        "description": "search the web",
                        "parameters": {
                            "type": "object",
                            "properties": {"q": {"type": "string"}},
                            "required": ["q"],
                        },
                    }
                ]
            },
        ),
        "tools.invoke": MethodExample(
            {"tool": "web.search", "args": {"q": "nats jetstream"}, "sessionKey": KEY},
            {"ok": True, "result": {"hits": []}},
            ("NOT_FOUND `TOOL_NOT_FOUND`: unknown tool, or denied by the tool policy",),
        ),
    }
)
