"""The auth service's live parts, assembled once the host is up, and its start rules.

`none` mode is refused at start on a non-loopback bind (this service's own bind or the
gateway's public URL) unless `auth.allowInsecureNoAuth`; switched on later through the
live config, it is not applied: verification fails closed and an error is logged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from aisopod.compat.natspy import flush_in_order
from aisopod.config.model import GatewayConfig
from aisopod.config.sections.auth import AuthSection
from aisopod.config.sections.limits import RateRule
from aisopod.host import ServiceHost
from aisopod.settings import ServiceSettings
from aisopod_auth.devices import DeviceRegistry
from aisopod_auth.handlers import AuthMethods
from aisopod_auth.lockout import RULE, Lockout
from aisopod_auth.modes import none_mode_permitted
from aisopod_auth.nats_api import raw_handlers
from aisopod_auth.nodes import NodeRegistry
from aisopod_auth.notify import Notifier
from aisopod_auth.tokens import TokenStore
from aisopod_auth.verifier import Verifier

log = logging.getLogger("aisopod.auth")


class AuthSettings(ServiceSettings):
    """AISOPOD_PUBLIC_URL (`public_url`, every service's) names where clients reach the
    gateway; `none` mode looks at its host too."""


class InsecureNoAuth(RuntimeError):
    """`none` mode on a non-loopback bind without `allowInsecureNoAuth`."""


class AuthService:
    def __init__(self, host: ServiceHost, settings: AuthSettings) -> None:
        self.host = host
        self.settings = settings
        self._verifier: Verifier | None = None
        self._notifier: Notifier | None = None
        self.started = False

    @property
    def verifier(self) -> Verifier:
        if self._verifier is None:
            raise RuntimeError("auth service not started")
        return self._verifier

    def config(self) -> GatewayConfig:
        return self.host.config.current

    def bind_hosts(self) -> list[str]:
        hosts = [self.settings.host]
        if self.settings.public_url:
            hosts.append(urlsplit(self.settings.public_url).hostname or "")
        return hosts

    def none_permitted(self, auth: AuthSection) -> bool:
        return none_mode_permitted(self.bind_hosts(), auth.allow_insecure_no_auth)

    def failure_rule(self) -> RateRule | None:
        return next((r for r in self.config().limits.rules if r.name == RULE), None)

    def ipv6_prefix(self) -> int:
        # The ratelimit service's setting (`limits.ipv6Prefix`), /64 where it is absent.
        return int(getattr(self.config().limits, "ipv6_prefix", 64))

    def _check_mode(self, new: GatewayConfig, old: GatewayConfig) -> None:
        auth = new.auth
        if auth.mode == "none" and not self.none_permitted(auth):
            log.error(
                "auth mode none is refused on a non-loopback bind (%s); every client is "
                "refused until the mode changes or auth.allowInsecureNoAuth is set",
                ", ".join(self.bind_hosts()),
            )
        elif auth.mode == "none":
            log.warning("auth mode none: every client is the anonymous operator")
        elif auth.mode != old.auth.mode:
            log.info("auth mode is now %s", auth.mode)

    async def _announce_auth_change(self, new: GatewayConfig, old: GatewayConfig) -> None:
        # Credentials the edges verified under the old section may be void now (the edges
        # watch the config too; this covers one whose watch lags).
        if new.auth != old.auth and self._notifier is not None:
            await self._notifier.changed("auth config changed")

    @asynccontextmanager
    async def run(self, host: ServiceHost) -> AsyncIterator[None]:
        auth = self.config().auth
        if auth.mode == "none" and not self.none_permitted(auth):
            raise InsecureNoAuth(
                "auth mode none on a non-loopback bind: set auth.allowInsecureNoAuth to force it"
            )
        self._check_mode(self.config(), self.config())
        host.config.on_change(self._check_mode)
        host.config.on_change(self._announce_auth_change)
        tokens = TokenStore(await host.kv("auth"))
        await tokens.load_admin(host.settings.secret("admin_token"))
        pairing = await host.kv("pairing")
        devices = DeviceRegistry(await host.kv("devices"), pairing, tokens)
        nodes = NodeRegistry(await host.kv("nodes"), pairing, tokens)
        notifier = Notifier(host.bus)
        self._notifier = notifier
        lockout = Lockout(host.bus, self.failure_rule, self.ipv6_prefix)
        await lockout.start()
        self._verifier = Verifier(
            config=self.config,
            tokens=tokens,
            devices=devices,
            nodes=nodes,
            lockout=lockout,
            notifier=notifier,
            none_permitted=self.none_permitted,
        )
        methods = AuthMethods(devices, nodes, notifier)
        await host.rpc.start(
            methods.handlers(),
            raw=raw_handlers(host.bus.subjects, self._verifier, tokens, notifier),
        )
        # A new generation: what any earlier auth process verified is void at the edges.
        await notifier.changed("started")
        self.started = True
        try:
            yield
        finally:
            try:
                await notifier.changed("stopping")
                await flush_in_order(host.bus.nc, 2)
            except Exception:  # NATS already gone: the edges drop on the lost connection
                log.debug("could not announce the stop", exc_info=True)
            await lockout.stop()
