"""Base of every config section: camelCase keys in the document, unknown keys rejected, and
titles a person reads in the Control UI's form ("Timeout (ms)", not "Timeoutms")."""

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

_UNITS = {"ms": "ms", "s": "s", "kib": "KiB", "mib": "MiB", "bytes": "bytes"}


def field_title(name: str, _info: Any = None) -> str:
    """`max_age_s` → "Max age (s)"; `allowed_origins` → "Allowed origins"."""
    words = name.split("_")
    unit = _UNITS.get(words[-1]) if len(words) > 1 else None
    if unit is not None:
        words = words[:-1]
    title = " ".join(words).capitalize()
    return f"{title} ({unit})" if unit else title


class Section(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
        field_title_generator=field_title,
    )
