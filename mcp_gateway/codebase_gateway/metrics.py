"""In-process counters rendered in the Prometheus text exposition format."""
from __future__ import annotations

import bisect
from collections import Counter

SEARCH_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.tool_calls: Counter[str] = Counter()
        self.tool_errors: Counter[str] = Counter()
        self._latency_counts = [0] * (len(SEARCH_LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0

    def record_call(self, tool: str, *, failed: bool) -> None:
        self.tool_calls[tool] += 1
        if failed:
            self.tool_errors[tool] += 1

    def observe_search(self, seconds: float) -> None:
        self._latency_counts[bisect.bisect_left(SEARCH_LATENCY_BUCKETS, seconds)] += 1
        self._latency_sum += seconds

    def render(self, runs_by_state: dict[str, int]) -> str:
        lines = [
            "# HELP codebase_mcp_tool_calls_total MCP tool calls, by tool.",
            "# TYPE codebase_mcp_tool_calls_total counter",
            *(f'codebase_mcp_tool_calls_total{{tool="{t}"}} {n}' for t, n in sorted(self.tool_calls.items())),
            "# HELP codebase_mcp_tool_errors_total MCP tool calls that returned an error, by tool.",
            "# TYPE codebase_mcp_tool_errors_total counter",
            *(f'codebase_mcp_tool_errors_total{{tool="{t}"}} {n}' for t, n in sorted(self.tool_errors.items())),
            "# HELP codebase_mcp_indexing_runs Indexing runs known to the control plane, by state.",
            "# TYPE codebase_mcp_indexing_runs gauge",
            *(f'codebase_mcp_indexing_runs{{state="{s}"}} {n}' for s, n in sorted(runs_by_state.items())),
            "# HELP codebase_mcp_search_latency_seconds search_code latency, query embedding included.",
            "# TYPE codebase_mcp_search_latency_seconds histogram",
        ]
        cumulative = 0
        for bound, count in zip((*map(str, SEARCH_LATENCY_BUCKETS), "+Inf"), self._latency_counts):
            cumulative += count
            lines.append(f'codebase_mcp_search_latency_seconds_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f"codebase_mcp_search_latency_seconds_sum {self._latency_sum:.6f}")
        lines.append(f"codebase_mcp_search_latency_seconds_count {cumulative}")
        return "\n".join(lines) + "\n"
