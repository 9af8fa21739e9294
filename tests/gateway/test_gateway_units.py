"""Pure pieces of the gateway: project resolution, argument checks, response cap, auth rule, metrics."""
from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from codebase_gateway import validation
from codebase_gateway.auth import InsecureHttpConfiguration, http_auth, is_loopback
from codebase_gateway.metrics import Metrics
from codebase_gateway.project_resolution import find_config, resolve_project


def write_config(directory: Path, text: str) -> Path:
    path = directory / ".codebase-mcp" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def test_the_nearest_config_above_the_working_directory_names_the_project(tmp_path):
    write_config(tmp_path, '{"version": 1, "project": {"name": "outer"}}')
    inner = tmp_path / "services" / "api"
    inner.mkdir(parents=True)
    config = write_config(tmp_path / "services", '{"version": 1, "project": {"name": "svc", "id": "svc-42"}}')
    before = config.read_bytes()
    resolved = resolve_project(None, inner / ".")
    assert (resolved.project_id, resolved.source, resolved.config_path) == ("svc-42", "config", config)
    assert config.read_bytes() == before  # read, never written
    assert resolve_project("explicit", inner).project_id == "explicit"
    assert resolve_project(None, None).project_id == "default"
    assert find_config(tmp_path).project_id == "outer"


@pytest.mark.parametrize("text, message", [
    ("not json", "cannot read project config"),
    ('{"project": {}}', "needs"),
    ('{"project": {"name": "ok", "id": 5}}', "must be a string"),
])
def test_a_broken_config_is_an_error_naming_the_file(tmp_path, text, message):
    write_config(tmp_path, text)
    with pytest.raises(validation.InvalidArgument, match=message):
        resolve_project(None, tmp_path)


def test_paths_outside_the_allowed_roots_are_refused(tmp_path):
    inside = tmp_path / "repos" / "one"
    inside.mkdir(parents=True)
    assert validation.directory_path(str(inside), [tmp_path / "repos"]) == inside
    assert validation.directory_path("/etc", []) == Path("/etc")
    with pytest.raises(validation.InvalidArgument, match="outside the allowed roots"):
        validation.directory_path("/etc", [tmp_path / "repos"])
    link = tmp_path / "repos" / "escape"
    link.symlink_to("/etc")
    with pytest.raises(validation.InvalidArgument, match="outside the allowed roots"):
        validation.directory_path(str(link), [tmp_path / "repos"])


def test_oversized_search_responses_are_truncated_and_say_so():
    result = {"chunk_id": 1, "file_path": "a.py", "start_line": 1, "end_line": 2, "symbol": None,
              "language": "python", "content": "x" * 30_000, "similarity_score": 0.5,
              "context_before": "", "context_after": ""}
    response = {"results": [dict(result, chunk_id=i) for i in range(5)], "total_count": 5,
                "project_id": "p", "database_name": "d", "latency_ms": 1.0}
    capped = validation.capped_search_response(response)
    assert capped["truncated"] is True and len(json.dumps(capped)) <= validation.MAX_RESPONSE_CHARS
    assert [r["chunk_id"] for r in capped["results"]] == [0, 1]
    single = validation.capped_search_response(dict(response, results=[dict(result, content="y" * 200_000)]))
    assert single["truncated"] and len(json.dumps(single)) <= validation.MAX_RESPONSE_CHARS
    assert validation.capped_search_response(dict(response, results=[]))["truncated"] is False


def test_http_auth_rule():
    assert http_auth("127.0.0.1", None, no_auth=True) is None
    assert http_auth("::1", None, no_auth=True) is None
    assert http_auth("0.0.0.0", secrets.token_urlsafe(32), no_auth=False) is not None
    with pytest.raises(InsecureHttpConfiguration, match="entropy"):
        http_auth("0.0.0.0", "a" * 32, no_auth=False)
    with pytest.raises(InsecureHttpConfiguration):
        http_auth("0.0.0.0", None, no_auth=True)
    with pytest.raises(InsecureHttpConfiguration):
        http_auth("127.0.0.1", None, no_auth=False)
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and not is_loopback("10.0.0.1")


def test_metrics_render_prometheus_text():
    metrics = Metrics()
    metrics.record_call("search_code", failed=False)
    metrics.record_call("search_code", failed=True)
    metrics.observe_search(0.02)
    text = metrics.render({"succeeded": 3})
    assert 'codebase_mcp_tool_calls_total{tool="search_code"} 2' in text
    assert 'codebase_mcp_tool_errors_total{tool="search_code"} 1' in text
    assert 'codebase_mcp_indexing_runs{state="succeeded"} 3' in text
    assert 'codebase_mcp_search_latency_seconds_bucket{le="0.025"} 1' in text
    assert "codebase_mcp_search_latency_seconds_count 1" in text


def test_long_listings_are_truncated_and_say_so():
    jobs = [{"job_id": f"job-{i}", "status_message": "m" * 1_000} for i in range(200)]
    capped = validation.capped_listing({"jobs": jobs, "total_count": 200}, "jobs")
    assert capped["truncated"] and 0 < len(capped["jobs"]) < 200
    assert len(json.dumps(capped)) <= validation.MAX_RESPONSE_CHARS
    assert validation.capped_listing({"jobs": jobs[:3], "total_count": 3}, "jobs")["truncated"] is False


def test_indexing_run_status_maps_to_the_original_job_status():
    from codebase_gateway.control_plane.kubernetes import run_status

    run = {
        "metadata": {"name": "shop-1a2b3c4d-0f0f0f0f", "creationTimestamp": "2026-01-01T00:00:00Z",
                     "annotations": {"codebase.mcp.dev/project-id": "Shop Front",
                                     "codebase.mcp.dev/repo-path": "/workspace/shop"}},
        "spec": {"projectRef": {"name": "shop-front-1a2b3c4d"}, "mode": "Full", "repoPath": "shop"},
        "status": {"conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Queued",
                                   "message": "waiting for run x of project shop to finish"}]},
    }
    queued = run_status(run)
    assert (queued.status, queued.project_id, queued.repo_path, queued.force_reindex) == \
        ("pending", "Shop Front", "/workspace/shop", True)
    assert queued.status_message.startswith("waiting for run x")

    run["status"] = {"conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running", "message": ""}],
                     "progress": {"filesTotal": 10, "filesDone": 4, "chunksDone": 9}}
    assert run_status(run).status == "running"
    assert run_status(run).progress == {"files_total": 10, "files_done": 4, "chunks_done": 9}

    run["status"] = {"conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded", "message": "ok"}],
                     "summary": {"filesIndexed": 0, "filesUnchanged": 10, "filesSkipped": 1, "chunksCreated": 0,
                                 "durationSeconds": 0.4}}
    done = run_status(run)
    assert done.status == "succeeded" and done.status_message.startswith("no changes")
    assert done.to_dict()["status"] == "completed"  # the tools keep the original server's word
    assert done.summary["files_unchanged"] == 10 and done.error_message is None

    for reason, state in (("Cancelled", "cancelled"), ("Failed", "failed"), ("DeadlineExceeded", "failed")):
        run["status"] = {"conditions": [{"type": "Succeeded", "status": "False", "reason": reason, "message": "why"}]}
        assert run_status(run).status == state
    assert run_status(run).error_message == "why"
