"""Run start-up work in a short-lived forked child, so the supervising process never loads
what only that work needs.

The launcher supervises for as long as the stack runs, but only writing the stack's files
(NATS config from the method catalogue, Traefik's configuration, the TLS certificate)
needs pydantic, the catalogue's models and `cryptography`: ~25 MiB of RSS that a Python
process never gives back once imported (docs/deployment.md, "The launcher's own memory").
The child inherits the plan (ports, secrets) by `fork`, writes the files, hands back a
short text result through a pipe and exits.
"""

from __future__ import annotations

import os
import signal
import traceback
from collections.abc import Callable

MAX_RESULT = 1 << 20


class ForkedError(RuntimeError):
    """The forked work failed; the message is the child's exception."""


def run_forked(work: Callable[[], str]) -> str:
    """`work()` in a forked child; its result, or ForkedError with the child's error.

    Call it with no other thread running (fork copies only the calling thread)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = 1
        try:
            os.close(read_end)
            # Signals are the parent's to handle (an asyncio loop's wakeup fd is shared).
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            try:
                text, status = work(), 0
            except BaseException as exc:
                text = "".join(traceback.format_exception_only(exc)).strip()
            with os.fdopen(write_end, "wb") as out:
                out.write(text.encode())
        finally:
            os._exit(status)
    os.close(write_end)
    chunks = []
    with os.fdopen(read_end, "rb") as result:
        while chunk := result.read(MAX_RESULT):
            chunks.append(chunk)
    _, wait_status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode(errors="replace")
    if os.waitstatus_to_exitcode(wait_status) != 0:
        raise ForkedError(text or f"start-up child exited with status {wait_status}")
    return text
