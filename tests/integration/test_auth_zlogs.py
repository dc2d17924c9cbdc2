"""No secret reaches a log: every log the stack captured (`<state_dir>/logs/*.log`) is
searched for every secret the suites used. Named to run after the other auth suites."""

from __future__ import annotations

import pytest

from tests.conftest import FAKE_API_KEY, HOOK_TOKEN
from tests.integration.auth_support import USED_SECRETS

pytestmark = pytest.mark.integration


def test_no_secret_in_any_captured_log(stack) -> None:
    secrets = {stack.admin_token, FAKE_API_KEY, HOOK_TOKEN, *USED_SECRETS}
    secrets |= {p.read_text().strip() for p in (stack.state_dir / "secrets").glob("*")}
    secrets = {s for s in secrets if s and len(s) >= 8}
    logs = sorted((stack.state_dir / "logs").glob("*.log"))
    assert logs, "the stack captured no logs"
    leaks = []
    for log in logs:
        text = log.read_text(errors="replace")
        leaks += [(log.name, secret[:4] + "…") for secret in secrets if secret in text]
    assert leaks == []
