"""`aisopod catalogue export`: write the protocol reference generated from the catalogue.

Writes `methods.md` (only its generated block; the prose around it stays) and
`schema.json` into `--dir` (default `docs/protocol`, run from the repository root).
`--check` writes nothing and fails when the files differ from the code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from aisopod.catalogue.export import render_methods_md, render_schema


def register(commands: Any) -> None:
    catalogue = commands.add_parser("catalogue", help="the RPC method catalogue")
    verbs = catalogue.add_subparsers(dest="verb", required=True)
    export = verbs.add_parser(
        "export", help="write docs/protocol/methods.md and schema.json from the catalogue"
    )
    export.add_argument(
        "--dir", type=Path, default=Path("docs/protocol"), help="default: docs/protocol"
    )
    export.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a file is stale"
    )
    export.set_defaults(handler=_export)


def rendered_files(folder: Path) -> dict[Path, str]:
    """Each generated file's path and the text it must have, given what is there now."""
    methods = folder / "methods.md"
    current = methods.read_text(encoding="utf-8") if methods.is_file() else None
    return {methods: render_methods_md(current), folder / "schema.json": render_schema()}


def _export(args: argparse.Namespace) -> int:
    try:
        wanted = rendered_files(args.dir)
    except ValueError as exc:
        print(f"aisopod: {exc}", file=sys.stderr)
        return 1
    stale = [
        path
        for path, text in wanted.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]
    if args.check:
        for path in stale:
            print(f"aisopod: {path} is stale; run `aisopod catalogue export`", file=sys.stderr)
        if not stale:
            print(f"{', '.join(str(p) for p in wanted)}: current")
        return 1 if stale else 0
    args.dir.mkdir(parents=True, exist_ok=True)
    for path in stale:
        path.write_text(wanted[path], encoding="utf-8")
        print(f"wrote {path}")
    if not stale:
        print(f"{', '.join(str(p) for p in wanted)}: current, nothing written")
    return 0
