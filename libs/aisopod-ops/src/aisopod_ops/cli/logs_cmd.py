"""`aisopod logs [-f] [--service S] [--level L] [-n N]`: the gateway's logs (logs.tail).

Prints the newest lines, then with `-f` keeps following the LOGS stream from the returned
cursor until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from aisopod_ops.cli.call_cmd import (
    GatewayClient,
    GatewayError,
    add_connection_args,
    report,
    resolve,
)

SERVICES = ("ws-gateway", "http-api", "auth", "ratelimit", "runtime")
LEVELS = ("debug", "info", "warning", "error", "critical")


def register(commands: Any) -> None:
    logs = commands.add_parser("logs", help="show (and follow) the gateway's logs")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("--service", choices=SERVICES, default=None)
    logs.add_argument("--level", choices=LEVELS, default=None, help="minimum level")
    logs.add_argument("-n", "--lines", type=int, default=100, help="newest lines first shown")
    logs.add_argument("--interval", type=float, default=1.0, help="seconds between polls (-f)")
    logs.add_argument("--json", action="store_true", help="one JSON object per line")
    add_connection_args(logs)
    logs.set_defaults(handler=_logs)


def format_line(line: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(line, sort_keys=True)
    stamp = time.strftime("%H:%M:%S", time.localtime(line["ts"] / 1000))
    where = line.get("instance") or line["service"]
    return (
        f"{stamp}.{line['ts'] % 1000:03d} {line['level'].upper():<8} {where:<14} {line['message']}"
    )


def _logs(args: argparse.Namespace) -> int:
    base: dict[str, Any] = {}
    if args.service:
        base["service"] = args.service
    if args.level:
        base["level"] = args.level

    async def main(url: str, token: str) -> None:
        async with GatewayClient(url, token, timeout=args.timeout) as client:
            limit = max(1, min(args.lines, 5000))
            page = await client.call("logs.tail", {**base, "limit": limit})
            while True:
                for line in page["lines"]:
                    print(format_line(line, args.json), flush=True)
                if not args.follow:
                    return
                if page.get("reset"):
                    print("aisopod: (log lines were lost: the stream moved on)", file=sys.stderr)
                await asyncio.sleep(args.interval)
                page = await client.call(
                    "logs.tail", {**base, "cursor": page["cursor"], "limit": 5000}
                )

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main(*resolve(args)))
    except GatewayError as exc:
        return report(exc)
    return 0
