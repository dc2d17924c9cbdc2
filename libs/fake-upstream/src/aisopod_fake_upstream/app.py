"""Routing, authorization and the small endpoints; chat completions live in `chat.py`.

Routes:
- `POST /v1/chat/completions`, `GET /v1/models`, `GET /v1/models/{id}` (OpenAI API;
  need the API key when one is configured)
- `GET|DELETE /_requests`: recorded chat request bodies (bounded ring buffer)
- `GET|POST|DELETE /_control`: programmed behaviour rules
- `GET /_stats`: slow responses in flight and client disconnects seen
- `GET /health`
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

import orjson
from pydantic import ValidationError

from .chat import ChatCompletions
from .config import FakeUpstreamConfig
from .errors import OpenAIError, error_response
from .http11 import Request, Response, Streamer
from .state import ControlRule, UpstreamState

Route = Callable[[Request], "Response | Streamer"]

_MODEL_CREATED = 1_700_000_000
_OK = orjson.dumps({"ok": True})


class FakeUpstreamApp:
    """The HTTP handler: `Request` in, `Response` or `Streamer` out."""

    def __init__(self, config: FakeUpstreamConfig, state: UpstreamState | None = None) -> None:
        self.config = config
        self.state = state or UpstreamState(config.max_recorded)
        self._chat = ChatCompletions(config, self.state)
        self._bearer = f"Bearer {config.api_key}".encode() if config.api_key else None
        self._models = {model: _model_object(model) for model in config.models}
        self._models_body = orjson.dumps({"object": "list", "data": list(self._models.values())})
        self._routes: dict[str, dict[str, Route]] = {
            "/v1/chat/completions": {"POST": self._chat.handle},
            "/v1/models": {"GET": self._list_models},
            "/_requests": {"GET": self._get_requests, "DELETE": self._clear_requests},
            "/_control": {
                "GET": self._get_control,
                "POST": self._add_control,
                "DELETE": self._reset_control,
            },
            "/_stats": {"GET": lambda _: Response(200, orjson.dumps(self.state.stats()))},
            "/health": {"GET": lambda _: Response(200, _OK)},
        }

    def __call__(self, request: Request) -> Response | Streamer:
        try:
            return self._route(request)
        except OpenAIError as error:
            return error_response(error)

    def _route(self, request: Request) -> Response | Streamer:
        methods = self._routes.get(request.path)
        if methods is None and request.path.startswith("/v1/models/"):
            methods = {"GET": self._retrieve_model}
        if methods is None:
            raise OpenAIError(
                404, f"Invalid URL ({request.method} {request.path})", code="unknown_url"
            )
        route = methods.get(request.method)
        if route is None:
            raise OpenAIError(
                405,
                f"Method {request.method} is not allowed on {request.path}",
                headers=(("allow", ", ".join(methods)),),
            )
        if self._bearer is not None and request.path.startswith("/v1/"):
            self._authorize(request)
        return route(request)

    def _authorize(self, request: Request) -> None:
        assert self._bearer is not None
        given = request.headers.get("authorization")
        if given is None:
            raise OpenAIError(
                401,
                "You didn't provide an API key. Provide it in the Authorization header "
                "(Authorization: Bearer YOUR_KEY).",
            )
        # Constant-time, like a real provider should.
        if not hmac.compare_digest(given.encode("latin-1"), self._bearer):
            raise OpenAIError(401, "Incorrect API key provided.")

    def _list_models(self, _: Request) -> Response:
        return Response(200, self._models_body)

    def _retrieve_model(self, request: Request) -> Response:
        model_id = request.path.removeprefix("/v1/models/")
        model = self._models.get(model_id)
        if model is None:
            raise OpenAIError(
                404,
                f"The model `{model_id}` does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )
        return Response(200, orjson.dumps(model))

    def _get_requests(self, _: Request) -> Response:
        return Response(200, orjson.dumps({"object": "list", "data": self.state.recorded()}))

    def _clear_requests(self, _: Request) -> Response:
        self.state.clear_recorded()
        return Response(200, _OK)

    def _get_control(self, _: Request) -> Response:
        return Response(200, orjson.dumps({"rules": self.state.rules()}))

    def _add_control(self, request: Request) -> Response:
        try:
            rule = ControlRule.model_validate_json(request.body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            raise OpenAIError(400, f"bad control rule at {where}: {first['msg']}") from exc
        self.state.add_rule(rule)
        return Response(200, orjson.dumps({"ok": True, "rules": self.state.rules()}))

    def _reset_control(self, _: Request) -> Response:
        self.state.reset_control()
        return Response(200, _OK)


def _model_object(model: str) -> dict[str, object]:
    return {"id": model, "object": "model", "created": _MODEL_CREATED, "owned_by": "aisopod-fake"}
