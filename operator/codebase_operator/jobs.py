"""The indexer Job of a run, as a manifest; and what a finished Job and its Pod say. Pure functions."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Any, Literal

from codebase_indexer.configuration import as_environment, variable
from codebase_indexer.contract import DATABASE_URL_KEY, PROJECT_LABEL, RUN_LABEL
from codebase_indexer.git_access import COMMIT
from codebase_indexer.identifiers import owner_secret_name
from codebase_indexer.settings import OFFLINE_MODEL_ENVIRONMENT, EmbeddingSettings, IndexerSettings

from . import API_VERSION
from .config import OperatorConfig
from .specs import InvalidSpec, Source, run_parallelism

CONTAINER_NAME = "indexer"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
SCRATCH_DIR = "/tmp"
WORKSPACE_VOLUME = "workspace"
SCRATCH_VOLUME = "scratch"
MANAGED_BY = "codebase-operator"
INDEXER_NAME = "codebase-indexer"  # app.kubernetes.io/name of indexer Jobs and Pods
# Exit codes of codebase-indexer that no retry can fix: 1 = failed (bad source, DB, embedding), 2 = bad arguments.
PERMANENT_EXIT_CODES = (1, 2)

# The user (and group) of indexer_image/Dockerfile, so the pod runs as the image expects.
INDEXER_UID = 10001


def job_name(run_name: str, run_uid: str) -> str:
    """`ir-<run name>-<hash>`: the same run always maps to the same Job (idempotent creation)."""
    digest = hashlib.sha256(f"{run_name}/{run_uid}".encode()).hexdigest()[:8]
    base = re.sub(r"[^a-z0-9-]+", "-", run_name.lower())[:50].strip("-") or "run"
    return f"ir-{base}-{digest}"


def secret_name(project_name: str) -> str:
    """The project's owner Secret (indexer Jobs read it); named by the function the gateway shares."""
    return owner_secret_name(project_name)


def labels(project_name: str, run_name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": INDEXER_NAME,
        "app.kubernetes.io/part-of": "codebase-mcp",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        PROJECT_LABEL: project_name,
        RUN_LABEL: run_name,
    }


