"""Asking the replica that owns a key: request/reply on `<prefix>.ratelimit.peer.<id>`.

The owner decides synchronously inside the subscription callback (no task, no await
before the reply is queued), which keeps its decisions for a key in arrival order and
costs one NATS round trip for the asker. Frames are compact JSON arrays:
request `[op, rule, key, cost]`, reply `[allowed, limit, remaining, resetMs,
retryAfterMs, locked, reason]` or `{"error": message}`.

`["ping", "", "", 0]` asks whether the replica is there at all (membership.py probes a
replica whose heartbeats stopped): any reply means alive, "no responders" means gone. A
replica whose own membership view is not current (it was stalled, or NATS reconnected)
re-syncs before deciding a forwarded request, holding the later ones behind it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError

from aisopod import codec
from aisopod.bus import Bus
from aisopod_ratelimit.limiter import Decision

log = logging.getLogger("aisopod.ratelimit.peers")

LocalDecide = Callable[[str, str, str, int], Decision]
"""(op, rule, key, cost) → the local limiter's decision; raises KeyError for a rule it
does not know (the two replicas briefly run different configurations)."""

PING = "ping"


class OwnerGone(Exception):
    """Nobody listens on the owner's subject: the replica is gone."""


class OwnerUnreachable(Exception):
    """The owner did not answer in time, or NATS is down: its state is out of reach."""


class Peers:
    def __init__(
        self,
        bus: Bus,
        self_id: str,
        decide: LocalDecide,
        *,
        current: Callable[[], bool] = lambda: True,
        resync: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.bus = bus
        self.self_id = self_id
        self.decide = decide
        self.current = current
        self.resync = resync
        self._sub: Subscription | None = None

    def subject(self, member: str) -> str:
        return self.bus.subjects.ratelimit(f"peer.{member}")

    async def start(self) -> None:
        self._sub = await self.bus.nc.subscribe(self.subject(self.self_id), cb=self._serve)

    async def stop(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            try:
                await sub.unsubscribe()
            except Exception:  # closing anyway
                log.debug("unsubscribe failed", exc_info=True)

    async def forward(
        self, member: str, op: str, rule: str, key: str, cost: int, timeout: float
    ) -> Decision:
        nc = self.bus.nc
        if not nc.is_connected:
            raise OwnerUnreachable("not connected to NATS")
        try:
            msg = await nc.request(
                self.subject(member), codec.dumps((op, rule, key, cost)), timeout=timeout
            )
        except NoRespondersError as exc:
            raise OwnerGone(member) from exc
        except Exception as exc:  # timeout, connection closing, slow consumer
            raise OwnerUnreachable(type(exc).__name__) from exc
        body = codec.loads(msg.data)
        if isinstance(body, dict):
            raise OwnerUnreachable(str(body.get("error", "owner refused")))
        allowed, limit, remaining, reset_ms, retry_ms, locked, reason = body
        return Decision(allowed, limit, remaining, reset_ms, retry_ms, locked, reason)

    async def probe(self, member: str, timeout: float) -> bool | None:
        """True: the replica answered; False: nobody listens on its subject (gone); None:
        no answer within `timeout`, or NATS is down here (unknown)."""
        nc = self.bus.nc
        if not nc.is_connected:
            return None
        try:
            await nc.request(self.subject(member), codec.dumps((PING, "", "", 0)), timeout=timeout)
        except NoRespondersError:
            return False
        except Exception:  # timeout, connection closing
            return None
        return True

    async def _serve(self, msg: Msg) -> None:
        if not msg.reply:
            return
        try:
            op, rule, key, cost = codec.loads(msg.data)
            if op == PING:
                reply = codec.dumps(True)
            elif not self.current() and not (self.resync is not None and await self.resync()):
                # Stalled or reconnected, and not re-synced in time: another replica may
                # own this key now; the asker applies the rule's fail mode.
                reply = codec.dumps({"error": "owner re-syncing"})
            else:
                d = self.decide(op, rule, key, int(cost))
                reply = codec.dumps(
                    (
                        d.allowed,
                        d.limit,
                        d.remaining,
                        d.reset_ms,
                        d.retry_after_ms,
                        d.locked,
                        d.reason,
                    )
                )
        except KeyError as exc:
            reply = codec.dumps({"error": f"unknown rule {exc}"})
        except Exception:
            log.exception("peer decision failed")
            reply = codec.dumps({"error": "internal error"})
        try:
            await self.bus.nc.publish(msg.reply, reply)
        except Exception:
            log.warning("could not answer a peer", exc_info=True)
