"""Debian's Chromium for the browser tests (docs/quality.md: no browser download): where it is
and how it runs here: no sandbox (root in CI), nothing fetched from the network, every
host name but loopback unresolvable."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
