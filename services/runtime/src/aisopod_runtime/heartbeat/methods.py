"""wake, system-event, last-heartbeat, set-heartbeats; and `build_heartbeat`, the wiring.

`build_heartbeat(host)` reconciles the config's heartbeats into job records (and again on
every config change), starts a cron `Scheduler` over KV `heartbeat` — the same claim and
lease that fire each cron slot on exactly one replica — and returns the handlers.
"""

from __future__ import annotations

import asyncio
import logging

from aisopod.catalogue.heartbeat import (
    AgentHeartbeatInfo,
    LastHeartbeatParams,
    LastHeartbeatResult,
    QuietHoursInfo,
    SetHeartbeatsParams,
    SetHeartbeatsResult,
    SystemEventParams,
    SystemEventResult,
    WakeParams,
    WakeResult,
)
from aisopod.config.model import GatewayConfig
from aisopod.config.sections.heartbeat import HeartbeatSection
from aisopod.config.sections.misc import CronSection
from aisopod.errors import InvalidParams
from aisopod.host import ServiceHost
from aisopod.rpc import CallContext, Handler
from aisopod.sessionkey import parse_session_key
from aisopod_runtime.agents import AgentStore
from aisopod_runtime.cron.clock import Clock, SystemClock
from aisopod_runtime.cron.scheduler import Scheduler
from aisopod_runtime.cron.store import CronStore
from aisopod_runtime.heartbeat.beat import Beats
from aisopod_runtime.heartbeat.inbox import SystemEventInbox
from aisopod_runtime.heartbeat.jobs import job_id, main_session, reconcile
from aisopod_runtime.heartbeat.state import HeartbeatState

log = logging.getLogger("aisopod.runtime.heartbeat")

LEASE_MARGIN_MS = 10_000
RECONCILE_ATTEMPTS = 5


class HeartbeatMethods:
    def __init__(
        self,
        agents: AgentStore,
        inbox: SystemEventInbox,
        state: HeartbeatState,
        beats: Beats,
        jobs: CronStore,
    ) -> None:
        self.agents = agents
        self.inbox = inbox
        self.state = state
        self.beats = beats
        self.jobs = jobs

    async def _target(self, agent_id: str | None, session_key: str | None) -> tuple[str, str]:
        """(agent id, canonical session key): the session given, else the agent's main one;
        the agent must exist (an event for a session that can never run would be lost)."""
        agent = agent_id or self.agents.default_id
        if session_key is None:
            key = main_session(agent)
        else:
            key, owner = parse_session_key(session_key, agent)
            if agent_id is not None and owner != agent_id:
                raise InvalidParams(
                    f"session {key!r} belongs to agent {owner!r}, not {agent_id!r}",
                    code="AGENT_MISMATCH",
                )
            agent = owner
        await self.agents.get(agent)  # NOT_FOUND `AGENT_NOT_FOUND`
        return agent, key

    async def wake(self, params: WakeParams, ctx: CallContext) -> WakeResult:
        agent_id, session_key = await self._target(params.agent_id, params.session_key)
        queued = await self.inbox.push(
            session_key, params.text, ctx.principal.id, self.beats.clock.now_ms()
        )
        run_id = None
        if params.mode == "now":
            run_id = await self.beats.wake(agent_id, session_key, params.idempotency_key)
        return WakeResult(
            mode=params.mode,
            agent_id=agent_id,
            session_key=session_key,
            queued=queued,
            run_id=run_id,
        )

    async def system_event(self, params: SystemEventParams, ctx: CallContext) -> SystemEventResult:
        agent_id, session_key = await self._target(params.agent_id, params.session_key)
        queued = await self.inbox.push(
            session_key, params.text, ctx.principal.id, self.beats.clock.now_ms()
        )
        run_id = None
        if params.wake:
            run_id = await self.beats.wake(agent_id, session_key, params.idempotency_key)
        return SystemEventResult(session_key=session_key, queued=queued, run_id=run_id)

    async def last_heartbeat(
        self, params: LastHeartbeatParams, ctx: CallContext
    ) -> LastHeartbeatResult:
        section = self.beats.settings()
        enabled, lasts, jobs = await asyncio.gather(
            self.state.enabled(), self.state.last_of_each(), self.jobs.all_jobs()
        )
        by_id = {job.job_id: job for job in jobs}
        agents = []
        for agent_id in sorted(section.agents):
            if params.agent_id is not None and agent_id != params.agent_id:
                continue
            hb = section.effective(agent_id)
            assert hb is not None
            job = by_id.get(job_id(agent_id))
            quiet = hb.quiet_hours
            agents.append(
                AgentHeartbeatInfo(
                    agent_id=agent_id,
                    enabled=hb.enabled,
                    every=hb.every,
                    every_ms=hb.every_ms,
                    prompt=hb.prompt,
                    session_key=main_session(agent_id),
                    quiet_hours=QuietHoursInfo.model_validate(quiet.model_dump())
                    if quiet
                    else None,
                    next_due_at_ms=job.next_run_at_ms if job and hb.enabled else None,
                    running=bool(job and job.lease),
                    last=lasts.get(agent_id),
                )
            )
        if params.agent_id is not None:
            last = lasts.get(params.agent_id)
        else:
            last = max(lasts.values(), key=lambda e: e.ts, default=None)
        return LastHeartbeatResult(enabled=enabled, last=last, agents=agents)

    async def set_heartbeats(
        self, params: SetHeartbeatsParams, ctx: CallContext
    ) -> SetHeartbeatsResult:
        await self.state.set_enabled(params.enabled, ctx.principal.id, self.beats.clock.now_ms())
        return SetHeartbeatsResult(enabled=params.enabled)


