"""How admin CLI commands (`aisopod devices`, `aisopod token`) reach the gateway: NATS as
the `admin` user, acting as the `cli` principal with operator.admin.

Where NATS is: `--nats-url`, else `AISOPOD_NATS_URL`, else the local stack's record
`<state-dir>/stack.json`. The password: `AISOPOD_NATS_PASSWORD(_FILE)`, else the local
stack's `<state-dir>/secrets/nats-admin.password`. Holding these is what makes the caller
an administrator, as holding the machine's files does for the local stack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats

from aisopod.bus import Bus
from aisopod.errors import AisopodError
from aisopod.principal import Principal
from aisopod.settings import nats_servers
from aisopod.subjects import Subjects

CLI_PRINCIPAL = Principal(id="cli", scopes=("operator.admin",), auth_method="nats-admin")


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=None, help="local stack (./var)")
    parser.add_argument("--nats-url", default=None, help="default: the local stack's")
    parser.add_argument("--prefix", default=os.environ.get("AISOPOD_SUBJECT_PREFIX", "aisopod"))
    parser.add_argument("--json", action="store_true", help="print JSON")


def _state_dir(args: argparse.Namespace) -> Path:
    if args.state_dir is not None:
        return Path(args.state_dir)
    from aisopod_ops.launcher.paths import repo_root

    return repo_root() / "var"


def _nats_url(args: argparse.Namespace) -> str:
    url = args.nats_url or os.environ.get("AISOPOD_NATS_URL")
    if url:
        return str(url)
    record = _state_dir(args) / "stack.json"
    if not record.exists():
        raise SystemExit(f"no NATS URL: pass --nats-url or run a local stack ({record} missing)")
    return str(json.loads(record.read_text())["nats_url"])


def _password(args: argparse.Namespace) -> str:
    path = os.environ.get("AISOPOD_NATS_PASSWORD_FILE")
    if path:
        return Path(path).read_text().strip()
    if os.environ.get("AISOPOD_NATS_PASSWORD"):
        return os.environ["AISOPOD_NATS_PASSWORD"]
    secret = _state_dir(args) / "secrets" / "nats-admin.password"
    if not secret.exists():
        raise SystemExit(f"no NATS admin password: set AISOPOD_NATS_PASSWORD_FILE ({secret})")
    return secret.read_text().strip()


@asynccontextmanager
async def admin_bus(args: argparse.Namespace) -> AsyncIterator[Bus]:
    try:
        nc = await nats.connect(
            nats_servers(_nats_url(args)),
            user=os.environ.get("AISOPOD_NATS_ADMIN_USER", "admin"),
            password=_password(args),
            connect_timeout=3,
            max_reconnect_attempts=0,
            allow_reconnect=False,
        )
    except (OSError, nats.errors.Error) as exc:
        raise SystemExit(f"cannot reach NATS: {exc}") from None
    try:
        yield Bus(nc, Subjects(args.prefix))
    finally:
        await nc.close()


def report_error(exc: AisopodError) -> int:
    print(f"error: {exc.message} ({exc.detail_code})", file=sys.stderr)
    return 1


def emit(args: argparse.Namespace, value: Any, text: str) -> None:
    print(json.dumps(value, indent=2) if args.json else text)


Action = Callable[[argparse.Namespace, Bus], Awaitable[int]]


def run_admin(action: Action) -> Callable[[argparse.Namespace], int]:
    """An argparse handler that runs `action` with an admin bus; errors become exit 1."""

    def handler(args: argparse.Namespace) -> int:
        async def main() -> int:
            async with admin_bus(args) as bus:
                try:
                    return await action(args, bus)
                except AisopodError as exc:
                    return report_error(exc)

        return asyncio.run(main())

    return handler
