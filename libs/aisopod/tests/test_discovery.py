"""Discovery replies: another deployment's services on the same NATS account are not ours."""

from __future__ import annotations

from aisopod.discovery import _instance


def test_only_this_deployments_instances_count() -> None:
    ours = {"name": "auth", "id": "m1", "metadata": {"instance": "auth-1", "prefix": "aisopod"}}
    theirs = {"name": "auth", "id": "m2", "metadata": {"instance": "auth-1", "prefix": "other"}}
    unlabeled = {"name": "auth", "id": "m3", "metadata": {}}  # a service of an older release
    found = _instance(ours, "aisopod")
    assert found is not None and found.key == ("auth", "auth-1")
    assert _instance(theirs, "aisopod") is None
    assert _instance(unlabeled, "aisopod") is not None
    assert _instance({"name": "auth"}, "aisopod") is None
