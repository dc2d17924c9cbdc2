"""How many threads the launcher lets its Go children (nats-server, Traefik) run Go code on
at once: their `GOMAXPROCS` (docs/deployment.md, "GOMAXPROCS").

On a small host every process of a request's path shares the same few cores; a Go
process allowed all of them spends much of its CPU handing work between its threads
(nats-server: 28 % of its samples in the kernel's task switch on two cores). One thread
does the same work for less CPU, and one core of nats-server is far above what the Python
services can send it, so on hosts with at most `SMALL_HOST_CPUS` CPUs the launcher gives
nats-server `GOMAXPROCS=1`. Who chooses, first to last: the launcher option
(`--nats-gomaxprocs N`; 0 = Go's own default, every CPU), the user's own `GOMAXPROCS` in
the environment (left as it is), this rule.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# At most this many CPUs: a "small host", where the rule applies.
SMALL_HOST_CPUS = 4
# What a Go child gets on a small host when nobody chose (None: Go's default).
SMALL_HOST_GOMAXPROCS: dict[str, int | None] = {"nats": 1, "traefik": None}


def host_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, as Go counts them)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def go_child_env(
    base: Mapping[str, str], process: str, option: int | None, cpus: int
) -> dict[str, str]:
    """`base` with the `GOMAXPROCS` the Go child `process` ("nats" or "traefik") runs with.

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
    small = SMALL_HOST_GOMAXPROCS.get(process)
    if small is not None and cpus <= SMALL_HOST_CPUS:
        env["GOMAXPROCS"] = str(small)
    return env
