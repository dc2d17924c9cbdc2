"""The skills folder: `<dir>/<skill>/SKILL.md` files with YAML front matter.

    ---
    name: weather
    description: Current weather and forecasts.
    requires:
      bins: [curl]
      env: [WEATHER_API_KEY]
    ---
    (instructions for the agent…)

OpenClaw's form (`metadata: {openclaw: {requires: {bins, env}}}`) is read too. A skill is
eligible when every required binary is on this runtime's PATH (`shutil.which`) and every
required environment variable is set and non-empty in its environment. Folders come from
`AISOPOD_SKILLS_DIR` (`os.pathsep`-separated), default `<state dir>/skills`. A skill's
`version` comes from its front matter; `skills.install`/`update` (skill_install.py) install
into the first folder and leave a record of the checksum and source beside the skill.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aisopod.catalogue.models import SkillsBinsResult, SkillsStatusResult, SkillStatus

log = logging.getLogger("aisopod.runtime.skills")

MAX_SKILL_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Skill:
    name: str
    description: str
    path: Path
    bins: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    missing_bins: tuple[str, ...] = field(default=())
    missing_env: tuple[str, ...] = field(default=())
    version: str | None = None
    install: dict[str, Any] = field(default_factory=dict)  # skills.install's record, if any

    @property
    def eligible(self) -> bool:
        return not self.missing_bins and not self.missing_env

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "eligible": self.eligible,
            "missing": {"bins": list(self.missing_bins), "env": list(self.missing_env)},
            "requires": {"bins": list(self.bins), "env": list(self.env)},
            "version": self.version,
            "sha256": self.install.get("sha256"),
            "source": self.install.get("source"),
            "installedAtMs": self.install.get("installedAtMs"),
        }


def skills_dirs(environ: Mapping[str, str], state_dir: Path | None) -> list[Path]:
    raw = environ.get("AISOPOD_SKILLS_DIR", "")
    if raw:
        return [Path(p) for p in raw.split(os.pathsep) if p]
    return [state_dir / "skills"] if state_dir is not None else []


def front_matter(text: str) -> dict[str, Any]:
    """The YAML mapping between the leading `---` lines; {} when there is none."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    for end, line in enumerate(lines[1:], start=1):
        if line.strip() in ("---", "..."):
            data = yaml.safe_load("\n".join(lines[1:end])) or {}
            return data if isinstance(data, dict) else {}
    return {}


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(dict.fromkeys(str(v).strip() for v in value if str(v).strip()))


def _requires(meta: dict[str, Any]) -> dict[str, Any]:
    requires = meta.get("requires")
    if isinstance(requires, dict):
        return requires
    nested = meta.get("metadata")
    if isinstance(nested, dict):
        for vendor in nested.values():
            if isinstance(vendor, dict) and isinstance(vendor.get("requires"), dict):
                return vendor["requires"]
    return {}


def load_skill(
    path: Path, *, environ: Mapping[str, str], which: Any = shutil.which
) -> Skill | None:
    try:
        if path.stat().st_size > MAX_SKILL_BYTES:
            log.warning("skipping %s: larger than %d bytes", path, MAX_SKILL_BYTES)
            return None
        meta = front_matter(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, yaml.YAMLError) as exc:
        log.warning("skipping skill %s: %s", path, exc)
        return None
    requires = _requires(meta)
    bins, env = _names(requires.get("bins")), _names(requires.get("env"))
    version = meta.get("version")
    return Skill(
        name=str(meta.get("name") or path.parent.name),
        description=str(meta.get("description") or "").strip(),
        path=path,
        bins=bins,
        env=env,
        missing_bins=tuple(b for b in bins if which(b) is None),
        missing_env=tuple(e for e in env if not environ.get(e)),
        version=str(version) if version is not None and str(version).strip() else None,
        install=_install_record(path.parent),
    )


def _install_record(folder: Path) -> dict[str, Any]:
    """What `skills.install`/`update` wrote beside the skill (skill_install.py), or {}."""
    try:
        data = json.loads((folder / ".aisopod-install.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def scan(
    dirs: Sequence[Path], *, environ: Mapping[str, str], which: Any = shutil.which
) -> list[Skill]:
    """Every skill under `dirs`; a name found twice keeps its first folder's skill."""
    found: dict[str, Skill] = {}
    for directory in dirs:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*/SKILL.md")):
            skill = load_skill(path, environ=environ, which=which)
            if skill is not None and skill.name not in found:
                found[skill.name] = skill
    return sorted(found.values(), key=lambda s: s.name)


class SkillsMethods:
    def __init__(self, dirs: Sequence[Path]) -> None:
        self.dirs = list(dirs)

    async def status(self, _: Any, ctx: Any) -> SkillsStatusResult:
        skills = scan(self.dirs, environ=os.environ)
        return SkillsStatusResult(skills=[SkillStatus.model_validate(s.status()) for s in skills])

    async def bins(self, _: Any, ctx: Any) -> SkillsBinsResult:
        skills = scan(self.dirs, environ=os.environ)
        return SkillsBinsResult(bins=sorted({b for s in skills for b in s.bins}))
