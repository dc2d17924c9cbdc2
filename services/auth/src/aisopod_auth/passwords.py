"""Checking the shared password of `password` mode without stalling the service.

scrypt costs ~50 ms of CPU by design, so it runs in a worker thread, and a successful check
is remembered (as an HMAC under a per-process random key, never the password) until the
stored hash changes: http-api verifies every HTTP request, and only a wrong password
should pay scrypt again. The cache is small and bounded.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections import OrderedDict

from aisopod.config.sections.auth import verify_password

_CACHE_SIZE = 64


class PasswordChecker:
    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._good: OrderedDict[bytes, None] = OrderedDict()

    def _mark(self, password: str, stored: str) -> bytes:
        return hmac.new(
            self._key, stored.encode() + b"\x00" + password.encode(), hashlib.sha256
        ).digest()

    async def check(self, password: str, stored: str) -> bool:
        mark = self._mark(password, stored)
        if mark in self._good:
            self._good.move_to_end(mark)
            return True
        if not await asyncio.to_thread(verify_password, password, stored):
            return False
        self._good[mark] = None
        while len(self._good) > _CACHE_SIZE:
            self._good.popitem(last=False)
        return True
