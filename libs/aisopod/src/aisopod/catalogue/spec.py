"""The shape of one catalogue entry. Pure data: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from aisopod.scopes import Requirement
from aisopod.services import ServiceName


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """One RPC method: who owns it, who may call it, and the models of its params and result.

    `write_requirement`/`write_when_param` express the one method whose scope depends on
    its params (`models.voicewake`: read to get, write when `triggers` is given).
    """

    name: str
    owner: ServiceName
    requirement: Requirement
    params: type[BaseModel]
    result: type[BaseModel] | None
    idempotent: bool = False
    description: str = ""
    write_requirement: Requirement | None = None
    write_when_param: str | None = None

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
