"""One vocabulary for a run's state and one sentence for what a run did.

Every layer (the indexer's `index_runs`, the local gateway's registry, the operator, the
Kubernetes control plane) says `succeeded` for a finished run; an IndexingRun's condition
type `Succeeded` is the same word in Kubernetes' spelling. Only the MCP tools keep the word of
the original codebase-mcp server, `completed`: `tool_status` translates at that boundary.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED = "pending", "running", "succeeded", "failed", "cancelled"
RUN_STATES = (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINISHED_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})

# The MCP tools' words (get_indexing_status, list_indexing_jobs): unchanged for agents.
_TOOL_WORDS = {SUCCEEDED: "completed"}
TOOL_STATUSES = tuple(_TOOL_WORDS.get(state, state) for state in RUN_STATES)


def tool_status(state: str) -> str:
    """The MCP tools' word for a run state."""
    return _TOOL_WORDS.get(state, state)


def state_of_tool_status(status: str) -> str:
    """The run state an MCP tool's status word stands for (`completed` → `succeeded`)."""
    return next((state for state, word in _TOOL_WORDS.items() if word == status), status)


def summary_sentence(summary: Mapping[str, Any]) -> str:
    """What a finished run did, the sentence a user reads first (status messages, conditions, the CLI)."""
    indexed = summary.get("files_indexed", 0)
    unchanged = summary.get("files_unchanged", 0)
    deleted = summary.get("files_deleted", 0)
    skipped = summary.get("files_skipped", 0)
    seconds = float(summary.get("duration_seconds", 0.0) or 0.0)
    if indexed == 0 and deleted == 0:
        return f"no changes: {unchanged} files unchanged, {skipped} skipped ({seconds:.1f} s)"
    withheld = summary.get("chunks_skipped", 0)
    left_out = f", {withheld} left out for holding credentials" if withheld else ""
    return (f"indexed {indexed} files ({summary.get('chunks_created', 0)} chunks{left_out}), "
            f"{unchanged} unchanged, {deleted} deleted, {skipped} skipped ({seconds:.1f} s)")
