"""Election-tolerant JetStream calls against a real nats-server.

A leader election looks to a client like a subject or API with no responders for a while;
here that is a stream, consumer or bucket that does not exist yet and appears mid-call.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from nats.js.errors import (
    BadRequestError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NotFoundError,
)

from aisopod import jsread, jsretry
from aisopod.errors import Unavailable
from aisopod.jsretry import ElectionTolerantJetStream
from aisopod.requester import Requester
from aisopod.state import bucket_name, ensure_state
from aisopod.subjects import Subjects
from tests.support.elections import lose_first_answers


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture(params=["lean", "nats-py"])
def make_js(request: pytest.FixtureRequest) -> object:
    """Publishes through the requester's lean path (as every Bus does), or nats-py's."""

    def make(nc: Client, **options: float) -> ElectionTolerantJetStream:
        requester = Requester(nc) if request.param == "lean" else None
        return ElectionTolerantJetStream(nc, requester=requester, **options)

    return make


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def later(delay: float, action: object) -> None:
    await asyncio.sleep(delay)
    await action  # type: ignore[misc]


async def test_publish_waits_out_missing_stream_then_stores(nc: Client, make_js: Any) -> None:
    js = make_js(nc, retry_s=5.0)
    name = unique("S")
    subject = f"{name.lower()}.x"
    appear = asyncio.create_task(
        later(0.3, js.add_stream(StreamConfig(name=name, subjects=[subject])))
    )
    ack = await js.publish(subject, b"hello")
    await appear
    assert ack.stream == name and ack.seq == 1
    await js.delete_stream(name)


async def test_publish_fails_unavailable_after_the_bound(nc: Client, make_js: Any) -> None:
    js = make_js(nc, retry_s=0.4)
    started = time.monotonic()
    with pytest.raises(Unavailable) as caught:
        await js.publish(f"{unique('nostream')}.x", b"lost?")
    assert caught.value.code == -32013
    assert caught.value.detail_code == "JETSTREAM_UNAVAILABLE"
    assert "retry shortly" in caught.value.message
    assert time.monotonic() - started >= 0.4


async def test_publish_async_future_resolves_after_stream_appears(nc: Client, make_js: Any) -> None:
    js = make_js(nc, retry_s=5.0)
    name = unique("A")
    subject = f"{name.lower()}.x"
    future = await js.publish_async(subject, b"event")
    await js.add_stream(StreamConfig(name=name, subjects=[subject]))
    ack = await asyncio.wait_for(future, 6.0)
    assert ack.stream == name
    await js.delete_stream(name)


async def test_publish_async_acks_in_order(nc: Client, make_js: Any) -> None:
    js = make_js(nc, retry_s=5.0)
    name = unique("P")
    subject = f"{name.lower()}.x"
    await js.add_stream(StreamConfig(name=name, subjects=[subject]))
    acks = [await js.publish_async(subject, str(n).encode()) for n in range(20)]
    assert [(await asyncio.wait_for(a, 5.0)).seq for a in acks] == list(range(1, 21))
    given_up = await js.publish_async(subject, b"nobody waits")
    given_up.cancel()  # giving up on an ack leaves the message sent
    after = await js.publish(subject, b"after")  # stored after it: once acked, 21 is there
    assert after.seq == 22
    stored = await js.get_msg(name, seq=21)
    assert stored.data == b"nobody waits"
    await js.delete_stream(name)


async def test_a_lean_publish_async_fails_with_the_error_ack(nc: Client) -> None:
    # (nats-py's own publish_async never resolves on an error ack: its reply handler
    # raises instead of setting the error; callers only saw their own timeout.)
    js = ElectionTolerantJetStream(nc, retry_s=5.0, requester=Requester(nc))
    name = unique("W")
    subject = f"{name.lower()}.x"
    await js.add_stream(StreamConfig(name=name, subjects=[subject]))
    wrong = await js.publish_async(subject, b"elsewhere", stream="NOT_" + name)
    with pytest.raises(BadRequestError):
        await asyncio.wait_for(wrong, 5.0)
    await js.delete_stream(name)


async def test_answers_are_not_retried(nc: Client, make_js: Any) -> None:
    js = make_js(nc, retry_s=30.0)
    kv = await js.create_key_value(bucket=unique("b"))
    await kv.create("k", b"1")
    started = time.monotonic()
    with pytest.raises(KeyWrongLastSequenceError):
        await kv.create("k", b"2")
    # An answer comes back in one round trip, not after the retry bound (a bound far
    # above any round trip, so a slow machine cannot blur the two).
    assert time.monotonic() - started < 15.0
    entry = await kv.get("k")
    assert entry.value == b"1"
    revision = await kv.update("k", b"3", last=entry.revision)
    assert (await kv.get("k")).revision == revision
    await js.delete_key_value(kv._name)


@pytest.mark.parametrize("write", ["create", "update", "delete"])
async def test_a_conditional_write_refused_by_its_own_stored_copy_succeeds(
    nc: Client, make_js: Any, monkeypatch: pytest.MonkeyPatch, write: str
) -> None:
    """Stored, its answer lost, its retry refused by that copy: the write is ours, it
    succeeded; the revision it was conditioned on is stale for anyone else."""
    js = make_js(nc, retry_s=5.0)
    kv = await js.create_key_value(bucket=unique("b"))
    first = 0 if write == "create" else await kv.create("k", b"v1")
    attempts = lose_first_answers(js, monkeypatch)
    if write == "delete":
        assert await kv.delete("k", last=first)
    elif write == "update":
        revision = await kv.update("k", b"mine", last=first)
    else:
        revision = await kv.create("k", b"mine")
    monkeypatch.undo()
    assert len(attempts) == 2  # the retry was refused, and recognised its own copy
    if write == "delete":
        with pytest.raises(KeyNotFoundError):
            await kv.get("k")
    else:
        entry = await kv.get("k")
        assert (entry.value, entry.revision) == (b"mine", revision)
    with pytest.raises(KeyWrongLastSequenceError):  # another writer's is a conflict
        if write == "create":
            await kv.create("k", b"theirs")
        else:
            await kv.update("k", b"theirs", last=first)
    await js.delete_key_value(kv._name)


async def test_a_retry_refused_by_another_writer_is_still_a_conflict(
    nc: Client, make_js: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our first attempt was not stored; another writer's was: the refusal stands."""
    js = make_js(nc, retry_s=5.0)
    kv = await js.create_key_value(bucket=unique("b"))
    other = make_js(nc, retry_s=5.0)
    other_kv = await other.key_value(kv._name)
    await other_kv.create("k", b"theirs")
    attempts = lose_first_answers(js, monkeypatch, stored=False)
    with pytest.raises(KeyWrongLastSequenceError):
        await kv.create("k", b"mine")
    monkeypatch.undo()
    assert len(attempts) == 2
    assert (await kv.get("k")).value == b"theirs"
    await js.delete_key_value(kv._name)


