"""Allowed browser origins (Traefik CORS, ws-gateway origin check)."""

from pydantic import Field

from aisopod.config.sections.base import Section


class CorsSection(Section):
    allowed_origins: list[str] = Field(default_factory=list)
    # The gateway's own origin(s) are always allowed; loopback UI origins are added by the
    # launcher for the local stack.
