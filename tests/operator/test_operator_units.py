"""Unit tests of the operator's pure parts: the Job builder, status transitions, spec checks, the CLI."""
from __future__ import annotations

import argparse
import json

import kubernetes_validate
import pytest

from codebase_operator import command, conditions, jobs, transitions
from codebase_operator.config import OperatorConfig, WorkspaceVolume
from codebase_operator.jobs import JobState
from codebase_operator.specs import DNS_LABEL, InvalidSpec, Source, check_project_spec, check_run_spec, run_source

CONFIG = OperatorConfig(admin_database_url="postgresql://admin:pw@db.example:5432/postgres",
                        indexer_image="registry.example/indexer:1.0",
                        workspace=WorkspaceVolume(claim_name="sources"))
PROJECT = {"metadata": {"name": "shop", "namespace": "team", "uid": "p-uid"},
           "spec": {"projectId": "Shop Backend", "source": {"path": "shop"},
                    "indexing": {"include": ["**/*.py", "**/*.go"], "maxFileSize": 2048},
                    "embedding": {"provider": "openai", "model": "text-embedding-3-small",
                                  "url": "https://llm.example/v1", "apiKeySecret": {"name": "llm", "key": "token"}},
                    "indexerTemplate": {"backoffLimit": 3, "resources": {"limits": {"memory": "4Gi"}}}}}
RUN = {"metadata": {"name": "shop-nightly", "namespace": "team", "uid": "r-uid"},
       "spec": {"projectRef": {"name": "shop"}, "mode": "Full"}}


def build(run=RUN, project=PROJECT, config=CONFIG):
    return jobs.build_job(run, project, run_source(run["spec"], project["spec"]), config)


def env_of(job) -> dict:
    return {var["name"]: var.get("value", var.get("valueFrom")) for var in
            job["spec"]["template"]["spec"]["containers"][0]["env"]}


# The Job builder.

def test_job_name_is_deterministic_unique_per_run_and_a_dns_label():
    assert jobs.job_name("shop-nightly", "r-uid") == jobs.job_name("shop-nightly", "r-uid")
    assert jobs.job_name("shop-nightly", "r-uid") != jobs.job_name("shop-nightly", "other-uid")
    long_name = jobs.job_name("x" * 63, "uid")
    assert len(long_name) <= 63 and long_name.startswith("ir-x") and DNS_LABEL.match(long_name)
    assert DNS_LABEL.match(jobs.job_name("Weird_Name.v2", "uid"))


def test_job_is_owned_by_the_run_and_valid_for_kubernetes():
    job = build()
    kubernetes_validate.validate(job, "1.33", strict=True)
    assert job["metadata"]["name"] == jobs.job_name("shop-nightly", "r-uid")
    assert job["metadata"]["ownerReferences"] == [{
        "apiVersion": "codebase.mcp.dev/v1alpha1", "kind": "IndexingRun", "name": "shop-nightly",
        "uid": "r-uid", "controller": True, "blockOwnerDeletion": True}]
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["codebase.mcp.dev/run"] == "shop-nightly" and labels["codebase.mcp.dev/project"] == "shop"


def test_job_runs_once_hardened_and_bounded():
    spec = build()["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "codebase-indexer"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert spec["backoffLimit"] == 3  # the project's override
    assert spec["activeDeadlineSeconds"] == CONFIG.jobs.active_deadline_seconds
    assert spec["ttlSecondsAfterFinished"] >= 24 * 3600
    fail_job = spec["podFailurePolicy"]["rules"][0]
    assert fail_job["action"] == "FailJob" and fail_job["onExitCodes"]["values"] == [1, 2]
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}}
    assert container["terminationMessagePath"] == "/dev/termination-log"


