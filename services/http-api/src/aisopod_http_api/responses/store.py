"""Stored responses: `GET /v1/responses/{id}` and `previous_response_id`.

A response made with `store` not false is kept in KV `responses` (TTL 30 days) under its
id: the response object, who made it, and how to go on from it. An agent response names its
session: the conversation itself lives in the runtime's session transcript, and a chained
request runs its turn in that same session, so the agent sees every earlier turn. A provider
response keeps its chat messages (input and answer, instructions excluded, as OpenAI does),
which a chained request puts before its own input.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from nats.js.errors import Error as JsError
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, Field

from aisopod.errors import NotFound, Unavailable
from aisopod.principal import Principal

log = logging.getLogger("aisopod.http_api.responses")

_ID = re.compile(r"^resp_[A-Za-z0-9]{1,64}$")
ADMIN_SCOPE = "operator.admin"


class StoredResponse(BaseModel):
    resource: dict[str, Any]
    principal: str
    agent_id: str | None = None
    session_key: str | None = None
    # Provider mode: the conversation so far as chat messages (no instructions).
    messages: list[dict[str, Any]] = Field(default_factory=list)


class ResponseStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def put(self, record: StoredResponse) -> None:
        """Best effort: a response that cannot be stored (NATS away, over the message size
        limit) is still answered; chaining from it then finds nothing (404)."""
        try:
            await self.kv.put(record.resource["id"], record.model_dump_json().encode())
        except (JsError, OSError, TimeoutError) as exc:
            log.warning("response %s not stored: %s", record.resource["id"], exc)

    async def get(self, response_id: str, principal: Principal, param: str) -> StoredResponse:
        """The stored response, if the caller made it (or is an admin); else NOT_FOUND."""
        missing = NotFound(
            f"no stored response {response_id!r} (never stored, store: false, or expired)",
            param=param,
            openaiCode="response_not_found",
        )
        if not _ID.match(response_id):
            raise missing
        try:
            entry = await self.kv.get(response_id)
        except KeyNotFoundError:
            raise missing from None
        if entry.value is None:
            raise missing
        record = StoredResponse.model_validate_json(entry.value)
        if record.principal != principal.id and ADMIN_SCOPE not in principal.scopes:
            raise missing  # another caller's: not even its existence is told
        return record

    async def delete(self, response_id: str, principal: Principal) -> None:
        await self.get(response_id, principal, "response_id")
        try:
            await self.kv.purge(response_id)
        except JsError as exc:
            raise Unavailable(f"response {response_id!r} could not be deleted: {exc}") from None
