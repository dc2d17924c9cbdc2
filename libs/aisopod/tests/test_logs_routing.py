"""Co-hosted services (`aisopod stack up --small`) log under their own names."""

from __future__ import annotations

import contextvars
import json
import logging

import pytest

from aisopod.logs import current_service


def test_records_go_to_the_service_of_their_context(capsys: pytest.CaptureFixture[str]) -> None:
    from aisopod.logs import configure_logging

    configure_logging("auth", "auth-1")
    configure_logging("runtime", "runtime-1")
    log = logging.getLogger("aisopod.test.routing")
    auth_context = contextvars.copy_context()
    auth_context.run(current_service.set, "auth")
    auth_context.run(log.info, "from auth")
    log.info("from nowhere in particular")  # no service in context: the last configured
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(r["service"], r["instance"], r["msg"]) for r in lines] == [
        ("auth", "auth-1", "from auth"),
        ("runtime", "runtime-1", "from nowhere in particular"),
    ]
    # One root handler, however many services configured logging.
    root = logging.getLogger()
    assert sum(type(h).__name__ == "ServiceRouter" for h in root.handlers) == 1