def test_job_env_carries_the_run_and_takes_credentials_only_from_secrets():
    job = build()
    env = env_of(job)
    assert env["CODEBASE_MCP_DATABASE_URL"] == {"secretKeyRef": {"name": "shop-db", "key": "url"}}
    assert env["CODEBASE_MCP_EMBEDDING_API_KEY"] == {"secretKeyRef": {"name": "llm", "key": "token"}}
    assert env["CODEBASE_MCP_PROJECT_ID"] == "Shop Backend" and env["CODEBASE_MCP_RUN_ID"] == "r-uid"
    assert env["CODEBASE_MCP_INDEX_MODE"] == "full"
    assert env["CODEBASE_MCP_SOURCE_PATH"] == "/workspace/shop"
    assert env["CODEBASE_MCP_INCLUDE"] == "**/*.py,**/*.go" and env["CODEBASE_MCP_MAX_FILE_SIZE"] == "2048"
    assert env["CODEBASE_MCP_EMBEDDING_PROVIDER"] == "openai"
    assert env["CODEBASE_MCP_TERMINATION_MESSAGE_PATH"] == "/dev/termination-log"
    assert "pw" not in json.dumps(job), "the admin password must never reach a Job"


def test_path_sources_mount_the_workspace_read_only():
    pod = build()["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert volumes["workspace"]["persistentVolumeClaim"] == {"claimName": "sources", "readOnly": True}
    assert mounts["workspace"] == {"name": "workspace", "mountPath": "/workspace", "readOnly": True}
    assert mounts["scratch"]["mountPath"] == "/tmp" and "emptyDir" in volumes["scratch"]


def test_run_overrides_and_git_sources():
    git_project = {**PROJECT, "spec": {**PROJECT["spec"], "source": {"git": {
        "url": "https://git.example/shop.git", "ref": "main", "credentialsSecret": "shop-git"}}}}
    run = {**RUN, "spec": {**RUN["spec"], "gitRef": "v2"}}
    job = build(run, git_project)
    env = env_of(job)
    assert env["CODEBASE_MCP_GIT_URL"] == "https://git.example/shop.git" and env["CODEBASE_MCP_GIT_REF"] == "v2"
    assert env["CODEBASE_MCP_GIT_PASSWORD"] == {"secretKeyRef": {"name": "shop-git", "key": "password",
                                                                 "optional": True}}
    assert "workspace" not in {v["name"] for v in job["spec"]["template"]["spec"]["volumes"]}
    assert run_source({"repoPath": "shop/sub"}, PROJECT["spec"]) == Source(path="shop/sub")
    with pytest.raises(InvalidSpec, match="source is a path"):
        run_source({"gitRef": "v2"}, PROJECT["spec"])


def test_path_source_without_a_workspace_volume_is_an_invalid_spec():
    with pytest.raises(InvalidSpec, match="--workspace-claim or --workspace-host-path"):
        build(config=OperatorConfig(admin_database_url="postgresql:///x"))


# Reading Jobs and Pods.

def test_job_state_reads_terminal_conditions_only():
    assert jobs.job_state({"status": {"active": 1}}) == JobState("Active")
    assert jobs.job_state({"status": {"conditions": [
        {"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"}]}}).phase == "Active"
    failed = jobs.job_state({"status": {"conditions": [
        {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "too long"}]}})
    assert failed == JobState("Failed", "DeadlineExceeded", "too long")
    assert jobs.job_state({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}).phase == "Succeeded"


def _pod(job_name, message, finished, uid="job-uid"):
    return {"metadata": {"labels": {"job-name": job_name}, "ownerReferences": [{"uid": uid, "controller": True}]},
            "status": {"containerStatuses": [{"name": "indexer", "state": {"terminated": {
                "message": message, "finishedAt": finished}}}]}}


def test_termination_message_comes_from_the_jobs_latest_pod():
    job = {"metadata": {"name": "ir-a-1", "uid": "job-uid"}}
    pods = [_pod("ir-a-1", "first", "2026-01-01T00:00:01Z"), _pod("ir-a-1", "second", "2026-01-01T00:00:05Z"),
            _pod("ir-other", "other", "2026-01-01T00:00:09Z"),
            _pod("ir-a-1", "stale", "2026-01-01T00:00:09Z", uid="older-job-uid")]
    assert jobs.termination_message(jobs.pods_of_job(pods, job)) == "second"


def test_report_is_the_last_json_line_with_ok():
    report = '{"ok": true, "summary": {"files_indexed": 3}}'
    assert jobs.parse_report(report) == {"ok": True, "summary": {"files_indexed": 3}}
    logs = 'Traceback...\nValueError: x\n{"ok": false, "reason": "DatabaseError", "message": "down"}\n'
    assert jobs.parse_report(logs)["reason"] == "DatabaseError"
    assert jobs.parse_report("killed") is None and jobs.parse_report(None) is None
    assert jobs.parse_report('{"no": "ok field"}') is None


# Status transitions.

def test_conditions_keep_transition_time_until_the_status_changes():
    first = conditions.set_condition(None, type_="Succeeded", status="Unknown", reason="Pending", message="m",
                                     observed_generation=1, now="2026-01-01T00:00:00Z")
    second = conditions.set_condition(first, type_="Succeeded", status="Unknown", reason="Running", message="m",
                                      observed_generation=1, now="2026-01-01T00:01:00Z")
    third = conditions.set_condition(second, type_="Succeeded", status="True", reason="Succeeded", message="m",
                                     observed_generation=2, now="2026-01-01T00:02:00Z")
    assert second[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z" and second[0]["reason"] == "Running"
    assert third[0]["lastTransitionTime"] == "2026-01-01T00:02:00Z" and third[0]["observedGeneration"] == 2
    assert conditions.set_condition(third, type_="Other", status="False", reason="R", message="x" * 10000,
                                    observed_generation=None)[0]["type"] == "Other"
    assert len(conditions.truncate("x" * 10000)) == conditions.MAX_MESSAGE_LENGTH


def test_run_status_sets_completion_time_once_and_only_when_finished():
    running = transitions.run_status(None, transitions.running("ir-a"), generation=1, now="T1", jobName="ir-a")
    assert "completionTime" not in running and running["jobName"] == "ir-a"
    assert running["conditions"][0]["status"] == "Unknown" and not transitions.is_finished(running)
    done = transitions.run_status(running, transitions.finished(JobState("Succeeded"), None), generation=1, now="T2")
    assert done["completionTime"] == "T2" and transitions.is_finished(done)
    again = transitions.run_status({**running, **done}, transitions.cancelled("late"), generation=1, now="T3")
    assert "completionTime" not in again  # already set: kept by the merge patch


@pytest.mark.parametrize("job, report, expected", [
    (JobState("Succeeded"), {"ok": True, "summary": {"files_indexed": 4}}, ("True", "Succeeded")),
    (JobState("Failed", "DeadlineExceeded", "too slow"), None, ("False", "DeadlineExceeded")),
    (JobState("Failed", "PodFailurePolicy"), {"ok": False, "reason": "SourceNotFound", "message": "no dir"},
     ("False", "Failed")),
    (JobState("Failed", "BackoffLimitExceeded"), {"ok": False, "reason": "Cancelled", "message": "SIGTERM"},
     ("False", "Cancelled")),
    (JobState("Failed", "BackoffLimitExceeded", "limit"), None, ("False", "Failed")),
])
def test_finished_states(job, report, expected):
    state = transitions.finished(job, report)
    assert (state.status, state.reason) == expected
    if report and report.get("reason") == "SourceNotFound":
        assert state.message == "SourceNotFound: no dir"
    assert state.event_type == ("Normal" if expected[0] == "True" else "Warning")


def test_summary_progress_and_last_run_from_the_report():
    report = {"ok": True, "summary": {"files_total": 5, "files_indexed": 4, "files_skipped": 1, "chunks_created": 12,
                                      "duration_seconds": 1.5, "skipped_by_reason": {"binary": 1}}}
    summary = transitions.summary(report)
    assert summary == {"filesTotal": 5, "filesIndexed": 4, "filesSkipped": 1, "chunksCreated": 12,
                       "durationSeconds": 1.5}
    assert transitions.final_progress(summary, None) == {"filesTotal": 5, "filesDone": 5, "chunksDone": 12}
    assert transitions.last_run("r", "T", True, summary) == {"name": "r", "completionTime": "T", "succeeded": True,
                                                            "files": 4, "chunks": 12}
    assert transitions.progress({"files_total": 7, "files_done": 3, "chunks_done": 10}) == {
        "filesTotal": 7, "filesDone": 3, "chunksDone": 10}
    assert transitions.summary({"ok": False}) is None and transitions.progress(None) is None


def test_is_news_only_when_status_or_reason_changes():
    status = {"conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Queued"}]}
    assert not transitions.is_news(status, transitions.queued("p", "other"))
    assert transitions.is_news(status, transitions.running("job"))


