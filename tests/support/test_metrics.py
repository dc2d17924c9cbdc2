from __future__ import annotations

import pytest

from tests.support.metrics import samples, total

EXPOSITION = """# HELP hits_total Hits.
# TYPE hits_total counter
hits_total 3.0
probes_total{outcome="answered"} 2.0
probes_total{outcome="unanswered"} 1.0
probes_total_created 1.7e+09
"""


def test_samples_by_name_or_by_series() -> None:
    assert samples(EXPOSITION, "hits_total") == [3.0]
    assert samples(EXPOSITION, "probes_total") == [2.0, 1.0]  # not `probes_total_created`
    assert samples(EXPOSITION, 'probes_total{outcome="unanswered"}') == [1.0]
    assert samples(EXPOSITION, "misses_total") == []


def test_total_sums_and_refuses_a_missing_metric() -> None:
    assert total(EXPOSITION, "probes_total") == 3.0
    with pytest.raises(AssertionError):
        total(EXPOSITION, "misses_total")
