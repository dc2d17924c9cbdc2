"""NATS subject names of docs/protocol/architecture.md, under a configurable prefix. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNSAFE = re.compile(r"[^A-Za-z0-9_:\-]")


def subject_token(value: str) -> str:
    """Escape a free-form value (session key, node id) into one safe subject token.

    NATS treats `.` as a separator and `*`/`>` as wildcards; anything outside
    `[A-Za-z0-9_:-]` becomes `%XX` so distinct values never collide.
    """
    return _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), value)


@dataclass(frozen=True, slots=True)
class Subjects:
    prefix: str = "aisopod"

    def rpc(self, method: str) -> str:
        return f"{self.prefix}.rpc.{method}"

    def rpc_method(self, subject: str) -> str:
        """The method name of an rpc subject (`aisopod.rpc.chat.send` → `chat.send`)."""
        return subject.removeprefix(f"{self.prefix}.rpc.")

    def evt(self, event: str) -> str:
        return f"{self.prefix}.evt.{event}"

    @property
    def evt_all(self) -> str:
        return f"{self.prefix}.evt.>"

    def event_name(self, subject: str) -> str:
        return subject.removeprefix(f"{self.prefix}.evt.")

    def conn(self, conn_id: str) -> str:
        return f"{self.prefix}.conn.{subject_token(conn_id)}"

    def node_invoke(self, node_id: str) -> str:
        return f"{self.prefix}.node.{subject_token(node_id)}.invoke"

    def auth(self, verb: str) -> str:
        return f"{self.prefix}.auth.{verb}"

    def ratelimit(self, verb: str) -> str:
        return f"{self.prefix}.ratelimit.{verb}"

    def transcript(self, session_key: str) -> str:
        return f"{self.prefix}.transcript.{subject_token(session_key)}"

    def usage(self, agent_id: str, session_key: str) -> str:
        """One usage record of a run (stream USAGE), filterable by agent and session."""
        return f"{self.prefix}.usage.{subject_token(agent_id)}.{subject_token(session_key)}"

    def logs(self, service: str) -> str:
        return f"{self.prefix}.logs.{service}"

    def control(self, verb: str) -> str:
        """Service-internal control plane (config-applied reports, drain/restart orders)."""
        return f"{self.prefix}.control.{verb}"

    def instance_control(self, instance: str, verb: str) -> str:
        """Orders to one service instance (`restart`), heard by that instance only."""
        return f"{self.prefix}.control.instance.{subject_token(instance)}.{verb}"
