"""The route class a path falls in (aisopod/routeclass.py): first match wins, prefixes
segment-wise, exact paths only themselves; the one matcher ratelimit and http-api share."""

from __future__ import annotations

from aisopod.config.sections.limits import LimitsSection
from aisopod.routeclass import RouteClasses, covers


def test_a_prefix_covers_segment_wise_and_an_exact_path_only_itself() -> None:
    assert covers("/ws", False, "/ws") and covers("/ws", False, "/ws/x")
    assert not covers("/ws", False, "/wsx")
    assert covers("/v1/", False, "/v1/models") and covers("/v1/", False, "/v1/")
    assert covers("/", False, "/anything/at/all")
    assert covers("/openclaw", True, "/openclaw")
    assert not covers("/openclaw", True, "/openclaw/assets/app.js")


def test_the_default_classes_and_the_first_match_wins() -> None:
    classes = RouteClasses.from_section(LimitsSection())
    assert classes.index("/ws") == 0
    assert classes.index("/openclaw") == 1
    # Every API path, however many there are, falls in the one `http` class.
    for path in ("/v1/chat/completions", "/v1/models/a%2Fb", "/status", "/hooks/wake"):
        assert classes.index(path) == 2
    assert classes.index("/openclaw/assets/app.js") == 2
    assert classes.index("/v1/models?limit=3") == 2  # the query is not part of the path


def test_an_uncovered_path_has_no_class() -> None:
    section = LimitsSection.model_validate(
        {"routes": [{"pathPrefix": "/v1", "rule": "http"}, {"path": "/status", "rule": "http"}]}
    )
    classes = RouteClasses.from_section(section)
    assert classes.index("/v1/models") == 0
    assert classes.index("/status") == 1
    assert classes.index("/status/x") is None
    assert classes.index("/hooks/wake") is None
