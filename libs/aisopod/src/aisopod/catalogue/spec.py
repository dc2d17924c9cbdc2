"""The shape of one catalogue entry. Pure data: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from aisopod.scopes import Requirement
from aisopod.services import ServiceName

LONG_RUN_WAIT_S = 600.0
"""Edge wait for methods that wait on a run or a human without `timeoutMs` (agent.wait)."""
ROLLOUT_WAIT_S = 60.0
"""Edge wait for methods that wait until every instance took a change (config.apply)."""


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """One RPC method: who owns it, who may call it, and the models of its params and result.

    `write_requirement`/`write_when_param` express the one method whose scope depends on
    its params (`models.voicewake`: read to get, write when `triggers` is given).
    `long_wait_s`: how long an edge waits for the owner's reply when the call gives no
    `timeoutMs`, for methods that legitimately take long (a run, an apply); others wait the
    edge's default request timeout.
    """

    name: str
    owner: ServiceName
    requirement: Requirement
    params: type[BaseModel]
    result: type[BaseModel]
    idempotent: bool = False
    description: str = ""
    write_requirement: Requirement | None = None
    write_when_param: str | None = None
    long_wait_s: float | None = None

    def requirement_for(self, params: dict[str, object] | None) -> Requirement:
        """The requirement this call must meet, given its raw params."""
        if (
            self.write_requirement is not None
            and self.write_when_param is not None
            and isinstance(params, dict)
            and params.get(self.write_when_param) is not None
        ):
            return self.write_requirement
        return self.requirement

    def reply_timeout(self, default_s: float) -> float:
        """The edge's wait for a reply when the call gives no `timeoutMs`."""
        return self.long_wait_s if self.long_wait_s is not None else default_s
