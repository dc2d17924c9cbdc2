"""What a fired job does, through the RPC methods of the runtime (any replica serves them).

- `agentTurn`: `agent` (runtime agent_methods) with the job's message, agent and session, the
  cron run id as idempotency key (a retried fire never starts a second turn), then
  `agent.wait` until the turn ends (bounded by `cron.agentWaitMs`).
- `systemEvent`: `chat.inject` of the text into `cron.systemSessionKey` with label
  `system`: the event lands in that session's transcript (and its chat.event broadcast),
  where operators and the agent's next turn see it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aisopod.bus import Bus
from aisopod.catalogue.cron import AgentTurnPayload
from aisopod.config.sections.misc import CronSection
from aisopod.errors import AisopodError
from aisopod.listings import JobRecord
from aisopod.principal import SYSTEM
from aisopod_runtime.cron.scheduler import Outcome
from aisopod_runtime.cron.store import RunRecord

CALL_TIMEOUT_S = 30.0


class PayloadRunner:
    def __init__(self, bus: Bus, settings: Callable[[], CronSection]) -> None:
        self.bus = bus
        self.settings = settings

    async def __call__(self, job: JobRecord, run: RunRecord) -> Outcome:
        try:
            if isinstance(job.payload, AgentTurnPayload):
                return await self._agent_turn(job.payload, run)
            await self.bus.call(
                "chat.inject",
                {
                    "sessionKey": self.settings().system_session_key,
                    "message": job.payload.text,
                    "label": "system",
                },
                principal=SYSTEM,
                timeout=CALL_TIMEOUT_S,
            )
            return Outcome("ok")
        except AisopodError as exc:
            return Outcome("error", f"{exc.name}: {exc.message}")

    async def _agent_turn(self, payload: AgentTurnPayload, run: RunRecord) -> Outcome:
        params: dict[str, Any] = {
            "message": payload.message,
            "idempotencyKey": f"cron-{run.run_id}",
        }
        if payload.agent_id:
            params["agentId"] = payload.agent_id
        if payload.session_key:
            params["sessionKey"] = payload.session_key
        accepted = await self.bus.call("agent", params, principal=SYSTEM, timeout=CALL_TIMEOUT_S)
        agent_run = str(accepted.get("runId")) if isinstance(accepted, dict) else None
        if not agent_run:
            return Outcome("error", "agent returned no runId")
        wait_ms = self.settings().agent_wait_ms
        ended = await self.bus.call(
            "agent.wait",
            {"runId": agent_run, "timeoutMs": wait_ms},
            principal=SYSTEM,
            timeout=wait_ms / 1000 + 5,
        )
        status = ended.get("status") if isinstance(ended, dict) else None
        if status == "ok":
            return Outcome("ok", agent_run_id=agent_run)
        error = ended.get("error") if isinstance(ended, dict) else None
        return Outcome("error", f"agent run {status}: {error or ''}".strip(), agent_run)
