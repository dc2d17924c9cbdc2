"""skillinstall: installing and updating skills from a local folder or archive, or an archive
URL the admin allows (`skills.installUrls` / `skills.installPaths`), checked against a sha256.

The runtime unpacks into a staging folder, checks every entry (no absolute paths, no `..`, no
link leaving the skill, no device files, size and file-count limits), then swaps the skill in
with one atomic rename; `skills.status` reports each skill's version and where it came from.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from aisopod.catalogue.fields import EpochMs
from aisopod.catalogue.spec import MethodSpec
from aisopod.scopes import Requirement
from aisopod.services import ServiceName
from aisopod.wire import Params, Result

A = Requirement.ADMIN
RT = ServiceName.RUNTIME

SkillName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]
Source = Annotated[
    str, StringConstraints(min_length=2, max_length=4096, pattern=r"^(https?://\S+|/\S.*)$")
]


class SkillsInstallParams(Params):
    """`source`: an `http(s)://` archive URL or an absolute path on the runtime's host (a
    skill folder or an archive). `sha256`: of the archive's bytes, or for a folder its tree
    digest (docs/runtime.md, Skills). `name` defaults to the skill's own (front matter, then
    its folder's name)."""

    source: Source
    sha256: Sha256Hex
    name: SkillName | None = None


class SkillsUpdateParams(Params):
    name: SkillName
    source: Source
    sha256: Sha256Hex


class SkillVersion(Result):
    version: str | None = None
    sha256: str | None = None


class SkillInstallResult(Result):
    name: str
    version: str | None = None
    sha256: str
    source: str
    installed_at_ms: EpochMs
    files: int
    bytes: int
    previous: SkillVersion | None = None


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "skills.install",
        RT,
        A,
        SkillsInstallParams,
        SkillInstallResult,
        description="install a new skill from an allowed path or URL, checked by sha256",
    ),
    MethodSpec(
        "skills.update",
        RT,
        A,
        SkillsUpdateParams,
        SkillInstallResult,
        description="replace an installed skill with a new version, atomically",
    ),
)
