"""Rate-limit rules (ratelimit service)."""

from typing import Literal

from pydantic import Field

from aisopod.config.sections.base import Section


class RateRule(Section):
    name: str
    key: Literal["ip", "principal", "device", "ip_route"] = "ip"
    limit: int = Field(ge=1)
    window_s: float = Field(gt=0)
    lockout_s: float = Field(0.0, ge=0, description="block the key this long once exceeded")
    fail_open: bool = Field(True, description="admit when shared state is unreachable")


def _default_rules() -> list[RateRule]:
    return [
        RateRule(name="http", key="ip", limit=600, window_s=60),
        RateRule(name="ws_connect", key="ip", limit=60, window_s=60),
        RateRule(
            name="auth_failures", key="ip", limit=10, window_s=60, lockout_s=300, fail_open=False
        ),
        RateRule(name="hook_failures", key="ip", limit=20, window_s=60, lockout_s=60),
        RateRule(name="control_writes", key="principal", limit=3, window_s=60),
    ]


class LimitsSection(Section):
    rules: list[RateRule] = Field(default_factory=_default_rules)
    exempt_cidrs: list[str] = Field(default_factory=list)
