"""The ratelimit service's live core: who decides a key, and deciding it.

Each key has one owner among the live replicas (ownership.py, membership.py); the owner
decides locally and exactly (limiter.py), any other replica forwards to it (peers.py).
When the owner cannot be reached (NATS down; no answer within `peerTimeoutMs`, or for as
long as its heartbeats still show it alive if that is longer: owner hung), the rule's
fail mode decides instead: open admits, closed refuses; each such decision is logged
(at most once per rule every 10 s) and counted in `aisopod_ratelimit_degraded_total`.

A replica decides its own keys only while its membership view is current
(`Membership.current`); after a stall or a NATS reconnect it re-syncs first, since the
others may have taken its keys over meanwhile (membership.py). An exempt key needs no
state, so any replica answers it (`check`/`fail`/`status`; not `reset`, which clears the
owner's window): never forwarded.

Each decision taken here can say which configuration took it (`config_revision`): the
edge check's reply carries it, so ws-gateway may reuse an exempt answer while it runs that
same revision (docs/ratelimit.md, "The edge check").
"""

from __future__ import annotations

import asyncio
import logging
import time

from aisopod.config.model import GatewayConfig
from aisopod.errors import InvalidParams
from aisopod.host import ServiceHost
from aisopod_ratelimit import metrics
from aisopod_ratelimit.limiter import Clock, Decision, Limiter
from aisopod_ratelimit.lockstore import LockStore
from aisopod_ratelimit.membership import Membership
from aisopod_ratelimit.ownership import Ring, member_id
from aisopod_ratelimit.peers import OwnerGone, OwnerUnreachable, Peers
from aisopod_ratelimit.ruleset import Rule, RuleSet

log = logging.getLogger("aisopod.ratelimit")

MAX_KEY_LENGTH = 512
_DEGRADED_LOG_EVERY_S = 10.0
_UNREACHABLE_RETRY_MS = 1000


