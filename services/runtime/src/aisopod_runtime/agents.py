"""Agent definitions in KV `agents` (key `agent.<id>`) and the `agents.*` methods.

The default agent (`models.agents.defaultId`, `main` on a fresh install) always exists:
it is created on first use and cannot be deleted. An agent without its own `model` or
`instructions` follows the configured defaults, so changing the defaults changes it.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from aisopod import codec
from aisopod.catalogue.agents import (
    Agent,
    AgentIdParams,
    AgentsCreateParams,
    AgentsListResult,
    AgentsUpdateParams,
)
from aisopod.catalogue.fields import OkResult
from aisopod.config.watcher import ConfigWatcher
from aisopod.errors import Conflict, InvalidParams, NotFound
from aisopod.jsread import snapshot
from aisopod.listings import agents_list_result
from aisopod.rpc import CallContext, Handler
from aisopod_runtime.kvview import get_json
from aisopod_runtime.providers import split_model_ref

_SLUG = re.compile(r"[^a-z0-9_-]+")


def agent_key(agent_id: str) -> str:
    return f"agent.{agent_id}"


def now_ms() -> int:
    return int(time.time() * 1000)


class AgentStore:
    def __init__(self, kv: KeyValue, config: ConfigWatcher) -> None:
        self.kv = kv
        self.config = config

    @property
    def default_id(self) -> str:
        return self.config.current.models.agents.default_id

    async def get(self, agent_id: str) -> Agent:
        found = await get_json(self.kv, agent_key(agent_id))
        if found is not None:
            return Agent.model_validate(found[0])
        if agent_id == self.default_id:
            return await self.ensure_default()
        raise NotFound(f"no agent {agent_id!r}", code="AGENT_NOT_FOUND", agentId=agent_id)

    async def ensure_default(self) -> Agent:
        agent_id = self.default_id
        body = {"id": agent_id, "name": agent_id, "createdAt": now_ms(), "updatedAt": now_ms()}
        try:
            await self.kv.create(agent_key(agent_id), codec.dumps(body))
        except KeyWrongLastSequenceError:
            found = await get_json(self.kv, agent_key(agent_id))
            if found is not None:
                return Agent.model_validate(found[0])
        return Agent.model_validate(body)

    async def list(self) -> list[Agent]:
        agents = [
            Agent.model_validate(codec.loads(e.value))
            for e in await snapshot(self.kv, "agent.>")
            if e.value is not None
        ]
        listed = agents_list_result(agents, self.default_id)
        if listed is None:
            listed = agents_list_result([*agents, await self.ensure_default()], self.default_id)
        assert listed is not None
        return listed.agents

    def check_model(self, model: str | None) -> None:
        if model is None:
            return
        provider_id, _ = split_model_ref(model)
        # A provider left out as invalid is still configured: its runs say why it fails.
        known = {p.id for p in self.config.current.models.providers}
        known |= set(self.config.snapshot.unusable_providers)
        if provider_id not in known:
            raise InvalidParams(
                f"model {model!r}: no provider {provider_id!r} is configured",
                code="UNKNOWN_PROVIDER",
            )

    async def create(self, params: AgentsCreateParams) -> Agent:
        self.check_model(params.model)
        agent_id = params.id or await self._free_id(params.name)
        body: dict[str, Any] = {
            "id": agent_id,
            "name": params.name,
            "model": params.model,
            "instructions": params.instructions,
            "tools": params.tools,
            "identity": params.identity.wire() if params.identity else None,
            "createdAt": now_ms(),
            "updatedAt": now_ms(),
        }
        try:
            await self.kv.create(agent_key(agent_id), codec.dumps(body))
        except KeyWrongLastSequenceError:
            raise Conflict(f"agent {agent_id!r} exists", code="AGENT_EXISTS") from None
        return Agent.model_validate(body)

    async def update(self, params: AgentsUpdateParams) -> Agent:
        if "model" in params.model_fields_set:
            self.check_model(params.model)
        changes = {k: v for k, v in params.wire().items() if k != "agentId"}
        for _ in range(5):  # compare-and-set; retried when another writer got in first
            found = await get_json(self.kv, agent_key(params.agent_id))
            if found is None:
                if params.agent_id == self.default_id:
                    await self.ensure_default()
                    continue
                raise NotFound(f"no agent {params.agent_id!r}", code="AGENT_NOT_FOUND")
            body, revision = found
            body.update(changes, updatedAt=now_ms())
            try:
                await self.kv.update(agent_key(params.agent_id), codec.dumps(body), last=revision)
            except KeyWrongLastSequenceError:
                continue
            return Agent.model_validate(body)
        raise Conflict("the agent changed concurrently; retry", code="CONCURRENT_UPDATE")

    async def delete(self, agent_id: str) -> None:
        if agent_id == self.default_id:
            raise Conflict("the default agent cannot be deleted", code="DEFAULT_AGENT")
        if await get_json(self.kv, agent_key(agent_id)) is None:
            raise NotFound(f"no agent {agent_id!r}", code="AGENT_NOT_FOUND")
        await self.kv.delete(agent_key(agent_id))
        # Its workspace files (agent_files.py) go too: a new agent of that id starts clean.
        await self.kv.purge(f"files.{agent_id}")

    async def _free_id(self, name: str) -> str:
        base = _SLUG.sub("-", name.lower()).strip("-_")[:48] or "agent"
        if not base[0].isalnum():
            base = f"a{base}"
        if await get_json(self.kv, agent_key(base)) is None:
            return base
        return f"{base}-{uuid.uuid4().hex[:6]}"


def agent_handlers(store: AgentStore) -> dict[str, Handler]:
    async def agents_list(_: Any, ctx: CallContext) -> AgentsListResult:
        return AgentsListResult(default_id=store.default_id, agents=await store.list())

    async def agents_create(params: AgentsCreateParams, ctx: CallContext) -> Agent:
        return await store.create(params)

    async def agents_update(params: AgentsUpdateParams, ctx: CallContext) -> Agent:
        return await store.update(params)

    async def agents_delete(params: AgentIdParams, ctx: CallContext) -> OkResult:
        await store.delete(params.agent_id)
        return OkResult()

    return {
        "agents.list": agents_list,
        "agents.create": agents_create,
        "agents.update": agents_update,
        "agents.delete": agents_delete,
    }
