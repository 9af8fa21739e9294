"""Issue 10, the operator's pure parts: the Indexed Job of a sharded run, its progress and its failure message."""
from __future__ import annotations

import kubernetes_validate
import pytest

from codebase_operator import jobs, transitions
from codebase_operator.jobs import JobState
from codebase_operator.specs import InvalidSpec, check_run_spec

from .test_operator_units import CONFIG, PROJECT, RUN, build, env_of


def with_parallelism(project_value=None, run_value=None):
    project = {**PROJECT, "spec": {**PROJECT["spec"], "indexing": {**PROJECT["spec"]["indexing"]}}}
    if project_value is not None:
        project["spec"]["indexing"]["parallelism"] = project_value
    run = {**RUN, "spec": {**RUN["spec"]}}
    if run_value is not None:
        run["spec"]["parallelism"] = run_value
    return run, project


def test_a_run_is_one_indexed_job_with_one_pod_per_shard():
    job = build(*with_parallelism(project_value=4))
    kubernetes_validate.validate(job, "1.33", strict=True)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 4, 4)
    assert spec["backoffLimitPerIndex"] == 3 and spec["maxFailedIndexes"] == 0  # the project's backoffLimit, per shard
    assert env_of(job)["CODEBASE_MCP_SHARD_COUNT"] == "4"
    assert "JOB_COMPLETION_INDEX" not in env_of(job)  # Kubernetes sets it in each pod


def test_the_run_overrides_the_projects_parallelism_and_the_default_is_one():
    assert build(*with_parallelism(project_value=4, run_value=2))["spec"]["completions"] == 2
    assert build(*with_parallelism())["spec"]["completions"] == 1
    assert env_of(build(*with_parallelism()))["CODEBASE_MCP_SHARD_COUNT"] == "1"


@pytest.mark.parametrize("value", [0, 65, "4", True, 2.5])
def test_a_parallelism_out_of_bounds_is_an_invalid_spec(value):
    with pytest.raises(InvalidSpec, match="parallelism"):
        check_run_spec("r", {"projectRef": {"name": "p"}, "parallelism": value})
    with pytest.raises(InvalidSpec, match="spec.indexing.parallelism"):
        build(*with_parallelism(project_value=value))


def test_progress_adds_the_shards_up_and_counts_the_finished_ones():
    row = {"files_total": 30, "files_done": 21, "chunks_done": 90, "shards": [
        {"shard_index": 0, "shard_count": 3, "state": "succeeded", "files_done": 10, "chunks_done": 40},
        {"shard_index": 2, "shard_count": 3, "state": "running", "files_done": 11, "chunks_done": 50}]}
    progress = transitions.progress(row, 3)
    assert (progress["filesDone"], progress["chunksDone"], progress["shardSummary"]) == (21, 90, "1/3 shards")
    assert [(s["index"], s["state"], s["filesDone"]) for s in progress["shards"]] == [
        (0, "Succeeded", 10), (1, "Pending", 0), (2, "Running", 11)]
    assert transitions.progress(row, 1) == {"filesTotal": 30, "filesDone": 21, "chunksDone": 90}


def test_a_failed_sharded_run_names_its_shard():
    report = {"ok": False, "reason": "EmbeddingError", "message": "server gone", "shard": {"index": 2, "count": 4}}
    state = transitions.finished(JobState("Failed", "PodFailurePolicy", "exit code 1"), report, shards=4)
    assert state.message.startswith("shard 2 of 4: EmbeddingError") and state.reason == "Failed"
    lost = transitions.finished(JobState("Failed", "MaxFailedIndexesExceeded", "too many"), None, shards=4,
                                failed_indexes="1")
    assert lost.message.startswith("shard 1 of 4: MaxFailedIndexesExceeded")


def pod(index, finished, message):
    return {"metadata": {"annotations": {jobs.COMPLETION_INDEX_ANNOTATION: str(index)}},
            "status": {"containerStatuses": [{"name": "indexer", "state": {"terminated": {
                "finishedAt": finished, "message": message}}}]}}


def test_the_report_of_a_finished_indexed_job_is_the_last_shards_or_the_failed_ones():
    partial = '{"ok": true, "summary": {"files_indexed": 1, "partial": true}}'
    whole = '{"ok": true, "summary": {"files_indexed": 5, "partial": false}}'
    pods = [pod(0, "2026-12-02T10:00:02Z", partial), pod(1, "2026-12-02T10:00:01Z", whole)]
    assert jobs.final_report(pods, succeeded=True)["summary"]["files_indexed"] == 5
    failed = [pod(0, "2026-12-02T10:00:02Z", partial), pod(3, "2026-12-02T10:00:01Z", '{"ok": false, "reason": "X"}')]
    assert jobs.final_report(failed, succeeded=False)["shard"] == {"index": 3}


def test_the_operators_default_applies_when_neither_run_nor_project_says():
    import dataclasses

    from codebase_operator import command
    from codebase_operator.config import JobDefaults

    wide = dataclasses.replace(CONFIG, jobs=JobDefaults(parallelism=3))
    assert build(*with_parallelism(), config=wide)["spec"]["completions"] == 3
    assert build(*with_parallelism(project_value=2), config=wide)["spec"]["completions"] == 2
    parser = command.argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--admin-database-url", "postgresql:///x", "--default-parallelism", "0"])
    with pytest.raises(ValueError, match="--default-parallelism"):
        command.config_from_args(args)
