"""`aisopod devices list|approve|reject|revoke|rotate|remove`: device pairing, as an admin.

Talks to the auth service over NATS (see `nats_admin`), through the same catalogue
methods (`device.*`) an operator's client calls.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from aisopod.scopes import Role, Scope
from aisopod_ops.cli.nats_admin import CLI_PRINCIPAL, add_connection_args, emit, run_admin

SCOPES = [s.value for s in Scope]


def register(commands: Any) -> None:
    devices = commands.add_parser("devices", help="device pairing and device tokens")
    verbs = devices.add_subparsers(dest="verb", required=True)

    listing = verbs.add_parser("list", help="pending requests and paired devices")
    add_connection_args(listing)
    listing.set_defaults(handler=run_admin(_list))

    approve = verbs.add_parser("approve", help="approve a pairing request")
    approve.add_argument("request_id")
    approve.add_argument("--scopes", nargs="+", choices=SCOPES, help="grant only these")
    add_connection_args(approve)
    approve.set_defaults(handler=run_admin(_approve))

    reject = verbs.add_parser("reject", help="reject a pairing request")
    reject.add_argument("request_id")
    add_connection_args(reject)
    reject.set_defaults(handler=run_admin(_reject))

    for verb, helptext, handler in (
        ("revoke", "revoke a device's token (closes its connections)", _revoke),
        ("rotate", "issue a new token for a device (prints it once)", _rotate),
    ):
        parser = verbs.add_parser(verb, help=helptext)
        parser.add_argument("device_id")
        parser.add_argument("--role", choices=[r.value for r in Role], default=Role.OPERATOR.value)
        if verb == "rotate":
            parser.add_argument("--scopes", nargs="+", choices=SCOPES, help="within the approved")
        add_connection_args(parser)
        parser.set_defaults(handler=run_admin(handler))

    remove = verbs.add_parser("remove", help="unpair a device (closes its connections)")
    remove.add_argument("device_id")
    add_connection_args(remove)
    remove.set_defaults(handler=run_admin(_remove))


async def _call(bus: Any, method: str, params: dict[str, Any]) -> Any:
    return await bus.call(method, params, principal=CLI_PRINCIPAL, timeout=10)


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


async def _list(args: argparse.Namespace, bus: Any) -> int:
    result = await _call(bus, "device.pair.list", {})
    lines = ["pending:"]
    for p in result["pending"]:
        client = (p.get("client") or {}).get("id", "?")
        lines.append(
            f"  {p['requestId']}  device {p['deviceId'][:16]}…  {p['role']}  "
            f"[{','.join(p['scopes'])}]  client {client}  ip {p.get('ip') or '-'}  "
            f"at {_when(p['requestedAt'])}"
        )
    lines.append("paired:")
    for d in result["paired"]:
        lines.append(
            f"  {d['deviceId']}  roles {','.join(d['roles'])}  [{','.join(d['scopes'])}]  "
            f"since {_when(d['pairedAt'])}"
        )
    emit(args, result, "\n".join(lines))
    return 0


async def _approve(args: argparse.Namespace, bus: Any) -> int:
    params: dict[str, Any] = {"requestId": args.request_id}
    if args.scopes:
        params["scopes"] = args.scopes
    result = await _call(bus, "device.pair.approve", params)
    emit(args, result, f"approved {result['requestId']} (device {result['deviceId']})")
    return 0


async def _reject(args: argparse.Namespace, bus: Any) -> int:
    result = await _call(bus, "device.pair.reject", {"requestId": args.request_id})
    emit(args, result, f"rejected {result['requestId']} (device {result['deviceId']})")
    return 0


async def _revoke(args: argparse.Namespace, bus: Any) -> int:
    params = {"deviceId": args.device_id, "role": args.role}
    result = await _call(bus, "device.token.revoke", params)
    emit(args, result, f"revoked the {args.role} token of {args.device_id}")
    return 0


async def _rotate(args: argparse.Namespace, bus: Any) -> int:
    params: dict[str, Any] = {"deviceId": args.device_id, "role": args.role}
    if args.scopes:
        params["scopes"] = args.scopes
    result = await _call(bus, "device.token.rotate", params)
    # The token alone on stdout (for scripts); what it grants on stderr.
    print(
        f"{args.role} token for {args.device_id}: [{','.join(result['scopes'])}]", file=sys.stderr
    )
    emit(args, result, result["token"])
    return 0


async def _remove(args: argparse.Namespace, bus: Any) -> int:
    result = await _call(bus, "device.pair.remove", {"deviceId": args.device_id})
    emit(args, result, f"removed {args.device_id}")
    return 0
