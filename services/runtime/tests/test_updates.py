"""Rolling-restart planning: order, version skew, when a restarted instance is back."""

from __future__ import annotations

from aisopod.discovery import Instance
from aisopod_runtime.updates import _back, plan_order, skew_of


def inst(service: str, name: str, micro: str, version: str = "1.0") -> Instance:
    return Instance(service=service, instance=name, micro_id=micro, version=version, raw={})


def test_core_first_then_edges_then_runtimes_and_the_orchestrator_last() -> None:
    instances = [
        inst("runtime", "runtime-1", "r1"),
        inst("ws-gateway", "ws-1", "w1"),
        inst("runtime", "runtime-2", "r2"),
        inst("auth", "auth-1", "a1"),
        inst("http-api", "http-1", "h1"),
        inst("ratelimit", "rl-1", "l1"),
    ]
    order = [i.instance for i in plan_order(instances, ("runtime", "runtime-1"))]
    assert order == ["rl-1", "auth-1", "http-1", "ws-1", "runtime-2", "runtime-1"]


def test_skew_is_two_versions_of_one_service() -> None:
    assert not skew_of([inst("auth", "a", "1", "1.0"), inst("runtime", "r", "2", "2.0")])
    assert skew_of([inst("auth", "a", "1", "1.0"), inst("auth", "b", "2", "1.1")])


def test_back_means_old_process_gone_and_a_new_one_in_its_place() -> None:
    old = inst("http-api", "http-1", "old")
    before = [old, inst("http-api", "http-2", "x")]
    assert not _back(old, before, before)
    assert not _back(old, before, [before[1]])  # gone, not back yet
    assert _back(old, before, [inst("http-api", "http-1", "new"), before[1]])
    # Random instance names (compose, Kubernetes): the count is restored.
    assert _back(old, before, [before[1], inst("http-api", "http-9", "new")])
