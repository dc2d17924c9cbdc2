"""The NATS URL setting, parsed without pydantic (settings.py re-exports it)."""

from __future__ import annotations


def nats_servers(url: str) -> list[str]:
    """The servers of a NATS URL setting: one URL or a comma-separated list (a cluster's
    nodes; the client fails over between them). nats-py takes a list, not the string."""
    servers = [part.strip() for part in url.split(",") if part.strip()]
    if not servers:
        raise ValueError("no NATS server URL given")
    return servers
