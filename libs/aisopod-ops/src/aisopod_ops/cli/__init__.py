"""The `aisopod` command. Each sub-command lives in its own module with `register()`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aisopod_ops.cli import (
    call_cmd,
    catalogue_cmd,
    config_cmd,
    deploy_cmd,
    devices_cmd,
    edge_cmd,
    logs_cmd,
    stack_cmd,
    token_cmd,
)

COMMAND_MODULES = (
    stack_cmd,
    deploy_cmd,
    edge_cmd,
    call_cmd,
    config_cmd,
    logs_cmd,
    devices_cmd,
    token_cmd,
    catalogue_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aisopod", description="aisopod gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.handler(args))
