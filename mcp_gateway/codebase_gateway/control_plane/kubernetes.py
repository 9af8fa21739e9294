"""The Kubernetes control plane: the gateway declares intent and reads status back.

A run is an `IndexingRun` (its name is the job id) for a `CodebaseProject`
named after the project id; the operator provisions the database, runs the
indexer Job and reports through the resources' status. The gateway searches a
project's database as its read-only role, with the URL in the project's reader Secret
(never the owner's Secret, nor the admin's).
"""
from __future__ import annotations

import asyncio
import base64
import os
import re
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from codebase_indexer.connections import GATEWAY_APPLICATION_NAME, ConnectionLimits
from codebase_indexer.contract import (
    API_VERSION,
    DATABASE_URL_KEY,
    GROUP,
    PROJECT_ID_ANNOTATION,
    PROJECT_KIND,
    PROJECT_LABEL,
    PROJECTS,
    REPO_PATH_ANNOTATION,
    RUN_KIND,
    RUNS,
    VERSION,
)
from codebase_indexer.identifiers import database_name, kubernetes_name, reader_secret_name
from codebase_indexer.outcomes import CANCELLED, FAILED, PENDING, RUNNING, SUCCEEDED, summary_sentence
from codebase_indexer.search import connection_budget

from .base import JobStatus, ProjectInfo, RunRequest, UnknownJob, UnknownProject

_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


