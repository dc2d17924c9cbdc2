"""Browser origins, and the `cors` section read without pydantic.

The launcher's supervising process follows the `cors` section live (its edge sync) and
must stay lean (docs/deployment.md, "The launcher's own memory"): it reads only this
section, with the same rules as `CorsSection` (aisopod/config/sections/cors.py; a test
holds the two together). The document it reads was validated in full by the service
that stored it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

DEFAULT_MAX_AGE_S = 600
MAX_AGE_LIMIT_S = 86_400


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


_FIELDS = {
    "allowedOrigins": "allowed_origins",
    "allowed_origins": "allowed_origins",
    "maxAgeS": "max_age_s",
    "max_age_s": "max_age_s",
}


def read_cors(document: Any) -> tuple[list[str], int]:
    """The allowed origins (normalized, deduplicated) and preflight max age of a gateway
    config document; ValueError when its `cors` section is not valid."""
    if not isinstance(document, dict):
        raise ValueError("the config document must be a mapping")
    section = document.get("cors", {})
    if not isinstance(section, dict):
        raise ValueError("cors: must be a mapping")
    values: dict[str, Any] = {}
    for key, value in section.items():
        name = _FIELDS.get(key)
        if name is None or name in values:
            raise ValueError(f"cors: unknown or repeated key {key!r}")
        values[name] = value
    origins = values.get("allowed_origins", [])
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise ValueError("cors.allowedOrigins: must be a list of strings")
    max_age = values.get("max_age_s", DEFAULT_MAX_AGE_S)
    if isinstance(max_age, float) and max_age.is_integer():
        max_age = int(max_age)
    if isinstance(max_age, bool) or not isinstance(max_age, int):
        raise ValueError("cors.maxAgeS: must be an integer")
    if not 0 <= max_age <= MAX_AGE_LIMIT_S:
        raise ValueError(f"cors.maxAgeS: must be within 0–{MAX_AGE_LIMIT_S}")
    return list(dict.fromkeys(normalize_origin(o) for o in origins)), max_age
