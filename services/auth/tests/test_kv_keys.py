"""KV key segments for free-form values: valid NATS KV keys, no collisions."""

from __future__ import annotations

import re

from aisopod_auth.kv import key_token

VALID = re.compile(r"^[-/_=.a-zA-Z0-9]+$")


def test_keys_are_valid_and_distinct() -> None:
    values = ["node:1", "node=3A1", "2001:db8::1", "a.b", "a_b", "plain-id", "ü", "a b"]
    keys = [key_token(v) for v in values]
    assert all(VALID.match(k) and "." not in k for k in keys)
    assert len(set(keys)) == len(values)
    assert key_token("plain-id") == "plain-id"
