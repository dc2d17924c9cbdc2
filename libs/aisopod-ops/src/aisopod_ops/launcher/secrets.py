"""Secrets of a local stack, generated once into `<state>/secrets/` (files 0600)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from aisopod.services import PYTHON_SERVICES

# The edge sync's NATS user (natsconf.py grants it read-only KV `config`); here, where the
# users are listed, so the launcher's supervising process need not load natsconf.
EDGE_SYNC_USER = "edge-sync"
NATS_USERS: tuple[str, ...] = (*(s.value for s in PYTHON_SERVICES), EDGE_SYNC_USER, "admin")


def write_private(path: Path, text: str) -> None:
    """Write `text` readable by the owner only, atomically: a reader polling for the file
    (the ready file) never sees it half written."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(partial, 0o600)
    os.replace(partial, path)


def ensure_secret(path: Path, nbytes: int = 32) -> str:
    """Read the secret at `path`, creating it (URL-safe random) on first use."""
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(nbytes)
    write_private(path, value)
    return value


class StackSecrets:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "secrets"
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        self.admin_token_file = self.dir / "admin-token"
        self.admin_token = ensure_secret(self.admin_token_file)
        # The edge proof (aisopod/edgeproof.py): Traefik adds it, http-api and ws-gateway
        # check it.
        self.edge_secret_file = self.dir / "edge-secret"
        self.edge_secret = ensure_secret(self.edge_secret_file)
        self.nats_password_files = {user: self.dir / f"nats-{user}.password" for user in NATS_USERS}
        self.nats_passwords = {
            user: ensure_secret(path, 24) for user, path in self.nats_password_files.items()
        }
