"""nats-server configuration: JetStream on file storage, one user per service.

Subject permissions follow each service's role (architecture.md). A service subscribes
only to its own methods' rpc subjects (generated from the catalogue) and the subjects it
serves; it publishes only what it needs. Replies go out through `allow_responses`.
JetStream's API (`$JS.API.>`, `$KV.>`, `$O.>`) is open to every service user: each one
provisions and uses the shared buckets. The `admin` user (CLI, tests) may do anything.
"""

from __future__ import annotations

import json
from pathlib import Path

from aisopod.catalogue import methods_for
from aisopod.services import ServiceName

JS_PUB = ["$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "$KV.>", "$O.>", "$SRV.>"]
JS_SUB = ["_INBOX.>", "$SRV.>"]


def _rpc_subjects(prefix: str, owner: ServiceName) -> list[str]:
    return [f"{prefix}.rpc.{spec.name}" for spec in methods_for(owner)]


def permissions(prefix: str) -> dict[str, dict[str, list[str]]]:
    p = prefix
    common_pub = [f"{p}.logs.{{svc}}", f"{p}.control.>", *JS_PUB]
    common_sub = [f"{p}.control.>", *JS_SUB]
    table = {
        ServiceName.WS_GATEWAY: (
            [f"{p}.rpc.>", f"{p}.auth.>", f"{p}.ratelimit.>", f"{p}.evt.>", f"{p}.conn.>",
             f"{p}.node.>"],
            [*_rpc_subjects(p, ServiceName.WS_GATEWAY), f"{p}.conn.>", f"{p}.node.>",
             f"{p}.evt.>"],
        ),
        ServiceName.HTTP_API: (
            [f"{p}.rpc.>", f"{p}.auth.>", f"{p}.ratelimit.>", f"{p}.evt.>"],
            [f"{p}.evt.>", f"{p}.conn.>"],
        ),
        ServiceName.AUTH: (
            [f"{p}.ratelimit.>", f"{p}.evt.>", f"{p}.conn.>"],
            [*_rpc_subjects(p, ServiceName.AUTH), f"{p}.auth.>"],
        ),
        ServiceName.RATELIMIT: (
            [],
            [f"{p}.ratelimit.>"],
        ),
        ServiceName.RUNTIME: (
            [f"{p}.rpc.>", f"{p}.evt.>", f"{p}.conn.>", f"{p}.node.>", f"{p}.transcript.>",
             f"{p}.auth.>", f"{p}.ratelimit.>"],
            [*_rpc_subjects(p, ServiceName.RUNTIME), f"{p}.transcript.>"],
        ),
    }
    out: dict[str, dict[str, list[str]]] = {}
    for service, (pub, sub) in table.items():
        out[service.value] = {
            "publish": [s.replace("{svc}", service.value) for s in (*pub, *common_pub)],
            "subscribe": [*sub, *common_sub],
        }
    return out


def render(
    *,
    port: int,
    monitor_port: int,
    store_dir: Path,
    passwords: dict[str, str],
    prefix: str = "aisopod",
    host: str = "127.0.0.1",
) -> str:
    """The nats-server config text (its format accepts JSON values)."""
    perms = permissions(prefix)
    users = []
    for user, password in sorted(passwords.items()):
        entry: dict[str, object] = {"user": user, "password": password}
        if user in perms:
            entry["permissions"] = {
                "publish": {"allow": perms[user]["publish"]},
                "subscribe": {"allow": perms[user]["subscribe"]},
                "allow_responses": True,
            }
        users.append(entry)
    lines = [
        f"listen: {json.dumps(f'{host}:{port}')}",
        f"http: {json.dumps(f'{host}:{monitor_port}')}",
        'server_name: "aisopod-local"',
        "max_payload: 1048576",
        "jetstream {",
        f"  store_dir: {json.dumps(str(store_dir))}",
        "  max_memory_store: 268435456",
        "}",
        f"authorization {{ users: {json.dumps(users, indent=2)} }}",
    ]
    return "\n".join(lines) + "\n"
