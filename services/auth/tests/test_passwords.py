"""The stored password format (config section) and the service's cached checker."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aisopod.config.sections.auth import (
    AuthSection,
    hash_password,
    parse_password_hash,
    verify_password,
)
from aisopod_auth.passwords import PasswordChecker

FAST = 4  # log2 n small enough for unit tests; the format is the same


def test_hash_and_verify() -> None:
    stored = hash_password("correct horse", log2_n=FAST)
    assert stored.startswith(f"scrypt${FAST}$8$1$")
    assert "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)
    assert not verify_password("", stored)


def test_each_hash_has_its_own_salt() -> None:
    assert hash_password("same", log2_n=FAST) != hash_password("same", log2_n=FAST)


def test_empty_password_refused() -> None:
    with pytest.raises(ValueError):
        hash_password("")


@pytest.mark.parametrize(
    "stored",
    [
        "plain",
        "bcrypt$4$8$1$c2FsdHNhbHQ$aGFzaA",
        "scrypt$30$8$1$c2FsdHNhbHQ$" + "A" * 43,  # would need a GiB per check
        "scrypt$4$8$1$c2FsdA$" + "A" * 43,  # salt too short
        "scrypt$4$8$1$c2FsdHNhbHQ$aGFzaA",  # hash too short
        "scrypt$x$8$1$c2FsdHNhbHQ$" + "A" * 43,
    ],
)
def test_malformed_hashes_never_verify(stored: str) -> None:
    with pytest.raises(ValueError):
        parse_password_hash(stored)
    assert not verify_password("anything", stored)


def test_config_section_refuses_a_malformed_hash() -> None:
    with pytest.raises(ValidationError):
        AuthSection.model_validate({"mode": "password", "passwordHash": "hunter2"})
    ok = AuthSection.model_validate({"passwordHash": hash_password("x", log2_n=FAST)})
    assert ok.password_hash is not None
    assert "scrypt" not in repr(ok)  # a secret: never in a repr or a log line


async def test_checker_caches_only_successes() -> None:
    checker = PasswordChecker()
    stored = hash_password("pw", log2_n=FAST)
    assert await checker.check("pw", stored)
    assert len(checker._good) == 1
    assert await checker.check("pw", stored)
    assert not await checker.check("wrong", stored)
    assert len(checker._good) == 1
    # A new stored hash (password changed) does not reuse the old success.
    assert not await checker.check("pw", hash_password("new", log2_n=FAST))
