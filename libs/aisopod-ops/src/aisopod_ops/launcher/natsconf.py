"""nats-server configuration: JetStream on file storage, one user per service.

Subject permissions follow each service's role (docs/protocol/architecture.md). A service subscribes
only to its own methods' rpc subjects (generated from the catalogue) and the subjects it
serves; it publishes only what it needs. Replies go out through `allow_responses`.
JetStream is reached through API subjects named after each stream, so a service's user may
use only the buckets, streams and object stores grants.py gives it: look them up and
provision them, read them (gets, consumers), and write the ones it owns. The `admin` user
(CLI, tests) may do anything.
"""

from __future__ import annotations

import json
from pathlib import Path

from aisopod.catalogue import methods_for
from aisopod.grants import SERVICE_GRANTS, Access, Grants
from aisopod.services import ServiceName
from aisopod.state import bucket_name, stream_name
from aisopod_ops.launcher.addresses import host_port
from aisopod_ops.launcher.secrets import EDGE_SYNC_USER as EDGE_SYNC_USER

# Account-level look-ups every JetStream client makes; flow control and micro discovery.
JS_PUB = ["$JS.API.INFO", "$JS.API.STREAM.NAMES", "$JS.FC.>", "$SRV.>"]
JS_SUB = ["_INBOX.>", "$SRV.>"]
# The edge sync (launcher/edgesync.py) only reads KV `config` to keep Traefik's CORS live.


def _rpc_subjects(prefix: str, owner: ServiceName) -> list[str]:
    return [f"{prefix}.rpc.{spec.name}" for spec in methods_for(owner)]


def permissions(prefix: str) -> dict[str, dict[str, list[str]]]:
    p = prefix
    # `_INBOX.>`: replies. `allow_responses` alone lets a reply out only through the node
    # that delivered the request; in a cluster, a service whose node died answers what it
    # was doing through another one (its subscribe grant already covers inboxes).
    common_pub = [f"{p}.logs.{{svc}}", f"{p}.control.>", "_INBOX.>", *JS_PUB]
    common_sub = [f"{p}.control.>", *JS_SUB]
    table = {
        ServiceName.WS_GATEWAY: (
            [
                f"{p}.rpc.>",
                f"{p}.auth.>",
                f"{p}.ratelimit.>",
                f"{p}.evt.>",
                f"{p}.conn.>",
                f"{p}.node.>",
            ],
            [*_rpc_subjects(p, ServiceName.WS_GATEWAY), f"{p}.conn.>", f"{p}.node.>", f"{p}.evt.>"],
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
            # Replicas forward a decision to the replica owning the key (ratelimit.peer.*).
            [f"{p}.ratelimit.>"],
            [f"{p}.ratelimit.>"],
        ),
        ServiceName.RUNTIME: (
            [
                f"{p}.rpc.>",
                f"{p}.evt.>",
                f"{p}.conn.>",
                f"{p}.node.>",
                f"{p}.transcript.>",
                f"{p}.usage.>",
                f"{p}.auth.>",
                f"{p}.ratelimit.>",
            ],
            [*_rpc_subjects(p, ServiceName.RUNTIME), f"{p}.transcript.>"],
        ),
    }
    out: dict[str, dict[str, list[str]]] = {}
    for service, (pub, sub) in table.items():
        own = jetstream_permissions(prefix, SERVICE_GRANTS[service])
        out[service.value] = {
            "publish": [s.replace("{svc}", service.value) for s in (*pub, *common_pub, *own)],
            "subscribe": [*sub, *common_sub],
        }
    out[EDGE_SYNC_USER] = edge_sync_permissions(prefix)
    return out


def _stream_api(stream: str, *, write: bool) -> list[str]:
    """The JetStream API subjects of one stream: look-up and creation, message gets,
    consumers and their acks; with `write`, config updates and purges too (state.py
    reconciles limits; KV and object deletes purge). A reader may create a missing stream
    but never change an existing one."""
    subjects = [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.STREAM.CREATE.{stream}",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.INFO.{stream}.>",
        f"$JS.API.CONSUMER.DELETE.{stream}.>",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.>",
        f"$JS.ACK.{stream}.>",
    ]
    if write:
        subjects += [f"$JS.API.STREAM.UPDATE.{stream}", f"$JS.API.STREAM.PURGE.{stream}"]
    return subjects


