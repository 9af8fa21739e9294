"""In-process counters rendered in the Prometheus text exposition format (version 0.0.4).

One renderer serves both the `metrics://prometheus` resource and the HTTP `/metrics` route.
"""
from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable

from codebase_indexer.connections import ConnectionUsage

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SEARCH_LATENCY_BUCKETS = LATENCY_BUCKETS[:10]
# A client may call any name; only the server's own tools get a series of their own, so a
# client cannot grow the gateway's memory or the scrape by calling made-up names.
UNKNOWN_TOOL = "unknown"


def label_value(text: str) -> str:
    """A label value escaped as the text format requires (backslash, double quote, newline)."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Histogram:
    """Cumulative buckets, a sum and a count, as Prometheus histograms are exposed."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self._counts = [0] * (len(buckets) + 1)
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        self._counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self._sum += seconds

    def lines(self, name: str, labels: str = "") -> list[str]:
        prefix = f"{labels}," if labels else ""
        lines, cumulative = [], 0
        for bound, count in zip((*map(str, self.buckets), "+Inf"), self._counts, strict=True):
            cumulative += count
            lines.append(f'{name}_bucket{{{prefix}le="{bound}"}} {cumulative}')
        braces = f"{{{labels}}}" if labels else ""
        lines.append(f"{name}_sum{braces} {self._sum:.6f}")
        lines.append(f"{name}_count{braces} {cumulative}")
        return lines


def _family(name: str, kind: str, help_text: str, samples: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


class Metrics:
    def __init__(self, known_tools: Iterable[str] = ()) -> None:
        self.known_tools = frozenset(known_tools)
        self.tool_calls: Counter[str] = Counter()
        self.tool_errors: Counter[str] = Counter()
        self._tool_latency: dict[str, Histogram] = {}
        self._search_latency = Histogram(SEARCH_LATENCY_BUCKETS)

    def tool_label(self, tool: str) -> str:
        return tool if not self.known_tools or tool in self.known_tools else UNKNOWN_TOOL

    def record_call(self, tool: str, *, failed: bool, seconds: float | None = None) -> None:
        tool = self.tool_label(tool)
        self.tool_calls[tool] += 1
        if failed:
            self.tool_errors[tool] += 1
        if seconds is not None:
            self._tool_latency.setdefault(tool, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def observe_search(self, seconds: float) -> None:
        self._search_latency.observe(seconds)

    def render(self, runs_by_state: dict[str, int], connections: ConnectionUsage | None = None) -> str:
        def per_tool(name: str, counts: Counter[str]) -> list[str]:
            return [f'{name}{{tool="{label_value(t)}"}} {n}' for t, n in sorted(counts.items())]

        lines = [
            *_family("codebase_mcp_tool_calls_total", "counter", "MCP tool calls, by tool.",
                     per_tool("codebase_mcp_tool_calls_total", self.tool_calls)),
            *_family("codebase_mcp_tool_errors_total", "counter",
                     "MCP tool calls that returned an error, by tool.",
                     per_tool("codebase_mcp_tool_errors_total", self.tool_errors)),
            *_family("codebase_mcp_tool_duration_seconds", "histogram", "MCP tool call duration, by tool.",
                     (line for tool, histogram in sorted(self._tool_latency.items())
                      for line in histogram.lines("codebase_mcp_tool_duration_seconds",
                                                  f'tool="{label_value(tool)}"'))),
            *_family("codebase_mcp_indexing_runs", "gauge", "Indexing runs known to the control plane, by state.",
                     (f'codebase_mcp_indexing_runs{{state="{label_value(s)}"}} {n}'
                      for s, n in sorted(runs_by_state.items()))),
            *_family("codebase_mcp_search_latency_seconds", "histogram",
                     "search_code latency, query embedding included.",
                     self._search_latency.lines("codebase_mcp_search_latency_seconds")),
        ]
        if connections is not None:
            lines += connection_lines(connections)
        return "\n".join(lines) + "\n"


def connection_lines(usage: ConnectionUsage) -> list[str]:
    return [
        *_family("codebase_mcp_database_connections_max", "gauge",
                 "Ceiling on the gateway's PostgreSQL connections (--max-database-connections).",
                 [f"codebase_mcp_database_connections_max {usage.limit}"]),
        *_family("codebase_mcp_database_connections_reserved", "gauge",
                 "Connections of the ceiling taken by open pools and one-off connections.",
                 [f"codebase_mcp_database_connections_reserved {usage.reserved}"]),
        *_family("codebase_mcp_database_connections", "gauge",
                 "Open PostgreSQL connections of the gateway, in use or idle in a pool.",
                 [f'codebase_mcp_database_connections{{state="in_use"}} {usage.in_use}',
                  f'codebase_mcp_database_connections{{state="idle"}} {usage.idle}']),
        *_family("codebase_mcp_database_search_pools", "gauge",
                 "Project databases with a cached search pool.",
                 [f"codebase_mcp_database_search_pools {usage.search_pools}"]),
    ]
