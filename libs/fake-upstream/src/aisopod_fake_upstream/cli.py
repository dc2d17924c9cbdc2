"""`aisopod-fake-upstream`: run the fake OpenAI-compatible server as a process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path

from .config import DEFAULT_MODELS, FakeUpstreamConfig
from .server import loop_factory, serve

API_KEY_ENV = "AISOPOD_FAKE_API_KEY"


def parse_args(argv: list[str] | None = None) -> tuple[FakeUpstreamConfig, Path | None]:
    parser = argparse.ArgumentParser(
        prog="aisopod-fake-upstream",
        description="A fake OpenAI Chat Completions server for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--ready-file", type=Path, help='written with {"url": ..., "pid": ...} once listening'
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV),
        help=f"require 'Authorization: Bearer KEY' on /v1 (default: ${API_KEY_ENV})",
    )
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        help=f"a model id for /v1/models; repeatable (default: {', '.join(DEFAULT_MODELS)})",
    )
    parser.add_argument(
        "--strict-models", action="store_true", help="404 for a model not in the list"
    )
    parser.add_argument("--max-recorded", type=int, default=1000)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    config = FakeUpstreamConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key or None,
        models=tuple(args.models) if args.models else DEFAULT_MODELS,
        strict_models=args.strict_models,
        max_recorded=args.max_recorded,
    )
    return config, args.ready_file


def main(argv: list[str] | None = None) -> None:
    config, ready_file = parse_args(argv)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(config, ready_file))
