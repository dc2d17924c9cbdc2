"""`aisopod stack up`: the whole gateway as local processes, no Docker.

Starts nats-server first, then every Python service, caddy and traefik at once (the
services wait for NATS by themselves; auth and ratelimit share one child process when
each runs once, `COHOSTED`), waits until each answers its readiness probe,
prints the URL and the admin token, writes the ready file, and supervises: a child that
dies is reported and restarted. SIGINT/SIGTERM stops in order: edges drain first, then
traefik and caddy, then the core services, NATS last.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

# Only what supervising needs is imported here: the process that stays up for as long as
# the stack runs never loads pydantic, the catalogue or `cryptography` in the default
# profile (forked.py; docs/deployment.md, "The launcher's own memory"). What writes the
# files is imported in the forked child (`_write_files`), `--small`'s hosting by `_child`.
from aisopod.natsurls import nats_servers
from aisopod.services import EDGE_SERVICES, PYTHON_SERVICES, ServiceName
from aisopod_ops.launcher.addresses import bare_host, connect_host, connect_url, host_port, is_ipv6
from aisopod_ops.launcher.edgesync import (
    ROUTES_FILE,
    EdgeOptions,
    EdgeSync,
    PreparedEdge,
    nats_connector,
)
from aisopod_ops.launcher.forked import run_forked
from aisopod_ops.launcher.gosched import go_child_env, go_memory_env, host_cpus
from aisopod_ops.launcher.paths import binary, openclaw_ui_root, repo_root, ui_root
from aisopod_ops.launcher.ports import pick
from aisopod_ops.launcher.probe import http_probe, nats_probe
from aisopod_ops.launcher.process import POLL_S, SERVICE_DRAIN_S, Child, ChildSpec, Probe
from aisopod_ops.launcher.secrets import EDGE_SYNC_USER, StackSecrets, ensure_secret, write_private
from aisopod_ops.launcher.startreport import FAILED_MARKER, failure_report

if TYPE_CHECKING:
    from aisopod_ops.launcher import combined
    from aisopod_ops.launcher.hosted import HostedServices

log = logging.getLogger("aisopod_ops.launcher")

STOP_ORDER = ("edge", "proxy", "core", "nats")
# Run in one process (combined.py) when each runs once and the profile is not `--small`:
# ~45 MiB of RSS less than two (docs/deployment.md, "auth and ratelimit in one process").
COHOSTED: tuple[ServiceName, ...] = (ServiceName.AUTH, ServiceName.RATELIMIT)
COHOSTED_NAME = "auth+ratelimit"
STARTUP_TIMEOUT_S = 60.0


@dataclass
class StackOptions:
    http_port: int = 8080
    https_port: int = 8443
    state_dir: Path = field(default_factory=lambda: repo_root() / "var")
    ready_file: Path | None = None
    # One of each edge service by default on one host (docs/deployment.md, memory).
    replicas: int = 1
    scale: dict[str, int] = field(default_factory=dict)  # service name → instances
    config_file: Path | None = None
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    # Edge (Traefik): TLS, redirect, proxies trusted to set X-Forwarded-*.
    tls_cert: Path | None = None  # default: a local CA in <state>/tls signs the certificate
    tls_key: Path | None = None
    tls_names: list[str] = field(default_factory=list)  # extra DNS names / IPs to cover
    redirect_https: bool = False
    trusted_proxies: list[str] = field(default_factory=list)
    # NATS: N clustered local nodes (1, 3 or 5), or an external NATS (comma-separated
    # URLs; its users and passwords are the ones in <state>/secrets, docs/deployment.md).
    nats_cluster: int = 1
    nats_url: str | None = None
    nats_replicas: int | None = None  # default: min(nodes, 3); external: 1
    # NATS's monitoring endpoint (no login; lists users and connections): off unless asked
    # for (benchmarks read /varz), then on `host` only.
    nats_monitor: bool = False
    # The lean profile for small hosts: one of each service, the five Python services and
    # the Control UI hosted by the launcher itself (hosted.py, combined.py), each service
    # still with its own port and NATS user; no Caddy.
    small: bool = False
    # GOMAXPROCS of nats-server and Traefik (gosched.py): None = the user's GOMAXPROCS if
    # set, else the small-host rule; 0 = Go's default (every CPU); N = exactly N.
    nats_gomaxprocs: int | None = None
    traefik_gomaxprocs: int | None = None


@dataclass
class StackInfo:
    http_url: str
    https_url: str
    ws_url: str
    admin_token: str
    nats_url: str
    state_dir: str
    pids: dict[str, list[int]]
    wss_url: str = ""
    openclaw_url: str = ""  # the same gateway for OpenClaw clients (protocol v4)
    ca_file: str | None = None  # the local CA to trust for https_url (None: user's cert)
    # Each local nats-server's monitoring endpoint, in node order (as pids["nats"]).
    nats_monitor_urls: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)


def _module(service: ServiceName) -> str:
    return "aisopod_" + service.value.replace("-", "_")


class Stack:
    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.state_dir = options.state_dir.resolve()
        self.children: list[Child | HostedServices] = []
        self._hosted_plan: combined.Plan | None = None
        # Set when the stack should stop on its own (the hosted services ended), and
        # whether `run_stack` should then start it again.
        self.stop_event = asyncio.Event()
        self.restart_requested = False
        self.exit_code = 0
        self.secrets: StackSecrets | None = None
        self.info: StackInfo | None = None
        self.edge: EdgeSync | None = None
        self._edge_task: asyncio.Task[None] | None = None

    # -- configuration ------------------------------------------------------------------
    def _prepare(self) -> None:
        opts = self.options
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for sub in ("logs", "nats", "traefik", "caddy", "tls"):
            (self.state_dir / sub).mkdir(exist_ok=True)
        self.secrets = StackSecrets(self.state_dir)
        self.ports = {
            "http": pick(opts.http_port, opts.host),
            "https": pick(opts.https_port, opts.host),
            "traefik_ping": pick(0, opts.host),
            "ui": pick(0, opts.host),
        }
        self.service_ports: dict[ServiceName, list[int]] = {}
        for service in PYTHON_SERVICES:
            count = max(1, opts.replicas) if service in EDGE_SERVICES else 1
            count = max(1, opts.scale.get(service.value, count))
            if opts.small:
                count = 1
            self.service_ports[service] = [pick(0, opts.host) for _ in range(count)]
        self.cohosted = not opts.small and all(len(self.service_ports[s]) == 1 for s in COHOSTED)
        self.nats_nodes: list[NatsNode] = []
        if opts.nats_url:
            self.nats_url = ",".join(nats_servers(opts.nats_url))
        else:
            self.nats_nodes = [
                NatsNode(
                    index,
                    pick(0, opts.host),
                    pick(0, opts.host) if opts.nats_monitor else None,
                    pick(0, opts.host),
                )
                for index in range(opts.nats_cluster)
            ]
            self.nats_url = ",".join(
                connect_url("nats", opts.host, n.port) for n in self.nats_nodes
            )
        self.nats_replicas = opts.nats_replicas or (
            1 if opts.nats_url else min(opts.nats_cluster, 3)
        )
        self.config_file = opts.config_file or self.state_dir / "aisopod.yaml"
        self.edge = self._edge_sync()
        if opts.small:
            # This process hosts the services and loads all of it anyway: no child.
            prepared = self._write_files()
        else:
            prepared = run_forked(self._write_files)
        self.edge.adopt(PreparedEdge.from_json(prepared))

    def _write_files(self) -> str:
        """The seed config, NATS's and Traefik's configuration, the TLS and other live
        files; what the edge sync settled, as JSON. Runs in a forked child (forked.py)."""
        import yaml

        if self.options.config_file is None and not self.config_file.exists():
            write_private(
                self.config_file,
                "# Seed of the gateway configuration, read on the first start only; after\n"
                "# that the configuration lives in NATS KV `config` (aisopod config get).\n"
                + yaml.safe_dump({"auth": {"mode": "token"}}),
            )
        self._write_nats_config()
        self._write_traefik_config()
        assert self.edge is not None
        from aisopod.config.store import load_seed_file

        self.edge.prepare(load_seed_file(self.config_file))
        return self.edge.prepared().to_json()

    def _write_nats_config(self) -> None:
        from aisopod_ops.launcher import natsconf

        assert self.secrets is not None
        host = self.options.host
        clustered = len(self.nats_nodes) > 1
        routes = [host_port(connect_host(host), n.cluster_port) for n in self.nats_nodes]
        for node in self.nats_nodes:
            cluster = ""
            if clustered:
                route_password = ensure_secret(self.secrets.dir / "nats-route.password", 24)
                cluster = natsconf.cluster_block(
                    name="aisopod-local",
                    listen=host_port(host, node.cluster_port),
                    routes=routes,
                    password=route_password,
                )
            text = natsconf.render(
                port=node.port,
                monitor_port=node.monitor_port,
                store_dir=self._nats_dir(node),
                users=list(self.secrets.nats_passwords),
                passwords=self.secrets.nats_passwords,
                host=host,
                # The monitor has no login: loopback even when the stack binds a wildcard.
                monitor_host=connect_host(host),
                server_name=f"aisopod-local-{node.index + 1}" if clustered else "aisopod-local",
                cluster=cluster,
            )
            write_private(self._nats_dir(node) / "nats.conf", text)

    def _nats_dir(self, node: NatsNode) -> Path:
        """One node: <state>/nats as always; a cluster's nodes: <state>/nats/node-N each."""
        if len(self.nats_nodes) == 1:
            return self.state_dir / "nats"
        return self.state_dir / "nats" / f"node-{node.index + 1}"

    def _urls(self, service: ServiceName) -> list[str]:
        return [connect_url("http", self.options.host, p) for p in self.service_ports[service]]

    def _write_traefik_config(self) -> None:
        import yaml

        from aisopod_ops.launcher import traefik

        host = self.options.host
        dynamic_dir = self.state_dir / "traefik" / "dynamic"
        dynamic_dir.mkdir(parents=True, exist_ok=True)
        static = traefik.static_config(
            http_address=host_port(host, self.ports["http"]),
            https_address=host_port(host, self.ports["https"]),
            ping_address=host_port(host, self.ports["traefik_ping"]),
            dynamic_dir=str(dynamic_dir),
            trusted_ips=list(self.options.trusted_proxies),
            access_log=str(self.state_dir / "logs" / "traefik-access.log"),
            # Stopped last but one: nothing in front of it needs an accept grace period.
            accept_grace_s=0,
        )
        upstreams = traefik.Upstreams(
            ws_gateway=self._urls(ServiceName.WS_GATEWAY),
            http_api=self._urls(ServiceName.HTTP_API),
            static_ui=[connect_url("http", host, self.ports["ui"])],
        )
        dynamic = traefik.dynamic_config(upstreams, entry_points=["web", "websecure"])
        write_private(self.state_dir / "traefik" / "traefik.yml", yaml.safe_dump(static))
        write_private(dynamic_dir / ROUTES_FILE, yaml.safe_dump(dynamic))

    def _edge_sync(self) -> EdgeSync:
        """TLS, CORS and redirect files (edgesync.py); CORS from the seed until the live
        config is read from NATS."""
        opts = self.options
        return EdgeSync(
            EdgeOptions(
                dynamic_dir=self.state_dir / "traefik" / "dynamic",
                tls_dir=self.state_dir / "tls",
                tls_cert=opts.tls_cert,
                tls_key=opts.tls_key,
                tls_names=[connect_host(opts.host), *opts.tls_names],
                redirect_https_port=self.ports["https"] if opts.redirect_https else None,
                edge_secret=self.secrets.edge_secret if self.secrets else None,
            )
        )

    def _start_edge_sync(self) -> None:
        assert self.secrets is not None and self.edge is not None
        user = EDGE_SYNC_USER  # read-only on KV `config`, like compose's edge-sync
        connect = nats_connector(self.nats_url, user, self.secrets.nats_passwords[user])
        self._edge_task = asyncio.create_task(self.edge.run(connect), name="edge-sync")

    async def _stop_edge_sync(self) -> None:
        if self._edge_task is not None:
            self._edge_task.cancel()
            # nats-py's KV watcher may swallow a cancellation; never hang the stop on it.
            await asyncio.wait({self._edge_task}, timeout=2.0)
            self._edge_task = None

    # -- children -----------------------------------------------------------------------
    def _service_env(self, service: ServiceName, index: int, port: int) -> dict[str, str]:
        assert self.secrets is not None
        env = dict(os.environ)
        env.update(
            {
                "AISOPOD_HOST": bare_host(self.options.host),
                "AISOPOD_PORT": str(port),
                "AISOPOD_INSTANCE": f"{service.value}-{index + 1}",
                "AISOPOD_NATS_URL": self.nats_url,
                "AISOPOD_NATS_REPLICAS": str(self.nats_replicas),
                "AISOPOD_NATS_USER": service.value,
                "AISOPOD_NATS_PASSWORD_FILE": str(self.secrets.nats_password_files[service.value]),
                "AISOPOD_CONFIG_FILE": str(self.config_file),
                "AISOPOD_STATE_DIR": str(self.state_dir),
                "AISOPOD_ADMIN_TOKEN_FILE": str(self.secrets.admin_token_file),
                "AISOPOD_LOG_LEVEL": self.options.log_level,
                "AISOPOD_PUBLIC_URL": connect_url("http", self.options.host, self.ports["http"]),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.pop("AISOPOD_NATS_PASSWORD", None)
        env.pop("AISOPOD_EDGE_SECRET", None)
        if service in EDGE_SERVICES:  # only the services Traefik sends requests to
            env["AISOPOD_EDGE_SECRET_FILE"] = str(self.secrets.edge_secret_file)
        return env

    def _combined_spec(self) -> ChildSpec:
        """`--small`'s services, hosted by the launcher itself (hosted.py): the environment
        every service shares, and a plan naming each one's port, instance and NATS password
        file."""
        from aisopod_ops.launcher import combined

        assert self.secrets is not None
        plan = combined.Plan(
            services=[
                combined.PlannedService(
                    service=service,
                    port=ports[0],
                    instance=f"{service.value}-1",
                    nats_password_file=self.secrets.nats_password_files[service.value],
                    edge_secret_file=(
                        self.secrets.edge_secret_file if service in EDGE_SERVICES else None
                    ),
                )
                for service, ports in self.service_ports.items()
            ],
            # No Caddy in this profile: the UI's few files come from this process (~2 MiB
            # here against ~50 MiB for Caddy; control_ui.py keeps the Caddyfile's rules).
            ui=combined.PlannedUi(
                host=bare_host(self.options.host),
                port=self.ports["ui"],
                root=ui_root(),
                openclaw_root=openclaw_ui_root() if openclaw_ui_root().is_dir() else None,
            ),
        )
        self._hosted_plan = plan
        env = self._service_env(ServiceName.RUNTIME, 0, 0)
        for per_service in ("AISOPOD_PORT", "AISOPOD_INSTANCE", "AISOPOD_NATS_USER"):
            env.pop(per_service)
        env.pop("AISOPOD_NATS_PASSWORD_FILE")
        probe_urls = (
            *(
                connect_url("http", self.options.host, ports[0], "/ready")
                for ports in self.service_ports.values()
            ),
            self._ui_url(),
        )
        probes = [self._http_probe(url) for url in probe_urls[:-1]]
        probes.append(self._ui_probe())

        async def all_ready() -> bool:
            return all(await asyncio.gather(*(probe() for probe in probes)))

        return ChildSpec(
            name="services",
            argv=[],  # not a process of its own
            env=env,
            log_file=self.state_dir / "logs" / "services.log",
            probe=all_ready,
            probe_urls=probe_urls,
            # Drains every service itself, first, like the edges of the default profile.
            group="edge",
        )

    def _cohosted_spec(self) -> ChildSpec:
        """auth and ratelimit in one child process (`python -m
        aisopod_ops.launcher.combined PLAN`): each with its own port, instance, NATS user
        and readiness; supervised as one child (one crash or restart order restarts
        both). The plan is written as JSON here: this process does not import pydantic."""
        assert self.secrets is not None
        plan = {
            "services": [
                {
                    "service": service.value,
                    "port": self.service_ports[service][0],
                    "instance": f"{service.value}-1",
                    "nats_password_file": str(self.secrets.nats_password_files[service.value]),
                }
                for service in COHOSTED
            ]
        }
        plan_file = self.state_dir / f"{COHOSTED_NAME}.json"
        write_private(plan_file, json.dumps(plan, indent=2))
        env = self._service_env(COHOSTED[0], 0, 0)
        for per_service in (
            "AISOPOD_PORT",
            "AISOPOD_INSTANCE",
            "AISOPOD_NATS_USER",
            "AISOPOD_NATS_PASSWORD_FILE",
        ):
            env.pop(per_service)
        probe_urls = tuple(
            connect_url("http", self.options.host, self.service_ports[service][0], "/ready")
            for service in COHOSTED
        )
        probes = [self._http_probe(url) for url in probe_urls]

        async def all_ready() -> bool:
            return all(await asyncio.gather(*(probe() for probe in probes)))

        return ChildSpec(
            name=COHOSTED_NAME,
            argv=[sys.executable, "-m", "aisopod_ops.launcher.combined", str(plan_file)],
            env=env,
            log_file=self.state_dir / "logs" / f"{COHOSTED_NAME}.log",
            probe=all_ready,
            probe_urls=probe_urls,
            group="core",
        )

    def _ui_url(self) -> str:
        return connect_url("http", self.options.host, self.ports["ui"], "/")

    def _ui_probe(self) -> Probe:
        return self._http_probe(self._ui_url(), ok=(200, 304))

    def _http_probe(self, url: str, ok: tuple[int, ...] = (200,)) -> Probe:
        return http_probe(url, ok)

    def _nats_probe(self, url: str) -> Probe:
        """JetStream answers the admin user (the monitoring endpoint is off by default)."""
        assert self.secrets is not None
        return nats_probe(url, "admin", self.secrets.nats_passwords["admin"])

    def _edge_health_url(self, http_url: str, https_url: str) -> str:
        """/health through Traefik; over HTTPS when plain HTTP only redirects (the probe
        checks routing, not the certificate, which may name a public host)."""
        if not self.options.redirect_https:
            return f"{http_url}/health"
        return f"{https_url}/health"

    def _caddy_spec(self) -> ChildSpec:
        host = self.options.host
        caddy_env = dict(os.environ)
        caddy_env.update(
            {
                # Caddy's `bind` takes an IPv6 address bracketed.
                "AISOPOD_UI_BIND": f"[{bare_host(host)}]" if is_ipv6(host) else host,
                "AISOPOD_UI_PORT": str(self.ports["ui"]),
                "AISOPOD_UI_ROOT": str(ui_root()),
                "AISOPOD_OPENCLAW_UI_ROOT": str(openclaw_ui_root()),
                "XDG_DATA_HOME": str(self.state_dir / "caddy"),
                "XDG_CONFIG_HOME": str(self.state_dir / "caddy"),
                "HOME": str(self.state_dir / "caddy"),
            }
        )
        return ChildSpec(
            name="caddy",
            argv=[
                binary("caddy"),
                "run",
                "--adapter",
                "caddyfile",
                "--config",
                str(repo_root() / "services" / "static-ui" / "Caddyfile"),
            ],
            env=caddy_env,
            log_file=self.state_dir / "logs" / "caddy.log",
            probe=self._ui_probe(),
            probe_urls=(self._ui_url(),),
            group="proxy",
            stop_timeout_s=10,
        )

    def _specs(self) -> list[ChildSpec]:
        host = self.options.host
        logs = self.state_dir / "logs"
        cpus = host_cpus()
        specs = []
        for node in self.nats_nodes:
            name = "nats" if len(self.nats_nodes) == 1 else f"nats-{node.index + 1}"
            role = "nats" if len(self.nats_nodes) == 1 else "nats-node"
            specs.append(
                ChildSpec(
                    name=name,
                    argv=[binary("nats-server"), "-c", str(self._nats_dir(node) / "nats.conf")],
                    env=go_memory_env(
                        go_child_env(os.environ, role, self.options.nats_gomaxprocs, cpus), role
                    ),
                    log_file=logs / f"{name}.log",
                    # JetStream answers through this node: in a cluster, once there is a
                    # meta leader.
                    probe=self._nats_probe(connect_url("nats", host, node.port)),
                    group="nats",
                )
            )
        for service, ports in self.service_ports.items() if not self.options.small else ():
            if self.cohosted and service in COHOSTED:
                continue
            for index, port in enumerate(ports):
                name = service.value if len(ports) == 1 else f"{service.value}-{index + 1}"
                ready_url = connect_url("http", host, port, "/ready")
                specs.append(
                    ChildSpec(
                        name=name,
                        argv=[sys.executable, "-m", _module(service)],
                        env=self._service_env(service, index, port),
                        log_file=logs / f"{name}.log",
                        probe=self._http_probe(ready_url),
                        probe_urls=(ready_url,),
                        group="edge" if service in EDGE_SERVICES else "core",
                    )
                )
        if self.cohosted:
            specs.append(self._cohosted_spec())
        if self.options.small:
            specs.append(self._combined_spec())
        else:
            specs.append(self._caddy_spec())
        traefik_ping_url = connect_url("http", host, self.ports["traefik_ping"], "/ping")
        specs.append(
            ChildSpec(
                name="traefik",
                argv=[
                    binary("traefik"),
                    f"--configFile={self.state_dir / 'traefik' / 'traefik.yml'}",
                ],
                env=go_child_env(os.environ, "traefik", self.options.traefik_gomaxprocs, cpus),
                log_file=logs / "traefik.log",
                probe=self._http_probe(traefik_ping_url),
                probe_urls=(traefik_ping_url,),
                group="proxy",
                # Traefik's graceTimeOut is the services' drain; give it that and a margin.
                stop_timeout_s=SERVICE_DRAIN_S + 5,
            )
        )
        return specs

    # -- lifecycle ----------------------------------------------------------------------
    def _child(self, spec: ChildSpec) -> Child | HostedServices:
        if spec.name == "services" and self._hosted_plan is not None:
            from aisopod_ops.launcher.hosted import HostedServices

            return HostedServices(spec, self._hosted_plan, on_exit=self._hosted_ended)
        return Child(spec, on_restart=self._restarted)

    def _hosted_ended(self, restart: bool) -> None:
        self.restart_requested = restart
        self.exit_code = 0 if restart else 1
        self.stop_event.set()

    async def up(self) -> StackInfo:
        started = time.monotonic()
        self._prepare()
        specs = self._specs()
        nats_specs = [spec for spec in specs if spec.group == "nats"]
        for spec in nats_specs:
            nats_child = self._child(spec)
            self.children.append(nats_child)
            await nats_child.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        if len(nats_specs) > 1:
            # Services provision R3 state at start: let the cluster elect its meta leader
            # first rather than have every service retry through the election.
            await asyncio.gather(*(c.wait_ready(deadline) for c in self.children))
        self._start_edge_sync()
        # Traefik last, once what it routes to is ready: its first health checks would
        # otherwise fail, and it keeps a replica out of the pool until a later check passes
        # (clients of a just-started stack would all land on the other replicas).
        later = [spec for spec in specs[1:] if spec.name == "traefik"]
        for spec in specs[len(nats_specs) :]:
            if spec.name == "traefik":
                continue
            child = self._child(spec)
            self.children.append(child)
            await child.start()
        results = await asyncio.gather(*(c.wait_ready(deadline) for c in self.children))
        if all(results):
            for spec in later:
                child = self._child(spec)
                self.children.append(child)
                await child.start()
            results += await asyncio.gather(
                *(c.wait_ready(deadline) for c in self.children[-len(later) :])
            )
        not_ready = [c for c, ok in zip(self.children, results, strict=True) if not ok]
        failed = [c.spec.name for c in not_ready]
        failed_urls: list[str] = []
        host = self.options.host
        http_url = connect_url("http", host, self.ports["http"])
        https_url = connect_url("https", host, self.ports["https"])
        edge_health = self._edge_health_url(http_url, https_url)
        if not failed and not await _poll(http_probe(edge_health), deadline):
            failed.append("traefik route /health")
            failed_urls.append(edge_health)
            not_ready.extend(c for c in self.children if c.spec.name == "traefik")  # its log
        # Ready means healthy too: each ws-gateway's `health` snapshot counts every service
        # (its discovery runs on its own clock, so a just-started one may not yet).
        for url in [] if failed else self._urls(ServiceName.WS_GATEWAY):
            if not await _poll(http_probe(f"{url}/health/services"), deadline):
                failed.append(f"health of {url}")
                failed_urls.append(f"{url}/health/services")
        if failed:
            # What each one answers, whether it runs, its log: the cause in the error itself.
            report = await failure_report(not_ready, failed_urls)
            raise RuntimeError(
                f"not ready after {STARTUP_TIMEOUT_S:.0f}s: {', '.join(failed)} "
                f"(logs in {self.state_dir / 'logs'})\n{report}"
            )
        assert self.secrets is not None
        self.info = StackInfo(
            http_url=http_url,
            https_url=https_url,
            ws_url=connect_url("ws", host, self.ports["http"], "/ws"),
            admin_token=self.secrets.admin_token,
            nats_url=self.nats_url,
            state_dir=str(self.state_dir),
            pids=self.pids(),
            wss_url=connect_url("wss", host, self.ports["https"], "/ws"),
            openclaw_url=connect_url("ws", host, self.ports["http"], "/openclaw"),
            ca_file=self._ca_file(),
            nats_monitor_urls=[
                connect_url("http", host, n.monitor_port) for n in self.nats_nodes if n.monitor_port
            ],
        )
        self._write_record()
        log.info(
            "stack ready in %.2fs (%s)",
            time.monotonic() - started,
            ", ".join(f"{c.spec.name} {c.ready_after or 0:.2f}" for c in self.children),
        )
        return self.info

    def _ca_file(self) -> str | None:
        files = self.edge.files if self.edge is not None else None
        return str(files.ca_file) if files is not None and files.ca_file else None

    def pids(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for child in self.children:
            if child.spec.name == COHOSTED_NAME:
                # Listed under each service it runs (one pid under two names).
                for service in COHOSTED:
                    if child.pid is not None:
                        out.setdefault(service.value, []).append(child.pid)
                continue
            base = child.spec.name
            for group in (*(s.value for s in PYTHON_SERVICES), "nats"):
                if base.startswith(group + "-") and base[len(group) + 1 :].isdigit():
                    base = group
            if child.pid is not None:
                out.setdefault(base, []).append(child.pid)
        return out

    def _restarted(self, child: Child) -> None:
        """A child came back with a new pid: `stack status` and the ready file follow."""
        if self.info is None:  # still starting: the record is written once all are ready
            return
        self.info.pids = self.pids()
        self._write_record()

    def _write_record(self) -> None:
        assert self.info is not None
        record = json.loads(self.info.to_json())
        record.pop("admin_token")
        record["launcher_pid"] = os.getpid()
        record["children"] = {c.spec.name: c.pid for c in self.children}
        # Where each service listens (diagnostics; tests attack them directly).
        record["service_urls"] = {s.value: self._urls(s) for s in PYTHON_SERVICES}
        write_private(self.state_dir / "stack.json", json.dumps(record, indent=2))
        if self.options.ready_file is not None:
            write_private(self.options.ready_file, self.info.to_json())

    async def down(self) -> None:
        await self._stop_edge_sync()
        for group in STOP_ORDER:
            members = [c for c in self.children if c.spec.group == group]
            await asyncio.gather(*(c.stop() for c in members))
        record = self.state_dir / "stack.json"
        if record.exists():
            record.unlink()


@dataclass(frozen=True)
class NatsNode:
    """One local nats-server: its client, monitoring and route ports."""

    index: int
    port: int
    monitor_port: int | None  # None: monitoring off (the default)
    cluster_port: int


async def _poll(probe: Callable[[], Awaitable[bool]], deadline: float) -> bool:
    while time.monotonic() < deadline:
        if await probe():
            return True
        await asyncio.sleep(POLL_S)
    return False


async def run_stack(options: StackOptions) -> int:
    stack = Stack(options)
    loop = asyncio.get_running_loop()
    stop = stack.stop_event
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    up = asyncio.create_task(stack.up())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({up, stopper}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if up in done and up.exception() is None:
        info = up.result()
        print(f"aisopod gateway is up: {info.http_url}  (WebSocket {info.ws_url})", flush=True)
        print(f"HTTPS: {info.https_url}  (WebSocket {info.wss_url})", flush=True)
        if info.ca_file:
            print(f"  trust the local CA for HTTPS: {info.ca_file}", flush=True)
        print(f"admin token: {info.admin_token}", flush=True)
        print(f"state: {info.state_dir}; Ctrl-C stops everything", flush=True)
        await stop.wait()
    elif up in done:
        print(f"{FAILED_MARKER} {up.exception()}", file=sys.stderr, flush=True)
        code = 1
    else:
        up.cancel()
    stopper.cancel()
    print("stopping…", flush=True)
    await stack.down()
    if stack.restart_requested:
        # `--small`'s hosted services asked for a restart (or crashed after running a
        # while): start the whole stack again, in this same process (hosted.py).
        print("restarting…", flush=True)
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    return code or stack.exit_code


def stack_status(state_dir: Path) -> int:
    record_path = state_dir / "stack.json"
    if not record_path.exists():
        print(f"no stack running from {state_dir}")
        return 1
    record = json.loads(record_path.read_text())
    print(f"launcher pid {record['launcher_pid']}  {record['http_url']}  nats {record['nats_url']}")
    for name, pid in record["children"].items():
        alive = pid is not None and _alive(pid)
        print(f"  {name:<14} pid {pid:<8} {'running' if alive else 'gone'}")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
