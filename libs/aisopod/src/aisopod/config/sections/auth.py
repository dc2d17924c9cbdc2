"""Credentials policy (auth service), and the stored format of the shared password.

Modes (docs/auth.md): `token` (default) accepts the admin bootstrap token, API tokens and
paired devices' and nodes' tokens; `password` the shared password instead of API tokens;
`device_token` only paired devices' and nodes' tokens (the admin bootstrap token only over
a direct loopback connection); `none` accepts everyone and refuses to run on a non-loopback
bind unless `allowInsecureNoAuth`. The lockout of failed attempts is the `auth_failures`
rule of `limits` (one source of truth, enforced with the ratelimit service).

The password is stored only as `scrypt$<log2 n>$<r>$<p>$<salt b64>$<hash b64>`; the helpers
here are pure so the CLI, the wizard and the auth service share one format.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Literal

from pydantic import SecretStr, field_validator

from aisopod.config.sections.base import Section

AuthMode = Literal["token", "password", "device_token", "none"]

# n = 2**14, r = 8 → 16 MiB and ~50 ms per hash: costly to guess offline, bearable online
# (the auth service caches successful checks, so only failures pay it repeatedly).
SCRYPT_LOG2_N = 14
SCRYPT_R = 8
SCRYPT_P = 1
_MAX_LOG2_N = 20  # refuse stored parameters that would eat a GiB per check


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * r * n + 1024 * 1024, dklen=32
    )


def hash_password(password: str, *, log2_n: int = SCRYPT_LOG2_N) -> str:
    """The storable hash of `password` (a fresh random salt each time)."""
    if not password:
        raise ValueError("the password must not be empty")
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, log2_n, SCRYPT_R, SCRYPT_P)
    return f"scrypt${log2_n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def parse_password_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """(log2 n, r, p, salt, digest) of a stored hash; ValueError when malformed."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("expected scrypt$<log2 n>$<r>$<p>$<salt>$<hash>")
    log2_n, r, p = (int(x) for x in parts[1:4])
    if not (1 <= log2_n <= _MAX_LOG2_N and 1 <= r <= 32 and 1 <= p <= 16):
        raise ValueError("scrypt parameters out of range")
    salt, digest = _unb64(parts[4]), _unb64(parts[5])
    if len(salt) < 8 or len(digest) != 32:
        raise ValueError("salt or hash has the wrong length")
    return log2_n, r, p, salt, digest


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored hash (constant-time comparison)."""
    try:
        log2_n, r, p, salt, digest = parse_password_hash(stored)
    except ValueError:
        return False
    return hmac.compare_digest(_scrypt(password, salt, log2_n, r, p), digest)


class AuthSection(Section):
    mode: AuthMode = "token"
    # Only a hash of the password is stored (`hash_password`), never the password itself.
    password_hash: SecretStr | None = None
    allow_insecure_no_auth: bool = False
    # Pair unknown devices without an operator when they connect over a direct loopback
    # connection (no untrusted proxy hop, loopback client IP) and not from a browser origin.
    auto_approve_loopback: bool = False

    @field_validator("password_hash")
    @classmethod
    def _password_hash_format(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_password_hash(value.get_secret_value())
        return value
