"""Allowed browser origins (Traefik CORS, ws-gateway origin check).

Traefik's CORS middleware is rendered from this section and follows it live (the edge
sync rewrites it on every change). The Control UI is served on the gateway's own origin
and needs no entry; list the *other* origins whose pages may call the API.
"""

from pydantic import Field, field_validator

from aisopod.config.sections.base import Section
from aisopod.origins import normalize_origin

__all__ = ["CorsSection", "normalize_origin"]


class CorsSection(Section):
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="origins (scheme://host[:port]) whose pages may call the API; `*` = any",
    )
    max_age_s: int = Field(600, ge=0, le=86_400, description="how long browsers cache a preflight")

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(normalize_origin(v) for v in values))
