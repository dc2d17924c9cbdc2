from __future__ import annotations

import pytest

from aisopod_fake_upstream.behaviour import (
    PLAIN,
    Behaviour,
    behaviour_from_fields,
    behaviour_from_headers,
)
from aisopod_fake_upstream.errors import OpenAIError


def test_string_fields_are_converted() -> None:
    behaviour = behaviour_from_fields({"status": "503", "retry_after": "0.5", "drop": "true"}, "t")
    assert (behaviour.status, behaviour.retry_after, behaviour.drop) == (503, 0.5, True)
    assert not behaviour.is_immediate


def test_plain_is_immediate_and_delays_are_not() -> None:
    assert PLAIN.is_immediate
    assert Behaviour(status=500, words=3).is_immediate
    assert not Behaviour(delay_ms=1).is_immediate
    assert not Behaviour(chunk_delay_ms=1).is_immediate
    assert not Behaviour(cut_after=0).is_immediate


def test_override_takes_only_fields_set_explicitly() -> None:
    base = Behaviour(status=503, delay_ms=100)
    merged = base.overridden_by(Behaviour(delay_ms=0, words=5))
    assert (merged.status, merged.delay_ms, merged.words) == (503, 0, 5)
    assert base.overridden_by(None) is base
    assert PLAIN.overridden_by(base) is base


def test_headers_map_to_fields() -> None:
    headers = {"x-fake-status": "429", "x-fake-retry-after": "2", "content-type": "x"}
    behaviour = behaviour_from_headers(headers)
    assert behaviour is not None
    assert (behaviour.status, behaviour.retry_after) == (429, 2.0)
    assert behaviour_from_headers({"content-type": "x"}) is None


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"stauts": "500"}, "unknown"),
        ({"status": "200"}, "status"),
        ({"delay_ms": "soon"}, "delay_ms"),
    ],
)
def test_bad_fields_are_a_400_naming_the_problem(fields: dict[str, str], detail: str) -> None:
    with pytest.raises(OpenAIError) as caught:
        behaviour_from_fields(fields, "[[fake:...]] directive")
    assert caught.value.status == 400
    assert detail in caught.value.message
