"""Bootstrap settings of a service process: from the environment, secrets also from files.

Everything else (auth mode, limits, providers, ...) is the gateway configuration in KV
`config`, not here. Env names: `AISOPOD_<FIELD>` (any case); a secret `X` may instead be
given as `AISOPOD_X_FILE` (compose/k8s secrets), which wins when both are set. Arguments
given to the constructor win over the environment.

A plain pydantic model reading the environment itself: pydantic-settings cost every
process ~9 MiB of RSS and ~0.1 s of CPU at import for fifteen scalar fields.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

# Its home is natsurls.py (no pydantic: the launcher's supervising process uses it).
from aisopod.natsurls import nats_servers as nats_servers

ENV_PREFIX = "aisopod_"

_SECRET_FIELDS = ("nats_password", "admin_token", "nats_token", "edge_secret")


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_default=True)

    service: str = Field(default="", description="service name; set by each service's main")
    instance: str = Field(default_factory=lambda: f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}")
    host: str = "127.0.0.1"
    port: int = 0
    # Where clients reach the gateway (Traefik's URL): auth's `none` check and the browser
    # origin rule of ws-gateway read its host name.
    public_url: str | None = None
    log_level: str = "INFO"
    subject_prefix: str = "aisopod"

    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_token: SecretStr | None = None
    # R1 locally, R3 in a NATS cluster (docs/protocol/architecture.md).
    nats_replicas: int = 1
    # How long a JetStream call on a request path rides out a leader election before it
    # fails UNAVAILABLE (jsretry.py). NATS elects a new leader 4-9 s after the old one
    # died; the margin is for a loaded machine.
    nats_retry_s: float = Field(default=15.0, ge=0.0, le=60.0)

    config_file: Path | None = Field(default=None, description="seed of the gateway config")
    state_dir: Path | None = None
    admin_token: SecretStr | None = Field(
        default=None, description="bootstrap admin token; only its hash is ever stored"
    )
    edge_secret: SecretStr | None = Field(
        default=None, description="the edge proof Traefik adds to every request (edgeproof.py)"
    )
    drain_timeout_s: float = 30.0
    # An edge's wait for a forwarded call: longer than a JetStream stall the owner rides
    # out (nats_retry_s), so a stall reaches the client as a slow answer, not an error.
    request_timeout_s: float = 20.0
    # A debug check (the test suites turn it on): every RPC reply and every event is
    # validated against its declared model before it leaves; a mismatch is logged as an
    # error and the call answers INTERNAL_ERROR, so a drifting owner fails loudly.
    validate_replies: bool = False
    # Traces (aisopod.tracing, docs/tracing.md): the OTLP/HTTP collector's base URL
    # (`/v1/traces` is appended). Unset, the standard OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT
    # apply; with neither, tracing is off and costs nothing.
    otlp_endpoint: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        env = {key.lower(): value for key, value in os.environ.items()}
        merged = {
            name: env[ENV_PREFIX + name] for name in cls.model_fields if ENV_PREFIX + name in env
        }
        merged.update(data)
        data = merged
        for name in _SECRET_FIELDS:
            path = os.environ.get(f"AISOPOD_{name.upper()}_FILE")
            if path:
                try:
                    data[name] = Path(path).read_text().strip()
                except OSError as exc:
                    raise ValueError(
                        f"AISOPOD_{name.upper()}_FILE: cannot read {path}: {exc}"
                    ) from exc
        return data

    def secret(self, name: str) -> str | None:
        value = getattr(self, name)
        return value.get_secret_value() if isinstance(value, SecretStr) else None
