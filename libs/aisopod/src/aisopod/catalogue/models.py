"""models and skills: configured models, voice-wake triggers, skills and their binaries."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from aisopod.catalogue.spec import MethodSpec
from aisopod.scopes import Requirement
from aisopod.services import ServiceName
from aisopod.wire import EmptyParams, Params, Result

R, W, N = Requirement.READ, Requirement.WRITE, Requirement.NODE
RT = ServiceName.RUNTIME

Trigger = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"\S")]


class ModelInfo(Result):
    """`id` is `<provider>/<model>`; `source` says where the entry comes from: the config,
    or the upstream's own model list."""

    id: str
    provider: str
    context_window: int | None = Field(default=None, ge=1)
    model: str
    source: Literal["config", "upstream"]


class ModelsListResult(Result):
    models: list[ModelInfo]


class VoicewakeParams(Params):
    """Without `triggers` it reads (operator.read); with them it sets (operator.write)."""

    triggers: list[Trigger] | None = Field(default=None, max_length=32)


class VoicewakeResult(Result):
    triggers: list[str]


class SkillMissing(Result):
    bins: list[str]
    env: list[str]


class SkillRequires(SkillMissing):
    """What the skill declares it needs (`SkillMissing`: what of it is not there)."""


class SkillStatus(Result):
    """`eligible` when nothing is missing: every required binary and env variable exists."""

    name: str
    description: str
    eligible: bool
    missing: SkillMissing
    requires: SkillRequires
    version: str | None = None
    """The `version` of its front matter, when it says one."""
    sha256: str | None = None
    """For a skill installed by `skills.install`/`update`: the checksum it was installed by."""
    source: str | None = None
    installed_at_ms: int | None = None


class SkillsStatusResult(Result):
    skills: list[SkillStatus]


class SkillsBinsResult(Result):
    bins: list[str]


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec("models.list", RT, R, EmptyParams, ModelsListResult, description="models"),
    MethodSpec(
        "models.voicewake",
        RT,
        R,
        VoicewakeParams,
        VoicewakeResult,
        description="get or set voice-wake triggers; a set broadcasts voicewake.changed",
        write_requirement=W,
        write_when_param="triggers",
    ),
    MethodSpec(
        "skills.status", RT, R, EmptyParams, SkillsStatusResult, description="skills folder"
    ),
    MethodSpec(
        "skills.bins", RT, N, EmptyParams, SkillsBinsResult, description="binaries skills need"
    ),
)