def test_project_ready_follows_database_ready():
    ready = transitions.project_status(None, transitions.database_ready("cb_proj_x_01234567"), generation=3,
                                       database_name="cb_proj_x_01234567", secret_name="x-db", now="T")
    assert {c["type"]: (c["status"], c["reason"]) for c in ready["conditions"]} == {
        "DatabaseReady": ("True", "DatabaseReady"), "Ready": ("True", "Ready")}
    assert ready["database"] == {"name": "cb_proj_x_01234567", "secretName": "x-db"}
    failing = transitions.project_status(ready, transitions.provisioning_failed("down"), generation=3)
    assert {c["type"]: c["reason"] for c in failing["conditions"]} == {
        "DatabaseReady": "ProvisioningFailed", "Ready": "ProvisioningFailed"}


# Spec checks (what the schema may not have enforced).

@pytest.mark.parametrize("spec, error", [
    ({"source": {"path": "a"}}, "projectId"),
    ({"projectId": "x", "source": {}}, "exactly one"),
    ({"projectId": "x", "source": {"path": "/abs"}}, "relative"),
    ({"projectId": "x", "source": {"path": "a/../../b"}}, "relative"),
    ({"projectId": "x", "source": {"git": {}}}, "git.url"),
    ({"projectId": "x", "source": {"path": "a"}, "database": {"reclaimPolicy": "Keep"}}, "reclaimPolicy"),
    ({"projectId": "x", "source": {"path": "a"}, "database": {"name": "cb_proj_y_00000000"}}, "does not match"),
])
def test_invalid_project_specs(spec, error):
    with pytest.raises(InvalidSpec, match=error):
        check_project_spec("p", spec, "default")


