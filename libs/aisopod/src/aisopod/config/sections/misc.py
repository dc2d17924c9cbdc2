"""Small sections: cron, UI, logging, updates (rolling restarts)."""

from pydantic import Field

from aisopod.config.sections.base import Section


class CronSection(Section):
    enabled: bool = Field(True, description="false: no job fires (cron.run still works)")
    # `systemEvent` payloads are injected into this session (chat.inject, label "system").
    system_session_key: str = Field(
        "agent:main:main", min_length=1, max_length=512, pattern=r"^[^\s\x00-\x1f\x7f]+$"
    )
    run_history: int = Field(50, ge=1, le=1000, description="run records kept per job")
    agent_wait_ms: int = Field(
        600_000, ge=1_000, description="how long a fired agentTurn is followed to its end"
    )


class UiSection(Section):
    title: str = "aisopod"
    assistant_name: str = "aisopod"


class LoggingSection(Section):
    level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    requests: bool = Field(
        False,
        description="one INFO line per HTTP request and RPC in every service (else DEBUG)",
    )


class UpdatesSection(Section):
    """Timing of `update.run` (rolling restart) and `config.apply`.

    Edges sit behind the proxy's health check (Traefik: `/ready` every 2 s), so a draining
    edge keeps serving for `drainGraceMs` after its readiness turns false, and a restarted
    edge is given `settleMs` to be seen healthy again before the next one goes down.
    """

    drain_grace_ms: int = Field(3_000, ge=0, le=60_000)
    settle_ms: int = Field(3_000, ge=0, le=60_000)
    instance_timeout_ms: int = Field(90_000, ge=1_000, le=600_000)
    apply_timeout_ms: int = Field(10_000, ge=100, le=120_000)
