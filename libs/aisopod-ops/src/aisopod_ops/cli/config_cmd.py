"""`aisopod config get|set|patch`: the gateway configuration through the gateway.

`get` prints the document (secrets redacted) or one dotted `--path`; `set FILE` writes a
whole YAML/JSON document; `patch JSON|@file` applies an RFC 7396 merge patch. Writes read
the current hash first (or take `--base-hash`) and, with `--apply`, wait until every
live instance runs the result (config.apply). Redacted placeholders keep stored secrets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from aisopod_ops.cli.call_cmd import (
    GatewayClient,
    GatewayError,
    add_connection_args,
    load_json,
    report,
    resolve,
)


def register(commands: Any) -> None:
    config = commands.add_parser("config", help="read or change the gateway configuration")
    verbs = config.add_subparsers(dest="verb", required=True)
    get = verbs.add_parser("get", help="print the configuration (secrets redacted)")
    get.add_argument("--path", default=None, help="dotted path, e.g. limits.rules")
    add_connection_args(get)
    get.set_defaults(handler=_get)
    for name, help_text in (
        ("set", "replace the whole document with FILE (YAML or JSON)"),
        ("patch", "apply a merge patch (JSON, or @file with YAML or JSON)"),
    ):
        verb = verbs.add_parser(name, help=help_text)
        verb.add_argument("document", help="FILE" if name == "set" else "JSON or @file")
        verb.add_argument("--base-hash", default=None, help="default: the current hash")
        verb.add_argument("--apply", action="store_true", help="wait for every instance")
        add_connection_args(verb)
        verb.set_defaults(handler=_write, kind=name)


def _get(args: argparse.Namespace) -> int:
    try:
        url, token = resolve(args)
        result = asyncio.run(_one(url, token, args.timeout, "config.get", {}))
    except GatewayError as exc:
        return report(exc)
    # On stderr, whatever --path: what of the stored document is not in use, and why.
    for problem in result.get("problems") or ():
        print(f"aisopod: not in use (fails validation): {problem}", file=sys.stderr)
    value: Any = result["config"]
    for part in (args.path or "").split("."):
        if part:
            if not isinstance(value, dict) or part not in value:
                print(f"aisopod: no {args.path!r} in the configuration", file=sys.stderr)
                return 1
            value = value[part]
    if args.path:
        print(json.dumps(value, indent=2, sort_keys=True))
    else:
        print(json.dumps({"hash": result["hash"], "config": value}, indent=2, sort_keys=True))
    return 0


async def _one(url: str, token: str, timeout: float, method: str, params: dict[str, Any]) -> Any:
    async with GatewayClient(url, token, timeout=timeout) as client:
        return await client.call(method, params)


def _read_document(text: str, kind: str) -> Any:
    if kind == "set":
        return yaml.safe_load(Path(text).read_text())
    if text.startswith("@"):
        return yaml.safe_load(Path(text[1:]).read_text())
    return load_json(text)


def _write(args: argparse.Namespace) -> int:
    try:
        document = _read_document(args.document, args.kind)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"aisopod: {args.document}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(document, dict):
        print("aisopod: the document must be a mapping", file=sys.stderr)
        return 2
    key = "config" if args.kind == "set" else "patch"
    method = "config.apply" if args.apply else f"config.{args.kind}"

    async def main(url: str, token: str) -> Any:
        async with GatewayClient(url, token, timeout=args.timeout) as client:
            base = args.base_hash or (await client.call("config.get", {}))["hash"]
            return await client.call(method, {key: document, "baseHash": base})

    try:
        result = asyncio.run(main(*resolve(args)))
    except GatewayError as exc:
        return report(exc)
    summary = {k: v for k, v in result.items() if k != "config"}
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0
