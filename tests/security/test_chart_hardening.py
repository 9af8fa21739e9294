"""Kubernetes hardening of issue 14, checked on what is installed: the rendered chart and the CRDs.

Each test reproduces what the chart or the API allowed before (a pod that reaches the database from anywhere,
the admin URL in an environment variable, a project asking for 512 cores, a Role that reads every Secret, a
hostPath workspace) and sees it refused now.
"""
from __future__ import annotations

import argparse
import base64
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.support.crds import validate
from tests.support.resources import project_manifest

# The chart tests' helpers, imported under the names tests/chart uses (it is not a package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chart"))
from chart_support import FULL_VALUES, find, one  # noqa: E402
from indexer_jobs import indexer_job  # noqa: E402
from network_policy import Endpoint, Network, external, pod_of  # noqa: E402
from pod_security import violations  # noqa: E402


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


# Bounded resources: a project's indexerTemplate.resources is bounded by the API itself.


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


# The admin credential as files: the admin database credential reaches its two users (the operator, the bundled
# PostgreSQL) as files.

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
            assert not names & {"CODEBASE_MCP_ADMIN_DATABASE_URL", "POSTGRES_PASSWORD", "DATABASE_URL"}, \
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


def test_an_external_database_given_as_parts_reaches_the_operator_as_a_url_file(operator_environment, helm, tmp_path,
                                                                               monkeypatch):
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


@pytest.mark.parametrize("values", [EXTERNAL_PARTS, ["--set", "operator.namespace=codebase-system"]],
                         ids=["external-parts", "operator-namespace"])
def test_the_new_forms_render_valid_kubernetes(helm, values):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for manifest in helm.render(*values):
        kubernetes_validate.validate(manifest, "1.33", strict=True)


# Pod Security: Every pod the chart creates, and the indexer pods the operator creates, pass "restricted".

VARIANTS = {"default": [], "full": ["--values", str(FULL_VALUES)], "external-parts": EXTERNAL_PARTS,
            "operator-namespace": ["--set", "operator.namespace=codebase-system"]}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_pod_of_the_chart_passes_pod_security_restricted(helm, variant):
    manifests = helm.render(*VARIANTS[variant])
    pods = workloads(manifests)
    assert {m["kind"] for m in pods} >= {"Deployment"}
    for manifest in pods:
        assert violations(pod_spec(manifest), "restricted") == [], manifest["metadata"]["name"]


@pytest.mark.parametrize("variant", ["default", "full"])
def test_the_operators_indexer_pods_pass_pod_security_restricted(helm, variant):
    manifests = helm.render(*VARIANTS[variant])
    job = indexer_job(manifests, "codebase")
    spec = pod_spec(job)
    assert any("persistentVolumeClaim" in volume for volume in spec["volumes"])  # the workspace
    assert violations(spec, "restricted") == []
    git_job = indexer_job(manifests, "codebase", source={"git": {"url": "https://git.example.com/r.git"}})
    assert violations(pod_spec(git_job), "restricted") == []


def test_the_default_workspace_is_a_claim_the_chart_creates(default_manifests):
    claim = one(default_manifests, "PersistentVolumeClaim", "-workspace")
    gateway = one(default_manifests, "Deployment", "-gateway")
    (volume,) = [v for v in pod_spec(gateway)["volumes"] if v["name"] == "workspace"]
    assert volume == {"name": "workspace", "persistentVolumeClaim": {
        "claimName": claim["metadata"]["name"], "readOnly": True}}
    assert not [v for m in workloads(default_manifests) for v in pod_spec(m).get("volumes", ()) if "hostPath" in v]


def test_a_hostpath_workspace_is_an_opt_in_that_fails_baseline(helm):
    """What the old default did: the gateway and every indexer pod mount a node folder."""
    manifests = helm.render("--set", "workspace.type=hostPath")
    assert not find(manifests, "PersistentVolumeClaim")
    gateway_problems = violations(pod_spec(one(manifests, "Deployment", "-gateway")), "baseline")
    indexer_problems = violations(pod_spec(indexer_job(manifests, "codebase")), "baseline")
    assert gateway_problems == ["volume workspace is a hostPath"]
    assert indexer_problems == ["volume workspace is a hostPath"]
    readme = (Path(__file__).resolve().parents[2] / "charts" / "codebase-mcp" / "README.md").read_text()
    assert 'fails Pod Security "baseline"' in readme


