"""What an agent run does with a request's options: one rule for chat completions and
responses (docs/http-api.md, "Agent mode options").

An agent keeps its own model, instructions and tools; a request only gives it a message.
So, per option:

- **honoured**: the output format (`response_format` / `text.format`): `json_object` and
  `json_schema` become an instruction appended to the message, and the final answer is
  checked (one JSON object; against the schema for `json_schema`). An answer that fails
  the check is a 502 `invalid_output` (an SSE error / `response.failed` once streaming).
- **refused with 400**: what would change the answer's contract and cannot be delivered:
  `n` > 1, function `tools`/`functions`, a `tool_choice` that demands a call, `logprobs`,
  audio output, `stop`, `prediction`.
- **reported, not applied**: sampling hints the agent's configured model settings decide
  (`temperature`, `top_p`, `seed`, penalties, `max_tokens`, …): the response names them in
  `X-Aisopod-Ignored-Params`, so nothing is dropped without a word.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from aisopod.errors import InvalidParams
from aisopod_http_api.edge import EXTRA_HEADERS_KEY
from aisopod_http_api.errors import UpstreamError

# The header that names the options an agent run did not apply.
IGNORED_HEADER = b"x-aisopod-ignored-params"

_CHAT_HINTS = (
    "temperature",
    "top_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "max_tokens",
    "max_completion_tokens",
    "parallel_tool_calls",
    "service_tier",
    "reasoning_effort",
    "verbosity",
)
_RESPONSES_HINTS = ("temperature", "top_p", "max_output_tokens", "parallel_tool_calls")


@dataclass(frozen=True, slots=True)
class OutputFormat:
    kind: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    name: str | None = None

    def instruction(self) -> str:
        if self.kind == "json_object":
            return "\n\n[Output format] Answer with one JSON object and nothing else."
        if self.kind == "json_schema":
            schema = json.dumps(self.schema or {}, separators=(",", ":"))
            return (
                "\n\n[Output format] Answer with one JSON object and nothing else, valid "
                f"against this JSON schema: {schema}"
            )
        return ""

    def check(self, text: str) -> None:
        """Raise UpstreamError when the final answer is not what the format asked for."""
        if self.kind == "text":
            return
        try:
            value = json.loads(_unfenced(text))
        except json.JSONDecodeError:
            raise UpstreamError(
                "the agent's answer is not the JSON object response_format asked for",
                openaiCode="invalid_output",
            ) from None
        if not isinstance(value, dict):
            raise UpstreamError(
                "the agent's answer is JSON but not an object", openaiCode="invalid_output"
            )
        if self.kind == "json_schema" and self.schema:
            import jsonschema  # ~3 MiB: only for requests that ask for a JSON schema

            try:
                jsonschema.validate(value, self.schema)
            except jsonschema.ValidationError as exc:
                raise UpstreamError(
                    f"the agent's answer does not match the JSON schema: {exc.message}",
                    openaiCode="invalid_output",
                ) from None


def _unfenced(text: str) -> str:
    """Models often wrap JSON in a ```json fence; the content inside is the answer."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        inner = stripped[3:-3]
        first_line, _, rest = inner.partition("\n")
        return rest if first_line.strip().isalpha() or not first_line.strip() else inner
    return stripped


def _format(raw: Any, param: str) -> OutputFormat:
    if raw is None:
        return OutputFormat()
    if not isinstance(raw, dict) or raw.get("type") not in ("text", "json_object", "json_schema"):
        raise InvalidParams(
            f"{param}.type must be text, json_object or json_schema", param=f"{param}.type"
        )
    kind = raw["type"]
    if kind != "json_schema":
        return OutputFormat(kind)
    # Chat nests it (`json_schema: {name, schema}`); responses put the fields beside `type`.
    spec = raw.get("json_schema", raw)
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        raise InvalidParams(f"{param} json_schema needs a `schema` object", param=param)
    import jsonschema  # ~3 MiB: loaded by the first request that asks for a JSON schema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidParams(f"{param}: invalid JSON schema: {exc.message}", param=param) from None
    return OutputFormat("json_schema", schema, str(spec.get("name") or "") or None)


def _refuse(param: str, why: str) -> InvalidParams:
    return InvalidParams(
        f"{param} is not supported with an agent model (aisopod/<agentId>): {why}; use a "
        "provider model for it",
        param=param,
        openaiCode="unsupported_parameter",
    )


def _tools_refusal(tools: Any, tool_choice: Any) -> InvalidParams | None:
    if tools:
        return _refuse("tools", "an agent runs its own tools, it cannot return calls to yours")
    if tool_choice == "required" or isinstance(tool_choice, dict):
        return _refuse("tool_choice", "an agent never returns calls to your tools")
    return None


def chat_options(payload: dict[str, Any]) -> tuple[OutputFormat, list[str]]:
    """The output format and the ignored hints of a chat completions request in agent mode;
    InvalidParams for what an agent run cannot honour."""
    n = payload.get("n")
    if n is not None and n != 1:
        raise _refuse("n", "an agent run gives one answer (send n requests for n answers)")
    refusal = _tools_refusal(payload.get("tools"), payload.get("tool_choice"))
    if refusal is not None:
        raise refusal
    if payload.get("functions") or payload.get("function_call") not in (None, "none", "auto"):
        raise _refuse("functions", "an agent runs its own tools")
    if payload.get("logprobs") or payload.get("top_logprobs"):
        raise _refuse("logprobs", "the agent's answer carries no token log probabilities")
    if payload.get("audio") or (payload.get("modalities") or ["text"]) != ["text"]:
        raise _refuse("modalities", "an agent answers in text")
    for param in ("stop", "prediction"):
        if payload.get(param):
            raise _refuse(param, "the agent's model settings decide it")
    ignored = [name for name in _CHAT_HINTS if payload.get(name) is not None]
    return _format(payload.get("response_format"), "response_format"), ignored


def responses_options(payload: dict[str, Any]) -> tuple[OutputFormat, list[str]]:
    """The same rule for `/v1/responses` (`text.format`, `tools`, `tool_choice`)."""
    refusal = _tools_refusal(payload.get("tools"), payload.get("tool_choice"))
    if refusal is not None:
        raise refusal
    text = payload.get("text")
    raw_format = text.get("format") if isinstance(text, dict) else None
    ignored = [name for name in _RESPONSES_HINTS if payload.get(name) is not None]
    return _format(raw_format, "text.format"), ignored


def report_ignored(scope: MutableMapping[str, Any], ignored: list[str]) -> None:
    if ignored:
        headers = scope.setdefault(EXTRA_HEADERS_KEY, [])
        headers.append((IGNORED_HEADER, ",".join(ignored).encode()))
