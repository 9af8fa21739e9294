"""The operator's emulator tier: the fixtures live in tests/support so the gateway's tests share them."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import rbac
from tests.support.fixtures import *  # noqa: F401,F403

RBAC_MANIFEST = Path(__file__).resolve().parents[2] / "operator" / "rbac.yaml"
OPERATOR_AGENTS = ("kopf/", "pykube-ng/")


@pytest.fixture(autouse=True)
def _operator_environment(operator_environment):
    """Operator tests configure the operator as its Deployment would (see tests/conftest.py)."""


@pytest.fixture(autouse=True)
def operator_stays_within_its_rbac(request):
    """Every API call the operator made in a test must be granted by operator/rbac.yaml
    (its ClusterRole anywhere, its Role within a namespace)."""
    if "codebase_operator" not in request.fixturenames:
        yield
        return
    cluster = request.getfixturevalue("k8s_cluster")
    yield
    rules = rbac.cluster_role_rules(RBAC_MANIFEST, "codebase-operator")
    namespaced = rbac.role_rules(RBAC_MANIFEST, "codebase-operator")
    missing = rbac.violations(list(cluster.emulator), rules, OPERATOR_AGENTS, namespaced)
    assert not missing, f"operator/rbac.yaml does not grant what the operator used: {sorted(missing)}"