def jetstream_permissions(prefix: str, grants: Grants) -> list[str]:
    """Publish permissions for the JetStream state in `grants`: its streams' API subjects,
    and the KV (`$KV.<bucket>.>`) and object (`$O.<store>.>`) subjects of what it writes."""
    out: list[str] = []
    for name, access in grants.buckets.items():
        bucket = bucket_name(prefix, name)
        out += _stream_api(f"KV_{bucket}", write=access is Access.WRITE)
        if access is Access.WRITE:
            out.append(f"$KV.{bucket}.>")
    for name, access in grants.streams.items():
        out += _stream_api(stream_name(prefix, name), write=access is Access.WRITE)
    for name, access in grants.object_stores.items():
        store = bucket_name(prefix, name)
        out += _stream_api(f"OBJ_{store}", write=access is Access.WRITE)
        if access is Access.WRITE:
            out.append(f"$O.{store}.>")
    return out


def edge_sync_permissions(prefix: str) -> dict[str, list[str]]:
    """Read-only watch of KV `config`: stream info, an ordered push consumer delivered to
    an inbox (created, deleted, flow-controlled), nothing else."""
    stream = "KV_" + bucket_name(prefix, "config")
    return {
        "publish": [
            f"$JS.API.STREAM.INFO.{stream}",
            f"$JS.API.CONSUMER.CREATE.{stream}",
            f"$JS.API.CONSUMER.CREATE.{stream}.>",
            f"$JS.API.CONSUMER.INFO.{stream}.>",
            f"$JS.API.CONSUMER.DELETE.{stream}.>",
            "$JS.FC.>",
        ],
        "subscribe": ["_INBOX.>"],
    }


# The user nats-servers of one cluster authenticate their routes with (no client uses it).
ROUTE_USER = "route"


def cluster_block(
    *, name: str, listen: str, routes: list[str], password: str, user: str = ROUTE_USER
) -> str:
    """The `cluster {}` section of one node: where it takes routes, the credentials a
    route must present, and the other nodes' route addresses (`host:port`; listing its
    own is harmless, so every node may get the same list)."""
    urls = [f"nats-route://{user}:{password}@{route}" for route in routes]
    return (
        "cluster {\n"
        f"  name: {json.dumps(name)}\n"
        f"  listen: {json.dumps(listen)}\n"
        f"  authorization {{ user: {json.dumps(user)}, password: {json.dumps(password)} }}\n"
        f"  routes: {json.dumps(urls)}\n"
        # Clients get the URLs they were configured with, not ones gossiped by the
        # cluster (which may be addresses they cannot reach).
        "  no_advertise: true\n"
        "}\n"
    )


def password_var(user: str) -> str:
    """The env variable that holds a user's password in the compose NATS config."""
    return "NATS_PASSWORD_" + user.upper().replace("-", "_")


def render(
    *,
    port: int,
    monitor_port: int | None,
    store_dir: Path | str,
    users: list[str],
    passwords: dict[str, str] | None = None,
    prefix: str = "aisopod",
    host: str = "127.0.0.1",
    server_name: str = "aisopod-local",
    monitor_host: str = "127.0.0.1",
    cluster: str = "",
) -> str:
    """The nats-server config text. With `passwords`, they are written in (local stack,
    file 0600); without, each is read from the server's environment (`$NATS_PASSWORD_X`,
    compose and Kubernetes secrets). `cluster` is a node's `cluster_block` (none: a single
    server).

    `monitor_port` None: no monitoring endpoint. It has no login of its own and lists
    connections, users and subjects (`/connz?auth=true`, `/subsz`), so it is off unless a
    caller asks for it, and then on `monitor_host`, loopback unless said otherwise
    (docs/deployment.md, "Security")."""
    perms = permissions(prefix)
    entries = []
    for user in sorted(users):
        if passwords is not None:
            secret = json.dumps(passwords[user])
        else:
            secret = "$" + password_var(user)
        entry = f"    {{ user: {json.dumps(user)}, password: {secret}"
        if user in perms:
            entry += (
                ", permissions: {"
                f" publish: {{ allow: {json.dumps(perms[user]['publish'])} }},"
                f" subscribe: {{ allow: {json.dumps(perms[user]['subscribe'])} }},"
                " allow_responses: true }"
            )
        entries.append(entry + " }")
    users_text = ",\n".join(entries)
    return (
        f"listen: {json.dumps(host_port(host, port))}\n"
        + (
            f"http: {json.dumps(host_port(monitor_host, monitor_port))}\n"
            if monitor_port is not None
            else ""
        )
        + f"server_name: {json.dumps(server_name)}\n"
        "max_payload: 1048576\n"
        "jetstream {\n"
        f"  store_dir: {json.dumps(str(store_dir))}\n"
        "  max_memory_store: 268435456\n"
        "}\n"
        f"authorization {{\n  users: [\n{users_text}\n  ]\n}}\n" + cluster
    )
