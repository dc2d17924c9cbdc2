"""The verified-credential cache without I/O: what it keeps, and everything that voids it."""

from __future__ import annotations

import pytest

from aisopod.contracts.auth import VerifiedPrincipal, VerifyResult
from aisopod.credcache import CredentialCache, Question, cacheable

IP = "203.0.113.7"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def question(token: str | None = "tok-a", **changes: object) -> Question:
    fields: dict[str, object] = {
        "token": token,
        "device_token": None,
        "bearer": None,
        "role": "operator",
        "scopes": ("operator.read",),
        "origin": None,
        "direct_loopback": False,
    }
    fields.update(changes)
    return Question(**fields)  # type: ignore[arg-type]


def result(generation: str | None = "g1", device_token: str | None = None) -> VerifyResult:
    principal = VerifiedPrincipal(
        id="token:t1", role="operator", scopes=["operator.read"], auth_method="token"
    )
    return VerifyResult(principal=principal, device_token=device_token, generation=generation)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(clock: Clock) -> CredentialCache:
    return CredentialCache(ttl_s=60, size=3, clock=clock, wall_ms=lambda: int(clock.now * 1000))


def stored(cache: CredentialCache, q: Question, r: VerifyResult | None = None) -> bytes:
    key = q.key()
    assert key is not None
    answer = r or result()
    # As on a live edge: the generation is heard (auth's start-up announcement) first.
    cache.generation(answer.generation or "")
    assert cache.put(key, answer, cache.epoch)
    return key


def test_key_is_a_digest_of_every_field_and_never_the_secret() -> None:
    base = question()
    key = base.key()
    assert key is not None and b"tok-a" not in key and len(key) == 32
    variants = [
        question("tok-b"),
        question(None, device_token="tok-a"),
        question(None, bearer="tok-a"),
        question(role="node"),
        question(scopes=("operator.read", "operator.write")),
        question(scopes=None),
        question(scopes=()),
        question(origin="https://a.example"),
        question(direct_loopback=True),
    ]
    keys = {v.key() for v in variants}
    assert key not in keys and len(keys) == len(variants)
    assert question(None).key() is None  # no token: nothing to key on, always asked


def test_a_stored_answer_is_given_again_until_its_ttl(cache: CredentialCache, clock: Clock) -> None:
    key = stored(cache, question())
    assert cache.get(key, IP) == result()
    clock.now += 59.9
    assert cache.get(key, IP) is not None
    clock.now += 0.2
    assert cache.get(key, IP) is None
    assert (cache.hits, cache.misses) == (2, 1)


def test_only_cacheable_answers_are_kept(cache: CredentialCache) -> None:
    key = question().key()
    assert key is not None
    cache.generation("g1")
    assert not cacheable(result(device_token="one-time"))
    assert not cache.put(key, result(device_token="one-time"), cache.epoch)
    assert not cacheable(result(generation=None))
    assert not cache.put(key, result(generation=None), cache.epoch)
    assert cache.get(key, IP) is None


def test_nothing_is_used_before_auth_s_generation_is_known(cache: CredentialCache) -> None:
    key = question().key()
    assert key is not None
    assert cache.get(key, IP) is None
    # A first reply names the generation: that alone clears (epoch moves), so it is not kept.
    epoch = cache.epoch
    assert not cache.put(key, result("g1"), epoch)
    assert cache.put(key, result("g1"), cache.epoch)
    assert cache.get(key, IP) is not None


def test_an_invalidation_during_a_verification_keeps_its_answer_out(
    cache: CredentialCache,
) -> None:
    cache.generation("g1")
    key = question().key()
    assert key is not None
    asked_at = cache.epoch
    cache.clear()  # e.g. a revocation heard while auth was answering
    assert not cache.put(key, result(), asked_at)
    assert cache.get(key, IP) is None


def test_clear_voids_everything(cache: CredentialCache) -> None:
    keys = [stored(cache, question(f"t{i}")) for i in range(3)]
    cache.clear()
    assert all(cache.get(k, IP) is None for k in keys)
    assert len(cache) == 0


def test_a_new_generation_voids_what_the_old_one_verified(cache: CredentialCache) -> None:
    key = stored(cache, question())
    cache.generation("g1")  # heard again: nothing changes
    assert cache.get(key, IP) is not None
    cache.generation("g2")  # auth restarted (maybe with another admin token)
    assert cache.get(key, IP) is None


def test_a_second_auth_replica_does_not_thrash(cache: CredentialCache) -> None:
    a = stored(cache, question("ta"), result("g1"))
    b = stored(cache, question("tb"), result("g2"))  # another replica: g1's entries go once
    assert cache.get(b, IP) is not None and cache.get(a, IP) is None
    a = stored(cache, question("ta"), result("g1"))
    assert cache.get(a, IP) is not None and cache.get(b, IP) is not None


def test_a_stopping_generation_is_never_trusted_again(cache: CredentialCache) -> None:
    key = stored(cache, question())
    cache.generation("g1", alive=False)
    assert cache.get(key, IP) is None
    # A late reply of the stopping process is not kept either.
    assert not cache.put(key, result("g1"), cache.epoch)
    cache.generation("g1")
    assert not cache.put(key, result("g1"), cache.epoch)
    assert cache.get(key, IP) is None


def test_a_lost_connection_forgets_the_generations(cache: CredentialCache) -> None:
    key = stored(cache, question())
    cache.forget_generations()
    assert cache.get(key, IP) is None
    assert not cache.put(key, result("g1"), cache.epoch)  # re-learnt: that reply not kept
    assert cache.put(key, result("g1"), cache.epoch)


def test_a_locked_address_skips_the_cache(cache: CredentialCache, clock: Clock) -> None:
    key = stored(cache, question())
    cache.lock(IP, int(clock.now * 1000) + 5000)
    assert cache.get(key, IP) is None
    assert cache.get(key, "198.51.100.1") is not None
    clock.now += 5.1
    assert cache.get(key, IP) is not None


def test_bounded_size_drops_the_oldest(cache: CredentialCache) -> None:
    keys = [stored(cache, question(f"t{i}")) for i in range(4)]
    assert len(cache) == 3
    assert cache.get(keys[0], IP) is None
    assert all(cache.get(k, IP) is not None for k in keys[1:])


def test_ttl_zero_turns_it_off(clock: Clock) -> None:
    off = CredentialCache(ttl_s=0, clock=clock)
    key = question().key()
    assert key is not None
    off.generation("g1")
    assert not off.enabled
    assert not off.put(key, result(), off.epoch)
    assert off.get(key, IP) is None
