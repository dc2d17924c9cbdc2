"""The probe paths every service answers, and their Kubernetes-style aliases.

`/healthz` and `/readyz` answer exactly as `/health` and `/ready` do, for tooling (and
OpenClaw habits) that expect the `z` spellings; Traefik routes all four the same way.
"""

from __future__ import annotations

LIVENESS_PATHS = ("/health", "/healthz")
READINESS_PATHS = ("/ready", "/readyz")
PROBE_PATHS = (*LIVENESS_PATHS, *READINESS_PATHS)
