"""`aisopod token create|list|revoke`: operator API tokens for scripts and SDKs, as an admin.

Tokens are accepted in `token` auth mode (`Authorization: Bearer`, or `auth.token` in the
WebSocket `connect`). `create` prints the token once on stdout; only its sha256 is stored.
Talks to the auth service over NATS (`<prefix>.auth.token.*`, see `nats_admin`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aisopod.scopes import Scope
from aisopod_ops.cli.nats_admin import CLI_PRINCIPAL, add_connection_args, emit, run_admin


def register(commands: Any) -> None:
    token = commands.add_parser("token", help="API tokens (admin)")
    verbs = token.add_subparsers(dest="verb", required=True)

    create = verbs.add_parser("create", help="create a token; prints it once")
    create.add_argument(
        "--scopes", nargs="+", required=True, choices=[s.value for s in Scope], metavar="SCOPE"
    )
    create.add_argument("--name", default=None, help="what the token is for")
    add_connection_args(create)
    create.set_defaults(handler=run_admin(_create))

    listing = verbs.add_parser("list", help="tokens (never their values)")
    add_connection_args(listing)
    listing.set_defaults(handler=run_admin(_list))

    revoke = verbs.add_parser("revoke", help="revoke a token (closes its connections)")
    revoke.add_argument("token_id")
    add_connection_args(revoke)
    revoke.set_defaults(handler=run_admin(_revoke))


async def _request(bus: Any, verb: str, payload: dict[str, Any]) -> Any:
    return await bus.request(
        bus.subjects.auth(verb),
        payload,
        timeout=10,
        headers=CLI_PRINCIPAL.to_headers(),
        unavailable="the auth service",
    )


async def _create(args: argparse.Namespace, bus: Any) -> int:
    result = await _request(bus, "token.create", {"scopes": args.scopes, "name": args.name})
    print(f"token {result['tokenId']}: [{','.join(result['scopes'])}]", file=sys.stderr)
    emit(args, result, result["token"])
    return 0


async def _list(args: argparse.Namespace, bus: Any) -> int:
    result = await _request(bus, "token.list", {})
    lines = [
        f"{t['tokenId']}  [{','.join(t['scopes'])}]  {t.get('name') or ''}".rstrip()
        for t in result["tokens"]
    ]
    emit(args, result, "\n".join(lines) or "no tokens")
    return 0


async def _revoke(args: argparse.Namespace, bus: Any) -> int:
    result = await _request(bus, "token.revoke", {"tokenId": args.token_id})
    emit(args, result, f"revoked {result['tokenId']}")
    return 0
