"""Secrets in captured logs (docs/quality.md: no log line contains a secret, tested by searching
the captured logs): every stack keeps its services' logs in `<state_dir>/logs/*.log` and its
own secrets (admin token, NATS passwords) in `<state_dir>/secrets/`.

The launcher's console output (`<state>-launcher.log` beside the state dir) is not a log:
`aisopod stack up` prints the admin token there for the user on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

MIN_LEN = 8  # shorter strings would match by accident


def stack_secrets(state_dir: Path) -> set[str]:
    """The stack's generated secrets: admin token and every NATS user's password."""
    folder = state_dir / "secrets"
    if not folder.is_dir():
        return set()
    return {p.read_text().strip() for p in folder.iterdir() if p.is_file()}


def state_dirs_under(root: Path) -> list[Path]:
    """Every stack state dir below `root` (a dir with both `logs/` and `secrets/`)."""
    return sorted(p.parent for p in root.rglob("secrets") if (p.parent / "logs").is_dir())


def leaks(state_dir: Path, extra: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(log file, secret's first 4 characters + …) for each secret found in a log."""
    secrets = {s for s in {*stack_secrets(state_dir), *extra} if s and len(s) >= MIN_LEN}
    found = []
    for log in sorted((state_dir / "logs").glob("*.log")):
        text = log.read_text(errors="replace")
        found += [(str(log), secret[:4] + "…") for secret in secrets if secret in text]
    return found