class KubernetesControlPlane:
    name = "kubernetes"

    def __init__(self, *, namespace: str | None = None, workspace_root: Path = Path("/workspace"),
                 limits: ConnectionLimits | None = None) -> None:
        self._namespace_option = namespace
        limits = limits or ConnectionLimits(application_name=GATEWAY_APPLICATION_NAME)
        self.connection_budget = connection_budget(limits)
        self.namespace = ""
        self.workspace_root = workspace_root
        self._custom: client.CustomObjectsApi | None = None
        self._core: client.CoreV1Api | None = None

    def default_allowed_roots(self) -> list[Path]:
        return [self.workspace_root]

    async def start(self) -> None:
        try:
            api_client, context_namespace = await asyncio.to_thread(_load_configuration)
        except (config.ConfigException, OSError) as exc:
            raise RuntimeError(f"no Kubernetes configuration: {exc} (in a pod, the service account is "
                               "used; elsewhere set KUBECONFIG or create ~/.kube/config)") from exc
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self.namespace = (self._namespace_option or os.environ.get("POD_NAMESPACE") or context_namespace
                          or "default")
        try:
            await self._list(RUNS, limit=1)
        except ApiException as exc:
            raise RuntimeError(f"cannot list IndexingRuns in namespace {self.namespace!r}: {exc.status} "
                               f"{exc.reason}; are the CRDs installed (kubectl apply -f crds/) and RBAC "
                               "granted?") from exc
        except Exception as exc:
            raise RuntimeError(f"cannot reach the Kubernetes API: {exc}") from exc

    async def stop(self) -> None:
        await self.connection_budget.close()
        if self._custom is not None:
            await asyncio.to_thread(self._custom.api_client.close)

    # --- tool operations ---

    async def start_run(self, request: RunRequest) -> JobStatus:
        project_id = request.project.project_id
        project_name = kubernetes_name(project_id)
        relative = self._relative_to_workspace(request.repo_path)
        await self._ensure_project(project_name, project_id, relative)
        run_name = f"{project_name}-{uuid.uuid4().hex[:8]}"
        body = {
            "apiVersion": API_VERSION, "kind": RUN_KIND,
            "metadata": {
                "name": run_name, "namespace": self.namespace,
                "labels": {PROJECT_LABEL: project_name},
                "annotations": {PROJECT_ID_ANNOTATION: project_id, REPO_PATH_ANNOTATION: str(request.repo_path)},
            },
            "spec": {"projectRef": {"name": project_name},
                     "mode": "Full" if request.force_reindex else "Incremental", "repoPath": relative},
        }
        created = await self._call(self.custom.create_namespaced_custom_object,
                                   GROUP, VERSION, self.namespace, RUNS, body)
        return run_status(created or await self._get(RUNS, run_name) or body, self.namespace)

    async def get_run(self, job_id: str) -> JobStatus:
        return run_status(await self._get_run(job_id), self.namespace)

    async def list_runs(self, *, project_id: str | None, status: str | None, limit: int) -> list[JobStatus]:
        selector = f"{PROJECT_LABEL}={kubernetes_name(project_id)}" if project_id else None
        runs = [run_status(item, self.namespace) for item in await self._list(RUNS, label_selector=selector)]
        runs = [run for run in runs if (project_id is None or run.project_id == project_id)
                and (status is None or run.status == status)]
        runs.sort(key=lambda run: (run.created_at or "", run.job_id), reverse=True)
        return runs[:limit]

    async def cancel_run(self, job_id: str) -> JobStatus:
        status = await self.get_run(job_id)
        if status.finished:
            return status
        await self._call(self.custom.patch_namespaced_custom_object, GROUP, VERSION, self.namespace, RUNS,
                         job_id, {"spec": {"cancel": True}})
        deadline = asyncio.get_running_loop().time() + 15
        while not status.finished and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.3)
            status = await self.get_run(job_id)
        return status

    async def list_projects(self) -> list[ProjectInfo]:
        return sorted((project_info(item, self.namespace) for item in await self._list(PROJECTS)),
                      key=lambda p: p.name)

    async def source_root(self, project_id: str) -> Path | None:
        """None: the repository is in the indexer pods' workspace or a git remote, not here; results
        say `stale: null` (spec.refresh keeps a project's index following its source instead)."""
        return None

    async def project_database_url(self, project_id: str) -> str:
        """The reader Secret's URL: searches run as the project's read-only role."""
        project_name = kubernetes_name(project_id)
        project = await self._get(PROJECTS, project_name)
        if project is None or project.get("spec", {}).get("projectId") != project_id:
            raise UnknownProject(project_id)
        if not ((project.get("status") or {}).get("database") or {}).get("name"):
            raise UnknownProject(project_id)
        secret_name = reader_secret_name(project_name)
        try:
            secret = await self._call(self.core.read_namespaced_secret, secret_name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise RuntimeError(f"project {project_id!r} has no reader Secret {secret_name} yet: the operator "
                                   "creates it (and re-creates a deleted one within its re-check interval); "
                                   "retry in a minute, or check the operator's logs") from None
            raise
        encoded = (secret.data or {}).get(DATABASE_URL_KEY)
        if not encoded:
            raise RuntimeError(f"the Secret {secret_name} of project {project_id!r} has no {DATABASE_URL_KEY!r} key")
        return base64.b64decode(encoded).decode()

    async def health(self) -> dict:
        try:
            projects = await self._list(PROJECTS)
        except Exception as exc:
            return {"database_reachable": False, "kubernetes_api_reachable": False, "error": str(exc),
                    "namespace": self.namespace}
        ready = [p for p in projects if project_info(p, self.namespace).ready]
        database_reachable = None  # unknown until a project is ready
        if ready:
            database_reachable = await self._database_answers(ready[0]["spec"]["projectId"])
        return {"database_reachable": database_reachable is not False, "kubernetes_api_reachable": True,
                "namespace": self.namespace, "projects": len(projects), "ready_projects": len(ready)}

    async def run_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in await self._list(RUNS):
            state = run_status(item, self.namespace).status
            counts[state] = counts.get(state, 0) + 1
        return counts

    # --- helpers ---

    @property
    def custom(self) -> client.CustomObjectsApi:
        if self._custom is None:
            raise RuntimeError("the kubernetes control plane is not started")
        return self._custom

    @property
    def core(self) -> client.CoreV1Api:
        if self._core is None:
            raise RuntimeError("the kubernetes control plane is not started")
        return self._core

    def _relative_to_workspace(self, repo_path: Path) -> str:
        root = self.workspace_root.resolve()
        if repo_path != root and not repo_path.is_relative_to(root):
            raise ValueError(f"{repo_path} is outside the workspace root {root}")  # validation prevents this
        relative = repo_path.relative_to(root).as_posix()
        return relative if relative not in ("", ".") else "."

    async def _ensure_project(self, name: str, project_id: str, relative_path: str) -> None:
        existing = await self._get(PROJECTS, name)
        if existing is not None:
            return  # declared before: a run's repoPath overrides its source, the project is never rewritten
        body = {
            "apiVersion": API_VERSION, "kind": PROJECT_KIND,
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"projectId": project_id, "source": {"path": relative_path}},
        }
        try:
            await self._call(self.custom.create_namespaced_custom_object, GROUP, VERSION, self.namespace,
                             PROJECTS, body)
        except ApiException as exc:
            if exc.status != 409:  # 409: created concurrently, which is what we wanted
                raise

    async def _get_run(self, job_id: str) -> dict:
        run = await self._get(RUNS, job_id) if _is_dns_label(job_id) else None
        if run is None:
            raise UnknownJob(job_id)
        return run

    async def _get(self, plural: str, name: str) -> dict | None:
        try:
            return await self._call(self.custom.get_namespaced_custom_object, GROUP, VERSION,
                                    self.namespace, plural, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def _list(self, plural: str, **options: Any) -> list[dict]:
        options = {key: value for key, value in options.items() if value is not None}
        listed = await self._call(self.custom.list_namespaced_custom_object, GROUP, VERSION,
                                  self.namespace, plural, **options)
        return list(listed.get("items") or [])

    async def _database_answers(self, project_id: str) -> bool:
        try:
            async with self.connection_budget.connect(await self.project_database_url(project_id)) as conn:
                await conn.fetchval("SELECT 1")
        except Exception:
            return False
        return True

    @staticmethod
    async def _call(method, *args: Any, **kwargs: Any) -> Any:
        # The official client is synchronous: keep its network calls off the event loop.
        return await asyncio.to_thread(method, *args, _request_timeout=30, **kwargs)


def run_status(run: dict, namespace: str | None = None) -> JobStatus:
    """An IndexingRun as the `get_indexing_status` object."""
    metadata, spec, status = run.get("metadata") or {}, run.get("spec") or {}, run.get("status") or {}
    annotations = metadata.get("annotations") or {}
    condition: dict[str, Any] = next((c for c in status.get("conditions") or () if c.get("type") == "Succeeded"), {})
    state = _state(condition)
    raw_summary = status.get("summary")
    summary = _snake_keys(raw_summary) if raw_summary else None
    progress = status.get("progress") or {}
    message = condition.get("message") or status.get("message") or "accepted; waiting for the operator"
    if state == SUCCEEDED and summary:
        message = summary_sentence(summary)
    project_id = annotations.get(PROJECT_ID_ANNOTATION) or spec.get("projectRef", {}).get("name", "")
    return JobStatus(
        job_id=metadata.get("name", ""), status=state, status_message=message,
        repo_path=annotations.get(REPO_PATH_ANNOTATION) or spec.get("repoPath", ""),
        project_id=project_id, database_name=database_name(project_id, namespace) if project_id else "",
        force_reindex=spec.get("mode") == "Full",
        files_indexed=int((summary or {}).get("files_indexed", 0)),
        chunks_created=int((summary or {}).get("chunks_created", 0)),
        error_message=message if state == FAILED else None,
        created_at=metadata.get("creationTimestamp"), started_at=status.get("startTime"),
        completed_at=status.get("completionTime"),
        progress={"files_total": int(progress.get("filesTotal", 0)), "files_done": int(progress.get("filesDone", 0)),
                  "chunks_done": int(progress.get("chunksDone", 0))},
        summary=summary,
    )


def project_info(project: dict, namespace: str | None = None) -> ProjectInfo:
    spec, status = project.get("spec") or {}, project.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
    last = status.get("lastRun") or {}
    return ProjectInfo(
        name=spec.get("projectId") or project["metadata"]["name"],
        database=(status.get("database") or {}).get("name") or database_name(spec.get("projectId", "x"), namespace),
        ready=ready, last_indexed=last.get("completionTime") if last.get("succeeded") else None,
        files=int(last.get("files") or 0), chunks=int(last.get("chunks") or 0),
    )


def _state(condition: dict) -> str:
    status, reason = condition.get("status"), condition.get("reason")
    if status == "True":
        return SUCCEEDED
    if status == "False":
        return CANCELLED if reason == "Cancelled" else FAILED
    if reason == "Running":
        return RUNNING
    return PENDING


def _snake_keys(value: dict) -> dict:
    return {_CAMEL.sub("_", key).lower(): item for key, item in value.items()}


def _is_dns_label(name: str) -> bool:
    return bool(re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", name))


def _load_configuration() -> tuple[client.ApiClient, str | None]:
    """In-cluster when running in a pod, else the kubeconfig ($KUBECONFIG or ~/.kube/config)."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
        namespace = (_SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
                     if _SERVICE_ACCOUNT_NAMESPACE.exists() else None)
        return client.ApiClient(), namespace
    configuration = client.Configuration()
    # Read now: the kubernetes package takes its default from $KUBECONFIG once, when it is imported.
    kubeconfig = os.environ.get("KUBECONFIG") or None
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    try:
        _, context = config.list_kube_config_contexts(config_file=kubeconfig)
        namespace = (context or {}).get("context", {}).get("namespace")
    except config.ConfigException:
        namespace = None
    return client.ApiClient(configuration), namespace
