"""A test kubelet: it stands in for the Job controller and the kubelet.

There is no cluster in these tests, so nothing would ever run a Job. This class
does what those controllers would, and nothing the operator should do itself:

- For every new Job it creates a Pod (labels of the template plus `job-name`,
  owned by the Job) and runs the Pod's container command as a local subprocess
  with the container's environment: `secretKeyRef`s are resolved from the
  emulated Secrets; a mounted volume's path is mapped to a local directory
  (hostPath → that path, PVC → a directory given per claim name, emptyDir → a
  fresh temporary directory); the termination message path → a local file.
  The image is not pulled: the command runs from this virtualenv.
- It then patches the Pod's status (the container's `terminated` state, with the
  termination message, as the real kubelet reports it) and the Job's status
  (`Complete`/`Failed` conditions, honouring `activeDeadlineSeconds`,
  `backoffLimit` and `podFailurePolicy` FailJob exit codes).
- A deleted Job's process is stopped (SIGTERM, then SIGKILL). Owned objects are
  deleted with their owner by the API emulator (k8s.py), as by the garbage collector.
- `hold(run)` keeps a run's Pod pending (as during an image pull) until
  `release(run)`, so tests can act while a Job exists but has not finished.
- Indexed Jobs (`completionMode: Indexed`) run one Pod per index, `parallelism` at a time, with
  `JOB_COMPLETION_INDEX` set and the completion-index annotation; a failed index is retried alone
  up to `backoffLimitPerIndex`, then listed in `failedIndexes`; more failed indexes than
  `maxFailedIndexes` fail the Job at once, stopping the other Pods, as the Job controller does.
- `crash(run, index, times)` kills that index's container right after it starts, `times` times
  (as an OOM kill or a lost node would: exit code 137), so tests see per-index retries.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import os
import secrets
import shutil
import signal
import sys
import tempfile
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codebase_indexer.contract import RUN_LABEL

from .k8s import KubeClient, utc_now

_LOG_TAIL_BYTES = 2048


class TestKubelet:
    __test__ = False  # not a test class, despite the name

    def __init__(self, client: KubeClient, workdir: Path, *, claims: Mapping[str, Path] | None = None,
                 interval: float = 0.1) -> None:
        self.client = client
        self.workdir = workdir
        self.claims = dict(claims or {})
        self.interval = interval
        self.started: list[str] = []  # job names, in the order their first pod started
        self._jobs: dict[str, asyncio.Task[None]] = {}  # "namespace/name" → task
        self._gates: dict[str, asyncio.Event] = {}
        self._crashes: dict[tuple[str, int], int] = {}
        self.live: dict[str, int] = {}  # job name → containers running now
        self.errors: list[str] = []  # failures of the kubelet itself (not of the Jobs it runs)
        # What every container also gets, as a node's image would have it: e.g. git's configuration
        # (GIT_CONFIG_COUNT/KEY/VALUE) that points a git URL at a local bare repository.
        self.node_environment: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    # Test controls.

    def hold(self, run_name: str) -> None:
        self._gates.setdefault(run_name, asyncio.Event())

    def release(self, run_name: str) -> None:
        self._gates.setdefault(run_name, asyncio.Event()).set()

    def crash(self, run_name: str, index: int, times: int = 1) -> None:
        self._crashes[(run_name, index)] = times

    # Lifecycle.

    async def __aenter__(self) -> TestKubelet:
        self._task = asyncio.create_task(self._loop(), name="test-kubelet")
        return self

    async def __aexit__(self, *exc: object) -> None:
        tasks = [t for t in [self._task, *self._jobs.values()] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                await self._sync_jobs()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep playing the kubelet; the test reports these
                self.errors.append(traceback.format_exc())
            await asyncio.sleep(self.interval)

    async def _sync_jobs(self) -> None:
        jobs = {f"{j['metadata']['namespace']}/{j['metadata']['name']}": j
                for j in await self.client.list("batch/v1/jobs")}
        for key, task in list(self._jobs.items()):
            if key not in jobs or jobs[key]["metadata"].get("uid") != task.get_name():
                task.cancel()  # the Job is gone: stop its pod
                if task.done():
                    del self._jobs[key]
        for key, job in jobs.items():
            if key in self._jobs or _finished(job):
                continue
            task = asyncio.create_task(self._run_job(job), name=job["metadata"]["uid"])
            task.add_done_callback(functools.partial(self._record_failure, key))
            self._jobs[key] = task

    def _record_failure(self, key: str, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            self.errors.append(f"{key}: {''.join(traceback.format_exception(error))}")

    # One Job.

    async def _run_job(self, job: dict[str, Any]) -> None:
        meta, spec = job["metadata"], job["spec"]
        namespace, name = meta["namespace"], meta["name"]
        gate = self._gates.get((meta.get("labels") or {}).get(RUN_LABEL, ""))
        await self._patch_job(namespace, name, {"active": 1, "startTime": utc_now()})
        if gate is not None:
            await gate.wait()
        if spec.get("completionMode") == "Indexed":
            await self._run_indexed_job(job)
            return
        fail_job_codes = _fail_job_exit_codes(spec)
        attempts = int(spec.get("backoffLimit", 6)) + 1
        deadline = spec.get("activeDeadlineSeconds")
        loop = asyncio.get_running_loop()
        expires = loop.time() + deadline if deadline else None
        failed = 0
        while True:
            remaining = None if expires is None else max(0.0, expires - loop.time())
            exit_code = await self._run_pod(job, remaining)
            if exit_code == 0:
                await self._patch_job(namespace, name, {
                    "active": 0, "ready": 0, "succeeded": 1, "completionTime": utc_now(),
                    "conditions": [_condition(type_, "CompletionsReached", "Reached expected number of succeeded pods")
                                   for type_ in ("SuccessCriteriaMet", "Complete")]})
                return
            failed += 1
            if exit_code is None:
                reason, message = "DeadlineExceeded", "Job was active longer than specified deadline"
            elif exit_code in fail_job_codes:
                reason, message = "PodFailurePolicy", (f"Container indexer for pod {namespace}/{name} failed with "
                                                       f"exit code {exit_code} matching FailJob rule at index 0")
            elif failed >= attempts:
                reason, message = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
            else:
                continue
            await self._patch_job(namespace, name, {
                "active": 0, "ready": 0, "failed": failed,
                "conditions": [_condition("FailureTarget", reason, message), _condition("Failed", reason, message)]})
            return

    async def _run_indexed_job(self, job: dict[str, Any]) -> None:
        meta, spec = job["metadata"], job["spec"]
        namespace, name = meta["namespace"], meta["name"]
        run_name = (meta.get("labels") or {}).get(RUN_LABEL, "")
        completions = int(spec.get("completions", 1))
        slots = asyncio.Semaphore(int(spec.get("parallelism", completions)))
        per_index = spec.get("backoffLimitPerIndex")
        max_failed = spec.get("maxFailedIndexes")
        fail_job_codes = _fail_job_exit_codes(spec)
        loop = asyncio.get_running_loop()
        deadline = spec.get("activeDeadlineSeconds")
        expires = loop.time() + deadline if deadline else None
        succeeded: set[int] = set()
        failed: set[int] = set()
        failures = 0

        async def report() -> None:
            await self._patch_job(namespace, name, {
                "active": completions - len(succeeded) - len(failed), "succeeded": len(succeeded),
                "failed": failures, "ready": 1, "completedIndexes": _ranges(succeeded),
                "failedIndexes": _ranges(failed)})

        async def run_index(index: int) -> None:
            nonlocal failures
            attempts = 0
            async with slots:
                while True:
                    remaining = None if expires is None else max(0.0, expires - loop.time())
                    exit_code = await self._run_pod(job, remaining, index=index,
                                                    crash=self._take_crash(run_name, index))
                    if exit_code == 0:
                        succeeded.add(index)
                        await report()
                        return
                    failures += 1
                    attempts += 1
                    if exit_code is None:
                        raise _JobFailed("DeadlineExceeded", "Job was active longer than specified deadline")
                    if exit_code in fail_job_codes:
                        raise _JobFailed("PodFailurePolicy", f"Container indexer for pod {namespace}/{name}-{index} "
                                                             f"failed with exit code {exit_code} matching FailJob rule "
                                                             "at index 0")
                    if per_index is not None and attempts > int(per_index):
                        failed.add(index)
                        await report()
                        if max_failed is not None and len(failed) > int(max_failed):
                            raise _JobFailed("MaxFailedIndexesExceeded", "Job has exceeded maxFailedIndexes")
                        return

        tasks = [asyncio.create_task(run_index(i)) for i in range(completions)]
        try:
            await asyncio.gather(*tasks)
            outcome = _JobFailed("FailedIndexes", "Job has failed indexes") if failed else None
        except _JobFailed as stop:
            outcome = stop
        finally:
            for task in tasks:
                task.cancel()  # their pods are stopped, as the Job controller deletes them
            await asyncio.gather(*tasks, return_exceptions=True)
        if outcome is None:
            await self._patch_job(namespace, name, {
                "active": 0, "ready": 0, "succeeded": completions, "completedIndexes": _ranges(succeeded),
                "completionTime": utc_now(),
                "conditions": [_condition(type_, "CompletionsReached", "Reached expected number of succeeded pods")
                               for type_ in ("SuccessCriteriaMet", "Complete")]})
            return
        await self._patch_job(namespace, name, {
            "active": 0, "ready": 0, "failed": failures, "failedIndexes": _ranges(failed),
            "conditions": [_condition("FailureTarget", outcome.reason, outcome.message),
                           _condition("Failed", outcome.reason, outcome.message)]})

    def _take_crash(self, run_name: str, index: int) -> bool:
        left = self._crashes.get((run_name, index), 0)
        if left:
            self._crashes[(run_name, index)] = left - 1
        return bool(left)

    async def _run_pod(self, job: dict[str, Any], timeout: float | None, *, index: int | None = None,
                       crash: bool = False) -> int | None:
        """Run one Pod of the Job to its end; its exit code, or None when the deadline killed it."""
        meta, template = job["metadata"], job["spec"]["template"]
        namespace = meta["namespace"]
        indexed = f"-{index}" if index is not None else ""
        pod_name = f"{meta['name']}{indexed}-{secrets.token_hex(3)[:5]}"
        labels = {**(template.get("metadata", {}).get("labels") or {}), "job-name": meta["name"],
                  "batch.kubernetes.io/job-name": meta["name"], "controller-uid": meta["uid"]}
        annotations = {}
        if index is not None:
            labels["batch.kubernetes.io/job-completion-index"] = str(index)
            annotations["batch.kubernetes.io/job-completion-index"] = str(index)
        await self.client.create("v1/pods", namespace, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": namespace, "labels": labels, "annotations": annotations,
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                              "uid": meta["uid"], "controller": True,
                                              "blockOwnerDeletion": True}]},
            "spec": template["spec"],
        })
        container = template["spec"]["containers"][0]
        sandbox = Path(tempfile.mkdtemp(prefix=f"{pod_name}-", dir=self.workdir))
        termination_file = sandbox / "termination-log"
        env = await self._environment(namespace, template["spec"], container, sandbox, termination_file)
        if index is not None:
            env["JOB_COMPLETION_INDEX"] = str(index)
        started = utc_now()
        await self.client.patch("v1/pods", namespace, pod_name, {"status": {
            "phase": "Running", "startTime": started,
            "containerStatuses": [{"name": container["name"], "ready": True, "restartCount": 0,
                                   "state": {"running": {"startedAt": started}}}]}}, subresource="status")
        await self._patch_job(namespace, meta["name"], {"active": 1, "ready": 1})
        self.started.append(meta["name"])
        log_path = sandbox / "container.log"
        command = [*container.get("command", []), *container.get("args", [])]
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                _resolve(command[0], env), *command[1:], env=env, stdout=log, stderr=asyncio.subprocess.STDOUT,
                cwd=sandbox, start_new_session=True)
            self.live[meta["name"]] = self.live.get(meta["name"], 0) + 1
            if crash:
                os.killpg(process.pid, signal.SIGKILL)
            try:
                exit_code: int | None = await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                await _stop(process)
                exit_code = None
            except asyncio.CancelledError:  # the Job was deleted
                await _stop(process)
                raise
            finally:
                self.live[meta["name"]] -= 1
        if exit_code is not None and exit_code < 0:  # killed by a signal: the container runtime says 128 + n
            exit_code = 128 - exit_code
        message = _termination_message(termination_file, log_path, container, exit_code)
        await self.client.patch("v1/pods", namespace, pod_name, {"status": {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "containerStatuses": [{"name": container["name"], "ready": False, "restartCount": 0,
                                   "state": {"terminated": {
                                       "exitCode": 137 if exit_code is None else exit_code,
                                       "reason": "Completed" if exit_code == 0 else "Error",
                                       "message": message, "startedAt": started, "finishedAt": utc_now()}}}]}},
            subresource="status")
        return exit_code

    async def _environment(self, namespace: str, pod_spec: Mapping[str, Any], container: Mapping[str, Any],
                           sandbox: Path, termination_file: Path) -> dict[str, str]:
        mounts = self._mount_map(pod_spec, container, sandbox)
        env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               "LANG": os.environ.get("LANG", "C.UTF-8"), **_thread_limits(), **self.node_environment}
        for var in container.get("env") or ():
            value = var.get("value")
            ref = (var.get("valueFrom") or {}).get("secretKeyRef")
            if ref is not None:
                value = await self._secret_value(namespace, ref)
                if value is None:
                    continue
            env[var["name"]] = _map_path(value or "", mounts, container, termination_file)
        return env

    def _mount_map(self, pod_spec: Mapping[str, Any], container: Mapping[str, Any],
                   sandbox: Path) -> dict[str, Path]:
        volumes = {v["name"]: v for v in pod_spec.get("volumes") or ()}
        mapping: dict[str, Path] = {}
        for mount in container.get("volumeMounts") or ():
            volume = volumes[mount["name"]]
            if "hostPath" in volume:
                local = Path(volume["hostPath"]["path"])
            elif "persistentVolumeClaim" in volume:
                local = self.claims[volume["persistentVolumeClaim"]["claimName"]]
            else:  # emptyDir
                local = sandbox / f"volume-{mount['name']}"
                local.mkdir()
            mapping[mount["mountPath"]] = local
        return mapping

    async def _secret_value(self, namespace: str, ref: Mapping[str, Any]) -> str | None:
        """A Secret key's value; waits for the Secret like a kubelet would (CreateContainerConfigError)."""
        while True:
            secret = await self.client.get("v1/secrets", namespace, ref["name"])
            data = (secret or {}).get("data") or {}
            if ref["key"] in data:
                return base64.b64decode(data[ref["key"]]).decode()
            if ref.get("optional"):
                return None
            await asyncio.sleep(self.interval)

    async def _patch_job(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        with contextlib.suppress(Exception):  # the Job may be gone (cancelled)
            await self.client.patch("batch/v1/jobs", namespace, name, {"status": dict(status)},
                                    subresource="status")


class _JobFailed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def _ranges(indexes: set[int]) -> str:
    """Indexes as the Job controller lists them: "0,2-4"."""
    parts: list[str] = []
    for index in sorted(indexes):
        if parts and "-" not in parts[-1].split(",")[-1] and int(parts[-1]) == index - 1:
            parts[-1] = f"{index - 1}-{index}"
        elif parts and "-" in parts[-1] and int(parts[-1].split("-")[1]) == index - 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{index}"
        else:
            parts.append(str(index))
    return ",".join(parts)


def _finished(job: Mapping[str, Any]) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or ())


