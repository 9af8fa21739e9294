"""The Kubernetes API as the operator uses it: pykube classes, and async wrappers of its blocking calls.

pykube-ng is synchronous (requests); every call runs in a worker thread so that
the operator's event loop (kopf's watchers, timers, asyncpg) never blocks on it.
The operator's own kinds are declared as classes rather than discovered.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

import kopf
import pykube
import requests

from codebase_indexer import contract

from . import API_VERSION


class CodebaseProject(pykube.objects.NamespacedAPIObject):
    version = API_VERSION
    endpoint = contract.PROJECTS
    kind = contract.PROJECT_KIND


class IndexingRun(pykube.objects.NamespacedAPIObject):
    version = API_VERSION
    endpoint = contract.RUNS
    kind = contract.RUN_KIND


Job, Pod, Secret, Event = pykube.Job, pykube.Pod, pykube.Secret, pykube.Event
Kind = type[pykube.objects.NamespacedAPIObject]


class Conflict(Exception):
    """The object changed since it was read (a failed optimistic-concurrency test)."""


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of an API error, whichever way the client raised it.

    pykube raises its own HTTPError only for an error body whose Content-Type is exactly
    `application/json`; anything else (a charset parameter, a proxy's text/html page)
    arrives as requests' HTTPError. Both mean the same answer from the server.
    """
    if isinstance(exc, pykube.exceptions.HTTPError):
        return exc.code
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return exc.response.status_code
    return None


API_ERRORS = (pykube.exceptions.HTTPError, requests.HTTPError)


def load_config(kubeconfig: str | None) -> pykube.KubeConfig:
    """The given kubeconfig file; else the in-cluster ServiceAccount; else $KUBECONFIG or ~/.kube/config."""
    if kubeconfig:
        return pykube.KubeConfig.from_file(kubeconfig)
    return pykube.KubeConfig.from_env()


def connection_info(config: pykube.KubeConfig) -> kopf.ConnectionInfo:
    """kopf's credentials from the same configuration pykube uses, so both talk to one cluster."""
    ca = config.cluster.get("certificate-authority")
    cert = config.user.get("client-certificate")
    key = config.user.get("client-key")
    return kopf.ConnectionInfo(
        server=config.cluster["server"],
        ca_path=ca.filename() if ca else None,
        insecure=config.cluster.get("insecure-skip-tls-verify"),
        username=config.user.get("username"),
        password=config.user.get("password"),
        token=config.user.get("token"),
        certificate_path=cert.filename() if cert else None,
        private_key_path=key.filename() if key else None,
        default_namespace=config.namespace,
    )


async def get(api: pykube.HTTPClient, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
    def fetch() -> dict[str, Any] | None:
        obj = kind.objects(api, namespace=namespace).get_or_none(name=name)
        return obj.obj if obj is not None else None
    return await asyncio.to_thread(fetch)


async def create(api: pykube.HTTPClient, kind: Kind, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create the object, or return the existing one of that name: (object, created)."""
    def post() -> tuple[dict[str, Any], bool]:
        obj = kind(api, dict(body))
        try:
            obj.create()
            return obj.obj, True
        except API_ERRORS as exc:
            if status_code(exc) != 409:
                raise
        existing = kind.objects(api, namespace=body["metadata"]["namespace"]).get_by_name(
            body["metadata"]["name"])
        return existing.obj, False
    return await asyncio.to_thread(post)


async def create_new(api: pykube.HTTPClient, kind: Kind, body: Mapping[str, Any]) -> None:
    """Create an object whose name is new (an Event's); a name taken already is an error."""
    await asyncio.to_thread(lambda: kind(api, dict(body)).create())


async def delete(api: pykube.HTTPClient, kind: Kind, namespace: str, name: str) -> bool:
    """Delete in the background (dependents are garbage-collected); False when it was already gone."""
    def remove() -> bool:
        obj = kind(api, {"metadata": {"name": name, "namespace": namespace}})
        # Not obj.delete(): it swallows a 404, and callers need to know the object was already gone.
        response: requests.Response = api.delete(**obj.api_kwargs(
            data=json.dumps({"propagationPolicy": "Background"})))
        if response.status_code == 404:
            return False
        api.raise_for_status(response)
        return True
    return await asyncio.to_thread(remove)


async def list_labelled(api: pykube.HTTPClient, kind: Kind, namespace: str | None,
                        labels: Mapping[str, str]) -> list[dict[str, Any]]:
    """Objects selected by these labels, in one namespace or (None) in all of them."""
    def fetch() -> list[dict[str, Any]]:
        scope = pykube.all if namespace is None else namespace
        query = kind.objects(api, namespace=scope).filter(selector=dict(labels))
        return [obj.obj for obj in query if _has_labels(obj.obj, labels)]
    return await asyncio.to_thread(fetch)


def _has_labels(obj: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    # The server filters already; checked again so that a proxy or cache ignoring the selector cannot widen it.
    found = (obj.get("metadata") or {}).get("labels") or {}
    return all(found.get(key) == value for key, value in labels.items())


async def json_patch(api: pykube.HTTPClient, kind: Kind, namespace: str, name: str,
                     ops: Sequence[Mapping[str, Any]], *, subresource: str | None = None) -> dict[str, Any]:
    """Apply a JSON patch; a failed `test` op raises Conflict."""
    def patch() -> dict[str, Any]:
        obj = kind(api, {"metadata": {"name": name, "namespace": namespace}})
        response: requests.Response = api.patch(**obj.api_kwargs(
            subresource=subresource, data=json.dumps(list(ops)),
            headers={"Content-Type": "application/json-patch+json"}))
        if response.status_code in (409, 422):
            raise Conflict(response.text)
        api.raise_for_status(response)
        return response.json()
    return await asyncio.to_thread(patch)


async def list_all(api: pykube.HTTPClient, kind: Kind, namespace: str | None) -> list[dict[str, Any]]:
    """Every object of the kind in one namespace or (None) in all of them."""
    def fetch() -> list[dict[str, Any]]:
        return [obj.obj for obj in kind.objects(api, namespace=pykube.all if namespace is None else namespace)]
    return await asyncio.to_thread(fetch)


async def list_in_namespaces(api: pykube.HTTPClient, kind: Kind, namespaces: Sequence[str]) -> list[dict[str, Any]]:
    """Objects of `kind` in these namespaces, or in every namespace when none is given."""
    def fetch(namespace: Any) -> list[dict[str, Any]]:
        return [obj.obj for obj in kind.objects(api, namespace=namespace)]
    if not namespaces:
        return await asyncio.to_thread(fetch, pykube.all)
    found: list[dict[str, Any]] = []
    for namespace in namespaces:
        found.extend(await asyncio.to_thread(fetch, namespace))
    return found
