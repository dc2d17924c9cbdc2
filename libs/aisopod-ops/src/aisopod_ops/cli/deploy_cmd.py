"""`aisopod deploy render`: rewrite the generated files under deploy/."""

from __future__ import annotations

import argparse
from typing import Any

from aisopod_ops.launcher.paths import repo_root


def register(commands: Any) -> None:
    deploy = commands.add_parser("deploy", help="deployment files")
    verbs = deploy.add_subparsers(dest="verb", required=True)
    render = verbs.add_parser("render", help="regenerate deploy/ files from the renderers")
    render.set_defaults(handler=_render)


def _render(_: argparse.Namespace) -> int:
    from aisopod_ops.launcher.deployfiles import render_all  # only this command needs it

    for path in render_all(repo_root()):
        print(f"wrote {path}")
    return 0
