"""One word for a finished run (`succeeded`) everywhere but the MCP tools (`completed`, the original
server's), and one sentence for what a run did, whichever control plane ran it."""
from __future__ import annotations

import asyncpg
import pytest

from codebase_indexer.outcomes import SUCCEEDED, TOOL_STATUSES, summary_sentence

SUMMARY = {"files_total": 6, "files_indexed": 4, "files_unchanged": 1, "files_deleted": 0, "files_skipped": 1,
           "chunks_created": 12, "chunks_skipped": 2, "duration_seconds": 1.5}
SENTENCE = "indexed 4 files (12 chunks, 2 left out for holding credentials), 1 unchanged, 0 deleted, 1 skipped (1.5 s)"


def test_the_sentence_says_what_the_run_did_or_that_nothing_changed():
    assert summary_sentence(SUMMARY) == SENTENCE
    assert summary_sentence({"files_unchanged": 9, "duration_seconds": 0.25}) == \
        "no changes: 9 files unchanged, 0 skipped (0.2 s)"


def test_an_indexing_run_and_the_gateway_reading_it_say_the_same_sentence():
    pytest.importorskip("kopf")
    from codebase_gateway.control_plane.kubernetes import run_status
    from codebase_operator import transitions
    from codebase_operator.jobs import JobState

    state = transitions.finished(JobState("Succeeded"), {"ok": True, "summary": SUMMARY})
    assert (state.status, state.reason, state.message) == ("True", "Succeeded", SENTENCE)
    run = {"metadata": {"name": "r1"}, "spec": {"mode": "Incremental"},
           "status": {"summary": transitions.summary({"ok": True, "summary": SUMMARY}),
                      "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded",
                                      "message": state.message}]}}
    status = run_status(run)
    assert status.status == SUCCEEDED and status.finished and status.status_message == SENTENCE
    assert status.to_dict()["status"] == "completed"  # what agents have always read


def test_the_tools_status_filter_keeps_the_original_words():
    from codebase_gateway import validation

    assert TOOL_STATUSES == ("pending", "running", "completed", "failed", "cancelled")
    assert validation.job_state("completed") == SUCCEEDED
    with pytest.raises(validation.InvalidArgument, match="status must be one of pending, running, completed"):
        validation.job_state("succeeded")


async def test_jobs_recorded_by_an_earlier_release_read_as_succeeded(postgres_url):
    from codebase_gateway.control_plane.registry import REGISTRY_DATABASE, ensure_registry
    from codebase_indexer.postgres import database_url

    url = await ensure_registry(postgres_url)
    conn = await asyncpg.connect(database_url(postgres_url, REGISTRY_DATABASE))
    try:
        await conn.execute(
            "INSERT INTO indexing_jobs (job_id, project_id, database_name, repo_path, force_reindex, state, owner) "
            "VALUES ('old-release-job', 'p', 'd', '/r', false, 'completed', 'gone')")
        await ensure_registry(postgres_url)  # what the next gateway start does
        assert await conn.fetchval("SELECT state FROM indexing_jobs WHERE job_id = 'old-release-job'") == SUCCEEDED
    finally:
        await conn.execute("DELETE FROM indexing_jobs WHERE job_id = 'old-release-job'")
        await conn.close()
    assert url.endswith(REGISTRY_DATABASE) or REGISTRY_DATABASE in url
