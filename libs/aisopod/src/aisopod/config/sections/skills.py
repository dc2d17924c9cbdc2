"""Skill installs (runtime `skills.install` / `skills.update`): where they may come from and
how big they may be. Both lists are empty by default, so nothing can be installed until an
admin names the sources. docs/runtime.md, "Skills".
"""

from typing import Annotated

from pydantic import Field, StringConstraints

from aisopod.config.sections.base import Section

_UrlPrefix = Annotated[
    str, StringConstraints(min_length=8, max_length=2048, pattern=r"^https?://[^/?#\s]+/\S*$")
]
_PathPrefix = Annotated[str, StringConstraints(min_length=2, max_length=4096, pattern=r"^/")]


class SkillsSection(Section):
    install_urls: list[_UrlPrefix] = Field(
        default_factory=list,
        description="URL prefixes an archive may be downloaded from (scheme, host and path "
        "start, e.g. https://skills.example.com/releases/)",
    )
    install_paths: list[_PathPrefix] = Field(
        default_factory=list,
        description="folders of this host under which a local skill folder or archive may be",
    )
    max_archive_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=1024**3)
    max_unpacked_bytes: int = Field(50 * 1024 * 1024, ge=1024, le=4 * 1024**3)
    max_files: int = Field(2000, ge=1, le=100_000)
    download_timeout_s: float = Field(30.0, gt=0, le=600)
