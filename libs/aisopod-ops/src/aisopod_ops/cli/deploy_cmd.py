"""`aisopod deploy render`: rewrite the generated files under deploy/."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aisopod_ops.launcher.paths import repo_root


def register(commands: Any) -> None:
    deploy = commands.add_parser("deploy", help="deployment files")
    verbs = deploy.add_subparsers(dest="verb", required=True)
    render = verbs.add_parser("render", help="regenerate deploy/ files from the renderers")
    render.set_defaults(handler=_render)
    cluster = verbs.add_parser(
        "nats-cluster", help="NATS configs for a cluster on 3 or 5 machines (one node each)"
    )
    cluster.add_argument(
        "--host",
        action="append",
        required=True,
        metavar="HOST",
        help="a machine's address the other nodes reach (repeat: 3 or 5 times)",
    )
    cluster.add_argument("--out", type=Path, required=True, help="directory to write into")
    cluster.set_defaults(handler=_nats_cluster)


def _nats_cluster(args: argparse.Namespace) -> int:
    from aisopod_ops.launcher.deployfiles import nats_cluster_files
    from aisopod_ops.launcher.secrets import ensure_secret, write_private

    # Kept beside the configs: rendering again keeps the cluster's route password.
    password = ensure_secret(args.out / "route.password", 24)
    try:
        files = nats_cluster_files(args.host, password)
    except ValueError as exc:
        raise SystemExit(f"deploy nats-cluster: {exc}") from None
    for relative, text in files.items():
        write_private(args.out / relative, text)
        print(f"wrote {args.out / relative}")
    urls = ",".join(f"nats://{host}:4222" for host in args.host)
    print(f"services: AISOPOD_NATS_URL={urls} AISOPOD_NATS_REPLICAS=3")
    return 0


def _render(_: argparse.Namespace) -> int:
    from aisopod_ops.launcher.deployfiles import render_all  # only this command needs it

    for path in render_all(repo_root()):
        print(f"wrote {path}")
    return 0
