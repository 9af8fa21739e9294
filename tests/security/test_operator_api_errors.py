"""Item 18c: the operator survives the API server's real behaviour, and the test API server has it.

- kube.py recognised API errors only as pykube's HTTPError, which pykube raises only when the
  error body's Content-Type is exactly `application/json`; any other (a charset parameter, a proxy's
  text page) arrived as requests' HTTPError and a 409 on create or a 404 on delete became a crash.
- The emulator replayed every object on a watch from a resourceVersion, answered errors with
  `application/json; charset=utf-8`, never bumped resourceVersion on a status patch, collected no
  garbage and validated no names or labels: code that depended on any of these passed here and
  would fail on a real server.
- An operator that dies after creating a Job but before recording it must, once restarted,
  adopt that Job: no second Job, and the run completes.
"""
from __future__ import annotations

import asyncio
import json

import pykube
import pytest

from codebase_operator import kube
from tests.security.operator_support import *  # noqa: F401,F403
from tests.security.operator_support import (
    JOBS,
    PROJECTS,
    RUNS,
    SECRETS,
    create_secret,
    jobs_of,
    ready_project,
    until_condition,
)
from tests.support.k8s import ApiError, eventually, resource_path
from tests.support.resources import project_manifest, run_manifest

OPERATOR_AGENTS = ("kopf/", "pykube-ng/")


def _pykube(cluster) -> pykube.HTTPClient:
    return pykube.HTTPClient(kube.load_config(str(cluster.kubeconfig)))


# The operator's client, whatever the error body looks like.

@pytest.mark.parametrize("content_type", ["application/json", "text/plain; charset=utf-8"])
async def test_conflicts_and_missing_objects_are_recognised_by_status_code(k8s_cluster, content_type):
    k8s_cluster.emulator.error_content_type = content_type  # a real server, or a proxy in front of one
    api = _pykube(k8s_cluster)
    await create_secret(k8s_cluster, "existing", {"k": "v"})
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "existing", "namespace": "default"},
            "data": {}}

    found, created = await kube.create(api, kube.Secret, body)
    assert created is False and found["data"] == {"k": "dg=="}
    assert await kube.delete(api, kube.Secret, "default", "never-was") is False
    with pytest.raises(kube.Conflict):
        await kube.json_patch(api, kube.Secret, "default", "existing", [
            {"op": "test", "path": "/metadata/resourceVersion", "value": "0"},
            {"op": "add", "path": "/metadata/labels/x", "value": "y"}])
    assert await kube.get(api, kube.Secret, "default", "never-was") is None


# The operator killed right after creating a Job.

@pytest.mark.slow
async def test_a_restart_between_creating_a_job_and_recording_it_adopts_that_job(
        k8s_cluster, codebase_operator, test_kubelet, unique_project_id, drop_databases, repo):
    drop_databases.append(unique_project_id)
    await ready_project(k8s_cluster, "crashy", unique_project_id, path=repo)
    test_kubelet.hold("crash")
    # Error bodies as an API server behind a re-encoding proxy sends them (the case pykube does not
    # recognise): before, the restarted operator's create of the existing Job then failed forever.
    k8s_cluster.emulator.error_content_type = "application/json; charset=utf-8"

    # Nothing the operator writes to the run arrives (as if it died the moment the Job existed).
    lift = k8s_cluster.emulator.refuse(lambda request: request.name == "crash" and str(
        getattr(request.method, "value", request.method)).upper() == "PATCH"
        and request.headers.get("User-Agent", "").startswith(OPERATOR_AGENTS))
    await k8s_cluster.client.create(RUNS, "default", run_manifest("crash", "crashy"))
    await eventually(lambda: jobs_of(k8s_cluster, "crash"), message="the Job")
    await codebase_operator.astop()
    run = await k8s_cluster.client.get(RUNS, "default", "crash")
    assert "jobName" not in (run.get("status") or {}), "the test must stop the operator before it records the Job"

    lift()
    await codebase_operator.astart()
    await until_condition(k8s_cluster, RUNS, "crash", "Succeeded", "Unknown", "Pending")
    test_kubelet.release("crash")
    run = await until_condition(k8s_cluster, RUNS, "crash", "Succeeded", "True", timeout=120)
    (job,) = await jobs_of(k8s_cluster, "crash")
    assert run["status"]["jobName"] == job["metadata"]["name"]
    assert test_kubelet.started.count(job["metadata"]["name"]) == 1


# The test API server behaves like a real one.

async def _watch_events(cluster, resource, since, count):
    session = cluster.client._session
    events = []
    async with session.get(resource_path(resource, "default"),
                           params={"watch": "true", "resourceVersion": since}) as response:
        async with asyncio.timeout(10):
            async for line in response.content:
                if line.strip():
                    events.append(json.loads(line))
                if len(events) == count:
                    return events
    return events


