"""No secret reaches a log, in any stack the test session started: the shared stack and
every private one (restart and failover suites), each checked for its own secrets and for
every secret the suites used (provider API key, hook token, device and node tokens).

Runs last in the session (tests/integration/conftest.py) so it sees what every other
suite made the stacks log.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.conftest import FAKE_API_KEY, HOOK_TOKEN
from tests.integration.auth_support import USED_SECRETS
from tests.support.log_audit import leaks, state_dirs_under

pytestmark = pytest.mark.integration


@pytest.mark.after_all
def test_no_secret_in_any_captured_log(stack, tmp_path_factory: pytest.TempPathFactory) -> None:
    used = {stack.admin_token, FAKE_API_KEY, HOOK_TOKEN, *USED_SECRETS}
    dirs = {stack.state_dir, *state_dirs_under(tmp_path_factory.getbasetemp())}
    assert list((stack.state_dir / "logs").glob("*.log")), "the stack captured no logs"
    found = [leak for state_dir in sorted(dirs) for leak in leaks(state_dir, used)]
    assert found == []


def test_the_audit_finds_a_planted_secret() -> None:
    """The audit is not vacuous: a secret written to a log is reported, by file. (Outside
    the session's temp dir, which the audit above scans.)"""
    with tempfile.TemporaryDirectory() as tmp:
        _planted(Path(tmp))


def _planted(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "secrets").mkdir(parents=True)
    (state / "logs").mkdir()
    (state / "secrets" / "nats-runtime.password").write_text("pw-0123456789abcdef\n")
    (state / "logs" / "runtime.log").write_text('{"msg":"connecting with pw-0123456789abcdef"}')
    (state / "logs" / "auth.log").write_text('{"msg":"token sk-used-in-a-test-42"}')
    assert state_dirs_under(tmp_path) == [state]
    found = leaks(state, {"sk-used-in-a-test-42", "short"})
    assert sorted(found) == [
        (str(state / "logs" / "auth.log"), "sk-u…"),
        (str(state / "logs" / "runtime.log"), "pw-0…"),
    ]
