"""Reading a Prometheus text exposition (a service's `/metrics`) in tests."""

from __future__ import annotations


def samples(text: str, name: str) -> list[float]:
    """The values of every sample of `name`: unlabelled, or under any label set (when
    `name` has none of its own), or exactly the labelled series `name` spells out."""
    found = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        if series == name or ("{" not in name and series.startswith(name + "{")):
            found.append(float(value))
    return found


def total(text: str, name: str) -> float:
    """The sum of `name`'s samples; an AssertionError when the exposition has none."""
    values = samples(text, name)
    assert values, f"{name} is missing from the exposition"
    return sum(values)
