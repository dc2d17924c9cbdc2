"""The `aisopod` command. Each sub-command lives in its own module with `register()`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

COMMAND_MODULES = (
    "stack_cmd",
    "deploy_cmd",
    "edge_cmd",
    "call_cmd",
    "config_cmd",
    "logs_cmd",
    "devices_cmd",
    "token_cmd",
    "catalogue_cmd",
)


def _modules(argv: Sequence[str]) -> list[ModuleType]:
    """The command modules to register. `aisopod stack …` registers only its own: the
    launcher supervises for as long as the stack runs, and the other commands' imports
    (NATS admin client, catalogue, config models) would stay in its memory for nothing
    (docs/deployment.md, "The launcher's own memory")."""
    names = COMMAND_MODULES[:1] if list(argv[:1]) == ["stack"] else COMMAND_MODULES
    return [importlib.import_module(f"aisopod_ops.cli.{name}") for name in names]


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aisopod", description="aisopod gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in _modules(argv):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args_list = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(args_list).parse_args(args_list)
    try:
        code = args.handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`aisopod call … | head`): not an error of ours to trace.
        # Python would report it again flushing stdout at exit, so stdout goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 141  # what a shell reports for a command ended by SIGPIPE
    sys.exit(code)
