"""Run records against a real nats-server: the terminal record a runtime's own waiters are
told (`RunStore.finished_draft`, runner.py) is the one `finish` then stores."""

from __future__ import annotations

from nats.js.kv import KeyValue

from aisopod_runtime.runs import RunStore, now_ms


async def test_the_draft_of_a_finish_is_what_finish_stores(runs_kv: KeyValue) -> None:
    store = RunStore(runs_kv, "here")
    record = store.new_record("run-1", "agent:main:s", "main", status="running")
    record["startedAt"] = now_ms()
    await store.create(record)
    ended = now_ms()
    fields = {"error": None, "result": {"text": "hi"}, "seq": 3, "endedAt": ended}
    draft = store.finished_draft("run-1", "ok", **fields)
    assert draft is not None
    assert (draft["status"], draft["endedAt"], draft["result"]) == ("ok", ended, {"text": "hi"})
    assert "error" not in draft  # None fields are left out, as finish leaves them out
    stored = await store.finish("run-1", "ok", **fields)
    assert stored == draft
    assert await store.get("run-1") == draft


async def test_no_draft_without_the_version_this_instance_wrote(runs_kv: KeyValue) -> None:
    here = RunStore(runs_kv, "here")
    await here.create(here.new_record("run-2", "agent:main:s", "main"))
    # Another runtime never wrote this record: it has nothing to draft from.
    assert RunStore(runs_kv, "other").finished_draft("run-2", "ok") is None
    await here.finish("run-2", "ok")
    # A finished run is forgotten: a second finish would write nothing.
    assert here.finished_draft("run-2", "error") is None
