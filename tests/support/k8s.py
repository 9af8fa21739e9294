"""A Kubernetes API for tests: kmock's KubernetesEmulator, made closer to a real API server.

The emulator stores objects and serves list/watch/get/create/patch/delete, but it
does not stamp `metadata` (resourceVersion, uid, generation, creationTimestamp),
does not isolate the status subresource, and fails `generateName`. kopf needs
all three (its finalizer patch tests resourceVersion; its status patches go to
`/status`; its events use generateName), so `ApiServerEmulator` adds them on
every write. What it still does not do (label/field selectors, PUT, garbage
collection, controllers, admission) is listed in the shared FIELD-NOTES; the
test kubelet (kubelet.py) plays the Job controller, the kubelet and the GC.
"""
from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import itertools
import json
import secrets
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import jsonpatch
import jsonpointer
import kmock
import yaml
from kmock._internal import dicts as kmock_dicts

from .crds import CRDS_DIR, validate

GROUP, VERSION = "codebase.mcp.dev", "v1alpha1"
ALL_VERBS = ["list", "watch", "get", "create", "patch", "update", "delete"]

# Every resource the operator, the gateway and the kubelet touch: (group/version/plural, kind, namespaced, status).
RESOURCES: list[tuple[str, str, bool, bool]] = [
    (f"{GROUP}/{VERSION}/codebaseprojects", "CodebaseProject", True, True),
    (f"{GROUP}/{VERSION}/indexingruns", "IndexingRun", True, True),
    ("batch/v1/jobs", "Job", True, True),
    ("v1/pods", "Pod", True, True),
    ("v1/secrets", "Secret", True, False),
    ("v1/events", "Event", True, False),
    ("events.k8s.io/v1/events", "Event", True, False),
    ("v1/namespaces", "Namespace", False, True),
    ("apiextensions.k8s.io/v1/customresourcedefinitions", "CustomResourceDefinition", False, True),
]


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch that turns `old` into `new` (lists and scalars are replaced whole)."""
    diff: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        previous = old.get(key)
        if isinstance(previous, Mapping) and isinstance(value, Mapping):
            nested = merge_diff(previous, value)
            if nested:
                diff[key] = nested
        elif key not in old or previous != value:
            diff[key] = value
    return diff


class Rejected(kmock.KubernetesError):
    """An admission error answered as a real API server would (422 for a failed patch test)."""


@attrs.define(kw_only=True)
class ApiServerEmulator(kmock.KubernetesEmulator):
    """KubernetesEmulator plus metadata stamping, status-subresource isolation and generateName."""

    # Validate writes of the codebase.mcp.dev kinds against the CRDs (schema and CEL), as
    # admission would. Tests of the operator's own checks turn it off, to play an API
    # server that let an invalid object through.
    admission: bool = True

    _versions: Iterator[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _write_lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)

    def declare(self, resources: list[tuple[str, str, bool, bool]] = RESOURCES) -> None:
        for key, kind, namespaced, has_status in resources:
            self.resources[key] = kmock.ResourceInfo(
                kind=kind, namespaced=namespaced, verbs=ALL_VERBS,
                subresources=["status"] if has_status else [])

    def _has_status_subresource(self, resource: kmock.resource) -> bool:
        for declared in self.resources:
            if declared == resource:
                return "status" in self.resources[declared].subresources
        return False

    async def _handle(self, request: kmock.Request) -> Any:
        if request.resource is None or request.action not in (kmock.action.CREATE, kmock.action.UPDATE):
            return await super()._handle(request)
        # Writes are serialized so that reading the current object and writing the new one is atomic.
        async with self._write_lock:
            data = (self._admit_create(request) if request.action == kmock.action.CREATE
                    else self._admit_update(request))
            if data is not None:
                # Requests are frozen, and kmock matches them by identity: amend this one in place.
                object.__setattr__(request, "data", data)
            return await super()._handle(request)

    def _admit_create(self, request: kmock.Request) -> dict[str, Any]:
        obj = copy.deepcopy(request.data or {})
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if request.namespace and not meta.get("namespace"):
            meta["namespace"] = request.namespace
        meta.update(uid=str(uuid.uuid4()), resourceVersion=str(next(self._versions)),
                    generation=1, creationTimestamp=utc_now())
        meta.pop("deletionTimestamp", None)
        if self._has_status_subresource(request.resource):
            obj.pop("status", None)  # a real API server ignores status on create
        self._admission_check(request.resource, obj, None)
        return obj

    def _admit_update(self, request: kmock.Request) -> dict[str, Any] | None:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return None  # let the emulator answer 404
        current: dict[str, Any] = copy.deepcopy(self.objects[key].raw)
        try:
            patched = kmock_dicts.patch_dict(copy.deepcopy(current), request.data or {})
        except jsonpatch.JsonPatchTestFailed as exc:
            raise Rejected(status=422, reason="Invalid", message=f"the patch test failed: {exc}") from None
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, ValueError, TypeError) as exc:
            raise Rejected(status=422, reason="Invalid", message=f"cannot apply the patch: {exc}") from None
        patched = dict(patched)
        if request.subresource == "status":
            new = {**current, "status": patched.get("status")}
            if new["status"] is None:
                del new["status"]
        elif self._has_status_subresource(request.resource):
            new = {key: value for key, value in patched.items() if key != "status"}
            if "status" in current:
                new["status"] = current["status"]
        else:
            new = patched
        meta, old_meta = new.setdefault("metadata", {}), current.get("metadata", {})
        for immutable in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp"):
            if immutable in old_meta:
                meta[immutable] = old_meta[immutable]
        spec_of = lambda o: {k: v for k, v in o.items() if k not in ("metadata", "status")}  # noqa: E731
        if spec_of(new) != spec_of(current):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if new != current:
            meta["resourceVersion"] = str(next(self._versions))
            self._admission_check(request.resource, new, current)
        return merge_diff(current, new)

    def _admission_check(self, resource: kmock.resource, obj: Mapping[str, Any],
                         old: Mapping[str, Any] | None) -> None:
        if not self.admission or resource.group != GROUP:
            return
        errors = validate(obj, old=old)
        if errors:
            raise Rejected(status=422, reason="Invalid", message="; ".join(errors))

    def unexpected_errors(self) -> list[Exception]:
        """Errors other than deliberate API answers (404, 409, 422): bugs in a client or here."""
        return [error for error in self.errors if not isinstance(error, kmock.KubernetesError)]


def kubeconfig_text(server: str, namespace: str = "default") -> str:
    return yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": "emulator-token"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "tester",
                                                       "namespace": namespace}}],
        "current-context": "emulator",
    })


@attrs.define
class Cluster:
    """A running emulator: its URL, a kubeconfig for it, a small client, and the emulator for assertions."""
    emulator: ApiServerEmulator
    url: str
    kubeconfig: Path
    client: "KubeClient"


@contextlib.asynccontextmanager
async def emulated_cluster(workdir: Path) -> AsyncIterator[Cluster]:
    """Start an emulated API server with every resource declared and the CRDs stored."""
    emulator = ApiServerEmulator()
    emulator.declare()
    async with emulator, kmock.Server(emulator) as server:
        url = str(server.url).rstrip("/")
        kubeconfig = workdir / "kubeconfig"
        kubeconfig.write_text(kubeconfig_text(url))
        async with KubeClient(url) as client:
            for crd in sorted(CRDS_DIR.glob("*.yaml")):
                await client.create("apiextensions.k8s.io/v1/customresourcedefinitions", None,
                                    yaml.safe_load(crd.read_text()))
            yield Cluster(emulator=emulator, url=url, kubeconfig=kubeconfig, client=client)


def resource_path(resource: str, namespace: str | None, name: str | None = None,
                  subresource: str | None = None) -> str:
    """`group/version/plural` (or `version/plural` for the core group) → the API path."""
    parts = resource.split("/")
    base = f"/api/{parts[0]}" if len(parts) == 2 else f"/apis/{parts[0]}/{parts[1]}"
    path = base + (f"/namespaces/{namespace}" if namespace else "") + f"/{parts[-1]}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status


class KubeClient:
    """A minimal async REST client for tests (the code under test uses its own clients)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "KubeClient":
        self._session = aiohttp.ClientSession(self.url, headers={"User-Agent": "codebase-mcp-tests"})
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._session is not None
        await self._session.close()

    async def _call(self, method: str, path: str, body: Any = None,
                    content_type: str = "application/json") -> Any:
        assert self._session is not None
        data = json.dumps(body) if body is not None else None
        async with self._session.request(method, path, data=data,
                                         headers={"Content-Type": content_type}) as response:
            text = await response.text()
            if response.status >= 400:
                raise ApiError(response.status, text)
            return json.loads(text) if text else None

    async def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return await self._call("GET", resource_path(resource, namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return (await self._call("GET", resource_path(resource, namespace)))["items"]

    async def create(self, resource: str, namespace: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._call("POST", resource_path(resource, namespace), dict(body))

    async def patch(self, resource: str, namespace: str | None, name: str, body: Mapping[str, Any],
                    *, subresource: str | None = None) -> dict[str, Any]:
        return await self._call("PATCH", resource_path(resource, namespace, name, subresource), dict(body),
                                "application/merge-patch+json")

    async def delete(self, resource: str, namespace: str | None, name: str) -> bool:
        try:
            await self._call("DELETE", resource_path(resource, namespace, name),
                             {"propagationPolicy": "Background"})
            return True
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise


async def eventually(probe: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.2,
                     message: str = "condition") -> Any:
    """Poll `probe` (sync or async) until it returns a truthy value; fail with the last value seen."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while True:
        last = probe()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}; last seen: {last!r}")
        await asyncio.sleep(interval)


class OperatorThread:
    """The real operator (codebase_operator.command.operate) in its own thread and event loop.

    Like a separate process: it talks to the emulator over HTTP only, and can be
    stopped and started again (a restart) while the cluster keeps its state.
    """

    def __init__(self, config: Any) -> None:
        self.config = config
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None
        self._failure: BaseException | None = None

    def start(self, *, ready_timeout: float = 30.0) -> None:
        from codebase_operator.command import operate

        stop, ready = threading.Event(), threading.Event()

        def main() -> None:
            try:
                asyncio.run(operate(self.config, stop_flag=stop, ready_flag=ready))
            except BaseException as exc:  # reported by stop()
                self._failure = exc
                ready.set()

        self._stop, self._failure = stop, None
        self._thread = threading.Thread(target=main, name="codebase-operator", daemon=True)
        self._thread.start()
        if not ready.wait(ready_timeout):
            raise RuntimeError("the operator did not become ready")
        if self._failure is not None:
            raise RuntimeError("the operator failed to start") from self._failure

    def stop(self, *, timeout: float = 30.0) -> None:
        if self._thread is None or self._stop is None:
            return
        self._stop.set()
        self._thread.join(timeout)
        alive = self._thread.is_alive()
        self._thread = None
        if alive:
            raise RuntimeError("the operator did not stop in time")
        if self._failure is not None:
            raise RuntimeError("the operator failed") from self._failure

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)
