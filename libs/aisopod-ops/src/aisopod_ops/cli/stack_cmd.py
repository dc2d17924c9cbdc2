"""`aisopod stack up|status`."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
from pathlib import Path
from typing import Any

from aisopod.services import PYTHON_SERVICES
from aisopod_ops.launcher.paths import repo_root
from aisopod_ops.launcher.stack import StackOptions, run_stack, stack_status


def register(commands: Any) -> None:
    stack = commands.add_parser("stack", help="run the whole gateway as local processes")
    verbs = stack.add_subparsers(dest="verb", required=True)
    up = verbs.add_parser("up", help="start everything in the foreground; Ctrl-C stops it")
    up.add_argument(
        "--host",
        type=bind_address,
        default="127.0.0.1",
        help="address every listener binds (default 127.0.0.1; 0.0.0.0 or :: for all)",
    )
    up.add_argument("--http-port", type=int, default=8080, help="0 picks a free port")
    up.add_argument("--https-port", type=int, default=8443, help="0 picks a free port")
    up.add_argument("--state-dir", type=Path, default=None, help="default: ./var")
    up.add_argument("--ready-file", type=Path, default=None, help="write URLs, token, pids")
    up.add_argument(
        "--replicas",
        type=int,
        default=None,
        help="copies of each edge service (default 1: one host; 2+ for gap-free rolling "
        "restarts, as Compose and Kubernetes run them)",
    )
    up.add_argument(
        "--scale",
        action="append",
        default=[],
        metavar="SERVICE=N",
        help="instances of one service, e.g. --scale runtime=2 (repeatable)",
    )
    up.add_argument(
        "--small",
        action="store_true",
        help="lean profile for small hosts: one of each service, the Python services in "
        "one process (each with its own port and NATS user)",
    )
    up.add_argument("--config", type=Path, default=None, help="seed config (YAML)")
    up.add_argument("--log-level", default="INFO")
    nats = up.add_argument_group("NATS")
    nats.add_argument(
        "--nats-cluster",
        type=int,
        choices=(1, 3, 5),
        default=1,
        metavar="N",
        help="run N clustered nats-servers (1, 3 or 5); state is replicated min(N, 3) times",
    )
    nats.add_argument(
        "--nats-url",
        default=None,
        metavar="URL[,URL...]",
        help="use a NATS you run instead (its users' passwords: <state>/secrets)",
    )
    nats.add_argument(
        "--nats-replicas",
        type=int,
        choices=(1, 3, 5),
        default=None,
        help="replicas of every stream and bucket (default: min(N, 3); external NATS: 1)",
    )
    nats.add_argument(
        "--nats-gomaxprocs",
        type=gomaxprocs,
        default=None,
        metavar="N",
        help="GOMAXPROCS of nats-server (0: Go's default, every CPU; default: your "
        "GOMAXPROCS if set, else 1 on hosts with at most 4 CPUs)",
    )
    up.add_argument(
        "--runtime-replicas",
        type=int,
        default=None,
        metavar="N",
        help="instances of the runtime (same as --scale runtime=N)",
    )
    up.add_argument(
        "--nats-monitor",
        action="store_true",
        help="turn on NATS's monitoring endpoint (no login; on the stack's host only)",
    )
    edge = up.add_argument_group("edge (Traefik)")
    edge.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate (chain)")
    edge.add_argument("--tls-key", type=Path, default=None, help="its PEM private key")
    edge.add_argument(
        "--tls-name",
        action="append",
        default=[],
        metavar="NAME",
        help="extra DNS name or IP for the generated certificate (repeatable)",
    )
    edge.add_argument(
        "--redirect-https", action="store_true", help="answer plain HTTP with a redirect"
    )
    edge.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="CIDR",
        help="a proxy in front whose X-Forwarded-* Traefik keeps (repeatable; default none)",
    )
    edge.add_argument(
        "--traefik-gomaxprocs",
        type=gomaxprocs,
        default=None,
        metavar="N",
        help="GOMAXPROCS of Traefik (0: Go's default, every CPU; default: your GOMAXPROCS "
        "if set, else 1 on hosts with at most 2 CPUs)",
    )
    up.set_defaults(handler=_up)
    status = verbs.add_parser("status", help="what the stack in the state dir runs")
    status.add_argument("--state-dir", type=Path, default=None)
    status.set_defaults(handler=_status)


def _up(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="aisopod: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.nats_url and args.nats_cluster != 1:
        raise SystemExit("--nats-url and --nats-cluster exclude each other")
    scale = _parse_scale(args.scale)
    if args.runtime_replicas is not None:
        if args.runtime_replicas < 1:
            raise SystemExit("--runtime-replicas: at least 1")
        scale["runtime"] = args.runtime_replicas
    options = StackOptions(
        http_port=args.http_port,
        https_port=args.https_port,
        state_dir=args.state_dir or repo_root() / "var",
        ready_file=args.ready_file,
        replicas=args.replicas or 1,
        scale=scale,
        config_file=args.config,
        log_level=args.log_level,
        host=args.host,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_names=args.tls_name,
        redirect_https=args.redirect_https,
        trusted_proxies=args.trusted_proxy,
        nats_cluster=args.nats_cluster,
        nats_url=args.nats_url,
        nats_replicas=args.nats_replicas,
        nats_monitor=args.nats_monitor,
        small=args.small,
        nats_gomaxprocs=args.nats_gomaxprocs,
        traefik_gomaxprocs=args.traefik_gomaxprocs,
    )
    if args.small and (args.scale or args.replicas is not None):
        raise SystemExit("--small runs one of each service: no --scale or --replicas")
    if options.small:
        # The launcher hosts the services in this profile: their event loop is this one.
        import uvloop

        return uvloop.run(run_stack(options))
    return asyncio.run(run_stack(options))


def bind_address(value: str) -> str:
    """An IP address to bind (v4 or v6, without brackets): refused here, with the reason,
    rather than by the first child that fails to listen on it."""
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::1, ::)"
        ) from None


def gomaxprocs(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r}: expected 0 (Go's default) or a count")
    return int(value)


def _status(args: argparse.Namespace) -> int:
    return stack_status(args.state_dir or repo_root() / "var")


def _parse_scale(items: list[str]) -> dict[str, int]:
    known = {s.value for s in PYTHON_SERVICES}
    out = {}
    for item in items:
        name, _, count = item.partition("=")
        if name not in known or not count.isdigit() or int(count) < 1:
            raise SystemExit(
                f"--scale {item!r}: expected SERVICE=N with SERVICE in {sorted(known)}"
            )
        out[name] = int(count)
    return out
