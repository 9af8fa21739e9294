"""Kubernetes hardening of issue 14, checked on what is installed: the rendered chart and the CRDs.

Each test reproduces what the chart or the API allowed before (a pod that reaches the database from anywhere,
the admin URL in an environment variable, a project asking for 512 cores, a Role that reads every Secret, a
hostPath workspace) and sees it refused now.
"""
from __future__ import annotations

import pytest

from tests.support.crds import validate
from tests.support.resources import project_manifest

# Item 3: a project's indexerTemplate.resources is bounded by the API itself.


def project_asking_for(resources: dict) -> dict:
    return project_manifest("greedy", "greedy", path="greedy", indexerTemplate={"resources": resources})


@pytest.mark.parametrize("resources", [
    {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "3Gi"}},
    {"requests": {"cpu": 16, "memory": "64Gi", "ephemeral-storage": "20Gi"}, "limits": {"cpu": "16000m"}},
    {"limits": {"memory": 68719476736}},  # 64Gi in bytes
])
def test_indexer_resources_within_the_bounds_are_accepted(resources):
    assert validate(project_asking_for(resources)) == []


@pytest.mark.parametrize("resources, message", [
    ({"requests": {"cpu": "512"}}, "indexerTemplate.resources.requests.cpu must be at most 16"),
    ({"limits": {"cpu": "16001m"}}, "indexerTemplate.resources.limits.cpu must be at most 16"),
    ({"requests": {"memory": "1Ti"}}, "indexerTemplate.resources.requests.memory must be at most 64Gi"),
    ({"limits": {"memory": 68719476737}}, "indexerTemplate.resources.limits.memory must be at most 64Gi"),
    ({"limits": {"memory": "7e10"}}, "indexerTemplate.resources.limits.memory must be at most 64Gi"),
    ({"limits": {"ephemeral-storage": "1Pi"}}, "indexerTemplate.resources.limits.ephemeral-storage must be at most"),
    ({"requests": {"nvidia.com/gpu": 8}}, "may only name cpu, memory and ephemeral-storage"),
])
def test_a_larger_or_unknown_resource_request_is_refused_with_a_clear_message(resources, message):
    pytest.importorskip("celpy", reason="cel-python evaluates the CRDs' CEL rules offline")
    errors = validate(project_asking_for(resources))
    assert any(message in error for error in errors), errors
