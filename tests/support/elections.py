"""A leader election as a conditional KV write meets it, for tests on a real nats-server.

In a 3-node cluster under load, a KV create or compare-and-set was stored while its
answer was lost (the node or leader it went through died); JetStream's retry of it
(aisopod.jsretry) was then refused as "wrong last sequence" by that stored first copy:
its repeated `Nats-Msg-Id` did not spare it. A single nats-server does not lose answers,
so this makes it happen: the first attempt of the next publishes is stored (when
`stored`) and then times out; the retry goes out under a fresh message id, so the
server's duplicate check cannot answer it and the condition refuses it for real.
"""

from __future__ import annotations

import uuid
from typing import Any

import nats.errors
import pytest
from nats.js import JetStreamContext

from aisopod.jsretry import ElectionTolerantJetStream


def lose_first_answers(
    js: ElectionTolerantJetStream,
    monkeypatch: pytest.MonkeyPatch,
    *,
    stored: bool = True,
    times: int = 1,
) -> list[dict[str, str]]:
    """The next `times` publishes of `js` lose their first answer (see the module doc).
    Returns the headers of every attempt, so a test can tell a retry happened."""
    attempts: list[dict[str, str]] = []
    lost: set[str] = set()
    lean = js._requester is not None
    real = js._publish_lean if lean else JetStreamContext.publish

    async def election(*args: Any, **kwargs: Any) -> Any:
        headers: dict[str, str] = kwargs["headers"]
        attempts.append(dict(headers))
        call = headers["Nats-Msg-Id"]
        if call not in lost and len(lost) < times:
            lost.add(call)
            if stored:
                await real(*args, **kwargs)
            raise nats.errors.TimeoutError
        if call in lost:
            kwargs["headers"] = {**headers, "Nats-Msg-Id": uuid.uuid4().hex}
        return await real(*args, **kwargs)

    if lean:
        monkeypatch.setattr(js, "_publish_lean", election)
    else:
        monkeypatch.setattr(JetStreamContext, "publish", election)
    return attempts
