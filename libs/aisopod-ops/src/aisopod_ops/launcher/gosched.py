"""How many threads the launcher lets its Go children (nats-server, Traefik) run Go code on
at once: their `GOMAXPROCS` (docs/deployment.md, "GOMAXPROCS"); and how much heap they
keep between collections: their `GOGC` (at the end; docs/deployment.md, "GOGC and
GOMEMLIMIT of nats-server and Traefik").

On a small host every process of a request's path shares the same few cores; a Go
process allowed all of them spends much of its CPU handing work between its threads
(nats-server: 28 % of its samples in the kernel's task switch on two cores). One thread
does the same work for less CPU (bench/gomaxprocs_ab.py, two cores: nats-server −17–23 %
per agent turn and −42–52 % per rate-limit check, Traefik −27–39 % per proxied /v1
request; no throughput lost). Where
one core still carries more than the rest of the path can send is what bounds the rule:
nats-server spends ~30–80 µs per request, a fraction of any Python service's, so it gets
1 on hosts with up to 4 CPUs; Traefik spends ~260 µs per /v1 request, as much as an
http-api, so it gets 1 only on hosts with up to 2 CPUs (on 4, one core of Traefik could
become the ceiling of a path that otherwise grows with replicas; not measured, not
applied). Who chooses, first to last: the launcher option (`--nats-gomaxprocs N`,
`--traefik-gomaxprocs N`; 0 = Go's own default, every CPU), the user's own `GOMAXPROCS` in
the environment (left as it is), this rule.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Per Go child: on hosts with at most this many CPUs it runs with GOMAXPROCS=1 unless
# someone chose otherwise (above that, Go's default). Not the nodes of a local
# `--nats-cluster` ("nats-node"): Raft heartbeats, elections and a rejoining node's
# catch-up were not measured on one thread, and the failover suite is what that layout
# is for.
ONE_THREAD_UP_TO_CPUS = {"nats": 4, "traefik": 2}


def host_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, as Go counts them)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def go_child_env(
    base: Mapping[str, str], process: str, option: int | None, cpus: int
) -> dict[str, str]:
    """`base` with the `GOMAXPROCS` the Go child `process` ("nats", "nats-node" for a
    node of a cluster, or "traefik") runs with.

    `option`: the launcher option (None: not given; 0: Go's default, so any inherited
    `GOMAXPROCS` is dropped; N: exactly N)."""
    env = dict(base)
    if option is not None:
        if option < 0:
            raise ValueError(f"GOMAXPROCS for {process}: {option} is not 0 or more")
        if option == 0:
            env.pop("GOMAXPROCS", None)
        else:
            env["GOMAXPROCS"] = str(option)
        return env
    if env.get("GOMAXPROCS"):
        return env
    if cpus <= ONE_THREAD_UP_TO_CPUS.get(process, 0):
        env["GOMAXPROCS"] = "1"
    return env


# Per Go child: the `GOGC` the launcher gives it when the environment sets none. A lower
# GOGC makes the heap goal, and so what the runtime keeps mapped between collections,
# a smaller multiple of the live heap. nats-server at 50 keeps ~3 MiB less after a burst
# of use, for no throughput measured (docs/deployment.md, "After use"); Traefik is left at
# Go's default: at 50 it spent 7–23 % more CPU per proxied `/v1` request.
GOGC_FOR = {"nats": "50"}


def go_memory_env(base: Mapping[str, str], process: str) -> dict[str, str]:
    """`base` with the `GOGC` the Go child `process` runs with: the user's own `GOGC` (or
    `GOMEMLIMIT`, which sizes the heap by another rule) left as it is, else GOGC_FOR."""
    env = dict(base)
    wanted = GOGC_FOR.get(process)
    if wanted is not None and not env.get("GOGC") and not env.get("GOMEMLIMIT"):
        env["GOGC"] = wanted
    return env