async def test_publish_acks_duplicates_and_refuses_a_wrong_stream(nc: Client, make_js: Any) -> None:
    js = make_js(nc, retry_s=5.0)
    name = unique("D")
    subject = f"{name.lower()}.x"
    await js.add_stream(StreamConfig(name=name, subjects=[subject]))
    first = await js.publish(subject, b"once", headers={"Nats-Msg-Id": "m1"}, stream=name)
    again = await js.publish(subject, b"once", headers={"Nats-Msg-Id": "m1"})
    assert (first.seq, first.duplicate) == (1, None)
    assert (again.seq, again.duplicate) == (1, True)
    with pytest.raises(BadRequestError):
        await js.publish(subject, b"elsewhere", stream="NOT_" + name)
    await js.delete_stream(name)


async def test_get_msg_reads_what_nats_py_reads(nc: Client, make_js: Any) -> None:
    js = make_js(nc, retry_s=5.0)
    reference = ElectionTolerantJetStream(nc)  # nats-py's own get_msg
    name = unique("G")
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name.lower()}.>"]))
    subject = f"{name.lower()}.a"
    await js.publish(subject, b"one", headers={"Kv-Operation": "DEL", "X-Two": "a: b"})
    await js.publish(f"{name.lower()}.b", b"")
    await js.publish(subject, b"three")
    for ask in (
        {"seq": 1},
        {"seq": 2},
        {"subject": subject},
        {"seq": 2, "subject": subject, "next": True},
    ):
        ours, theirs = await js.get_msg(name, **ask), await reference.get_msg(name, **ask)
        assert (ours.subject, ours.seq, ours.data, ours.headers, ours.time) == (
            theirs.subject,
            theirs.seq,
            theirs.data,
            theirs.headers,
            theirs.time,
        )
    first = await js.get_msg(name, seq=1)
    assert first.headers is not None and first.headers["Kv-Operation"] == "DEL"
    assert first.headers["X-Two"] == "a: b"
    with pytest.raises(NotFoundError):
        await js.get_msg(name, seq=99)
    kv = await js.create_key_value(bucket=unique("k"))
    await kv.put("k", b"v")
    await kv.delete("k")
    with pytest.raises(KeyNotFoundError):  # the delete marker, read through its header
        await kv.get("k")
    await js.delete_key_value(kv._name)
    await js.delete_stream(name)