@pytest.mark.parametrize("change, problem", [
    (lambda spec: spec["containers"][0]["securityContext"].update(privileged=True), "is privileged"),
    (lambda spec: spec["securityContext"].pop("seccompProfile"), "seccomp"),
    (lambda spec: spec["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"),
     "allowPrivilegeEscalation"),
    (lambda spec: spec["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]), "SYS_ADMIN"),
    (lambda spec: spec["securityContext"].update(runAsNonRoot=False), "non-root"),
    (lambda spec: spec.update(hostNetwork=True), "hostNetwork"),
])
def test_the_pod_security_checker_catches_what_restricted_refuses(default_manifests, change, problem):
    import copy

    spec = copy.deepcopy(pod_spec(one(default_manifests, "Deployment", "-operator")))
    change(spec)
    assert any(problem in line for line in violations(spec, "restricted")), violations(spec, "restricted")


# NetworkPolicies: Connections are evaluated over the rendered policies and the pods the chart and the
# operator really create (their labels and named ports), in the namespaces they really run in.

API_SERVER = external("10.96.0.1", "kubernetes API")
INTERNET = external("203.0.113.7", "somewhere on the internet")
DNS = Endpoint("coredns", "kube-system", {"k8s-app": "kube-dns"})
WATCHED = ["--set", "operator.extraWatchNamespaces={team-a}"]
NAMESPACE_NAME = "kubernetes\\.io/metadata\\.name"  # the label key, escaped for --set


class Cluster:
    """The pods of a rendered release, plus indexers and strangers, under the release's NetworkPolicies."""

    def __init__(self, manifests: list[dict]):
        self.manifests = manifests
        self.network = Network(manifests)

    def pod(self, kind: str, suffix: str) -> Endpoint:
        return pod_of(one(self.manifests, kind, suffix))

    def indexer(self, namespace: str) -> Endpoint:
        return pod_of(indexer_job(self.manifests, namespace))

    def can(self, source: Endpoint, destination: Endpoint, port: int | str, protocol: str = "TCP") -> bool:
        return self.network.allows(source, destination, port, protocol)


@pytest.fixture(scope="module")
def cluster(helm) -> Cluster:
    return Cluster(helm.render(*WATCHED))


def stranger(namespace: str, **labels: str) -> Endpoint:
    return Endpoint(f"stranger in {namespace}", namespace, labels or {"app": "curl"})


def test_the_database_accepts_only_the_operator_the_gateway_and_indexer_pods(cluster):
    database = cluster.pod("StatefulSet", "-postgresql")
    for allowed in (cluster.pod("Deployment", "-operator"), cluster.pod("Deployment", "-gateway"),
                    cluster.indexer("codebase"), cluster.indexer("team-a")):
        assert cluster.can(allowed, database, 5432), allowed.name
        assert cluster.can(allowed, database, "postgresql"), allowed.name
    indexer_labels = cluster.indexer("team-a").labels
    for refused in (stranger("codebase"), stranger("team-a"), cluster.pod("Pod", "-test-gateway"),
                    Endpoint("indexer look-alike", "not-watched", indexer_labels)):
        assert not cluster.can(refused, database, 5432), refused.name
    assert not cluster.can(cluster.pod("Deployment", "-gateway"), database, 22)


def test_the_database_reaches_nothing(cluster):
    database = cluster.pod("StatefulSet", "-postgresql")
    for destination, port in ((INTERNET, 443), (API_SERVER, 443), (cluster.pod("Deployment", "-gateway"), 8000)):
        assert not cluster.can(database, destination, port), destination.name


def test_indexer_pods_reach_only_the_database_and_dns_by_default(cluster):
    database = cluster.pod("StatefulSet", "-postgresql")
    for namespace in ("codebase", "team-a"):
        indexer = cluster.indexer(namespace)
        assert cluster.can(indexer, database, 5432)
        assert cluster.can(indexer, DNS, 53, "UDP") and cluster.can(indexer, DNS, 53, "TCP")
        for destination, port in ((INTERNET, 443), (INTERNET, 22), (API_SERVER, 443), (API_SERVER, 6443),
                                  (cluster.pod("Deployment", "-gateway"), 8000),
                                  (cluster.pod("Deployment", "-operator"), 8080), (stranger(namespace), 80),
                                  (Endpoint("dns look-alike", "codebase", {"k8s-app": "kube-dns"}), 53)):
            assert not cluster.can(indexer, destination, port), (namespace, destination.name, port)
        assert not cluster.can(stranger(namespace), indexer, 8080)  # nothing connects to an indexer


def test_indexer_pods_reach_the_embedding_server_and_git_hosts_the_values_allow(helm):
    cluster = Cluster(helm.render(
        "--set", "embedding.provider=openai", "--set", "embedding.url=http://tei.embeddings.svc:8080",
        "--set", f"networkPolicy.embedding.to[0].namespaceSelector.matchLabels.{NAMESPACE_NAME}=embeddings",
        "--set", "networkPolicy.git.to[0].ipBlock.cidr=140.82.112.0/20",
        "--set", "networkPolicy.git.ports[0].port=443"))
    indexer, gateway = cluster.indexer("codebase"), cluster.pod("Deployment", "-gateway")
    tei = Endpoint("tei", "embeddings", {"app": "tei"})
    github = external("140.82.112.3", "github.com")
    for client in (indexer, gateway):
        assert cluster.can(client, tei, 8080), client.name
        assert not cluster.can(client, tei, 9000) and not cluster.can(client, stranger("codebase"), 8080)
    assert cluster.can(indexer, github, 443)
    assert not cluster.can(indexer, github, 22) and not cluster.can(indexer, INTERNET, 443)
    assert not cluster.can(indexer, tei, 443)
    assert not cluster.can(gateway, github, 22)


def test_the_gateway_and_the_operator_reach_the_api_server_dns_and_the_database(cluster):
    database = cluster.pod("StatefulSet", "-postgresql")
    for component in (cluster.pod("Deployment", "-gateway"), cluster.pod("Deployment", "-operator")):
        assert cluster.can(component, API_SERVER, 443) and cluster.can(component, API_SERVER, 6443)
        assert cluster.can(component, DNS, 53, "UDP") and cluster.can(component, database, 5432)
        assert not cluster.can(component, INTERNET, 80) and not cluster.can(component, stranger("codebase"), 8080)
    operator = cluster.pod("Deployment", "-operator")
    assert cluster.can(stranger("codebase"), operator, "liveness")  # the kubelet's probe
    assert not cluster.can(stranger("codebase"), operator, 9999)


def test_a_pinned_api_server_and_gateway_clients(helm):
    cluster = Cluster(helm.render(
        "--set", "networkPolicy.apiServer.to[0].ipBlock.cidr=10.96.0.1/32",
        "--set", f"networkPolicy.gatewayFrom[0].namespaceSelector.matchLabels.{NAMESPACE_NAME}=ingress"))
    gateway = cluster.pod("Deployment", "-gateway")
    assert cluster.can(gateway, API_SERVER, 443) and not cluster.can(gateway, INTERNET, 443)
    assert cluster.can(Endpoint("ingress controller", "ingress", {"app": "nginx"}), gateway, 8000)
    assert cluster.can(cluster.pod("Pod", "-test-gateway"), gateway, "http")  # helm test keeps working
    assert not cluster.can(stranger("codebase"), gateway, 8000)


def test_the_gateway_answers_any_client_by_default(cluster):
    assert cluster.can(stranger("elsewhere"), cluster.pod("Deployment", "-gateway"), "http")  # it checks a token


def test_an_external_database_is_reached_on_its_port(helm):
    cluster = Cluster(helm.render(*EXTERNAL_PARTS, "--set", "externalDatabase.port=6432",
                                  "--set", "networkPolicy.externalDatabase.to[0].ipBlock.cidr=10.20.0.0/16"))
    assert not find(cluster.manifests, "NetworkPolicy", "-postgresql")
    database, elsewhere = external("10.20.3.4", "managed PostgreSQL"), external("10.30.0.1")
    for client in (cluster.indexer("codebase"), cluster.pod("Deployment", "-gateway"),
                   cluster.pod("Deployment", "-operator")):
        assert cluster.can(client, database, 6432), client.name
        assert not cluster.can(client, database, 22) and not cluster.can(client, elsewhere, 6432)


def test_network_policies_can_be_turned_off(helm):
    assert not find(helm.render("--set", "networkPolicy.enabled=false"), "NetworkPolicy")


def test_the_checker_sees_a_selector_that_matches_no_pod(cluster):
    """If the chart's indexer labels drifted from the operator's, the database would refuse indexers."""
    import copy

    manifests = copy.deepcopy(cluster.manifests)
    policy = one(manifests, "NetworkPolicy", "-postgresql")
    for peer in policy["spec"]["ingress"][0]["from"]:
        if "matchExpressions" in peer.get("namespaceSelector", {}):
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] = "indexer"
    drifted = Cluster(manifests)
    assert not drifted.can(drifted.indexer("codebase"), drifted.pod("StatefulSet", "-postgresql"), 5432)


# RBAC: Nothing reads Secrets cluster-wide; nothing lists or watches them; Secrets are read by name only.

RBAC_YAML = Path(__file__).resolve().parents[2] / "operator" / "rbac.yaml"
SECRET_READING = {"get", "list", "watch", "*"}
# Creating a pod (or what creates pods) in a namespace is as good as reading its Secrets.
POD_CREATING = {("", "pods"), ("batch", "jobs"), ("batch", "cronjobs"), ("apps", "deployments"),
                ("apps", "statefulsets"), ("apps", "daemonsets"), ("apps", "replicasets")}


def rbac_documents(source) -> list[dict]:
    import yaml

    documents = source if isinstance(source, list) else [d for d in yaml.safe_load_all(source.read_text()) if d]
    return [d for d in documents if d["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")]


def cluster_wide_rules(documents: list[dict]) -> list[dict]:
    """Rules that apply in every namespace: those of ClusterRoles bound by ClusterRoleBindings."""
    bound = {d["roleRef"]["name"] for d in documents if d["kind"] == "ClusterRoleBinding"}
    return [rule for d in documents if d["kind"] == "ClusterRole" and d["metadata"]["name"] in bound
            for rule in d["rules"]]


@pytest.mark.parametrize("source", ["operator/rbac.yaml", "chart-default", "chart-full"])
def test_nothing_reads_secrets_or_creates_pods_cluster_wide(source, default_manifests, full_manifests):
    documents = rbac_documents({"operator/rbac.yaml": RBAC_YAML, "chart-default": default_manifests,
                                "chart-full": full_manifests}[source])
    for rule in cluster_wide_rules(documents):
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert not (group == "" and resource in ("secrets", "*") and set(rule["verbs"]) & SECRET_READING), rule
                assert not ((group, resource) in POD_CREATING and {"create", "*"} & set(rule["verbs"])), rule


@pytest.mark.parametrize("source", ["operator/rbac.yaml", "chart-full"])
def test_secrets_are_read_by_name_only(source, full_manifests):
    documents = rbac_documents(RBAC_YAML if source == "operator/rbac.yaml" else full_manifests)
    secret_rules = [rule for d in documents if d["kind"] in ("Role", "ClusterRole") for rule in d["rules"]
                    if "" in rule["apiGroups"] and {"secrets", "*"} & set(rule["resources"])]
    assert secret_rules
    for rule in secret_rules:
        assert not {"list", "watch", "*"} & set(rule["verbs"]), rule  # both return every Secret's data


def test_operator_rbac_yaml_still_lets_the_operator_work_in_its_namespace():
    documents = rbac_documents(RBAC_YAML)
    (role,) = [d for d in documents if d["kind"] == "Role"]
    (binding,) = [d for d in documents if d["kind"] == "RoleBinding"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "codebase-mcp"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "codebase-operator"}
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert {("", "secrets", "get"), ("", "secrets", "create"), ("batch", "jobs", "create"), ("", "pods", "list")} \
        <= granted


def test_production_values_open_exactly_what_they_name(full_manifests):
    cluster = Cluster(full_manifests)
    gateway, operator = cluster.pod("Deployment", "-gateway"), cluster.pod("Deployment", "-operator")
    database, api_server = external("10.20.1.1", "managed PostgreSQL"), external("172.18.0.2", "API server")
    for namespace in ("codebase", "team-a", "team-b"):
        indexer = cluster.indexer(namespace)
        assert cluster.can(indexer, database, 6432) and not cluster.can(indexer, INTERNET, 6432)
        assert cluster.can(indexer, external("192.0.2.10"), 8443) and not cluster.can(indexer, INTERNET, 8443)
        assert cluster.can(indexer, external("140.82.112.9"), 22) and not cluster.can(indexer, api_server, 6443)
    for component in (gateway, operator):
        assert cluster.can(component, api_server, 6443) and not cluster.can(component, API_SERVER, 443)
        assert not cluster.can(component, external("140.82.112.9"), 443)
    assert cluster.can(Endpoint("ingress", "ingress-nginx", {"app": "nginx"}), gateway, 9000)
    assert not cluster.can(stranger("codebase"), gateway, 9000)


# The admin Secret out of the gateway's reach: operator.namespace puts the operator, the bundled PostgreSQL and
# the admin Secret in a namespace of their own, where no Role of the gateway applies.

SYSTEM = ["--set", "operator.namespace=codebase-system", "--set", "operator.extraWatchNamespaces={team-a}"]


def namespaces_where_secrets_are_readable_by(manifests: list[dict], account: str) -> set[str]:
    roles = {(d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in manifests
             if d["kind"] in ("Role", "ClusterRole")}
    readable = set()
    for binding in manifests:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding") or not any(
                s["kind"] == "ServiceAccount" and s["name"] == account for s in binding["subjects"]):
            continue
        namespace = binding["metadata"].get("namespace")
        role = roles.get((namespace if binding["roleRef"]["kind"] == "Role" else None, binding["roleRef"]["name"]))
        if role and any("" in r["apiGroups"] and {"secrets", "*"} & set(r["resources"])
                        and {"get", "list", "watch", "*"} & set(r["verbs"]) for r in role["rules"]):
            readable.add(namespace or "*")
    return readable


def test_with_operator_namespace_the_gateway_cannot_read_the_admin_secret(helm):
    manifests = helm.render(*SYSTEM)
    admin = one(manifests, "Secret", "-postgresql-admin")
    assert admin["metadata"]["namespace"] == "codebase-system"
    gateway_account = one(manifests, "ServiceAccount", "-gateway")["metadata"]["name"]
    readable = namespaces_where_secrets_are_readable_by(manifests, gateway_account)
    assert readable == {"codebase"}  # the per-project Secrets, next to the projects
    assert admin["metadata"]["namespace"] not in readable and "*" not in readable
    url = base64.b64decode(admin["data"]["url"]).decode()
    assert "@cbm-codebase-mcp-postgresql.codebase-system.svc:5432/" in url
    for kind, suffix in [("Deployment", "-operator"), ("StatefulSet", "-postgresql"), ("Service", "-postgresql")]:
        assert one(manifests, kind, suffix)["metadata"]["namespace"] == "codebase-system"
    operator = one(manifests, "Deployment", "-operator")
    watched = [a.split("=", 1)[1] for a in pod_spec(operator)["containers"][0]["args"] if a.startswith("--namespace=")]
    assert watched == ["codebase", "team-a"]  # projects are not in the system namespace


def test_with_operator_namespace_the_database_still_accepts_exactly_its_clients(helm):
    cluster = Cluster(helm.render(*SYSTEM))
    database = cluster.pod("StatefulSet", "-postgresql")
    assert database.namespace == "codebase-system"
    for allowed in (cluster.pod("Deployment", "-operator"), cluster.pod("Deployment", "-gateway"),
                    cluster.indexer("codebase"), cluster.indexer("team-a")):
        assert cluster.can(allowed, database, 5432), allowed.name
    for refused in (stranger("codebase-system"), stranger("codebase")):
        assert not cluster.can(refused, database, 5432)
    assert cluster.can(cluster.pod("Deployment", "-operator"), API_SERVER, 443)


@pytest.mark.parametrize("setting, message", [
    ("podSecurityContext.runAsNonRoot=false", "/podSecurityContext/runAsNonRoot"),
    ("podSecurityContext.runAsUser=0", "/podSecurityContext/runAsUser"),
    ("podSecurityContext.seccompProfile.type=Unconfined", "/podSecurityContext/seccompProfile/type"),
    ("containerSecurityContext.allowPrivilegeEscalation=true", "/containerSecurityContext/allowPrivilegeEscalation"),
    ("containerSecurityContext.privileged=true", "/containerSecurityContext/privileged"),
    ("containerSecurityContext.capabilities.add[0]=SYS_ADMIN", "/containerSecurityContext/capabilities/add/0"),
    ("containerSecurityContext.capabilities.drop[0]=NET_RAW", "/containerSecurityContext/capabilities/drop"),
])
def test_values_that_would_lose_pod_security_restricted_are_refused(helm, setting, message):
    result = helm.template("--set", setting, check=False)
    assert result.returncode != 0, f"helm accepted {setting}"
    assert message in result.stderr, result.stderr
