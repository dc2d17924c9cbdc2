"""update.status (versions per instance, skew) and update.run (a rolling restart).

A rollout restarts every live service instance one at a time. Each gets the order
`<prefix>.control.instance.<instance>.restart {graceMs}`: its host leaves readiness at once,
keeps serving for the grace (edges only: the proxy's health check must notice), then
drains like on SIGTERM and exits non-zero; the supervisor (the launcher, compose
`restart:`, Kubernetes) starts it again. The rollout waits until nats.micro discovery shows
the instance back (a new process), lets an edge settle (the proxy sees it healthy again),
and goes on. Core services go first, edges next, runtimes last, and the runtime running
the rollout goes very last: it records `restarting-self` in KV `updates`, and whichever
runtime starts next sees the old process gone and finishes the record. Progress is
broadcast as `update.progress` events.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from aisopod import codec
from aisopod.catalogue.updates import InstanceVersion, UpdateRunResult, UpdateStatusResult
from aisopod.config.sections.misc import UpdatesSection
from aisopod.discovery import Instance, discover
from aisopod.errors import AisopodError, Conflict
from aisopod.host import ServiceHost
from aisopod.rpc import CallContext
from aisopod.services import EDGE_SERVICES, ServiceName
from aisopod_runtime.control_writes import WriteLimiter

log = logging.getLogger("aisopod.runtime.updates")

ROLLOUT_KEY = "rollout"
ORDER = ("ratelimit", "auth", "http-api", "ws-gateway", "runtime")
EDGES = {s.value for s in EDGE_SERVICES}
POLL_S = 0.3
STALE_MS = 15 * 60_000


def plan_order(instances: list[Instance], self_key: tuple[str, str]) -> list[Instance]:
    """Core services, then edges, then runtimes; the orchestrating runtime last."""

    def rank(i: Instance) -> tuple[int, int, str, str]:
        known = ORDER.index(i.service) if i.service in ORDER else -1
        return (int(i.key == self_key), known, i.service, i.instance)

    return sorted(instances, key=rank)


def skew_of(instances: list[Instance]) -> bool:
    versions: dict[str, set[str]] = {}
    for i in instances:
        versions.setdefault(i.service, set()).add(i.version)
    return any(len(v) > 1 for v in versions.values())


def installed_versions() -> dict[str, str]:
    """Versions of the service packages installed next to this runtime."""
    out = {}
    for service in ServiceName:
        try:
            out[service.value] = version(f"aisopod-{service.value}")
        except PackageNotFoundError:
            continue
    return out


def _now_ms() -> int:
    return int(time.time() * 1000)


class Updates:
    def __init__(self, host: ServiceHost, kv: KeyValue, limiter: WriteLimiter) -> None:
        self.host = host
        self.kv = kv
        self.limiter = limiter
        self._task: asyncio.Task[None] | None = None

    @property
    def settings(self) -> UpdatesSection:
        return self.host.config.current.updates

    # -- update.status -----------------------------------------------------------------
    async def status(self, _: Any, ctx: CallContext) -> UpdateStatusResult:
        instances = await discover(self.host.bus)
        installed = installed_versions()
        newer = sorted(
            {
                installed[i.service]
                for i in instances
                if i.service in installed and installed[i.service] != i.version
            }
        )
        record = await self._read()
        return UpdateStatusResult(
            instances=[
                InstanceVersion(service=i.service, version=i.version, instance=i.instance)
                for i in instances
            ],
            skew=skew_of(instances),
            available=newer[-1] if newer else None,
            installed=installed,
            rollout=record[0] if record else None,
        )

    # -- update.run --------------------------------------------------------------------
    async def run(self, _: Any, ctx: CallContext) -> UpdateRunResult:
        await self.limiter.admit(ctx.principal, "update.run")
        instances = await discover(self.host.bus)
        me = (self.host.name.value, self.host.instance)
        plan = plan_order(instances, me)
        record = {
            "id": "upd_" + uuid.uuid4().hex[:16],
            "state": "running",
            "by": ctx.principal.id,
            "orchestrator": self.host.instance,
            "startedAtMs": _now_ms(),
            "updatedAtMs": _now_ms(),
            "plan": [{"service": i.service, "instance": i.instance} for i in plan],
            "done": 0,
        }
        revision = await self._claim(record)
        self._task = asyncio.create_task(self._rollout(record, revision, plan, me))
        return UpdateRunResult(started=True, rollout_id=record["id"], total=len(plan))

    async def _claim(self, record: dict[str, Any]) -> int:
        """Store `record` unless another rollout is running (and not stale): CONFLICT."""
        current = await self._read()
        if current is None:
            try:
                return await self.kv.create(ROLLOUT_KEY, codec.dumps(record))
            except KeyWrongLastSequenceError:
                current = await self._read()
        if current is not None:
            body, revision = current
            running = body.get("state") in ("running", "restarting-self")
            if running and _now_ms() - int(body.get("updatedAtMs", 0)) < STALE_MS:
                raise Conflict("a rolling restart is already running", rolloutId=body.get("id"))
            try:
                return await self.kv.update(ROLLOUT_KEY, codec.dumps(record), last=revision)
            except KeyWrongLastSequenceError:
                raise Conflict("a rolling restart was just started") from None
        raise Conflict("a rolling restart was just started")

    async def _read(self) -> tuple[dict[str, Any], int] | None:
        try:
            entry = await self.kv.get(ROLLOUT_KEY)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        return codec.loads(entry.value), entry.revision or 0

    async def _save(self, record: dict[str, Any]) -> None:
        record["updatedAtMs"] = _now_ms()
        await self.kv.put(ROLLOUT_KEY, codec.dumps(record))

    async def _progress(self, record: dict[str, Any], phase: str, **fields: Any) -> None:
        payload = {"rolloutId": record["id"], "phase": phase, "total": len(record["plan"])}
        payload.update(fields)
        log.info("update.progress %s", phase, extra={"progress": payload})
        try:
            await self.host.bus.publish_event("update.progress", payload)
        except Exception:
            log.warning("could not publish update.progress", exc_info=True)

    async def _rollout(
        self,
        record: dict[str, Any],
        revision: int,
        plan: list[Instance],
        me: tuple[str, str],
    ) -> None:
        await self._progress(record, "started", plan=record["plan"])
        try:
            for index, target in enumerate(plan):
                where = {"service": target.service, "instance": target.instance, "index": index}
                if target.key == me:
                    record.update(state="restarting-self", selfMicroId=target.micro_id)
                    await self._save(record)
                    await self._progress(record, "restarting", **where)
                    await self._order_restart(target, grace_ms=0)
                    return  # the next runtime to start finishes the record (resume)
                await self._progress(record, "restarting", **where)
                await self._restart_and_wait(target)
                record["done"] = index + 1
                await self._save(record)
                await self._progress(record, "restarted", **where)
            record["state"] = "done"
            await self._save(record)
            await self._progress(record, "done")
        except Exception as exc:
            message = exc.message if isinstance(exc, AisopodError) else str(exc)
            log.exception("rolling restart %s failed", record["id"])
            record.update(state="error", error=message)
            await self._save(record)
            await self._progress(record, "error", error=message)

    async def _order_restart(self, target: Instance, *, grace_ms: int) -> None:
        subject = self.host.bus.subjects.instance_control(target.instance, "restart")
        await self.host.bus.request(
            subject, {"graceMs": grace_ms}, timeout=5.0, unavailable=target.instance
        )

    async def _restart_and_wait(self, target: Instance) -> None:
        settings = self.settings
        edge = target.service in EDGES
        before = [i for i in await discover(self.host.bus) if i.service == target.service]
        await self._order_restart(target, grace_ms=settings.drain_grace_ms if edge else 0)
        deadline = time.monotonic() + settings.instance_timeout_ms / 1000
        while True:
            now = [i for i in await discover(self.host.bus) if i.service == target.service]
            if _back(target, before, now):
                break
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{target.instance} did not come back in time")
            await asyncio.sleep(POLL_S)
        if edge and settings.settle_ms:
            # The proxy's health check must see it ready again before the next goes down.
            await asyncio.sleep(settings.settle_ms / 1000)

    # -- finishing a rollout that restarted its own runtime ------------------------------
    async def resume(self) -> None:
        """At start: finish a rollout whose orchestrator restarted itself."""
        current = await self._read()
        if current is None or current[0].get("state") != "restarting-self":
            return
        record, _ = current
        deadline = time.monotonic() + self.settings.instance_timeout_ms / 1000
        while time.monotonic() < deadline:
            live = await discover(self.host.bus)
            if all(i.micro_id != record.get("selfMicroId") for i in live):
                fresh = await self._read()
                if fresh is None or fresh[0].get("id") != record["id"]:
                    return
                record, revision = fresh
                if record.get("state") != "restarting-self":
                    return
                record.update(state="done", done=len(record["plan"]), updatedAtMs=_now_ms())
                try:
                    await self.kv.update(ROLLOUT_KEY, codec.dumps(record), last=revision)
                except KeyWrongLastSequenceError:
                    return  # another runtime finished it
                await self._progress(
                    record, "restarted", service="runtime", instance=record["plan"][-1]["instance"]
                )
                await self._progress(record, "done")
                return
            await asyncio.sleep(POLL_S)

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()


def _back(target: Instance, before: list[Instance], now: list[Instance]) -> bool:
    """The old process is gone and a new one took its place: same instance name (stable
    names, the local stack) or the service's instance count restored (random names)."""
    if any(i.micro_id == target.micro_id for i in now):
        return False
    return any(i.instance == target.instance for i in now) or len(now) >= len(before)