async def test_missing_stream_is_an_answer_but_a_silent_get_is_retried(nc: Client) -> None:
    patient = ElectionTolerantJetStream(nc, retry_s=30.0)
    started = time.monotonic()
    with pytest.raises(NotFoundError):
        await patient.stream_info(unique("missing"))
    assert time.monotonic() - started < 15.0  # answered, not retried until the bound
    # A direct get nobody answers (no replica reachable): retried, then UNAVAILABLE.
    js = ElectionTolerantJetStream(nc, retry_s=0.3)
    with pytest.raises(Unavailable):
        await js.get_msg(unique("MISSING"), subject="a.b", direct=True)


async def test_fetch_waits_for_the_consumer_to_become_reachable(nc: Client) -> None:
    js = ElectionTolerantJetStream(nc, retry_s=5.0)
    name = unique("F")
    subject = f"{name.lower()}.x"
    await js.add_stream(StreamConfig(name=name, subjects=[subject]))
    await js.publish(subject, b"one")
    consumer = unique("c")
    sub = await js.pull_subscribe_bind(consumer=consumer, stream=name)
    config = ConsumerConfig(name=consumer, ack_policy=AckPolicy.NONE)
    appear = asyncio.create_task(later(0.3, js.add_consumer(name, config=config)))
    msgs = await jsread.fetch(sub, 1, timeout=2.0, retry_s=5.0)
    await appear
    assert [m.data for m in msgs] == [b"one"]
    await js.delete_stream(name)


async def test_consume_all_reads_every_message(nc: Client) -> None:
    js = ElectionTolerantJetStream(nc)
    name = unique("C")
    subject = f"{name.lower()}.x"
    await js.add_stream(StreamConfig(name=name, subjects=[subject]))
    for n in range(5):
        await js.publish(subject, str(n).encode())
    msgs = await jsread.consume_all(js, name, subject)
    assert [m.data for m in msgs] == [b"0", b"1", b"2", b"3", b"4"]
    await js.delete_stream(name)


async def test_consume_all_stops_a_batch_after_what_stop_accepts(nc: Client) -> None:
    js = ElectionTolerantJetStream(nc)
    name = unique("C")
    subject = f"{name.lower()}.x"
    await js.add_stream(StreamConfig(name=name, subjects=[subject]))
    for n in range(300):
        await js.publish(subject, str(n).encode())
    msgs = await jsread.consume_all(js, name, subject, stop=lambda m: int(m.data) >= 100)
    got = [int(m.data) for m in msgs]
    # Everything up to the first accepted, then at most the rest of that batch.
    assert got[:101] == list(range(101)) and len(got) < 300
    await js.delete_stream(name)


async def test_ensure_state_reconciles_an_existing_bucket_and_object_store(nc: Client) -> None:
    js = ElectionTolerantJetStream(nc)
    prefix = unique("rc")
    subjects = Subjects(prefix)
    config_bucket = bucket_name(prefix, "config")
    # An older version's bucket: no history, another description; a store with another
    # description (replicas cannot differ on one server: R>1 needs a cluster).
    await js.create_key_value(bucket=config_bucket, history=1, description="old")
    await ensure_state(js, subjects)
    config = (await js.stream_info(f"KV_{config_bucket}")).config
    assert config.max_msgs_per_subject == 16
    assert config.description == "the gateway configuration document"
    presence = (await js.stream_info(f"KV_{bucket_name(prefix, 'presence')}")).config
    assert presence.max_age == 45.0
    assert (await js.stream_info(f"OBJ_{bucket_name(prefix, 'canvas')}")).config.num_replicas == 1


