"""The live core of every service process: NATS, JetStream state, config, logs, drain.

A `ServiceHost` is an async context manager. Services add their own components (RPC
handlers, HTTP routes, watchers) on top; the host knows nothing of any one service.
Readiness = NATS connected, state provisioned, config loaded, every extra check of the
service true, and not draining.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Protocol

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore
from prometheus_client import Gauge

from aisopod import codec, requestlog, tracing
from aisopod.bus import Bus, encode_reply
from aisopod.config.store import ConfigStore, load_seed_file
from aisopod.config.watcher import ConfigWatcher
from aisopod.dedupe import Deduper
from aisopod.errors import Unavailable
from aisopod.grants import CONFIG_WRITERS, grants_for
from aisopod.logs import StreamPublisher, configure_logging
from aisopod.memory import start_idle_settle
from aisopod.rpc import RpcServer
from aisopod.services import ServiceName
from aisopod.settings import ServiceSettings
from aisopod.state import bucket_name, ensure_state

log = logging.getLogger("aisopod.host")

READY = Gauge("aisopod_ready", "1 when the instance is ready to serve")
NATS_CONNECTED = Gauge("aisopod_nats_connected", "1 while connected to NATS")
# Tasks alive in the service's event loop: what a task leak shows as (reliability suite).
TASKS = Gauge("aisopod_asyncio_tasks", "asyncio tasks alive in the event loop")

DrainHook = Callable[[], Awaitable[None]]

RESTART_EXIT_CODE = 75  # EX_TEMPFAIL: "stopped on purpose, start me again"
# uvicorn's own code for a failed startup, and the auth service's for a refused one: a
# supervisor must not read a service that never started as a clean stop (0).
STARTUP_FAILED_EXIT_CODE = 3


class ServiceHost:
    def __init__(self, settings: ServiceSettings, name: ServiceName, version: str) -> None:
        self.settings = settings
        self.name = name
        self.version = version
        self.instance = settings.instance
        self.started_at = time.time()
        self.draining = False
        self._bus: Bus | None = None
        self._config: ConfigWatcher | None = None
        self._rpc: RpcServer | None = None
        self._logs: StreamPublisher | None = None
        self._checks: dict[str, Callable[[], bool]] = {}
        self._drain_hooks: list[DrainHook] = []
        self._drained_hooks: list[DrainHook] = []
        self._stop_hooks: list[DrainHook] = []
        # A restart order (update.run): readiness false at once, then the normal SIGTERM
        # path after the grace, then exit non-zero so the supervisor starts a new process.
        self.restarting = False
        self.exit_code = 0
        self._stopper: Callable[[], None] | None = None
        self._restart_sub: Subscription | None = None
        self._restart_task: asyncio.Task[None] | None = None
        self._idle_settle: asyncio.Task[None] | None = None

    # -- live parts, available once started -------------------------------------------
    @property
    def bus(self) -> Bus:
        if self._bus is None:
            raise RuntimeError("host not started")
        return self._bus

    @property
    def config(self) -> ConfigWatcher:
        if self._config is None:
            raise RuntimeError("host not started")
        return self._config

    @property
    def rpc(self) -> RpcServer:
        if self._rpc is None:
            raise RuntimeError("host not started")
        return self._rpc

    async def kv(self, name: str) -> KeyValue:
        return await self.bus.js.key_value(bucket_name(self.settings.subject_prefix, name))

    async def object_store(self, name: str) -> ObjectStore:
        return await self.bus.js.object_store(bucket_name(self.settings.subject_prefix, name))

    # -- readiness and lifecycle --------------------------------------------------------
    def add_ready_check(self, name: str, check: Callable[[], bool]) -> None:
        self._checks[name] = check

    def on_drain(self, hook: DrainHook) -> None:
        """Run on SIGTERM after readiness turns false, before sockets close."""
        self._drain_hooks.append(hook)

    def on_drained(self, hook: DrainHook) -> None:
        """Run on SIGTERM once the service takes no more requests and those in flight
        finished: for work they started that outlives them (the runtime's runs)."""
        self._drained_hooks.append(hook)

    def on_stop(self, hook: DrainHook) -> None:
        """Run at stop, before NATS closes (last one added runs first)."""
        self._stop_hooks.append(hook)

    def set_stopper(self, stopper: Callable[[], None]) -> None:
        """How this process stops gracefully (the server runner's SIGTERM handler)."""
        self._stopper = stopper

    def stop_on_signals(
        self,
        after_drain: Callable[[], None],
        at_once: Callable[[], None],
        *,
        signals: bool = True,
    ) -> None:
        """The one way a server runner stops: the first SIGTERM/SIGINT (or a restart
        order, `set_stopper`) drains, then calls `after_drain`; a second one calls
        `at_once`. `signals=False` (in-process tests) leaves the process' signals alone."""
        loop = asyncio.get_running_loop()
        stopping: list[asyncio.Task[None]] = []

        async def drain_then_stop() -> None:
            await self.drain()
            after_drain()

        def on_signal() -> None:
            if stopping:
                at_once()  # a second signal: stop now
                return
            stopping.append(loop.create_task(drain_then_stop()))

        if signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, on_signal)
        self.set_stopper(on_signal)

    def not_ready_reasons(self) -> list[str]:
        reasons = []
        if self.draining:
            reasons.append("draining")
        if self.restarting:
            reasons.append("restarting")
        if self._bus is None or not self._bus.connected:
            reasons.append("nats")
        if self._config is None:
            reasons.append("config")
        reasons.extend(name for name, check in self._checks.items() if not check())
        READY.set(0 if reasons else 1)
        return reasons

    @property
    def ready(self) -> bool:
        return not self.not_ready_reasons()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        TASKS.set_function(lambda: len(asyncio.all_tasks(loop)))
        self._logs = configure_logging(self.name, self.instance, self.settings.log_level)
        tracing.configure(self.name, self.instance, self.settings.otlp_endpoint)
        self._bus = await self._connect()
        grants = grants_for(self.name)
        await ensure_state(
            self._bus.js, self._bus.subjects, replicas=self.settings.nats_replicas, grants=grants
        )
        self._logs.start(self._bus.js, self._bus.subjects.logs(self.name))
        store = ConfigStore(await self.kv("config"))
        if grants is None or ServiceName(self.name) in CONFIG_WRITERS:
            await store.seed(load_seed_file(self.settings.config_file))
        else:
            await store.wait_seeded()
        self._config = ConfigWatcher(self._bus, store, service=self.name, instance=self.instance)
        await self._config.start()
        requestlog.configure(self._config.current.logging.requests)
        self._config.on_change(lambda new, _: requestlog.configure(new.logging.requests))
        self._restart_sub = await self._bus.nc.subscribe(
            self._bus.subjects.instance_control(self.instance, "restart"), cb=self._restart_order
        )
        self._rpc = RpcServer(
            self._bus,
            service=self.name,
            version=self.version,
            instance=self.instance,
            deduper=Deduper(await self.kv("dedupe"), instance=self.instance),
            validate_replies=self.settings.validate_replies,
        )
        # What a burst of use freed goes back to the kernel once the process is quiet
        # (aisopod/memory.py; docs/deployment.md, "Python services' memory").
        self._idle_settle = start_idle_settle()
        log.info("started", extra={"version": self.version})

    async def _connect(self) -> Bus:
        """Connect, retrying until NATS answers: services may start before it."""

        async def on_state(state: str) -> None:
            NATS_CONNECTED.set(1 if state == "connected" else 0)

        delay = 0.05
        while True:
            try:
                return await Bus.connect(self.settings, on_state=on_state)
            except Exception as exc:
                log.warning("waiting for NATS at %s: %s", self.settings.nats_url, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _restart_order(self, msg: Msg) -> None:
        """`<prefix>.control.instance.<instance>.restart` `{graceMs}`: leave readiness at
        once, keep serving for the grace (the proxy's health check notices), then stop like
        on SIGTERM and exit with RESTART_EXIT_CODE."""
        try:
            body = codec.loads(msg.data) if msg.data else {}
            grace = float(body.get("graceMs", 0)) / 1000 if isinstance(body, dict) else 0.0
        except ValueError:
            grace = 0.0
        if self._stopper is None or self.draining or self.restarting:
            reason = "no server runner" if self._stopper is None else "already stopping"
            reply = encode_reply(error=Unavailable(f"cannot restart: {reason}"))
        else:
            reply = encode_reply({"instance": self.instance, "accepted": True})
            self.restarting = True
            self.not_ready_reasons()
            log.info("restart ordered; leaving in %.1fs", grace)
            self._restart_task = asyncio.create_task(self._restart_after(min(grace, 60.0)))
        if msg.reply and self._bus is not None:
            await self._bus.nc.publish(msg.reply, reply)

    async def _restart_after(self, grace: float) -> None:
        await asyncio.sleep(grace)
        self.exit_code = RESTART_EXIT_CODE
        if self._stopper is not None:
            self._stopper()

    async def drain(self) -> None:
        """Readiness false first (the proxy stops routing), then the service's drain hooks,
        then in-flight RPCs finish within the drain timeout, then the drained hooks."""
        if self.draining:
            return
        self.draining = True
        self.not_ready_reasons()
        log.info("draining")
        for hook in self._drain_hooks:
            try:
                await hook()
            except Exception:
                log.exception("drain hook failed")
        if self._rpc is not None:
            await self._rpc.drain(self.settings.drain_timeout_s)
        for hook in self._drained_hooks:
            try:
                await hook()
            except Exception:
                log.exception("drained hook failed")

    async def stop(self) -> None:
        """Stop every part, each bounded in time: a stuck part is logged, never a hang."""
        if self._idle_settle is not None:
            self._idle_settle.cancel()
        if self._restart_sub is not None:
            with contextlib.suppress(Exception):
                await self._restart_sub.unsubscribe()
        for hook in reversed(self._stop_hooks):
            await bounded("stop hook", hook(), 5.0)
        if self._rpc is not None:
            await bounded("rpc", self._rpc.stop(), 3.0)
        if self._config is not None:
            await bounded("config watcher", self._config.stop(), 2.0)
        if self._logs is not None:
            await bounded("log publisher", self._logs.stop(), 2.0)
        if tracing.ON:  # the spans of the last requests are sent before the process goes
            await bounded("trace exporter", asyncio.to_thread(tracing.shutdown, self.name), 3.0)
        if self._bus is not None:
            await bounded("nats", self._bus.close(), 3.0)
        log.info("stopped")

    async def __aenter__(self) -> ServiceHost:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def bounded(what: str, step: Awaitable[None], timeout: float = 3.0) -> None:
    """Await one stop step for at most `timeout`: a step that hangs or fails is logged and
    the stop goes on (a stopping process must not hang on one part)."""
    try:
        await asyncio.wait_for(step, timeout)
    except TimeoutError:
        log.warning("stopping the %s took over %.0fs; going on", what, timeout)
    except Exception:
        log.exception("stopping the %s failed", what)


class StoppableServer(Protocol):
    """What `run_server` drives: uvicorn's `Server` and aisopod.probeserver's."""

    should_exit: bool
    force_exit: bool
    started: bool
    """True once the server served: False after `serve` means its start failed."""

    async def serve(self) -> None: ...


def run_server(host: ServiceHost, server: StoppableServer) -> None:
    """Run `server` until SIGTERM/SIGINT (drained first; a second signal stops at once),
    on uvloop; exit non-zero after a restart order so any supervisor starts it again, and
    with STARTUP_FAILED_EXIT_CODE when its start failed (logged by the server)."""
    stop_asked: list[bool] = []

    async def main() -> None:
        def exit_now() -> None:
            stop_asked.append(True)
            server.force_exit = True

        def exit_drained() -> None:
            stop_asked.append(True)
            server.should_exit = True

        host.stop_on_signals(exit_drained, exit_now)
        await server.serve()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(main())
    if host.exit_code:
        sys.exit(host.exit_code)
    if not server.started and not stop_asked:
        sys.exit(STARTUP_FAILED_EXIT_CODE)