class RateLimitService:
    def __init__(self, host: ServiceHost, *, clock: Clock = time.time) -> None:
        self.host = host
        self.self_id = member_id(host.instance)
        self.ruleset = RuleSet.from_section(GatewayConfig().limits)
        self.limiter = Limiter(self.ruleset, clock=clock)
        self.counters = metrics.DecisionCounters()
        self.ring = Ring(self.self_id, {self.self_id: host.instance}, self.ruleset.ownership)
        self._membership: Membership | None = None
        self._peers: Peers | None = None
        self._locks: LockStore | None = None
        self._cleaner: asyncio.Task[None] | None = None
        self._degraded_logged: dict[str, float] = {}
        # The configuration the rules were built from: its KV revision and hash (None when
        # applied without a snapshot: tests, or a listener that ran behind the watcher).
        self._rules_revision: int | None = None
        self._rules_hash: str | None = None

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        host = self.host
        self.follow_config(host.config.current)
        host.config.on_change(lambda new, _old: self.follow_config(new))
        kv = await host.kv("ratelimit")
        self._locks = LockStore(kv, self.limiter)
        self.limiter.on_lock = self._on_lock
        await self._locks.start()
        nc = host.bus.nc
        self._membership = membership = Membership(
            kv,
            self.self_id,
            host.instance,
            mode=self.ruleset.ownership,
            on_change=self._on_ring,
            probe=lambda member: peers.probe(member, membership.heartbeat_s),
            link=lambda: int(nc.stats["reconnects"]) if nc.is_connected else -1,
        )
        self._peers = peers = Peers(
            host.bus,
            self.self_id,
            self.local,
            current=membership.current,
            resync=lambda: membership.resync(membership.ttl_s),
        )
        await peers.start()
        await membership.start()
        self._cleaner = asyncio.create_task(self._cleanup_loop(), name="ratelimit-cleanup")
        host.add_ready_check("ratelimit-state", self.synced)
        host.on_drain(self._membership.leave)

    def synced(self) -> bool:
        return bool(
            self._membership and self._membership.synced and self._locks and self._locks.synced
        )

    async def stop(self) -> None:
        if self._cleaner is not None:
            self._cleaner.cancel()
        if self._membership is not None:
            await self._membership.leave()
            await self._membership.stop()
        if self._peers is not None:
            await self._peers.stop()
        if self._locks is not None:
            await self._locks.stop()

    def apply(self, config: GatewayConfig, revision: int | None = None) -> None:
        """A new configuration (stored at KV `revision`, when known): rules apply to the
        next decision, windows are kept."""
        self.ruleset = RuleSet.from_section(config.limits)
        self.limiter.apply(self.ruleset)
        self._rules_revision, self._rules_hash = revision, None
        if self._membership is not None:
            self._membership.set_mode(self.ruleset.ownership)

    def follow_config(self, config: GatewayConfig) -> None:
        """Apply the watcher's configuration, noting the snapshot it came from. The watcher
        holds the snapshot it applies while its listeners run, so `config` is normally its
        document; if not, the revision stays unknown rather than guessed."""
        snapshot = self.host.config.snapshot
        if snapshot.config is config:
            self.apply(config, snapshot.revision)
            self._rules_hash = snapshot.hash
        else:
            self.apply(config)

    def config_revision(self) -> int | None:
        """The config KV revision the current rules were built from; the watcher's newest
        revision when it stored the same document again (same hash: the same rules), so a
        rewrite of an unchanged document does not make every answer look stale."""
        rules_hash = self._rules_hash
        if rules_hash is not None:
            snapshot = self.host.config.snapshot
            if snapshot.hash == rules_hash:
                return snapshot.revision
        return self._rules_revision

    # -- decisions ------------------------------------------------------------------
    def rule(self, name: str) -> Rule:
        rule = self.ruleset.rules.get(name)
        if rule is None:
            raise InvalidParams(f"unknown rate-limit rule {name!r}", rule=name)
        return rule

    async def decide(
        self, op: str, rule: Rule, key: str, cost: int = 1, *, normalised: bool = False
    ) -> Decision:
        """Decide at the key's owner: here, or one NATS round trip away. `normalised`:
        the key is already in its canonical form (built by `RuleSet.edge_key`)."""
        if not normalised:
            if len(key) > MAX_KEY_LENGTH:
                raise InvalidParams(f"key longer than {MAX_KEY_LENGTH} characters")
            key = self.ruleset.normalise(key)
        decided = self.decide_here(op, rule, key, cost)
        if decided is not None:
            return decided
        owner = self.ring.owner_of(key)
        membership = self._membership
        if owner == self.self_id and membership is not None:
            # Ours, but our view is not current (a stall, a reconnect): re-sync first.
            if not await membership.resync(membership.ttl_s):
                decision = self._degraded(op, rule, "membership not re-synced")
                self._count(op, rule, decision)
                return decision
            decided = self.decide_here(op, rule, key, cost)
            if decided is not None:
                return decided
            owner = self.ring.owner_of(key)
        decision = await self._forward(owner, op, rule, key, cost)
        self._count(op, rule, decision)
        return decision

    def decide_here(self, op: str, rule: Rule, key: str, cost: int = 1) -> Decision | None:
        """The decision for a normalised key this replica owns, made now (no await, so in
        arrival order); None when another replica owns it (`decide` forwards) or this
        replica's membership view is not current (`decide` re-syncs first). An exempt key
        is answered here whoever owns it: its answer reads no state."""
        if (
            self._peers is not None
            and (self.ring.owner_of(key) != self.self_id or not self._current())
            and (op == "reset" or not self.ruleset.is_exempt(rule, key))
        ):
            return None
        decision = self.local(op, rule.name, key, cost)
        self._count(op, rule, decision)
        return decision

    def _current(self) -> bool:
        return self._membership is None or self._membership.current()

    def local(self, op: str, rule: str, key: str, cost: int) -> Decision:
        """This replica's limiter decides (it owns the key, or was asked as owner)."""
        limiter = self.limiter
        if op == "check":
            return limiter.check(rule, key, cost)
        if op == "fail":
            return limiter.fail(rule, key)
        if op == "status":
            return limiter.status(rule, key, cost)
        if op == "reset":
            limiter.reset(rule, key)
            state = limiter.rule(rule)
            limit = state.limit if state is not None else 0
            return Decision(True, limit, limit, 0, reason="reset")
        raise KeyError(op)

    async def _forward(self, owner: str, op: str, rule: Rule, key: str, cost: int) -> Decision:
        assert self._peers is not None
        for _ in range(2):
            # An owner whose heartbeats show it alive is slow, not gone (a loaded machine,
            # a stall shorter than the TTL): wait for its answer rather than decide without
            # its state, which for a fail-open rule would admit requests nobody counts.
            timeout = self.ruleset.peer_timeout_s
            if self._membership is not None:
                timeout = max(timeout, self._membership.alive_for(owner))
            try:
                decision = await self._peers.forward(owner, op, rule.name, key, cost, timeout)
                metrics.FORWARDS.labels("ok").inc()
                return decision
            except OwnerGone:
                metrics.FORWARDS.labels("gone").inc()
                if self._membership is not None:
                    self._membership.mark_dead(owner)
                owner = self.ring.owner_of(key)
                if owner == self.self_id:
                    if not self._current():
                        return self._degraded(op, rule, "membership not current")
                    return self.local(op, rule.name, key, cost)
            except OwnerUnreachable as exc:
                metrics.FORWARDS.labels("unreachable").inc()
                return self._degraded(op, rule, str(exc))
        return self._degraded(op, rule, "owner changed twice")

    def _degraded(self, op: str, rule: Rule, why: str) -> Decision:
        mode = "open" if rule.fail_open else "closed"
        metrics.DEGRADED.labels(rule.name, mode).inc()
        now = time.monotonic()
        if now - self._degraded_logged.get(rule.name, -1e9) >= _DEGRADED_LOG_EVERY_S:
            self._degraded_logged[rule.name] = now
            log.warning("rate-limit state unreachable (%s): rule %s fails %s", why, rule.name, mode)
        if op == "reset":
            return Decision(False, rule.limit, 0, 0, reason="unreachable")
        if rule.fail_open:
            return Decision(True, rule.limit, rule.limit, 0, reason="unreachable")
        return Decision(False, rule.limit, 0, 0, _UNREACHABLE_RETRY_MS, reason="unreachable")

    def _count(self, op: str, rule: Rule, decision: Decision) -> None:
        if decision.reason == "exempt":
            result = "exempt"
        else:
            result = "allowed" if decision.allowed else "denied"
        self.counters.decision(rule.name, op, result)
        if not decision.allowed and op != "reset":
            self.counters.denial(rule.name, decision.reason)

    # -- background -----------------------------------------------------------------
    def _on_ring(self, ring: Ring) -> None:
        self.ring = ring

    def _on_lock(self, rule: str, key: str, until_ms: int) -> None:
        if until_ms:
            metrics.LOCKOUTS.labels(rule).inc()
        if self._locks is not None:
            self._locks.publish(rule, key, until_ms)

    async def _cleanup_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ruleset.cleanup_interval_s)
            try:
                self.limiter.cleanup()
                for name, (windows, locks) in self.limiter.sizes().items():
                    metrics.KEYS.labels(name).set(windows)
                    metrics.LOCKED_KEYS.labels(name).set(locks)
                metrics.EVICTIONS.set(self.limiter.evicted)
            except Exception:
                log.exception("cleanup failed")
