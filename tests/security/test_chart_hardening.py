"""Kubernetes hardening of issue 14, checked on what is installed: the rendered chart and the CRDs.

Each test reproduces what the chart or the API allowed before (a pod that reaches the database from anywhere,
the admin URL in an environment variable, a project asking for 512 cores, a Role that reads every Secret, a
hostPath workspace) and sees it refused now.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from urllib.parse import unquote, urlsplit

import pytest

from tests.chart.chart_support import FULL_VALUES, Helm, fetch_tools_module, one
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


# Chart rendering, shared by the items below.

@pytest.fixture(scope="module")
def helm() -> Helm:
    return Helm(fetch_tools_module().ensure_tools()["helm"])


@pytest.fixture(scope="module")
def default_manifests(helm) -> list[dict]:
    return helm.render()


@pytest.fixture(scope="module")
def full_manifests(helm) -> list[dict]:
    return helm.render("--values", str(FULL_VALUES))


def workloads(manifests: list[dict]) -> list[dict]:
    return [m for m in manifests if m["kind"] in ("Deployment", "StatefulSet", "Job", "Pod")]


def pod_spec(manifest: dict) -> dict:
    return manifest["spec"] if manifest["kind"] == "Pod" else manifest["spec"]["template"]["spec"]


def all_containers(manifest: dict) -> list[dict]:
    spec = pod_spec(manifest)
    return [*spec.get("initContainers", ()), *spec["containers"]]


def secret_env(manifests: list[dict]) -> set[tuple[str, str, str, str]]:
    """(workload, variable, Secret, key) for every environment variable filled from a Secret."""
    return {(m["metadata"]["name"], item["name"], ref["name"], ref["key"])
            for m in workloads(manifests) for container in all_containers(m) for item in container.get("env", ())
            if (ref := (item.get("valueFrom") or {}).get("secretKeyRef"))}


# Item 2: the admin database credential reaches its two users (the operator, the bundled PostgreSQL) as files.

EXTERNAL_PARTS = ["--set", "postgresql.enabled=false", "--set", "externalDatabase.host=db.example.com",
                  "--set", "externalDatabase.user=cb_admin", "--set", "externalDatabase.passwordSecret.name=db-admin"]


def operator_admin_url_file(manifests: list[dict]) -> tuple[dict, str, dict]:
    """The operator Deployment, the --admin-database-url-file path and the volume that path is on."""
    operator = one(manifests, "Deployment", "-operator")
    container = pod_spec(operator)["containers"][0]
    (path,) = [arg.split("=", 1)[1] for arg in container["args"] if arg.startswith("--admin-database-url-file=")]
    (mount,) = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod_spec(operator)["volumes"] if v["name"] == mount["name"]]
    return operator, path, volume


@pytest.mark.parametrize("values", [[], ["--values", str(FULL_VALUES)], EXTERNAL_PARTS],
                         ids=["bundled", "external-url-secret", "external-parts"])
def test_no_pod_gets_the_admin_credential_in_its_environment(helm, values):
    manifests = helm.render(*values)
    admin_secrets = {"cbm-codebase-mcp-postgresql-admin", "codebase-db-admin", "db-admin"}
    leaked = {entry for entry in secret_env(manifests) if entry[2] in admin_secrets}
    assert not leaked, f"the admin credential is in an environment: {leaked}"
    for workload in workloads(manifests):
        for container in all_containers(workload):
            names = {item["name"] for item in container.get("env", ())}
            assert not names & {"CODEBASE_ADMIN_DATABASE_URL", "POSTGRES_PASSWORD", "DATABASE_URL"}, \
                (workload["metadata"]["name"], names)
    operator, path, volume = operator_admin_url_file(manifests)
    assert path == "/var/run/secrets/codebase-mcp/admin-database/url"


def test_the_bundled_postgresql_reads_its_password_from_a_file(default_manifests):
    statefulset = one(default_manifests, "StatefulSet", "-postgresql")
    (container,) = pod_spec(statefulset)["containers"]
    environment = {item["name"]: item for item in container["env"]}
    password_file = environment["POSTGRES_PASSWORD_FILE"]["value"]
    (mount,) = [m for m in container["volumeMounts"] if password_file.startswith(m["mountPath"] + "/")]
    (volume,) = [v for v in pod_spec(statefulset)["volumes"] if v["name"] == mount["name"]]
    admin = one(default_manifests, "Secret", "-postgresql-admin")
    assert volume["secret"]["secretName"] == admin["metadata"]["name"]
    assert {"key": "password", "path": password_file.rsplit("/", 1)[1]} in volume["secret"]["items"]
    _, _, operator_volume = operator_admin_url_file(default_manifests)
    assert operator_volume["secret"]["secretName"] == admin["metadata"]["name"]


def test_an_external_database_given_as_parts_reaches_the_operator_as_a_url_file(helm, tmp_path, monkeypatch):
    """The init container's own script, run as the kubelet would run it, writes a URL the operator accepts,
    with a password full of URL syntax intact and sslmode=require by default."""
    from codebase_operator import command

    manifests = helm.render(*EXTERNAL_PARTS, "--set", "externalDatabase.port=6432")
    operator, path, volume = operator_admin_url_file(manifests)
    assert volume["emptyDir"]["medium"] == "Memory"
    (init,) = pod_spec(operator)["initContainers"]
    assert {m["name"] for m in init["volumeMounts"]} == {volume["name"], "admin-password"}
    (password_volume,) = [v for v in pod_spec(operator)["volumes"] if v["name"] == "admin-password"]
    assert password_volume["secret"]["secretName"] == "db-admin"

    password = "p@ss:w/rd?%#&= 1"
    (tmp_path / "password").write_text(password + "\n")
    environment = {item["name"]: item["value"] for item in init["env"]}
    environment.update(PASSWORD_FILE=str(tmp_path / "password"), URL_FILE=str(tmp_path / "url"))
    subprocess.run([sys.executable, *init["command"][1:], *init["args"]], env=environment, check=True,
                   capture_output=True, text=True, timeout=30)
    assert (tmp_path / "url").stat().st_mode & 0o077 == 0

    container = pod_spec(operator)["containers"][0]
    for item in container["env"]:
        monkeypatch.setenv(item["name"], item.get("value", ""))
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    arguments = [f"--admin-database-url-file={tmp_path / 'url'}" if arg.startswith("--admin-database-url-file=")
                 else arg for arg in container["args"]]
    url = urlsplit(command.config_from_args(parser.parse_args(arguments)).admin_database_url)
    assert (url.hostname, url.port, url.username, url.path) == ("db.example.com", 6432, "cb_admin", "/postgres")
    assert unquote(url.password) == password
    assert url.query == "sslmode=require"


def test_an_external_database_without_credentials_is_refused_with_what_to_set(helm):
    result = helm.template("--set", "postgresql.enabled=false", check=False)
    assert result.returncode != 0
    assert "/externalDatabase/existingSecret" in result.stderr and "/externalDatabase/host" in result.stderr
    result = helm.template("--set", "postgresql.enabled=false", "--set", "externalDatabase.sslmode=sometimes",
                           "--set", "externalDatabase.existingSecret=db", check=False)
    assert result.returncode != 0 and "/externalDatabase/sslmode" in result.stderr


def test_the_parts_form_renders_valid_kubernetes(helm):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for manifest in helm.render(*EXTERNAL_PARTS):
        kubernetes_validate.validate(manifest, "1.33", strict=True)
