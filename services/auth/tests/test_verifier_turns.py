"""Attempts from one IP take turns, except a token that verified a moment ago: it is no
guess, so its attempts run side by side (and are still verified in full each time)."""

from __future__ import annotations

import asyncio

import pytest

from aisopod.config.model import GatewayConfig
from aisopod.errors import RateLimited, Unauthenticated
from aisopod.subjects import Subjects
from aisopod_auth.lockout import Lockout
from aisopod_auth.records import CredentialKind, TokenRecord
from aisopod_auth.tokens import digest
from aisopod_auth.verifier import Attempt, Verifier

TOKEN_MODE = GatewayConfig.model_validate({"auth": {"mode": "token"}})
IP = "192.0.2.7"


class _NoBus:
    subjects = Subjects()


class Tokens:
    """An API-token index whose look-ups wait at a gate, counting how many are inside."""

    def __init__(self, valid: str) -> None:
        self.valid = digest(valid)
        self.inside = 0
        self.most_inside = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.revoked = False

    def is_admin(self, _: str) -> bool:
        return False

    async def lookup(self, token_digest: str) -> TokenRecord | None:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            await self.gate.wait()
        finally:
            self.inside -= 1
        if token_digest != self.valid or self.revoked:
            return None
        return TokenRecord(
            kind=CredentialKind.API, scopes=["operator.read"], token_id="tok_1", created_at=1
        )


class Counting(Lockout):
    def __init__(self) -> None:
        super().__init__(_NoBus(), lambda: None)  # type: ignore[arg-type]
        self.failures = 0

    async def failed(self, ip: str) -> None:
        self.failures += 1


def verifier(tokens: Tokens, lockout: Lockout) -> Verifier:
    return Verifier(
        config=lambda: TOKEN_MODE,
        tokens=tokens,  # type: ignore[arg-type]
        devices=None,  # type: ignore[arg-type]
        nodes=None,  # type: ignore[arg-type]
        lockout=lockout,
        notifier=None,  # type: ignore[arg-type]
        none_permitted=lambda auth: False,
    )


def bearer(value: str) -> Attempt:
    return Attempt(credential=("bearer", value), client_ip=IP)


async def _both_inside(tokens: Tokens, attempts: list[asyncio.Task[object]]) -> None:
    """Wait (bounded by the caller) until two look-ups are inside at once."""
    while tokens.inside < 2:
        assert not any(a.done() for a in attempts)
        await asyncio.sleep(0)


async def test_a_known_good_token_does_not_wait_its_turn() -> None:
    tokens, lockout = Tokens("good"), Counting()
    check = verifier(tokens, lockout)
    first = await check.verify(bearer("good"))  # unknown yet: takes its turn, passes
    assert first.principal.id == "token:tok_1"
    tokens.gate.clear()
    attempts = [asyncio.ensure_future(check.verify(bearer("good"))) for _ in range(2)]
    await asyncio.wait_for(_both_inside(tokens, attempts), 5)  # side by side
    tokens.gate.set()
    for result in await asyncio.gather(*attempts):
        assert result.principal.id == "token:tok_1"  # type: ignore[attr-defined]
    assert lockout.failures == 0


async def test_unknown_credentials_still_take_turns() -> None:
    tokens, lockout = Tokens("good"), Counting()
    check = verifier(tokens, lockout)
    tokens.gate.clear()
    attempts = [asyncio.ensure_future(check.verify(bearer(f"guess-{n}"))) for n in range(3)]
    for _ in range(20):
        await asyncio.sleep(0)
    assert tokens.inside == 1  # the others wait for the first to be counted
    tokens.gate.set()
    results = await asyncio.gather(*attempts, return_exceptions=True)
    assert all(isinstance(r, Unauthenticated) for r in results)
    assert tokens.most_inside == 1 and lockout.failures == 3


async def test_a_revoked_token_fails_at_once_and_is_forgotten() -> None:
    tokens, lockout = Tokens("good"), Counting()
    check = verifier(tokens, lockout)
    await check.verify(bearer("good"))
    tokens.revoked = True
    with pytest.raises(Unauthenticated):
        await check.verify(bearer("good"))
    assert lockout.failures == 1
    tokens.gate.clear()  # forgotten: the next attempts take turns again
    attempts = [asyncio.ensure_future(check.verify(bearer("good"))) for _ in range(2)]
    for _ in range(20):
        await asyncio.sleep(0)
    assert tokens.inside == 1
    tokens.gate.set()
    await asyncio.gather(*attempts, return_exceptions=True)


async def test_a_locked_ip_is_refused_even_with_a_known_good_token() -> None:
    tokens, lockout = Tokens("good"), Counting()
    check = verifier(tokens, lockout)
    await check.verify(bearer("good"))
    lockout._remember(lockout.key_of(IP), 2**62)
    with pytest.raises(RateLimited):
        await check.verify(bearer("good"))
