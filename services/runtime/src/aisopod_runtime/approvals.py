"""Exec approvals: pending requests in KV `approvals` (`req.<id>`), the policy (`policy`).

- A request is `{id, command, argv?, cwd?, nodeId?, agentId?, sessionKey?, createdAtMs,
  expiresAtMs, status: pending|resolved, decision?, resolvedBy?}`; it is broadcast as
  `exec.approval.requested` (audience operator.approvals).
- `resolve` is a compare-and-set from pending, so the first decision wins on any replica
  and a second is CONFLICT; it broadcasts `exec.approval.resolved {id, decision,
  resolvedBy}`. `allow-always` also adds the exact command line to the allowlist.
- Unanswered requests expire to `deny` (`resolvedBy: "expiry"`): every runtime sweeps
  the pending ones it watches, and a waiter whose request expired settles it itself.
- Waiters (an agent's `exec` call, `exec.approval.waitDecision`) watch the key, so a
  decision taken on any replica wakes them at once.
- `pending` lists the requests still waiting (for a queue that survives a UI reload).
- Policy `{ask: always|on-miss|off, allowlist[]}`: `always` asks for every command,
  `on-miss` only for commands matching no allowlist entry (shell-style patterns, checked
  against the whole command line and its first word), `off` never asks.
- A node may have its own policy (`exec.approvals.node.*`, node_approvals.py); it replaces
  this one for commands on that node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from aisopod import codec
from aisopod.bus import Bus
from aisopod.catalogue.approvals import (
    ExecApprovalRequestParams,
    ExecApprovalRequestResult,
    ExecApprovalResolveParams,
    ExecApprovalsPendingResult,
    ExecApprovalsPolicyResult,
    ExecApprovalsSetParams,
    ExecApprovalWaitParams,
    ExecApprovalWaitResult,
)
from aisopod.catalogue.fields import OkResult
from aisopod.errors import Conflict, NotFound
from aisopod.execpolicy import needs_approval
from aisopod.jsread import snapshot
from aisopod.rpc import CallContext, Handler
from aisopod.wire import EmptyParams
from aisopod_runtime.kvview import get_json, is_value, wait_for_value
from aisopod_runtime.node_approvals import NodePolicies, add_to_node_allowlist, policy_hash

log = logging.getLogger("aisopod.runtime.approvals")

POLICY_KEY = "policy"
DEFAULT_POLICY = {"ask": "on-miss", "allowlist": []}
SWEEP_INTERVAL_S = 0.5
KEEP_RESOLVED_MS = 3600_000
DEFAULT_WAIT_MS = 120_000


def now_ms() -> int:
    return int(time.time() * 1000)


def req_key(approval_id: str) -> str:
    return f"req.{approval_id}"


class ApprovalService:
    def __init__(self, kv: KeyValue, bus: Bus) -> None:
        self.kv = kv
        self.bus = bus
        self._pending: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.node_policies = NodePolicies(kv, self.policy)

    # -- policy -------------------------------------------------------------------------
    async def policy(self) -> dict[str, Any]:
        found = await get_json(self.kv, POLICY_KEY)
        return found[0] if found else dict(DEFAULT_POLICY)

    async def set_policy(
        self, ask: str, allowlist: list[str], base_hash: str | None = None
    ) -> dict[str, Any]:
        """Replace the policy; with `base_hash`, only if it is still the policy that hash was
        read from (compare-and-set on the key's revision, so a write between our read and
        ours is caught too)."""
        body = {"ask": ask, "allowlist": list(dict.fromkeys(allowlist))}
        if base_hash is None:
            await self.kv.put(POLICY_KEY, codec.dumps(body))
            return body
        found = await get_json(self.kv, POLICY_KEY)
        current, revision = found if found else (dict(DEFAULT_POLICY), 0)
        if policy_hash(current) != base_hash:
            raise _policy_changed()
        try:
            if revision:
                await self.kv.update(POLICY_KEY, codec.dumps(body), last=revision)
            else:
                await self.kv.create(POLICY_KEY, codec.dumps(body))
        except KeyWrongLastSequenceError:
            raise _policy_changed() from None
        return body

    async def needs_approval(
        self, command: str, argv: list[str] | None, node_id: str | None = None
    ) -> bool:
        return needs_approval(await self.node_policies.effective(node_id), command, argv)

    async def _allow_always(self, command: str, node_id: str | None = None) -> None:
        if node_id and await add_to_node_allowlist(self.kv, node_id, command):
            return
        for _ in range(8):
            found = await get_json(self.kv, POLICY_KEY)
            body, revision = found if found else (dict(DEFAULT_POLICY), 0)
            if command in body["allowlist"]:
                return
            body = {**body, "allowlist": [*body["allowlist"], command]}
            try:
                if revision:
                    await self.kv.update(POLICY_KEY, codec.dumps(body), last=revision)
                else:
                    await self.kv.create(POLICY_KEY, codec.dumps(body))
                return
            except KeyWrongLastSequenceError:
                continue

    # -- requests -----------------------------------------------------------------------
    async def request(
        self,
        params: ExecApprovalRequestParams,
        requested_by: str,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Store and broadcast a pending request; `extra` (runId, toolCallId) rides along."""
        record = (
            params.wire()
            | {k: v for k, v in (extra or {}).items() if v is not None}
            | {
                "id": uuid.uuid4().hex,
                "createdAtMs": now_ms(),
                "expiresAtMs": now_ms() + params.timeout_ms,
                "status": "pending",
                "requestedBy": requested_by,
            }
        )
        record.pop("timeoutMs", None)
        await self.kv.create(req_key(record["id"]), codec.dumps(record))
        self._pending[record["id"]] = record["expiresAtMs"]
        await self.bus.publish_event("exec.approval.requested", record)
        return record

    async def get(self, approval_id: str) -> dict[str, Any]:
        found = await get_json(self.kv, req_key(approval_id))
        if found is None:
            raise NotFound(f"no approval {approval_id!r}", code="APPROVAL_NOT_FOUND")
        return found[0]

    async def pending(self) -> list[dict[str, Any]]:
        """Requests still waiting, oldest first. Read from KV, so every replica answers the
        same; one past its expiry but not yet swept is left out (it is as good as denied)."""
        now = now_ms()
        records = [codec.loads(e.value) for e in await snapshot(self.kv, "req.>") if e.value]
        waiting = [
            r for r in records if r.get("status") == "pending" and int(r["expiresAtMs"]) > now
        ]
        waiting.sort(key=lambda r: (int(r["createdAtMs"]), r["id"]))
        return waiting

    async def resolve(self, approval_id: str, decision: str, resolved_by: str) -> None:
        found = await get_json(self.kv, req_key(approval_id))
        if found is None:
            raise NotFound(f"no approval {approval_id!r}", code="APPROVAL_NOT_FOUND")
        record, revision = found
        if record.get("status") != "pending":
            raise Conflict("this approval was already decided", code="ALREADY_RESOLVED")
        record.update(
            status="resolved", decision=decision, resolvedBy=resolved_by, resolvedAtMs=now_ms()
        )
        try:
            await self.kv.update(req_key(approval_id), codec.dumps(record), last=revision)
        except KeyWrongLastSequenceError:
            raise Conflict("this approval was already decided", code="ALREADY_RESOLVED") from None
        self._pending.pop(approval_id, None)
        if decision == "allow-always":
            await self._allow_always(record["command"], record.get("nodeId"))
        await self.bus.publish_event(
            "exec.approval.resolved",
            {"id": approval_id, "decision": decision, "resolvedBy": resolved_by},
        )

    async def wait(self, approval_id: str, timeout_s: float) -> str | None:
        """The decision, or None when `timeout_s` ends first. Expiry decides `deny`."""
        record = await self.get(approval_id)
        if record.get("status") == "resolved":
            return record.get("decision")
        until_expiry = max(0.0, (record["expiresAtMs"] - now_ms()) / 1000)
        final = await wait_for_value(
            self.kv,
            req_key(approval_id),
            lambda r: r is not None and r.get("status") == "resolved",
            min(timeout_s, until_expiry + 0.05),
        )
        if final is not None and final.get("status") == "resolved":
            return final.get("decision")
        if timeout_s >= until_expiry:
            await self._expire(approval_id)
            record = await self.get(approval_id)
            return record.get("decision")
        return None

    async def _expire(self, approval_id: str) -> None:
        with contextlib.suppress(Conflict, NotFound):
            await self.resolve(approval_id, "deny", "expiry")

    # -- sweeping -----------------------------------------------------------------------
    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._watch(), name="approvals-watch"),
            asyncio.create_task(self._sweep(), name="approvals-sweep"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1.0)

    async def _watch(self) -> None:
        while True:
            watcher = None
            try:
                watcher = await self.kv.watch("req.>")
                async for entry in watcher:
                    if entry is None:
                        continue
                    approval_id = entry.key.removeprefix("req.")
                    record = codec.loads(entry.value) if is_value(entry) else None
                    if record is not None and record.get("status") == "pending":
                        self._pending[approval_id] = int(record["expiresAtMs"])
                    else:
                        self._pending.pop(approval_id, None)
                    if _stale(record):
                        await self.kv.delete(entry.key)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("approvals watch interrupted; restarting", exc_info=True)
                await asyncio.sleep(0.5)
            finally:
                if watcher is not None:
                    with contextlib.suppress(Exception):
                        await watcher.stop()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            now = now_ms()
            for approval_id, expires in list(self._pending.items()):
                if expires <= now:
                    self._pending.pop(approval_id, None)
                    try:
                        await self._expire(approval_id)
                    except Exception:
                        log.warning("expiring approval %s failed", approval_id, exc_info=True)


