"""updates: version skew and rolling restarts, installed plugins, the onboarding wizard."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, JsonValue

from aisopod.catalogue.fields import Ident, absent_when_none
from aisopod.catalogue.spec import ROLLOUT_WAIT_S, MethodSpec
from aisopod.scopes import Requirement
from aisopod.services import ServiceName
from aisopod.wire import EmptyParams, Params, Result

R, A = Requirement.READ, Requirement.ADMIN
RT = ServiceName.RUNTIME


class InstanceVersion(Result):
    service: str
    version: str
    instance: str


class UpdateStatusResult(Result):
    """`skew` when live instances run different versions; `available`: a newer version."""

    instances: list[InstanceVersion]
    skew: bool
    available: str | None = None
    installed: dict[str, str]
    """The version of each service's package installed beside this runtime."""
    rollout: dict[str, JsonValue] | None = None
    """The last `update.run` record (progress, per-instance outcome), if any."""


class UpdateRunResult(Result):
    """Progress follows as `update.progress` events."""

    started: bool
    rollout_id: str
    total: int = Field(ge=0)
    """Instances in the plan."""


class PluginInfo(Result):
    """One entry point of the `aisopod.plugins` group (`value` is `module:attr`)."""

    name: str
    kind: Literal["tool", "provider"]
    value: str
    distribution: str | None = None
    version: str | None = None


class PluginsListResult(Result):
    plugins: list[PluginInfo]


# --- onboarding wizard: provider, model, auth mode, first agent; ends in config.apply ------

WizardStepId = Literal["provider", "model", "authMode", "agent"]
WizardStatus = Literal["running", "done", "cancelled", "error"]


class WizardOption(Result):
    value: JsonValue
    label: str
    hint: str | None = absent_when_none()


class WizardStep(Result):
    """The question to answer next; `input` says how to render it."""

    step_id: WizardStepId
    title: str
    input: Literal["select", "text", "secret", "confirm"]
    options: list[WizardOption] | None = absent_when_none()
    default: JsonValue = None


class WizardAnswer(Params):
    step_id: WizardStepId
    value: JsonValue


class WizardNextParams(Params):
    """No `answer` re-reads the current step."""

    session_id: Ident
    answer: WizardAnswer | None = None


class WizardSessionParams(Params):
    session_id: Ident


class WizardState(Result):
    """`configHash` once the wizard has written the config (status `done`)."""

    session_id: str
    status: WizardStatus
    step: WizardStep | None = absent_when_none()
    error: str | None = absent_when_none()
    config_hash: str | None = absent_when_none()


class WizardStatusParams(Params):
    """Without `sessionId`: the wizard currently running, if any."""

    session_id: Ident | None = Field(default=None)


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "update.status", RT, R, EmptyParams, UpdateStatusResult, description="versions, skew"
    ),
    MethodSpec(
        "update.run",
        RT,
        A,
        EmptyParams,
        UpdateRunResult,
        description="rolling restart, one instance at a time, each draining",
        long_wait_s=ROLLOUT_WAIT_S,
    ),
    MethodSpec(
        "plugins.list", RT, R, EmptyParams, PluginsListResult, description="entry-point plugins"
    ),
    MethodSpec("wizard.start", RT, A, EmptyParams, WizardState, description="start onboarding"),
    MethodSpec("wizard.next", RT, A, WizardNextParams, WizardState, description="answer a step"),
    MethodSpec("wizard.cancel", RT, A, WizardSessionParams, WizardState, description="cancel"),
    MethodSpec("wizard.status", RT, A, WizardStatusParams, WizardState, description="state"),
)