async def test_a_watch_from_a_resource_version_streams_only_later_changes(k8s_cluster):
    await create_secret(k8s_cluster, "before", {"k": "v"})
    async with k8s_cluster.client._session.get(resource_path(SECRETS, "default")) as response:
        listed = await response.json()
    since = listed["metadata"]["resourceVersion"]
    assert since.isdigit() and [s["metadata"]["name"] for s in listed["items"]] == ["before"]

    watching = asyncio.create_task(_watch_events(k8s_cluster, SECRETS, since, 2))
    await asyncio.sleep(0.3)
    await create_secret(k8s_cluster, "after", {"k": "v"})
    await k8s_cluster.client.delete(SECRETS, "default", "before")
    events = await watching
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "after"),
                                                                            ("DELETED", "before")]
    assert int(events[1]["object"]["metadata"]["resourceVersion"]) > int(events[0]["object"]["metadata"]
                                                                          ["resourceVersion"])


async def test_errors_are_status_bodies_with_the_json_content_type(k8s_cluster):
    async with k8s_cluster.client._session.get(resource_path(SECRETS, "default", "missing")) as response:
        assert response.status == 404
        assert response.headers["Content-Type"] == "application/json"
        status = await response.json()
    assert (status["kind"], status["code"], status["status"]) == ("Status", 404, "Failure")


async def test_a_failed_patch_test_is_a_422_and_changes_nothing(k8s_cluster):
    await create_secret(k8s_cluster, "guarded", {"k": "v"})
    before = await k8s_cluster.client.get(SECRETS, "default", "guarded")
    with pytest.raises(ApiError) as refused:
        await k8s_cluster.client._call("PATCH", resource_path(SECRETS, "default", "guarded"), [
            {"op": "add", "path": "/metadata/labels", "value": {"changed": "yes"}},
            {"op": "test", "path": "/metadata/resourceVersion", "value": "0"}], "application/json-patch+json")
    assert refused.value.status == 422
    assert await k8s_cluster.client.get(SECRETS, "default", "guarded") == before


async def test_a_status_patch_gets_a_new_resource_version(k8s_cluster):
    await k8s_cluster.client.create(PROJECTS, "default", project_manifest("versioned", "v", path="repo"))
    before = await k8s_cluster.client.get(PROJECTS, "default", "versioned")
    after = await k8s_cluster.client.patch(PROJECTS, "default", "versioned", {"status": {"activeRun": "r"}},
                                           subresource="status")
    assert int(after["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])


async def test_owned_objects_are_garbage_collected_with_their_owner(k8s_cluster):
    project = await k8s_cluster.client.create(PROJECTS, "default", project_manifest("owner", "o", path="repo"))
    owned_by = lambda obj, kind: [{"apiVersion": obj["apiVersion"], "kind": kind,  # noqa: E731
                                   "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"]}]
    secret = await k8s_cluster.client.create(SECRETS, "default", {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "owner-db", "ownerReferences": owned_by(project, "CodebaseProject")}})
    await k8s_cluster.client.create(JOBS, "default", {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "grandchild", "ownerReferences": owned_by(secret, "Secret")}, "spec": {}})
    await k8s_cluster.client.create(SECRETS, "default", {"apiVersion": "v1", "kind": "Secret",
                                                         "metadata": {"name": "unowned"}})

    await k8s_cluster.client.delete(PROJECTS, "default", "owner")
    assert await k8s_cluster.client.get(SECRETS, "default", "owner-db") is None
    assert await k8s_cluster.client.get(JOBS, "default", "grandchild") is None
    assert await k8s_cluster.client.get(SECRETS, "default", "unowned") is not None


@pytest.mark.parametrize("metadata, problem", [
    ({"name": "Upper_Case"}, "RFC 1123"),
    ({"name": "fine", "labels": {"app": "x" * 64}}, "label value"),
    ({"name": "fine", "labels": {"bad key!": "x"}}, "label key"),
])
async def test_names_and_labels_are_validated(k8s_cluster, metadata, problem):
    with pytest.raises(ApiError, match=problem) as refused:
        await k8s_cluster.client.create(SECRETS, "default", {"apiVersion": "v1", "kind": "Secret",
                                                             "metadata": metadata})
    assert refused.value.status == 422


async def test_label_selectors_select(k8s_cluster):
    await create_secret(k8s_cluster, "picked", {}, labels={"team": "a", "tier": "db"})
    await create_secret(k8s_cluster, "other", {}, labels={"team": "b"})
    api = _pykube(k8s_cluster)
    assert [s["metadata"]["name"] for s in await kube.list_labelled(api, kube.Secret, "default", {"team": "a"})] \
        == ["picked"]
    assert [s["metadata"]["name"] for s in await kube.list_labelled(api, kube.Secret, None, {"team": "b"})] \
        == ["other"]
