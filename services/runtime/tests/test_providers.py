"""The providers against the fake upstream (a real HTTP server) and the offline echo."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from aisopod.config.model import GatewayConfig
from aisopod.config.sections.providers import ProviderConfig, ProvidersSection
from aisopod.config.store import ConfigSnapshot
from aisopod.errors import InvalidParams
from aisopod_fake_upstream import FakeUpstream
from aisopod_runtime.providers import (
    Finish,
    ModelRequest,
    ProviderError,
    ProviderRegistry,
    ProviderUnavailable,
    TextDelta,
    ToolCalls,
    Usage,
)
from aisopod_runtime.providers.echo import EchoProvider, split_directives
from aisopod_runtime.providers.openai import OpenAIProvider, _usage, backoff
from aisopod_runtime.status import config_state

KEY = "sk-unit"
TOOLS = [
    {
        "type": "function",
        "function": {"name": "current_time", "parameters": {"type": "object", "properties": {}}},
    }
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=KEY) as running:
        yield running


def provider(upstream: FakeUpstream, **overrides) -> OpenAIProvider:
    settings = {"id": "fake", "base_url": upstream.base_url, "api_key": KEY} | overrides
    return OpenAIProvider(ProviderConfig(**settings))


async def collect(stream) -> list:
    return [event async for event in stream]


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def test_openai_streams_text_and_usage(upstream: FakeUpstream) -> None:
    p = provider(upstream)
    try:
        events = await collect(p.stream(ModelRequest("fake-small", user("hello big world"))))
    finally:
        await p.close()
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "echo: hello big world"
    assert sum(isinstance(e, TextDelta) for e in events) == 4  # word by word
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason == "stop"
    assert finish.usage is not None and finish.usage.completion_tokens == 4


async def test_openai_reads_the_prompt_cache_counts(upstream: FakeUpstream) -> None:
    p = provider(upstream)
    try:
        asked = user("one two three four [[fake:cached_tokens=2 cache_write_tokens=1]]")
        events = await collect(p.stream(ModelRequest("fake-small", asked)))
    finally:
        await p.close()
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.usage is not None
    assert (finish.usage.prompt_tokens, finish.usage.cache_read_tokens) == (6, 2)
    assert (finish.usage.cache_write_tokens, finish.usage.calls) == (1, 1)
    assert finish.usage.event().cache_read_tokens == 2
    assert finish.usage.wire()["cacheWriteTokens"] == 1


def test_usage_counts_from_other_upstreams() -> None:
    anthropic_style = {
        "prompt_tokens": 10,
        "completion_tokens": 2,
        "cache_read_input_tokens": 6,
        "cache_creation_input_tokens": 9,  # more than is left: cut to the prompt
    }
    assert _usage(anthropic_style) == Usage(10, 2, 6, 4, 1)
    assert _usage({"prompt_tokens": "x", "completion_tokens": -3}) == Usage(0, 0, 0, 0, 1)
    assert _usage(None) is None
    assert "cacheReadTokens" not in Usage(1, 1).wire()


async def test_openai_tool_calls_are_assembled_from_fragments(upstream: FakeUpstream) -> None:
    p = provider(upstream)
    args = '{"timezone": "Europe/Paris", "padding": "a long value to force fragments"}'
    try:
        events = await collect(
            p.stream(ModelRequest("fake-small", user(f"[[tool:current_time {args}]]"), TOOLS))
        )
    finally:
        await p.close()
    calls = next(e for e in events if isinstance(e, ToolCalls)).calls
    assert [c.name for c in calls] == ["current_time"]
    assert calls[0].id.startswith("call_")
    assert '"timezone":"Europe/Paris"' in calls[0].arguments
    assert events[-1].reason == "tool_calls"


async def test_openai_retries_5xx_then_succeeds(upstream: FakeUpstream) -> None:
    word = uuid.uuid4().hex
    p = provider(upstream, max_retries=2)
    try:
        events = await collect(
            p.stream(ModelRequest("m", user(f"{word} [[fake:fail_times=2 status=503]]")))
        )
    finally:
        await p.close()
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == f"echo: {word}"
    tries = [r for r in upstream.requests if word in str(r["messages"])]
    assert len(tries) == 3


async def test_openai_gives_up_after_max_retries_with_retry_after(upstream: FakeUpstream) -> None:
    word = uuid.uuid4().hex
    p = provider(upstream, max_retries=1)
    try:
        with pytest.raises(ProviderError) as caught:
            await collect(
                p.stream(ModelRequest("m", user(f"{word} [[fake:status=429 retry_after=0.05]]")))
            )
    finally:
        await p.close()
    assert caught.value.kind == "http" and caught.value.status == 429
    assert caught.value.attempts == 2
    assert len([r for r in upstream.requests if word in str(r["messages"])]) == 2


async def test_openai_client_errors_are_not_retried(upstream: FakeUpstream) -> None:
    word = uuid.uuid4().hex
    p = provider(upstream, max_retries=3)
    try:
        with pytest.raises(ProviderError) as caught:
            await collect(p.stream(ModelRequest("m", user(f"{word} [[fake:status=400]]"))))
    finally:
        await p.close()
    assert caught.value.status == 400
    assert len([r for r in upstream.requests if word in str(r["messages"])]) == 1


async def test_openai_cut_stream_is_an_error_after_partial_text(upstream: FakeUpstream) -> None:
    p = provider(upstream, max_retries=2)
    seen: list = []
    try:
        with pytest.raises(ProviderError) as caught:
            async for event in p.stream(
                ModelRequest("m", user("one two three [[fake:cut_after=3]]"))
            ):
                seen.append(event)
    finally:
        await p.close()
    assert caught.value.kind == "cut"
    assert [e.text for e in seen] == ["echo:", " one"]


async def test_openai_timeout_before_first_byte(upstream: FakeUpstream) -> None:
    p = provider(upstream, timeout_s=0.2, max_retries=0)
    try:
        with pytest.raises(ProviderError) as caught:
            await collect(p.stream(ModelRequest("m", user("slow [[fake:delay_ms=1500]]"))))
    finally:
        await p.close()
    assert caught.value.kind == "timeout"


async def test_openai_bad_key_is_an_http_error(upstream: FakeUpstream) -> None:
    p = provider(upstream, api_key="wrong")
    try:
        with pytest.raises(ProviderError) as caught:
            await collect(p.stream(ModelRequest("m", user("hi"))))
    finally:
        await p.close()
    assert caught.value.status == 401


async def test_openai_lists_models(upstream: FakeUpstream) -> None:
    p = provider(upstream)
    try:
        ids = [m.id for m in await p.list_models()]
    finally:
        await p.close()
    assert ids == ["fake-small", "fake-large"]


def test_backoff_honours_retry_after_and_grows() -> None:
    assert backoff(1, 2.5) == 2.5
    assert backoff(1, 1e6) == 30.0
    assert 0.2 <= backoff(1, None) <= 0.3
    assert 0.8 <= backoff(3, None) <= 1.2


async def test_echo_streams_in_at_most_four_paced_chunks() -> None:
    echo = EchoProvider(chunk_delay_s=0.001)
    words = " ".join(f"w{i}" for i in range(10))
    events = await collect(echo.stream(ModelRequest("echo", user(words))))
    chunks = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(chunks) == 4 and "".join(chunks) == f"echo: {words}"
    assert isinstance(events[-1], Finish) and events[-1].usage.completion_tokens == 11


async def test_echo_answers_calls_tools_and_reports_results() -> None:
    echo = EchoProvider()
    events = await collect(echo.stream(ModelRequest("echo", user("  hi   there "))))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["echo:", " hi", " there"]
    asked = user('what time? [[tool:current_time {"timezone": "UTC"}]]')
    events = await collect(echo.stream(ModelRequest("echo", asked, TOOLS)))
    (call,) = events[0].calls
    assert (call.name, call.arguments) == ("current_time", '{"timezone":"UTC"}')
    # Not offered: the directive is just removed.
    events = await collect(echo.stream(ModelRequest("echo", asked)))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "echo: what time?"
    followed = [
        *asked,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "current_time", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": '{"iso": "x"}'},
    ]
    events = await collect(echo.stream(ModelRequest("echo", followed, TOOLS)))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == 'tool current_time returned: {"iso": "x"}'


def test_split_directives_keeps_malformed_text() -> None:
    text, found = split_directives('a [[tool:x {"k": [1]}]] b [[tool:bad {oops]] c')
    assert [d.name for d in found] == ["x"] and found[0].arguments == {"k": [1]}
    assert text == "a b [[tool:bad {oops]] c"


async def test_registry_resolves_and_rebuilds_only_changed_providers(upstream) -> None:
    section = ProvidersSection.model_validate(
        {"providers": [{"id": "echo", "kind": "echo"}, {"id": "f", "baseUrl": upstream.base_url}]}
    )
    registry = ProviderRegistry(section)
    try:
        echo, model = registry.resolve("echo/echo")
        assert model == "echo" and isinstance(echo, EchoProvider)
        fake, model = registry.resolve("f/org/model-x")
        assert model == "org/model-x"
        with pytest.raises(InvalidParams):
            registry.resolve("no-slash")
        with pytest.raises(ProviderError):
            registry.resolve("missing/x")
        changed = section.model_copy(deep=True)
        changed.providers[1].timeout_s = 5
        registry.apply(changed)
        assert registry.get("echo") is echo and registry.get("f") is not fake
    finally:
        await registry.close()


async def test_a_provider_that_cannot_be_built_is_unavailable_and_the_others_work(
    upstream,
) -> None:
    # Built without validation, as a document from before the apiKey check reaches it: httpx
    # cannot encode the key into a header, which used to stop the whole registry.
    broken = ProviderConfig.model_construct(
        **(
            ProviderConfig(id="bad", base_url=upstream.base_url).__dict__
            | {"api_key": SecretStr("sk-\u2026")}
        )
    )
    section = ProvidersSection.model_construct(
        providers=[ProviderConfig(id="echo", kind="echo"), broken],
        agents=ProvidersSection().agents,
        models_cache_s=300.0,
    )
    registry = ProviderRegistry(section, {"gone": "models.providers[2].apiKey: not ASCII"})
    try:
        assert registry.resolve("echo/echo")[1] == "echo"
        with pytest.raises(ProviderUnavailable) as unbuilt:
            registry.resolve("bad/m")
        assert unbuilt.value.provider_id == "bad"
        assert "UnicodeEncodeError" in unbuilt.value.message
        with pytest.raises(ProviderUnavailable) as left_out:
            registry.resolve("gone/m")
        assert "not ASCII" in left_out.value.message
        assert set(registry.unavailable) == {"bad", "gone"}
        # status (admin internals) reports both kinds.
        snapshot = ConfigSnapshot(GatewayConfig(), "h", 1)
        assert set(config_state(snapshot, registry)["unavailableProviders"]) == {"bad", "gone"}
        # Fixed settings are tried again and the provider is back.
        fixed = ProvidersSection.model_validate(
            {
                "providers": [
                    {"id": "echo", "kind": "echo"},
                    {"id": "bad", "baseUrl": upstream.base_url, "apiKey": KEY},
                ]
            }
        )
        registry.apply(fixed)
        assert registry.resolve("bad/m")[1] == "m"
        assert registry.unavailable == {}
    finally:
        await registry.close()