def _policy_changed() -> Conflict:
    return Conflict(
        "the exec policy changed since it was read; read it again (exec.approvals.get) and retry",
        code="POLICY_CHANGED",
    )


def _with_hash(policy: dict[str, Any]) -> ExecApprovalsPolicyResult:
    return ExecApprovalsPolicyResult.model_validate({**policy, "hash": policy_hash(policy)})


def _stale(record: dict[str, Any] | None) -> bool:
    """A decided request old enough to forget."""
    if record is None or record.get("status") != "resolved":
        return False
    return now_ms() - int(record.get("resolvedAtMs", 0)) > KEEP_RESOLVED_MS


def approval_handlers(service: ApprovalService) -> dict[str, Handler]:
    async def request(
        params: ExecApprovalRequestParams, ctx: CallContext
    ) -> ExecApprovalRequestResult:
        record = await service.request(params, ctx.principal.id)
        return ExecApprovalRequestResult(id=record["id"], expires_at_ms=record["expiresAtMs"])

    async def wait_decision(
        params: ExecApprovalWaitParams, ctx: CallContext
    ) -> ExecApprovalWaitResult:
        timeout_ms = params.timeout_ms or DEFAULT_WAIT_MS
        decision = await service.wait(params.id, timeout_ms / 1000)
        return ExecApprovalWaitResult(id=params.id, decision=decision)

    async def resolve(params: ExecApprovalResolveParams, ctx: CallContext) -> OkResult:
        await service.resolve(params.id, params.decision, ctx.principal.id)
        return OkResult()

    async def pending(_: EmptyParams, ctx: CallContext) -> ExecApprovalsPendingResult:
        # All are pending: the stored `status` would say nothing.
        waiting = [{k: v for k, v in r.items() if k != "status"} for r in await service.pending()]
        return ExecApprovalsPendingResult.model_validate({"approvals": waiting})

    async def get_policy(_: Any, ctx: CallContext) -> ExecApprovalsPolicyResult:
        return _with_hash(await service.policy())

    async def set_policy(
        params: ExecApprovalsSetParams, ctx: CallContext
    ) -> ExecApprovalsPolicyResult:
        return _with_hash(await service.set_policy(params.ask, params.allowlist, params.base_hash))

    return {
        "exec.approval.request": request,
        "exec.approval.waitDecision": wait_decision,
        "exec.approval.resolve": resolve,
        "exec.approvals.pending": pending,
        "exec.approvals.get": get_policy,
        "exec.approvals.set": set_policy,
    }
