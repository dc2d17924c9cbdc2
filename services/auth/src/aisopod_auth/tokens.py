"""Issued secrets: generation, digests, and the index from a digest to its owner.

Tokens are 32 random bytes (base64url), so a plain sha256 is a safe digest: nobody can
search that space, and a fast digest keeps every API request's check cheap. (The human-chosen
shared password gets scrypt instead; see `aisopod.config.sections.auth`.) Only digests are
stored; a lookup is by digest, and digests are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time

from nats.js.kv import KeyValue

from aisopod_auth.kv import Entries
from aisopod_auth.records import AdminRecord, ApiTokenEntry, CredentialKind, TokenRecord

log = logging.getLogger("aisopod.auth.tokens")

TOKEN_BYTES = 32
ADMIN_KEY = "admin"


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_digest(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


def now_ms() -> int:
    return int(time.time() * 1000)


class TokenStore:
    """KV `auth`: the admin digest and `token.<digest>` → `TokenRecord`."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self.index = Entries(kv, "token", TokenRecord)
        self._admin = Entries(kv, "admin", AdminRecord)
        self.api = Entries(kv, "api", ApiTokenEntry)
        self.admin_digest: str | None = None

    async def load_admin(self, admin_token: str | None) -> None:
        """Adopt the bootstrap token given to this process (stored as a digest only), or,
        without one, the digest another instance stored."""
        if admin_token:
            wanted = digest(admin_token)
            current = await self._admin.load(ADMIN_KEY)
            if current is None or not same_digest(current.digest, wanted):
                await self._admin.put(ADMIN_KEY, AdminRecord(digest=wanted, updated_at=now_ms()))
                log.info("stored the digest of the admin bootstrap token")
            self.admin_digest = wanted
            return
        current = await self._admin.load(ADMIN_KEY)
        self.admin_digest = current.digest if current else None
        if self.admin_digest is None:
            log.warning("no admin bootstrap token configured (AISOPOD_ADMIN_TOKEN_FILE)")

    def is_admin(self, token_digest: str) -> bool:
        return same_digest(self.admin_digest, token_digest)

    async def lookup(self, token_digest: str) -> TokenRecord | None:
        return await self.index.load(token_digest)

    async def register(self, token_digest: str, record: TokenRecord) -> None:
        await self.index.put(token_digest, record)

    async def forget(self, token_digest: str | None) -> None:
        if token_digest:
            await self.index.delete(token_digest)

    async def create_api_token(
        self, *, scopes: list[str], role: str, name: str | None
    ) -> tuple[str, ApiTokenEntry]:
        """A new API token (returned once) and its entry."""
        token = new_token()
        token_digest = digest(token)
        entry = ApiTokenEntry(
            token_id=new_id("tok"),
            digest=token_digest,
            name=name,
            role=role,
            scopes=sorted(set(scopes)),
            created_at=now_ms(),
        )
        await self.api.create(entry.token_id, entry)
        await self.index.create(
            token_digest,
            TokenRecord(
                kind=CredentialKind.API,
                role=role,
                scopes=entry.scopes,
                token_id=entry.token_id,
                name=name,
                created_at=entry.created_at,
            ),
        )
        return token, entry

    async def api_tokens(self) -> list[ApiTokenEntry]:
        return sorted(await self.api.all(), key=lambda e: e.created_at)

    async def revoke_api_token(self, token_id: str) -> ApiTokenEntry | None:
        found = await self.api.get(token_id)
        if found is None:
            return None
        entry, revision = found
        await self.index.delete(entry.digest)
        await self.api.delete(token_id, revision)
        return entry
