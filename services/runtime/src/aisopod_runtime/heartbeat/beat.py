"""One heartbeat: checks, the agent turn, its verdict, the `heartbeat` event.

A scheduled slot (`fire`, called by the Scheduler on the replica that claimed it) is skipped
when heartbeats are switched off, when the agent no longer has one, or in its quiet hours;
otherwise the agent gets a turn in its main session with the heartbeat prompt, through the
RPC methods (`agent`, then `agent.wait`), so any replica may run the turn itself. The
session's queued system events reach the model in front of the prompt (inbox.py), because
every turn takes them. A wake (`wake`) starts the same turn at once, quiet hours or not,
and follows it in the background.

Each heartbeat that ran or was skipped for quiet hours is published as event `heartbeat`
and kept as the agent's last one (`last-heartbeat`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aisopod.bus import Bus
from aisopod.catalogue.heartbeat import HeartbeatEvent
from aisopod.config.sections.heartbeat import EffectiveHeartbeat, HeartbeatSection
from aisopod.errors import AisopodError
from aisopod.listings import JobRecord
from aisopod.principal import SYSTEM
from aisopod_runtime.cron.clock import Clock
from aisopod_runtime.cron.scheduler import Outcome
from aisopod_runtime.cron.store import RunRecord
from aisopod_runtime.heartbeat.jobs import main_session
from aisopod_runtime.heartbeat.policy import in_quiet_hours, verdict
from aisopod_runtime.heartbeat.state import HeartbeatState

log = logging.getLogger("aisopod.runtime.heartbeat")

CALL_TIMEOUT_S = 30.0
HISTORY_LOOKBACK = 20
INDICATOR = {"ok-empty": "ok", "ok-token": "ok", "sent": "alert", "failed": "error"}


class Beats:
    def __init__(
        self,
        bus: Bus,
        state: HeartbeatState,
        settings: Callable[[], HeartbeatSection],
        clock: Clock,
        instance: str,
    ) -> None:
        self.bus = bus
        self.state = state
        self.settings = settings
        self.clock = clock
        self.instance = instance
        self._followers: set[asyncio.Task[HeartbeatEvent]] = set()

    async def stop(self) -> None:
        for task in list(self._followers):
            task.cancel()
        if self._followers:
            await asyncio.wait(set(self._followers), timeout=3.0)

    def heartbeat_of(self, agent_id: str) -> EffectiveHeartbeat:
        """The agent's heartbeat, or the defaults for an agent without one (a wake)."""
        section = self.settings()
        own = section.effective(agent_id)
        if own is not None:
            return own
        defaults = section.defaults
        return EffectiveHeartbeat(
            agent_id=agent_id,
            enabled=False,
            every=defaults.every,
            every_ms=0,
            prompt=defaults.prompt,
            quiet_hours=defaults.quiet_hours,
            timeout_ms=defaults.timeout_ms,
        )

    # -- a scheduled slot (the Scheduler's `fire`) ------------------------------------------
    async def fire(self, job: JobRecord, run: RunRecord) -> Outcome:
        agent_id = getattr(job.payload, "agent_id", None) or ""
        hb = self.settings().effective(agent_id)
        if hb is None or not hb.enabled:
            return Outcome("skipped", "the agent has no heartbeat any more")
        if not await self.state.enabled():
            return Outcome("skipped", "heartbeats are switched off (set-heartbeats)")
        session_key = main_session(agent_id)
        if in_quiet_hours(hb.quiet_hours, self.clock.now_ms()):
            await self._publish(
                self._event(hb, session_key, "schedule", "skipped", reason="quiet-hours"),
                due_at_ms=run.due_at_ms,
            )
            return Outcome("skipped", "quiet hours")
        started = self.clock.now_ms()
        try:
            agent_run = await self._start(hb, session_key, f"heartbeat-{run.run_id}")
        except AisopodError as exc:
            await self._failed(hb, session_key, "schedule", exc.message, started, run.due_at_ms)
            return Outcome("error", f"{exc.name}: {exc.message}")
        event = await self._follow(hb, session_key, "schedule", agent_run, started, run.due_at_ms)
        if event.status == "failed":
            return Outcome("error", event.reason, agent_run)
        return Outcome("ok", agent_run_id=agent_run)

    # -- a wake ------------------------------------------------------------------------------
    async def wake(self, agent_id: str, session_key: str, key: str | None) -> str | None:
        """Start the agent's heartbeat turn in `session_key` now and follow it in the
        background; its run id, or None when heartbeats are switched off."""
        if not await self.state.enabled():
            return None
        hb = self.heartbeat_of(agent_id)
        started = self.clock.now_ms()
        agent_run = await self._start(hb, session_key, f"wake-{key}" if key else None)
        task = asyncio.create_task(
            self._follow(hb, session_key, "wake", agent_run, started, None),
            name=f"heartbeat-wake-{agent_run}",
        )
        self._followers.add(task)
        task.add_done_callback(self._followed)
        return agent_run

    def _followed(self, task: asyncio.Task[HeartbeatEvent]) -> None:
        self._followers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("following a wake failed", exc_info=task.exception())

    # -- the turn ----------------------------------------------------------------------------
    async def _start(self, hb: EffectiveHeartbeat, session_key: str, key: str | None) -> str:
        params: dict[str, Any] = {
            "message": hb.prompt,
            "agentId": hb.agent_id,
            "sessionKey": session_key,
            "timeoutMs": hb.timeout_ms,
        }
        if key:
            params["idempotencyKey"] = key
        accepted = await self.bus.call("agent", params, principal=SYSTEM, timeout=CALL_TIMEOUT_S)
        return str(accepted["runId"])

    async def _follow(
        self,
        hb: EffectiveHeartbeat,
        session_key: str,
        trigger: str,
        agent_run: str,
        started: int,
        due_at_ms: int | None,
    ) -> HeartbeatEvent:
        try:
            ended = await self.bus.call(
                "agent.wait",
                {"runId": agent_run, "timeoutMs": hb.timeout_ms + 5_000},
                principal=SYSTEM,
                timeout=hb.timeout_ms / 1000 + 10,
            )
            if ended.get("status") != "ok":
                reason = f"agent run {ended.get('status')}: {ended.get('error') or ''}".strip()
                return await self._failed(hb, session_key, trigger, reason, started, due_at_ms)
            answer = await self._answer(session_key, agent_run)
        except AisopodError as exc:
            return await self._failed(hb, session_key, trigger, exc.message, started, due_at_ms)
        status, preview = verdict(answer)
        event = self._event(
            hb,
            session_key,
            trigger,
            status,
            preview=preview,
            run_id=agent_run,
            duration_ms=self.clock.now_ms() - started,
        )
        return await self._publish(event, due_at_ms=due_at_ms)

    async def _answer(self, session_key: str, agent_run: str) -> str:
        history = await self.bus.call(
            "chat.history",
            {"sessionKey": session_key, "limit": HISTORY_LOOKBACK},
            principal=SYSTEM,
            timeout=CALL_TIMEOUT_S,
        )
        for message in reversed(history.get("messages", [])):
            if message.get("runId") == agent_run and message.get("role") == "assistant":
                content = message.get("content")
                return content if isinstance(content, str) else ""
        return ""

    async def _failed(
        self,
        hb: EffectiveHeartbeat,
        session_key: str,
        trigger: str,
        reason: str,
        started: int,
        due_at_ms: int | None,
    ) -> HeartbeatEvent:
        event = self._event(
            hb,
            session_key,
            trigger,
            "failed",
            reason=reason,
            duration_ms=self.clock.now_ms() - started,
        )
        return await self._publish(event, due_at_ms=due_at_ms)

    def _event(
        self, hb: EffectiveHeartbeat, session_key: str, trigger: str, status: str, **fields: Any
    ) -> HeartbeatEvent:
        return HeartbeatEvent.model_validate(
            {
                "ts": self.clock.now_ms(),
                "status": status,
                "agentId": hb.agent_id,
                "sessionKey": session_key,
                "trigger": trigger,
                "instance": self.instance,
                "indicatorType": INDICATOR.get(status),
                **{k: v for k, v in fields.items() if v is not None},
            }
        )

    async def _publish(self, event: HeartbeatEvent, *, due_at_ms: int | None) -> HeartbeatEvent:
        if due_at_ms is not None:
            event = event.model_copy(update={"due_at_ms": due_at_ms})
        payload = event.model_dump(by_alias=True, mode="json", exclude_none=True)
        try:
            await self.state.record(event)
        except Exception:
            log.warning("could not record the last heartbeat", exc_info=True)
        try:
            await self.bus.publish_event("heartbeat", payload)
        except Exception:
            log.warning("could not publish the heartbeat event", exc_info=True)
        return event
