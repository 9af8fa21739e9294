"""pytest fixtures for the Kubernetes control plane: an emulated cluster, the real operator, a test kubelet.

Use them from a conftest.py with `from tests.support.fixtures import *  # noqa: F401,F403`
(`tests` is a package). All are function-scoped: every test gets a fresh cluster.

- `k8s_cluster`: a `Cluster` (emulator with every resource declared and the CRDs
  stored; `.url`, `.kubeconfig` file, `.client` a small REST client, `.emulator`).
- `workspace_dir`: the directory indexer pods see as the workspace root (hostPath).
- `operator_config`: the operator's `OperatorConfig` for this cluster and the test
  PostgreSQL (fast polling, short backoff).
- `test_kubelet`: a running `TestKubelet` (runs Jobs as local processes).
- `codebase_operator`: the real operator running in a thread (`OperatorThread`;
  `await codebase_operator.astop()` / `.astart()` to restart it).
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from .k8s import Cluster, OperatorThread, emulated_cluster
from .kubelet import TestKubelet

__all__ = ["k8s_cluster", "workspace_dir", "operator_config", "test_kubelet", "codebase_operator"]


@pytest_asyncio.fixture
async def k8s_cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with emulated_cluster(tmp_path) as cluster:
        yield cluster
        unexpected = cluster.emulator.unexpected_errors()
    assert not unexpected, f"the API emulator failed on some requests: {unexpected!r}"


@pytest.fixture
def workspace_dir(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def operator_config(k8s_cluster: Cluster, postgres_url: str, workspace_dir: Path):
    from codebase_operator.config import OperatorConfig, WorkspaceVolume

    return OperatorConfig(
        admin_database_url=postgres_url,
        indexer_image="codebase-mcp-indexer:test",
        workspace=WorkspaceVolume(host_path=str(workspace_dir)),
        kubeconfig=str(k8s_cluster.kubeconfig),
        poll_interval=0.3,
        retry_max_delay=1.0,
    )


@pytest_asyncio.fixture
async def test_kubelet(k8s_cluster: Cluster, tmp_path: Path) -> AsyncIterator[TestKubelet]:
    workdir = tmp_path / "kubelet"
    workdir.mkdir()
    async with TestKubelet(k8s_cluster.client, workdir) as kubelet:
        yield kubelet
    assert not kubelet.errors, "the test kubelet failed:\n" + "\n".join(kubelet.errors)


@pytest_asyncio.fixture
async def codebase_operator(operator_config) -> AsyncIterator[OperatorThread]:
    operator = OperatorThread(operator_config)
    await operator.astart()
    try:
        yield operator
    finally:
        await operator.astop()
