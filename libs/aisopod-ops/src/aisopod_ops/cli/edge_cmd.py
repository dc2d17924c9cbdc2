"""`aisopod edge sync|cert`: the edge sync process, and the local CA's certificate."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

from aisopod_ops.launcher import tls
from aisopod_ops.launcher.paths import repo_root


def register(commands: Any) -> None:
    edge = commands.add_parser("edge", help="Traefik's live files: TLS, CORS, redirect")
    verbs = edge.add_subparsers(dest="verb", required=True)
    sync = verbs.add_parser(
        "sync", help="keep Traefik's CORS/TLS files live (compose, Kubernetes); env AISOPOD_*"
    )
    sync.set_defaults(handler=_sync)
    cert = verbs.add_parser("cert", help="show (or reissue) the local CA's server certificate")
    cert.add_argument("--state-dir", type=Path, default=None, help="default: ./var")
    cert.add_argument("--renew", action="store_true", help="issue a new server certificate")
    cert.add_argument("--name", action="append", default=[], help="extra DNS name or IP")
    cert.set_defaults(handler=_cert)


def _sync(_: argparse.Namespace) -> int:
    from aisopod_ops.launcher.edgeservice import EdgeSettings, run_edge_sync

    logging.basicConfig(level=logging.INFO, format="edge-sync: %(message)s")
    asyncio.run(run_edge_sync(EdgeSettings()))
    return 0


def _cert(args: argparse.Namespace) -> int:
    tls_dir = (args.state_dir or repo_root() / "var") / "tls"
    names = [*sorted(tls.current_names(tls_dir)), *args.name]
    if args.renew:
        # A running stack's edge sync sees the new files and Traefik serves them.
        files = tls.issue_server_certificate(tls_dir, names)
    else:
        files = tls.ensure_self_signed(tls_dir, names)
    print(f"CA certificate (trust this): {files.ca_file}")
    print(f"server certificate: {files.cert_file}")
    print(f"sha256 fingerprint: {tls.fingerprint(files.cert_file)}")
    return 0
