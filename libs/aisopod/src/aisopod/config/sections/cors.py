"""Allowed browser origins (Traefik CORS, ws-gateway origin check).

Traefik's CORS middleware is rendered from this section and follows it live (the edge
sync rewrites it on every change). The Control UI is served on the gateway's own origin
and needs no entry; list the *other* origins whose pages may call the API.
"""

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from aisopod.config.sections.base import Section


def normalize_origin(value: str) -> str:
    """`scheme://host[:port]` in lower case without a trailing slash, or `*`.

    Browsers send the Origin header in exactly this form, and Traefik compares it as a
    string, so `https://App.example/` must be stored as `https://app.example`.
    """
    value = value.strip()
    if value == "*":
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r}: an origin is scheme://host[:port] (http or https)")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{value!r}: an origin has no path, query, fragment or user")
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443}[parts.scheme]
    port = "" if parts.port in (None, default_port) else f":{parts.port}"
    return f"{parts.scheme}://{host}{port}"


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
