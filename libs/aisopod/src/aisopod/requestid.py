"""The request id every HTTP answer carries (`X-Request-Id`): the client's own when it is a
sane token, else a fresh one, so a refusal at the edge (401, 429) can be quoted in a report
like any other answer."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

HEADER = b"x-request-id"
_SANE = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The id for a request with these raw (ASGI) headers."""
    for name, value in headers:
        if name == HEADER:
            if _SANE.match(value):
                return value
            break
    return os.urandom(16).hex().encode()