def scheduler_settings(section: HeartbeatSection) -> CronSection:
    """The cron scheduler's knobs for heartbeat jobs: idle without heartbeats, leases long
    enough for the longest heartbeat turn."""
    scheduled = section.scheduled()
    longest = max((hb.timeout_ms for hb in scheduled), default=section.defaults.timeout_ms)
    return CronSection(
        enabled=bool(scheduled),
        run_history=section.run_history,
        agent_wait_ms=longest + LEASE_MARGIN_MS,
    )


async def build_heartbeat(host: ServiceHost, *, clock: Clock | None = None) -> dict[str, Handler]:
    clock = clock or SystemClock()
    kv = await host.kv("heartbeat")
    jobs = CronStore(kv)
    state = HeartbeatState(kv)

    def settings() -> HeartbeatSection:
        return host.config.current.heartbeat

    beats = Beats(host.bus, state, settings, clock, host.instance)

    async def scheduler_event(payload: dict[str, object]) -> None:
        log.debug("heartbeat job %s", payload)

    scheduler = Scheduler(
        jobs,
        instance=host.instance,
        clock=clock,
        fire=beats.fire,
        emit=scheduler_event,
        settings=lambda: scheduler_settings(settings()),
    )

    async def follow_config(new: GatewayConfig, old: GatewayConfig) -> None:
        if new.heartbeat == old.heartbeat:
            return
        for attempt in range(RECONCILE_ATTEMPTS):
            try:
                await reconcile(jobs, new.heartbeat, clock.now_ms())
                break
            except Exception:
                log.warning("could not apply the heartbeat config; retrying", exc_info=True)
                await asyncio.sleep(0.2 * 2**attempt)
        scheduler.poke()

    await reconcile(jobs, settings(), clock.now_ms())
    host.config.on_change(follow_config)
    scheduler.start()

    async def stop() -> None:
        await scheduler.stop()
        await beats.stop()

    host.on_stop(stop)
    methods = HeartbeatMethods(
        AgentStore(await host.kv("agents"), host.config), SystemEventInbox(kv), state, beats, jobs
    )
    return {
        "wake": methods.wake,
        "system-event": methods.system_event,
        "last-heartbeat": methods.last_heartbeat,
        "set-heartbeats": methods.set_heartbeats,
    }
