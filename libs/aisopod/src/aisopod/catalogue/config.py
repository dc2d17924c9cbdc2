"""config: read, validate and write the gateway configuration document.

Writes carry the `baseHash` the caller read (a stale one is CONFLICT); redacted secrets in a
written document are kept, not overwritten; each write broadcasts `config.changed`.
"""

from __future__ import annotations

from pydantic import Field, JsonValue, RootModel, model_validator

from aisopod.catalogue.fields import ConfigHash, absent_when_none
from aisopod.catalogue.spec import ROLLOUT_WAIT_S, MethodSpec
from aisopod.scopes import Requirement
from aisopod.services import ServiceName
from aisopod.wire import EmptyParams, Params, Result

R, A = Requirement.READ, Requirement.ADMIN
RT = ServiceName.RUNTIME

ConfigDocument = dict[str, JsonValue]


class ConfigGetResult(Result):
    """`config` has its secrets redacted. When the stored document fails validation,
    `config` is what of it is in use, `hash` names the stored document (write on top of it
    to repair it) and `problems` says what is left out and why."""

    config: ConfigDocument
    hash: str
    revision: int = Field(ge=0)
    problems: list[str] | None = absent_when_none()


class ConfigSchemaResult(RootModel[dict[str, JsonValue]]):
    """The JSON Schema of the configuration model."""


class ConfigSetParams(Params):
    """The whole document, validated against the configuration model by the owner."""

    config: ConfigDocument
    base_hash: ConfigHash


class ConfigHashResult(Result):
    hash: str


class ConfigPatchParams(Params):
    """An RFC 7396 merge patch: null deletes a key, objects merge, anything else replaces."""

    patch: ConfigDocument
    base_hash: ConfigHash


class ConfigPatchResult(Result):
    hash: str
    config: ConfigDocument


class ConfigApplyParams(Params):
    """Exactly one of `config` (whole document) or `patch` (merge patch)."""

    config: ConfigDocument | None = None
    patch: ConfigDocument | None = None
    base_hash: ConfigHash

    @model_validator(mode="after")
    def _config_xor_patch(self) -> ConfigApplyParams:
        if (self.config is None) == (self.patch is None):
            raise ValueError("give exactly one of config or patch")
        return self


class InstanceApplied(Result):
    """One live instance and the config hash it last reported (null: none yet)."""

    service: str
    instance: str
    hash: str | None
    ok: bool


class ConfigApplyResult(Result):
    """`applied` maps each service to whether all its live instances report the new hash;
    `complete` is false when the apply timeout ended the wait first."""

    hash: str
    applied: dict[str, bool]
    complete: bool
    instances: list[InstanceApplied]


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec("config.get", RT, R, EmptyParams, ConfigGetResult, description="redacted"),
    MethodSpec("config.schema", RT, R, EmptyParams, ConfigSchemaResult, description="JSON Schema"),
    MethodSpec(
        "config.set", RT, A, ConfigSetParams, ConfigHashResult, description="whole document"
    ),
    MethodSpec(
        "config.patch", RT, A, ConfigPatchParams, ConfigPatchResult, description="merge patch"
    ),
    MethodSpec(
        "config.apply",
        RT,
        A,
        ConfigApplyParams,
        ConfigApplyResult,
        description="set or patch, then wait until every live instance reports the new hash",
        long_wait_s=ROLLOUT_WAIT_S,
    ),
)
