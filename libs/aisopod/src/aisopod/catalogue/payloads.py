"""The payload model of every server-pushed event. Pure data, no I/O.

An event frame is `{"jsonrpc":"2.0","method":<event>,"params":{"seq","ts","payload"}}`;
these models describe `payload`. They are results (extra fields pass through), so a
client generated from them keeps working when a payload gains a field.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, Field, JsonValue

from aisopod.catalogue.approvals import Decision
from aisopod.catalogue.devices import DevicePairRequest
from aisopod.catalogue.fields import EpochMs
from aisopod.catalogue.nodes import NodePairRequest, PairDecision
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


class AgentEvent(Result):
    """One step of an agent run; `seq` counts within the run, from 0."""

    run_id: str
    session_key: str
    seq: int = Field(ge=0)
    stream: Literal["lifecycle", "assistant", "tool", "error"]
    data: dict[str, JsonValue]


class ChatEvent(Result):
    """Progress of a chat turn: `delta` events carry the text so far (`message`) and the new
    piece (`delta`); `final` carries the whole message and `usage`; `error` `errorMessage`."""

    run_id: str
    session_key: str
    seq: int = Field(ge=0)
    state: Literal["delta", "final", "aborted", "error"]
    message: dict[str, JsonValue] | None = None
    delta: str | None = None
    usage: dict[str, JsonValue] | None = None
    error_message: str | None = None


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


class ExecApprovalRequested(Result):
    """The pending request as stored; `runId`/`toolCallId` when an agent's tool call asks."""

    id: str
    command: str
    argv: list[str] | None = None
    cwd: str | None = None
    node_id: str | None = None
    agent_id: str | None = None
    session_key: str | None = None
    created_at_ms: EpochMs
    expires_at_ms: EpochMs
    status: Literal["pending"]
    requested_by: str


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


class UpdateProgress(Result):
    """One step of a rolling restart (`update.run`); `phase` is started, restarting,
    restarted, done or error, with the instance concerned or the error as extra fields."""

    rollout_id: str
    phase: Literal["started", "restarting", "restarted", "done", "error"]
    total: int = Field(ge=0)


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
