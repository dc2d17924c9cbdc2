"""The payload model of every server-pushed event. Pure data, no I/O.

An event frame is `{"jsonrpc":"2.0","method":<event>,"params":{"seq","ts","payload"}}`;
these models describe `payload`. They are results (extra fields pass through), so a
client generated from them keeps working when a payload gains a field. The run events'
models (`chat.event`, `agent.event`) live in `run_events`, shared with their emitter and
readers. With `validate_replies` on, `Bus` checks every published event against its model
here (conformance.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, Field, JsonValue

from aisopod.catalogue.approvals import ApprovalRequest, Decision
from aisopod.catalogue.devices import DevicePairRequest
from aisopod.catalogue.fields import EpochMs, absent_when_none
from aisopod.catalogue.heartbeat import HeartbeatEvent
from aisopod.catalogue.nodes import NodePairRequest, PairDecision
from aisopod.catalogue.run_events import AgentEvent, ChatEvent
from aisopod.catalogue.system import HealthResult, PresenceEntry
from aisopod.wire import Result


class ConnectChallenge(Result):
    """Sent once on upgrade; `nonce` goes into the device signature."""

    nonce: str
    ts: EpochMs


class Tick(Result):
    ts: EpochMs


class Shutdown(Result):
    """The replica is stopping; reconnect (with `resume`) after about `restartExpectedMs`."""

    reason: str
    restart_expected_ms: int = Field(ge=0)


class PresenceChanged(Result):
    presence: list[PresenceEntry]


class CronEvent(Result):
    """`action` is what happened: to the job (`status` enabled, disabled or removed) or to
    one of its runs (`status` running, then the run's outcome)."""

    job_id: str
    action: Literal["added", "updated", "removed", "started", "finished"]
    status: str
    run_id: str | None = None


class ConfigChanged(Result):
    hash: str
    paths: list[str]


class ExecApprovalRequested(ApprovalRequest):
    """The pending request as stored; `runId`/`toolCallId` when an agent's tool call asks."""

    created_at_ms: EpochMs
    expires_at_ms: EpochMs
    status: Literal["pending"]
    requested_by: str
    run_id: str | None = absent_when_none()
    tool_call_id: str | None = absent_when_none()


class ExecApprovalResolved(Result):
    id: str
    decision: Decision
    resolved_by: str


class DevicePairResolved(Result):
    request_id: str
    device_id: str
    decision: PairDecision


class NodePairResolved(Result):
    request_id: str
    node_id: str
    decision: PairDecision


class NodeInvokeRequest(Result):
    """To the target node only; answer with `node.invoke.result` `{id, ok, ...}`."""

    id: str
    node_id: str
    command: str
    params: JsonValue = None
    timeout_ms: int = Field(ge=1)


class NodeEvent(Result):
    node_id: str
    event: str
    payload: JsonValue = None


class VoicewakeChanged(Result):
    triggers: list[str]


class UpdateAvailable(Result):
    """Reserved: admins see it once a newer version is known (no service publishes it yet)."""

    available: str


class RolloutTarget(Result):
    service: str
    instance: str


class UpdateProgress(Result):
    """One step of a rolling restart (`update.run`); `phase` is started (with the `plan`),
    restarting or restarted (with the instance concerned and its `index` in the plan), done,
    or error (with `error`)."""

    rollout_id: str
    phase: Literal["started", "restarting", "restarted", "done", "error"]
    total: int = Field(ge=0)
    plan: list[RolloutTarget] | None = absent_when_none()
    service: str | None = absent_when_none()
    instance: str | None = absent_when_none()
    index: int | None = absent_when_none()
    error: str | None = absent_when_none()


EVENT_PAYLOADS: Mapping[str, type[BaseModel]] = MappingProxyType(
    {
        "connect.challenge": ConnectChallenge,
        "tick": Tick,
        "shutdown": Shutdown,
        "presence.changed": PresenceChanged,
        "health.changed": HealthResult,
        "agent.event": AgentEvent,
        "chat.event": ChatEvent,
        "cron.event": CronEvent,
        "heartbeat": HeartbeatEvent,
        "config.changed": ConfigChanged,
        "exec.approval.requested": ExecApprovalRequested,
        "exec.approval.resolved": ExecApprovalResolved,
        "device.pair.requested": DevicePairRequest,
        "device.pair.resolved": DevicePairResolved,
        "node.pair.requested": NodePairRequest,
        "node.pair.resolved": NodePairResolved,
        "node.invoke.request": NodeInvokeRequest,
        "node.event": NodeEvent,
        "voicewake.changed": VoicewakeChanged,
        "update.available": UpdateAvailable,
        "update.progress": UpdateProgress,
    }
)