def owner_reference(body: Mapping[str, Any], kind: str) -> dict[str, Any]:
    meta = body["metadata"]
    return {"apiVersion": API_VERSION, "kind": kind, "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def build_job(run: Mapping[str, Any], project: Mapping[str, Any], source: Source,
              config: OperatorConfig) -> dict[str, Any]:
    """The Job manifest for `run` of `project`: an Indexed Job of one pod per shard, each retried
    on its own. Raises InvalidSpec when it cannot be built."""
    run_meta, project_spec = run["metadata"], project.get("spec") or {}
    template = project_spec.get("indexerTemplate") or {}
    shards = run_parallelism(run.get("spec") or {}, project_spec, config.jobs.parallelism)
    retries = template.get("backoffLimit", config.jobs.backoff_limit)
    job_labels = labels(project["metadata"]["name"], run_meta["name"])
    volumes, mounts = _volumes(source, config)
    container = {
        "name": CONTAINER_NAME,
        "image": config.indexer_image,
        "imagePullPolicy": config.image_pull_policy,
        "command": list(config.indexer_command),
        "env": [*indexer_env(run, project, source, config), *_plain_env(IndexerSettings, shard_count=shards)],
        "resources": _resources(config.jobs.resources, template.get("resources") or {}),
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        # The indexer writes its report there; if it dies before, the log tail says why.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(run_meta["name"], run_meta["uid"]),
            "namespace": run_meta["namespace"],
            "labels": job_labels,
            "ownerReferences": [owner_reference(run, "IndexingRun")],
        },
        "spec": {
            # Shard i is the pod with JOB_COMPLETION_INDEX=i (Kubernetes sets it); a failed shard
            # is retried alone, and one that fails for good fails the Job (maxFailedIndexes 0).
            "completionMode": "Indexed",
            "completions": shards,
            "parallelism": shards,
            "backoffLimitPerIndex": retries,
            "maxFailedIndexes": 0,
            "backoffLimit": retries * shards,
            "activeDeadlineSeconds": template.get("activeDeadlineSeconds",
                                                  config.jobs.active_deadline_seconds),
            "ttlSecondsAfterFinished": config.jobs.ttl_seconds_after_finished,
            "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {
                    "containerName": CONTAINER_NAME, "operator": "In",
                    "values": list(PERMANENT_EXIT_CODES)}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            ]},
            "template": {
                "metadata": {"labels": job_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": config.indexer_service_account,
                    # The indexer talks to PostgreSQL only; it gets no Kubernetes credentials.
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": INDEXER_UID,
                        "runAsGroup": INDEXER_UID,
                        "fsGroup": INDEXER_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def indexer_env(run: Mapping[str, Any], project: Mapping[str, Any], source: Source,
                config: OperatorConfig) -> list[dict[str, Any]]:
    """The indexer's environment; credentials only as references to Secrets."""
    project_spec, run_spec = project.get("spec") or {}, run.get("spec") or {}
    indexing = project_spec.get("indexing") or {}
    embedding = project_spec.get("embedding") or {}
    env: list[dict[str, Any]] = [
        _secret_env(_indexer_variable("database_url"), secret_name(project["metadata"]["name"]), DATABASE_URL_KEY),
        *_plain_env(IndexerSettings, project_id=project_spec["projectId"], run_id=run["metadata"]["uid"],
                    index_mode=str(run_spec.get("mode", "Incremental")).lower(),
                    termination_message_path=TERMINATION_MESSAGE_PATH,
                    # The scratch volume itself: it exists in every pod (a folder under it would not,
                    # and mkdtemp needs one).
                    work_dir=SCRATCH_DIR),
        _env("HOME", SCRATCH_DIR),
        _env("XDG_CACHE_HOME", f"{SCRATCH_DIR}/.cache"),
        *(_env(name, value) for name, value in OFFLINE_MODEL_ENVIRONMENT.items()),
    ]
    if source.path is not None:
        env += _plain_env(IndexerSettings, source_path=workspace_path(config.workspace_root, source.path))
    else:
        env += _plain_env(IndexerSettings, git_url=source.git_url or "", git_ref=source.git_ref or None,
                          git_commit=source.git_commit)
        if source.git_credentials_secret:
            env.append(_secret_env(_indexer_variable("git_username"), source.git_credentials_secret, "username",
                                   optional=True))
            env.append(_secret_env(_indexer_variable("git_password"), source.git_credentials_secret, "password",
                                   optional=True))
    env += _plain_env(IndexerSettings, max_file_size=indexing.get("maxFileSize"),
                      include=indexing.get("include") or None, exclude=indexing.get("exclude") or None)
    env += _plain_env(EmbeddingSettings, **{key: embedding.get(key) or None for key in ("provider", "model", "url")})
    if embedding.get("apiKeySecret"):
        ref = embedding["apiKeySecret"]
        env.append(_secret_env(variable(EmbeddingSettings, "api_key"), ref["name"], ref["key"]))
    return env


def _indexer_variable(field_name: str) -> str:
    return variable(IndexerSettings, field_name)


def _plain_env(settings_class: type, **values: Any) -> list[dict[str, Any]]:
    return [_env(name, value) for name, value in as_environment(settings_class, **values).items()]


def workspace_path(workspace_root: str, relative: str) -> str:
    return str(PurePosixPath(workspace_root) / relative)


def _volumes(source: Source, config: OperatorConfig) -> tuple[list[dict], list[dict]]:
    volumes: list[dict] = [{"name": SCRATCH_VOLUME, "emptyDir": {"sizeLimit": "4Gi"}}]
    mounts: list[dict] = [{"name": SCRATCH_VOLUME, "mountPath": SCRATCH_DIR}]
    if source.path is not None:
        workspace = config.workspace.as_volume(WORKSPACE_VOLUME)
        if workspace is None:
            raise InvalidSpec("the source is a path, but the operator has no workspace volume "
                              "(start it with --workspace-claim or --workspace-host-path)")
        volumes.append(workspace)
        mounts.append({"name": WORKSPACE_VOLUME, "mountPath": config.workspace_root, "readOnly": True})
    return volumes, mounts


def _resources(defaults: Mapping[str, Mapping[str, str]],
               overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    merged: dict[str, dict[str, str]] = {}
    for section in ("requests", "limits"):
        values = {**(defaults.get(section) or {}), **(overrides.get(section) or {})}
        if values:
            merged[section] = {key: str(value) for key, value in values.items()}
    return merged


def _env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _secret_env(name: str, secret: str, key: str, *, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


# What a Job and its Pods say.

@dataclasses.dataclass(frozen=True)
class JobState:
    phase: Literal["Active", "Succeeded", "Failed"]
    reason: str = ""
    message: str = ""


def job_state(job: Mapping[str, Any]) -> JobState:
    """Read a Job's terminal conditions (Complete / Failed); anything else is still active."""
    for condition in (job.get("status") or {}).get("conditions") or ():
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return JobState("Succeeded", condition.get("reason") or "Completed", condition.get("message") or "")
        if condition.get("type") == "Failed":
            return JobState("Failed", condition.get("reason") or "Failed", condition.get("message") or "")
    return JobState("Active")


def has_started(job: Mapping[str, Any]) -> bool:
    """Whether a pod of the Job is running or has run (`active` also counts pods still pending)."""
    status = job.get("status") or {}
    return bool(status.get("ready") or status.get("succeeded") or status.get("failed"))


def pods_of_job(pods: Iterable[Mapping[str, Any]], job: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The Job's own Pods: by the job-name label and, when set, the controller's uid."""
    name, uid = job["metadata"]["name"], job["metadata"].get("uid")
    selected = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        pod_labels = meta.get("labels") or {}
        if name not in (pod_labels.get("job-name"), pod_labels.get("batch.kubernetes.io/job-name")):
            continue
        owners = [ref.get("uid") for ref in meta.get("ownerReferences") or () if ref.get("controller")]
        if uid and owners and uid not in owners:
            continue
        selected.append(pod)
    return selected


def termination_message(pods: Iterable[Mapping[str, Any]]) -> str | None:
    """The indexer container's termination message from the most recently finished Pod."""
    latest: tuple[str, str] | None = None
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or ():
            if status.get("name") != CONTAINER_NAME:
                continue
            terminated = (status.get("state") or {}).get("terminated") or {}
            if terminated.get("message"):
                finished = terminated.get("finishedAt") or ""
                if latest is None or finished >= latest[0]:
                    latest = (finished, terminated["message"])
    return latest[1] if latest else None


COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"


def final_report(pods: Iterable[Mapping[str, Any]], succeeded: bool) -> dict[str, Any] | None:
    """The report that speaks for a finished Indexed Job: when it succeeded, the last shard's (it
    carries the run's summary, not a part); when it failed, the most recent failed shard's."""
    reports = []
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or ():
            terminated = (status.get("state") or {}).get("terminated") or {}
            report = parse_report(terminated.get("message")) if status.get("name") == CONTAINER_NAME else None
            if report is not None:
                reports.append((terminated.get("finishedAt") or "", _with_shard(report, pod)))
    reports.sort(key=lambda item: item[0])
    if succeeded:
        whole = [r for _, r in reports if r.get("ok") and not (r.get("summary") or {}).get("partial")]
        return whole[-1] if whole else None
    failed = [r for _, r in reports if r.get("ok") is False]
    return failed[-1] if failed else None


def report_commit(report: Mapping[str, Any] | None) -> str | None:
    """The commit a git source's run indexed, as its indexer reported it (checked: it is copied to status)."""
    commit = (report or {}).get("commit")
    return commit if isinstance(commit, str) and COMMIT.fullmatch(commit) else None


def _with_shard(report: dict[str, Any], pod: Mapping[str, Any]) -> dict[str, Any]:
    """The report, naming its shard from the pod's completion index when the indexer did not."""
    index = ((pod.get("metadata") or {}).get("annotations") or {}).get(COMPLETION_INDEX_ANNOTATION)
    if "shard" in report or index is None or not str(index).isdigit():
        return report
    return {**report, "shard": {"index": int(index)}}


def failed_indexes(job: Mapping[str, Any]) -> str:
    """The shards an Indexed Job gave up on, as Kubernetes lists them (`status.failedIndexes`, e.g. "1,3-4")."""
    return str((job.get("status") or {}).get("failedIndexes") or "")


def parse_report(message: str | None) -> dict[str, Any] | None:
    """The indexer's JSON report: the last line of the message that is a JSON object with `ok`."""
    for line in reversed((message or "").strip().splitlines()):
        try:
            report = json.loads(line)
        except ValueError:
            continue
        if isinstance(report, dict) and isinstance(report.get("ok"), bool):
            return report
    return None