def test_message_ids_are_unique_and_drawn_again_in_a_forked_child() -> None:
    ids = [jsretry.next_msg_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    prefix = ids[0].rsplit("-", 1)[0]
    assert len(prefix) == 32 and all(i.startswith(prefix + "-") for i in ids)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child's first id, reported to the parent
        os.write(write, jsretry.next_msg_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read, "rb") as pipe:
        in_child = pipe.read().decode()
    assert in_child and not in_child.startswith(prefix) and in_child not in ids


async def test_an_attempt_that_times_out_is_retried_and_a_cancel_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jsretry, "_ATTEMPT_S", 0.1)
    monkeypatch.setattr(jsretry, "_LAST_ATTEMPT_S", 0.1)
    calls: list[float] = []

    async def first_hangs() -> str:
        calls.append(time.monotonic())
        if len(calls) == 1:
            await asyncio.sleep(60)
        return "stored"

    assert await jsretry.retry_transient("write", first_hangs, retry_s=5) == "stored"
    assert len(calls) == 2

    async def hangs() -> None:
        await asyncio.sleep(60)

    task = asyncio.ensure_future(jsretry.retry_transient("write", hangs, retry_s=30))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_bounded_call_gets_the_attempt_bound_and_its_timeouts_are_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jsretry, "_ATTEMPT_S", 0.1)
    monkeypatch.setattr(jsretry, "_LAST_ATTEMPT_S", 0.1)
    bounds: list[float] = []
    nested: list[float] = []

    async def inner(bound: float) -> str:
        nested.append(bound)
        return "read"

    async def first_times_out(bound: float) -> str:
        bounds.append(bound)
        if len(bounds) == 1:
            raise nats.errors.TimeoutError  # what a lean request's own deadline raises
        return await jsretry.retry_bounded("inner", inner, retry_s=5)

    assert await jsretry.retry_bounded("write", first_times_out, retry_s=5) == "read"
    assert bounds == [0.1, 0.1]
    assert nested == [0.1]  # one attempt inside the outer loop, no loop of its own


async def test_lean_calls_nobody_answers_are_bounded_retried_then_unavailable(
    nc: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request whose answer never comes (an election: the leader is gone) fails by its
    own deadline, the attempt bound, and is sent again until the retry window closes."""
    monkeypatch.setattr(jsretry, "_ATTEMPT_S", 0.1)
    monkeypatch.setattr(jsretry, "_LAST_ATTEMPT_S", 0.1)
    name = unique("SILENT")
    heard: dict[str, int] = {}

    async def silent(msg: Any) -> None:
        kind = "publish" if msg.subject == f"{name.lower()}.x" else msg.subject.split(".")[2]
        heard[kind] = heard.get(kind, 0) + 1

    # A JetStream API nobody serves (its own prefix), and a stream subject nobody stores.
    await nc.subscribe(f"{name}.API.>", cb=silent)
    await nc.subscribe(f"{name.lower()}.x", cb=silent)
    await nc.flush()
    js = ElectionTolerantJetStream(nc, retry_s=1.0, requester=Requester(nc))
    js._prefix = f"{name}.API"
    with pytest.raises(Unavailable):
        await js.last_on_subject(name, "a.b")
    with pytest.raises(Unavailable):
        await js.get_msg(name, subject="a.b")
    with pytest.raises(Unavailable):
        await js.stream_info(name)
    with pytest.raises(Unavailable):
        await js.publish(f"{name.lower()}.x", b"lost")
    # Two reads and an info, each sent more than once, and the publish (the copies all
    # went out before their calls failed; their delivery to `silent` may trail).
    deadline = time.monotonic() + 30
    while heard.get("STREAM", 0) < 6 or heard.get("publish", 0) < 2:
        assert time.monotonic() < deadline, heard
        await asyncio.sleep(0.01)
