"""A Kubernetes API for tests: kmock's KubernetesEmulator, made closer to a real API server.

kmock's emulator stores objects and serves list/watch/get/create/patch/delete, but it
does not stamp `metadata`, does not isolate the status subresource, fails
`generateName`, replays every object on a watch from a resourceVersion, ignores
selectors, collects no garbage and validates nothing. Code that passes against that
can fail on a real server, so `ApiServerEmulator` closes those gaps (see its
docstring). It still has no PUT, no controllers and no admission webhooks: the test
kubelet (kubelet.py) plays the Job controller and the kubelet.
"""
from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import json
import secrets
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import jsonpatch
import jsonpointer
import kmock
import yaml
from kmock._internal import dicts as kmock_dicts

from codebase_indexer.contract import GROUP, PROJECT_KIND, PROJECTS, RUN_KIND, RUNS, VERSION

from .api_rules import label_errors, name_errors, selector_matches
from .crds import CRDS_DIR, validate

ALL_VERBS = ["list", "watch", "get", "create", "patch", "update", "delete"]

# Every resource the operator, the gateway and the kubelet touch: (group/version/plural, kind, namespaced, status).
RESOURCES: list[tuple[str, str, bool, bool]] = [
    (f"{GROUP}/{VERSION}/{PROJECTS}", PROJECT_KIND, True, True),
    (f"{GROUP}/{VERSION}/{RUNS}", RUN_KIND, True, True),
    ("batch/v1/jobs", "Job", True, True),
    ("v1/pods", "Pod", True, True),
    ("v1/secrets", "Secret", True, False),
    ("v1/events", "Event", True, False),
    ("events.k8s.io/v1/events", "Event", True, False),
    ("v1/namespaces", "Namespace", False, True),
    ("apiextensions.k8s.io/v1/customresourcedefinitions", "CustomResourceDefinition", False, True),
]


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


class Unavailable(kmock.KubernetesError):
    """A request the test made the server refuse (an outage, or a client that died before it)."""


class _EventSinks(dict):
    """Stands in for kmock's per-resource buses: every change goes to the emulator's one event log."""

    def __init__(self, emulator: ApiServerEmulator) -> None:
        super().__init__()
        self.emulator = emulator

    def __missing__(self, resource: kmock.resource) -> _EventSink:
        sink = self[resource] = _EventSink(self.emulator, resource)
        return sink


@attrs.define
class _EventSink:
    emulator: ApiServerEmulator
    resource: kmock.resource

    async def put(self, event: Mapping[str, Any]) -> None:
        self.emulator._record(self.resource, event)


