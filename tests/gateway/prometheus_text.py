"""A strict reader of the Prometheus text exposition format (0.0.4), enough to check a scrape.

Every line must be a HELP/TYPE comment or a sample of a declared family; label values must be
properly quoted and escaped; histogram buckets must be cumulative and end in +Inf = _count.
"""
from __future__ import annotations

import re

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*)?\}})? (\S+)$")
LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("",), "gauge": ("",)}

Labels = tuple[tuple[str, str], ...]


def parse(text: str) -> dict[tuple[str, Labels], float]:
    """{(sample name, sorted labels): value}; AssertionError naming the first bad line."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    types: dict[str, str] = {}
    samples: dict[tuple[str, Labels], float] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("# HELP "):
            assert re.match(rf"^# HELP {NAME} .+$", line), f"line {number}: bad HELP: {line!r}"
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in SUFFIXES and name not in types, f"line {number}: bad or repeated TYPE: {line!r}"
            types[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"line {number}: not a sample: {line!r}"
            name, labels, value = match.groups()
            family = _family_of(name, types)
            assert family, f"line {number}: sample {name} of no declared family"
            key = (name, tuple(sorted(LABEL_PAIR.findall(labels or ""))))
            assert key not in samples, f"line {number}: repeated sample {line!r}"
            samples[key] = float(value)
    _check_histograms(types, samples)
    return samples


def _family_of(name: str, types: dict[str, str]) -> str | None:
    for family, kind in types.items():
        if any(name == family + suffix for suffix in SUFFIXES[kind]):
            return family
    return None


def _check_histograms(types: dict[str, str], samples: dict[tuple[str, Labels], float]) -> None:
    for family in (f for f, kind in types.items() if kind == "histogram"):
        series: dict[Labels, list[tuple[float, float]]] = {}
        for (name, labels), value in samples.items():
            if name == f"{family}_bucket":
                le = dict(labels)["le"]
                rest = tuple(pair for pair in labels if pair[0] != "le")
                series.setdefault(rest, []).append((float(le), value))
        for labels, buckets in series.items():
            buckets.sort()
            counts = [count for _, count in buckets]
            assert counts == sorted(counts), f"{family}{labels}: buckets are not cumulative"
            assert buckets[-1][0] == float("inf"), f"{family}{labels}: no +Inf bucket"
            assert samples[(f"{family}_count", labels)] == counts[-1], f"{family}{labels}: _count != +Inf"


def value(samples: dict[tuple[str, Labels], float], name: str, **labels: str) -> float:
    """A sample's value, 0 when the series does not exist yet (a counter never incremented)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
