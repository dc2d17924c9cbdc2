"""The usage ledger: stream USAGE, one record per finished run that used a model.

Subject `<prefix>.usage.<agentId>.<sessionKey>` (each escaped as one token), so a read
can be narrowed to one agent or one session by the consumer's filter. A record's
`Nats-Msg-Id` is `usage-<runId>`: a publish repeated after a lost ack (NATS restart,
leader election) is dropped by the stream, so a run is never counted twice.

Reads go from the first message stored at `since` (a consumer started by time: JetStream
finds it without scanning older ones) to the end, keeping what falls in the window. A
read costs O(runs since `since`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aisopod import codec
from aisopod.bus import Bus
from aisopod.jsread import consume_all
from aisopod.state import stream_name
from aisopod.subjects import subject_token

# Records are stamped when the run concludes, a moment before the stream stores them; a
# consumer started this much earlier never misses one at the window's edge.
_START_SLACK_MS = 60_000


class UsageLedger:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.stream = stream_name(bus.subjects.prefix, "USAGE")

    async def append(self, record: dict[str, Any]) -> None:
        subject = self.bus.subjects.usage(record["agentId"], record["sessionKey"])
        await self.bus.js.publish(
            subject, codec.dumps(record), headers={"Nats-Msg-Id": f"usage-{record['runId']}"}
        )

    async def read(
        self,
        since: int,
        until: int,
        *,
        agent_id: str | None = None,
        session_key: str | None = None,
    ) -> list[dict[str, Any]]:
        """The records stamped in `[since, until)`, oldest first."""
        prefix = self.bus.subjects.prefix
        agent = subject_token(agent_id) if agent_id else "*"
        session = subject_token(session_key) if session_key else "*"
        start = datetime.fromtimestamp(max(since - _START_SLACK_MS, 0) / 1000, UTC)
        messages = await consume_all(
            self.bus.js, self.stream, f"{prefix}.usage.{agent}.{session}", start_time=start
        )
        out = []
        for message in messages:
            try:
                record = codec.loads(message.data)
            except ValueError:
                continue
            if isinstance(record, dict) and since <= int(record.get("ts") or 0) < until:
                out.append(record)
        return out
