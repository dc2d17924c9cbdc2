"""Stored responses, chaining and compaction through the real stack with the `openai` SDK:
`GET /v1/responses/{id}`, `previous_response_id` (an agent's chain lives in its session
transcript; a provider model's in the stored messages), `POST /v1/responses/compact`."""

from __future__ import annotations

import uuid

import openai
import pytest

pytestmark = pytest.mark.integration


async def test_agent_responses_chain_in_one_session(async_sdk: openai.AsyncOpenAI, stack) -> None:
    word = uuid.uuid4().hex[:8]
    first = await async_sdk.responses.create(
        model="aisopod/main", input=[{"role": "user", "content": f"first {word}"}]
    )
    assert first.store is True
    stored = await async_sdk.responses.retrieve(first.id)
    assert stored.id == first.id and stored.output_text == f"echo: first {word}"
    second = await async_sdk.responses.create(
        model="aisopod/main", input=f"second {word}", previous_response_id=first.id, stream=True
    )
    completed = [e async for e in second if e.type == "response.completed"]
    chained = completed[0].response
    assert chained.previous_response_id == first.id
    third = await async_sdk.responses.create(
        model="aisopod/main", input="third", previous_response_id=chained.id
    )
    # One conversation: the runtime's session transcript holds all three turns.
    compacted = await async_sdk.responses.compact(
        model="aisopod/main", previous_response_id=third.id
    )
    assert compacted.object == "response.compaction"
    users = [item for item in compacted.output if item.type == "message"]
    assert [u.content[0].text for u in users] == [f"first {word}", f"second {word}", "third"]
    assert compacted.output[-1].type == "compaction"
    # The echo agent's summary repeats what it was given: the whole conversation.
    follow = await async_sdk.responses.create(
        model="aisopod/main",
        input=[
            {"type": "compaction", "encrypted_content": compacted.output[-1].encrypted_content},
            {"role": "user", "content": "go on"},
        ],
    )
    assert f"second {word}" in follow.output_text and follow.output_text.endswith("go on")


async def test_provider_responses_chain_through_stored_messages(
    async_sdk: openai.AsyncOpenAI,
) -> None:
    first = await async_sdk.responses.create(
        model="fake/fake-small", input="alpha", instructions="x"
    )
    second = await async_sdk.responses.create(
        model="fake/fake-small", input="beta", previous_response_id=first.id
    )
    assert second.output_text == "echo: beta" and second.previous_response_id == first.id
    compacted = await async_sdk.responses.compact(
        model="fake/fake-small", previous_response_id=second.id, input="gamma"
    )
    users = [item.content[0].text for item in compacted.output if item.type == "message"]
    assert users == ["alpha", "beta", "gamma"]
    assert compacted.usage.input_tokens > 0
    # The fake echoes the summarising prompt: it saw every turn, answers included.
    follow = await async_sdk.responses.create(
        model="fake/fake-small",
        input=[
            compacted.output[-1].model_dump(exclude_none=True),
            {"role": "user", "content": "d"},
        ],
    )
    assert follow.status == "completed"


async def test_store_false_previous_unknown_and_other_models(async_sdk: openai.AsyncOpenAI) -> None:
    unstored = await async_sdk.responses.create(model="aisopod/main", input="x", store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        await async_sdk.responses.retrieve(unstored.id)
    with pytest.raises(openai.NotFoundError):
        await async_sdk.responses.create(
            model="aisopod/main", input="x", previous_response_id=unstored.id
        )
    stored = await async_sdk.responses.create(model="aisopod/main", input="y")
    with pytest.raises(openai.BadRequestError) as mixed:
        await async_sdk.responses.create(
            model="fake/fake-small", input="z", previous_response_id=stored.id
        )
    assert mixed.value.body["param"] == "previous_response_id"
    await async_sdk.responses.delete(stored.id)
    with pytest.raises(openai.NotFoundError):
        await async_sdk.responses.retrieve(stored.id)
    with pytest.raises(openai.BadRequestError) as forged:
        await async_sdk.responses.create(
            model="aisopod/main",
            input=[
                {"type": "compaction", "encrypted_content": "made-up"},
                {"role": "user", "content": "hi"},
            ],
        )
    assert forged.value.body["code"] == "invalid_encrypted_content"