def test_valid_project_spec_maps_to_its_database():
    database = check_project_spec("p", {"projectId": "x", "source": {"path": "."}}, "default")
    assert database.startswith("cb_proj_default_x_")


@pytest.mark.parametrize("name, spec, error", [
    ("r", {}, "projectRef.name is required"),
    ("r", {"projectRef": {"name": "UPPER"}}, "not a valid resource name"),
    ("r", {"projectRef": {"name": "p"}, "mode": "Partial"}, "mode"),
    ("r", {"projectRef": {"name": "p"}, "repoPath": "a", "gitRef": "main"}, "mutually exclusive"),
    ("r", {"projectRef": {"name": "p"}, "gitRef": "main;rm -rf"}, "not a valid git ref"),
    ("r" * 64, {"projectRef": {"name": "p"}}, "longer than 63"),
])
def test_invalid_run_specs(name, spec, error):
    with pytest.raises(InvalidSpec, match=error):
        check_run_spec(name, spec)


# The CLI.

def parse(*argv):
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_builds_the_config_from_flags_and_env(monkeypatch, tmp_path):
    secret_file = tmp_path / "admin-url"
    secret_file.write_text("postgresql://admin:s3cret@pg:5432/postgres\n")
    monkeypatch.setenv("CODEBASE_MCP_INDEXER_IMAGE", "reg/indexer:2")
    args = parse("--admin-database-url-file", str(secret_file), "--workspace-host-path", "/srv/code",
                 "-n", "team-a", "-n", "team-b", "--poll-interval", "2")
    config = command.config_from_args(args)
    assert config.admin_database_url == "postgresql://admin:s3cret@pg:5432/postgres"
    assert config.indexer_image == "reg/indexer:2" and config.workspace.host_path == "/srv/code"
    assert config.poll_interval == 2.0
    assert command.namespaces_from_args(args) == ["team-a", "team-b"]
    assert command.namespaces_from_args(parse("-A", "-n", "x")) == []


def test_cli_refuses_to_start_without_an_admin_database_url(monkeypatch, capsys):
    monkeypatch.delenv("CODEBASE_MCP_ADMIN_DATABASE_URL", raising=False)
    assert command.run(parse()) == 2
    assert "admin database URL is required" in capsys.readouterr().err