def _fail_job_exit_codes(spec: Mapping[str, Any]) -> set[int]:
    codes: set[int] = set()
    for rule in (spec.get("podFailurePolicy") or {}).get("rules") or ():
        exits = rule.get("onExitCodes")
        if rule.get("action") == "FailJob" and exits and exits.get("operator") == "In":
            codes.update(exits.get("values") or ())
    return codes


def _condition(type_: str, reason: str, message: str) -> dict[str, str]:
    now = utc_now()
    return {"type": type_, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": now, "lastTransitionTime": now}


def _map_path(value: str, mounts: Mapping[str, Path], container: Mapping[str, Any], termination_file: Path) -> str:
    if value == container.get("terminationMessagePath", "/dev/termination-log"):
        return str(termination_file)
    for mount_path in sorted(mounts, key=len, reverse=True):
        if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
            return str(mounts[mount_path]) + value[len(mount_path.rstrip("/")):]
    return value


def _thread_limits() -> dict[str, str]:
    """The test run's model thread count (`make test` sets one thread: the suite's processes share the
    cores), as a pod's CPU limit would bound it. Without it each pod's model starts a thread per core,
    and their waiting threads spin on cores the rest of the suite needs."""
    return {name: os.environ[name] for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if name in os.environ}


def _resolve(program: str, env: Mapping[str, str]) -> str:
    found = shutil.which(program, path=env.get("PATH"))
    if found is None:
        raise FileNotFoundError(f"{program!r} is not on the kubelet's PATH")
    return found


def _termination_message(termination_file: Path, log_path: Path, container: Mapping[str, Any],
                         exit_code: int | None) -> str:
    if termination_file.exists() and termination_file.stat().st_size:
        return termination_file.read_bytes()[:4096].decode(errors="replace")
    if exit_code != 0 and container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
        return log_path.read_bytes()[-_LOG_TAIL_BYTES:].decode(errors="replace")
    return ""


async def _stop(process: asyncio.subprocess.Process, grace: float = 10.0) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
