"""Credentials policy (auth service)."""

from typing import Literal

from pydantic import Field, SecretStr

from aisopod.config.sections.base import Section


class AuthSection(Section):
    mode: Literal["token", "password", "device_token", "none"] = "token"
    # Only a hash of the password is stored (scrypt, `scrypt$…`), never the password itself.
    password_hash: SecretStr | None = None
    allow_insecure_no_auth: bool = False
    auto_approve_loopback: bool = False
    lockout_failures: int = Field(10, ge=1)
    lockout_window_s: float = Field(60.0, gt=0)
    lockout_duration_s: float = Field(300.0, gt=0)