@attrs.define(kw_only=True)
class ApiServerEmulator(kmock.KubernetesEmulator):
    """KubernetesEmulator made to behave like a real API server where the difference hides bugs.

    - `metadata` is stamped (resourceVersion, uid, generation, creationTimestamp) on every
      write; generateName works; the status subresource is isolated from the main resource.
    - A list answers its resourceVersion, and a watch from a resourceVersion streams only the
      changes after it (kmock replays every existing object); `labelSelector` filters both.
    - Errors are `Status` bodies with `Content-Type: application/json` exactly.
    - A failed JSON-patch `test` is a 422 and changes nothing.
    - Deleting an object deletes the objects it owns (`ownerReferences`), as the garbage collector would.
    - Names and labels are validated; the codebase.mcp.dev kinds against their CRDs (schema, CEL).
    """

    # Validate writes of the codebase.mcp.dev kinds against the CRDs (schema and CEL), as
    # admission would. Tests of the operator's own checks turn it off, to play an API
    # server that let an invalid object through.
    admission: bool = True
    # A real API server's error bodies are exactly application/json; a test may play a proxy in front.
    error_content_type: str = "application/json"

    _version: int = attrs.field(default=0, init=False)
    _write_lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)
    _log: list[tuple[int, kmock.resource, dict[str, Any]]] = attrs.field(factory=list, init=False)
    _log_grew: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)
    _refusals: list[Callable[[kmock.Request], bool]] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._buses = _EventSinks(self)

    def declare(self, resources: list[tuple[str, str, bool, bool]] = RESOURCES) -> None:
        for key, kind, namespaced, has_status in resources:
            self.resources[key] = kmock.ResourceInfo(
                kind=kind, namespaced=namespaced, verbs=ALL_VERBS,
                subresources=["status"] if has_status else [])

    def refuse(self, predicate: Callable[[kmock.Request], bool]) -> Callable[[], None]:
        """Answer 503 to requests matching `predicate` until the returned function is called."""
        self._refusals.append(predicate)
        return lambda: self._refusals.remove(predicate)

    def _next_version(self) -> int:
        self._version += 1
        return self._version

    def _declared(self, resource: kmock.resource) -> Any:
        for declared in self.resources:
            if declared == resource:
                return self.resources[declared]
        return None

    def _has_status_subresource(self, resource: kmock.resource) -> bool:
        info = self._declared(resource)
        return info is not None and "status" in info.subresources

    async def _handle(self, request: kmock.Request) -> Any:
        try:
            return await self._answer(request)
        finally:
            self._forget(request)

    def _forget(self, request: kmock.Request) -> None:
        """Drop an answered request from kmock's request log. kmock finds a request's reaction by scanning
        that log from its first request (`request in view`), so a log of every request a test made cost
        time quadratic in their number: most of the CPU of a long operator test. Nothing reads the log."""
        for position in range(len(self._requests) - 1, -1, -1):
            if self._requests[position] is request:  # by identity: requests compare equal by value
                del self._requests[position]
                return

    async def _answer(self, request: kmock.Request) -> Any:
        if request.resource is not None and any(refused(request) for refused in list(self._refusals)):
            raise Unavailable(status=503, reason="ServiceUnavailable", message="the server is unavailable")
        writes = (kmock.action.CREATE, kmock.action.UPDATE, kmock.action.DELETE)
        if request.resource is None or request.action not in writes:
            return await super()._handle(request)
        # Writes are serialized so that reading the current object and writing the new one is atomic.
        async with self._write_lock:
            alive = self._live_uids()
            marked = None
            if request.action == kmock.action.CREATE:
                data: dict[str, Any] | None = self._admit_create(request)
            elif request.action == kmock.action.UPDATE:
                data = self._admit_update(request)
            else:
                data, marked = None, self._mark_deleted(request)
            if data is not None:
                # Requests are frozen, and kmock matches them by identity: amend this one in place.
                object.__setattr__(request, "data", data)
            response = await super()._handle(request)
            if marked is not None:
                self._record(request.resource, {"type": "MODIFIED", "object": self.objects[marked].raw})
            self._collect_garbage(alive - self._live_uids())
            return response

    def _admit_create(self, request: kmock.Request) -> dict[str, Any]:
        obj = copy.deepcopy(request.data or {})
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if request.namespace and not meta.get("namespace"):
            meta["namespace"] = request.namespace
        info = self._declared(request.resource)
        errors = name_errors(info.kind if info is not None else "", meta.get("name")) + \
            label_errors(meta.get("labels"))
        if errors:
            raise Rejected(status=422, reason="Invalid", message="; ".join(errors))
        meta.update(uid=str(uuid.uuid4()), resourceVersion=str(self._next_version()),
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
            # A deep copy: stamping the new metadata must not change `current`, or the diff would miss it.
            new = {**copy.deepcopy(current), "status": patched.get("status")}
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
        errors = label_errors(meta.get("labels"))
        if errors:
            raise Rejected(status=422, reason="Invalid", message="; ".join(errors))
        spec_of = lambda o: {k: v for k, v in o.items() if k not in ("metadata", "status")}  # noqa: E731
        if spec_of(new) != spec_of(current):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if new != current:
            meta["resourceVersion"] = str(self._next_version())
            self._admission_check(request.resource, new, current)
        return merge_diff(current, new)

    def _mark_deleted(self, request: kmock.Request) -> tuple[Any, ...] | None:
        """An object with finalizers is only marked for deletion: a new resourceVersion, and a MODIFIED event."""
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        meta = self.objects[key].raw.get("metadata") or {}
        if not meta.get("finalizers") or meta.get("deletionTimestamp"):
            return None
        self.objects[key].patch({"metadata": {"deletionTimestamp": utc_now(),
                                              "resourceVersion": str(self._next_version())}})
        return key

    def _live_uids(self) -> set[str]:
        return {obj.raw["metadata"].get("uid") for obj in self.objects.values() if not obj.deleted}

    def _collect_garbage(self, gone: set[str]) -> None:
        """Delete what the deleted objects owned, unless another owner is still there; then what those owned."""
        while gone:
            alive, collected = self._live_uids(), set()
            for (resource, _, _), obj in list(self.objects.items()):
                if obj.deleted:
                    continue
                owners = {ref.get("uid") for ref in obj.raw["metadata"].get("ownerReferences") or ()}
                if not owners & gone or owners & alive:
                    continue
                meta = obj.raw["metadata"]
                if meta.get("finalizers"):
                    if not meta.get("deletionTimestamp"):
                        obj.patch({"metadata": {"deletionTimestamp": utc_now(),
                                                "resourceVersion": str(self._next_version())}})
                        self._record(resource, {"type": "MODIFIED", "object": obj.raw})
                    continue
                raw = obj.raw
                obj.delete()
                self._record(resource, {"type": "DELETED", "object": raw})
                collected.add(meta.get("uid"))
            gone = collected

    def _record(self, resource: kmock.resource, event: Mapping[str, Any]) -> None:
        """Append a change to the event log that watches stream from, with a resourceVersion of its own."""
        obj = copy.deepcopy(dict(event["object"]))
        meta = obj.setdefault("metadata", {})
        version = int(meta.get("resourceVersion") or 0)
        stale = bool(self._log) and version <= self._log[-1][0]
        if event["type"] == "MODIFIED" and stale:
            return  # a patch that changed nothing: a real API server sends no event
        if event["type"] == "DELETED" or stale:
            version = self._next_version()
            meta["resourceVersion"] = str(version)
        self._log.append((version, resource, {"type": event["type"], "object": obj}))
        grew, self._log_grew = self._log_grew, asyncio.Event()
        grew.set()

    async def _serve_list(self, request: kmock.Request) -> Any:
        async with self._write_lock:
            payload = await super()._serve_list(request)
            version = self._version
        items = [item for item in payload["items"] if _selected(request, item)]
        return {**payload, "metadata": {"resourceVersion": str(version)}, "items": items}

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        yield b""  # send the headers now: the stream may stay quiet for long
        since = request.params.get("resourceVersion")
        async with self._write_lock:
            if since and since != "0" and since.isdigit():
                # Only what changed after `since`; a real server never replays the objects the client listed.
                cursor = next((index for index, (version, _, _) in enumerate(self._log)
                               if version > int(since)), len(self._log))
                initial: list[dict[str, Any]] = []
            else:
                cursor = len(self._log)
                initial = [{"type": "ADDED", "object": copy.deepcopy(obj.raw)}
                           for (resource, _, _), obj in self.objects.items()
                           if not obj.deleted and resource == request.resource and _selected(request, obj.raw)]
        for event in initial:
            yield event
        while True:
            while cursor < len(self._log):
                _, resource, event = self._log[cursor]
                cursor += 1
                if resource == request.resource and _selected(request, event["object"]):
                    yield event
            await self._log_grew.wait()

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        rendered = await super()._render_error(exc)
        assert isinstance(rendered, aiohttp.web.Response)
        body = rendered.body if "json" in self.error_content_type else \
            f"{rendered.status} {getattr(exc, 'reason', '') or 'Error'}".encode()
        return aiohttp.web.Response(body=body, status=rendered.status,
                                    headers={"Content-Type": self.error_content_type})

    def _admission_check(self, resource: kmock.resource, obj: Mapping[str, Any],
                         old: Mapping[str, Any] | None) -> None:
        if not self.admission or resource.group != GROUP:
            return
        errors = validate(obj, old=old)
        if errors:
            raise Rejected(status=422, reason="Invalid", message="; ".join(errors))

    def unexpected_errors(self) -> list[Exception]:
        """Errors other than deliberate API answers (404, 409, 422, 503): bugs in a client or here."""
        return [error for error in self.errors if not isinstance(error, kmock.KubernetesError)]


def _selected(request: kmock.Request, obj: Mapping[str, Any]) -> bool:
    """Whether a list or watch request selects `obj`: its namespace, name, label and field selectors."""
    meta = obj.get("metadata") or {}
    if request.namespace is not None and meta.get("namespace") != request.namespace:
        return False
    if request.name is not None and meta.get("name") != request.name:
        return False
    for term in filter(None, (request.params.get("fieldSelector") or "").split(",")):
        field, _, value = term.partition("=")
        if field in ("metadata.name", "metadata.namespace") and meta.get(field.split(".")[1]) != value:
            return False
    return selector_matches(request.params.get("labelSelector"), meta.get("labels"))


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
    client: KubeClient


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

    async def __aenter__(self) -> KubeClient:
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
