"""The onboarding wizard: provider (and key) → default model → auth mode → first agent,
then one `config.apply`.

`WizardFlow` is the pure state machine (steps, validation, the resulting merge patch);
`WizardMethods` keeps sessions in KV `wizard` (TTL 1 h, any replica can answer the next
step) and applies the result. One wizard runs at a time (`wizard.start` while one runs is
CONFLICT with its `sessionId`).

Answers: `provider` — `"echo"` (offline, no key) or `{kind:"openai", apiKey, baseUrl?, id?}`;
`model` — a model id of that provider; `authMode` — `token`, `device_token` or `none`
(password needs the auth service's password hashing, set it with config.patch);
`agent` — an agent id, or `{id, instructions?}`, which becomes the default agent.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from aisopod import codec
from aisopod.catalogue.updates import (
    WizardNextParams,
    WizardSessionParams,
    WizardState,
    WizardStatusParams,
)
from aisopod.errors import AisopodError, Conflict, InvalidParams, NotFound
from aisopod.rpc import CallContext
from aisopod_runtime.config_methods import ConfigMethods

STEPS = ("provider", "model", "authMode", "agent")
AUTH_MODES = ("token", "device_token", "none")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SESSION = re.compile(r"^wiz_[0-9a-f]{16}$")
CURRENT = "current"


def _bad(step: str, message: str) -> InvalidParams:
    return InvalidParams(
        f"{step}: {message}", errors=[{"loc": ["answer", "value"], "msg": message}]
    )


class WizardFlow:
    """Pure: questions, answer checks and the config patch. No I/O."""

    @staticmethod
    def step(step_id: str, answers: dict[str, Any]) -> dict[str, Any]:
        if step_id == "provider":
            return {
                "stepId": "provider",
                "title": "Model provider",
                "input": "select",
                "options": [
                    {"value": "echo", "label": "Offline echo provider", "hint": "no key needed"},
                    {
                        "value": {"kind": "openai"},
                        "label": "OpenAI-compatible API",
                        "hint": "answer {kind, apiKey, baseUrl?}",
                    },
                ],
                "default": "echo",
            }
        if step_id == "model":
            provider = answers.get("provider") or {}
            if provider.get("kind") == "echo":
                return {
                    "stepId": "model",
                    "title": "Default model",
                    "input": "select",
                    "options": [{"value": "echo", "label": "echo"}],
                    "default": "echo",
                }
            return {
                "stepId": "model",
                "title": "Default model id",
                "input": "text",
                "default": "gpt-4o-mini",
            }
        if step_id == "authMode":
            return {
                "stepId": "authMode",
                "title": "How clients authenticate",
                "input": "select",
                "options": [
                    {"value": "token", "label": "Shared token", "hint": "the admin token"},
                    {"value": "device_token", "label": "Paired devices"},
                    {"value": "none", "label": "No auth", "hint": "loopback only"},
                ],
                "default": "token",
            }
        return {"stepId": "agent", "title": "First agent id", "input": "text", "default": "main"}

    @staticmethod
    def check(step_id: str, value: Any) -> Any:
        """The normalised answer, or INVALID_PARAMS."""
        if step_id == "provider":
            if value == "echo" or (isinstance(value, dict) and value.get("kind") == "echo"):
                return {"kind": "echo", "id": "echo"}
            if not isinstance(value, dict) or value.get("kind") != "openai":
                raise _bad(step_id, 'answer "echo" or {kind: "openai", apiKey, baseUrl?}')
            key = value.get("apiKey")
            if not isinstance(key, str) or not key.strip():
                raise _bad(step_id, "an OpenAI-compatible provider needs apiKey")
            provider_id = value.get("id", "openai")
            if not isinstance(provider_id, str) or not _ID.match(provider_id):
                raise _bad(step_id, "id: letters, digits, _ and - only")
            base_url = value.get("baseUrl")
            if base_url is not None and (
                not isinstance(base_url, str) or not base_url.startswith(("http://", "https://"))
            ):
                raise _bad(step_id, "baseUrl must be an http(s) URL")
            return {"kind": "openai", "id": provider_id, "apiKey": key, "baseUrl": base_url}
        if step_id == "model":
            if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
                raise _bad(step_id, "a model id without spaces")
            return value.strip()
        if step_id == "authMode":
            if value not in AUTH_MODES:
                raise _bad(step_id, f"one of {', '.join(AUTH_MODES)}")
            return value
        agent = {"id": value} if isinstance(value, str) else value
        if not isinstance(agent, dict) or not _ID.match(str(agent.get("id", ""))):
            raise _bad(step_id, "an agent id (letters, digits, _ and -), or {id, instructions?}")
        instructions = agent.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise _bad(step_id, "instructions must be text")
        return {"id": agent["id"], "instructions": instructions}

    @staticmethod
    def patch(answers: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
        """The merge patch that applies the answers on top of the stored document."""
        provider, model, agent = answers["provider"], answers["model"], answers["agent"]
        entry: dict[str, Any] = {
            "id": provider["id"],
            "kind": provider["kind"],
            "models": [{"id": model}],
        }
        if provider["kind"] == "openai":
            entry["apiKey"] = provider["apiKey"]
            if provider.get("baseUrl"):
                entry["baseUrl"] = provider["baseUrl"]
        existing = (stored.get("models") or {}).get("providers") or []
        providers = [p for p in existing if p.get("id") != provider["id"]] + [entry]
        agents: dict[str, Any] = {"defaultId": agent["id"], "model": f"{provider['id']}/{model}"}
        if agent.get("instructions"):
            agents["instructions"] = agent["instructions"]
        return {
            "models": {"providers": providers, "agents": agents},
            "auth": {"mode": answers["authMode"]},
        }


def _now_ms() -> int:
    return int(time.time() * 1000)


class WizardMethods:
    def __init__(self, kv: KeyValue, config: ConfigMethods) -> None:
        self.kv = kv
        self.config = config

    # -- storage -----------------------------------------------------------------------
    async def _load(self, session_id: str) -> tuple[dict[str, Any], int]:
        if not _SESSION.match(session_id):
            raise NotFound(f"no wizard session {session_id!r}")
        try:
            entry = await self.kv.get(f"session.{session_id}")
        except KeyNotFoundError:
            raise NotFound(f"no wizard session {session_id!r}") from None
        if not entry.value:
            raise NotFound(f"no wizard session {session_id!r}")
        return codec.loads(entry.value), entry.revision or 0

    async def _store(self, session: dict[str, Any], revision: int) -> None:
        session["updatedAtMs"] = _now_ms()
        try:
            await self.kv.update(f"session.{session['sessionId']}", codec.dumps(session), revision)
        except KeyWrongLastSequenceError:
            raise Conflict("the wizard moved on meanwhile; read wizard.status") from None

    @staticmethod
    def view(session: dict[str, Any]) -> WizardState:
        out: dict[str, Any] = {"sessionId": session["sessionId"], "status": session["status"]}
        if session["status"] == "running" and session["index"] < len(STEPS):
            out["step"] = WizardFlow.step(STEPS[session["index"]], session["answers"])
        if session.get("error"):
            out["error"] = session["error"]
        if session.get("configHash"):
            out["configHash"] = session["configHash"]
        return WizardState.model_validate(out)

    async def _current(self) -> dict[str, Any] | None:
        try:
            entry = await self.kv.get(CURRENT)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        try:
            session, _ = await self._load(entry.value.decode())
        except NotFound:
            return None
        return session

    # -- methods -----------------------------------------------------------------------
    async def start(self, _: Any, ctx: CallContext) -> WizardState:
        running = await self._current()
        if running is not None and running["status"] == "running":
            raise Conflict("a wizard is already running", sessionId=running["sessionId"])
        session_id = "wiz_" + uuid.uuid4().hex[:16]
        session: dict[str, Any] = {
            "sessionId": session_id,
            "status": "running",
            "index": 0,
            "answers": {},
            "by": ctx.principal.id,
            "createdAtMs": _now_ms(),
            "updatedAtMs": _now_ms(),
        }
        await self.kv.create(f"session.{session['sessionId']}", codec.dumps(session))
        await self.kv.put(CURRENT, session_id.encode())
        return self.view(session)

    async def next(self, params: WizardNextParams, ctx: CallContext) -> WizardState:
        session, revision = await self._load(params.session_id)
        applying = session["index"] >= len(STEPS)
        if params.answer is None or session["status"] != "running" or applying:
            return self.view(session)
        expected = STEPS[session["index"]]
        if params.answer.step_id != expected:
            raise InvalidParams(
                f"the wizard is at step {expected}, not {params.answer.step_id}",
                expected=expected,
            )
        session["answers"][expected] = WizardFlow.check(expected, params.answer.value)
        session["index"] += 1
        if session["index"] < len(STEPS):
            await self._store(session, revision)
            return self.view(session)
        # Still "running", past the last step: this replica is applying (no step shown).
        await self._store(session, revision)
        session, revision = await self._load(params.session_id)
        try:
            snapshot = await self.config.host.config.store.load()
            patch = WizardFlow.patch(session["answers"], snapshot.config.document())
            written = await self.config.write(ctx.principal, snapshot.hash, patch=patch)
            applied = await self.config.await_applied(written.hash)
            session.update(status="done", configHash=written.hash, applied=applied.applied)
        except AisopodError as exc:
            session.update(status="error", error=f"{exc.name}: {exc.message}")
        session["answers"] = {k: v for k, v in session["answers"].items() if k != "provider"}
        await self._store(session, revision)
        return self.view(session)

    async def cancel(self, params: WizardSessionParams, ctx: CallContext) -> WizardState:
        session, revision = await self._load(params.session_id)
        if session["status"] == "running" and session["index"] < len(STEPS):
            session["status"] = "cancelled"
            await self._store(session, revision)
        return self.view(session)

    async def status(self, params: WizardStatusParams, ctx: CallContext) -> WizardState:
        if params.session_id is not None:
            session, _ = await self._load(params.session_id)
            return self.view(session)
        current = await self._current()
        if current is None:
            raise NotFound("no wizard has run recently")
        return self.view(current)
