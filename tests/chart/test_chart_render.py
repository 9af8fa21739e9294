"""The chart lints, renders with default and with production values, and every manifest is valid Kubernetes."""
from __future__ import annotations

import base64
import copy

import kubernetes_validate
import pytest

from chart_support import CHART, FULL_VALUES, find, one

# The Kubernetes version the manifests must be valid for: the minor of the
# kubectl that ships with helm in the dev extra (1.33), within Chart.yaml's kubeVersion.
KUBERNETES_VERSION = "1.33"


def pod_spec(manifest: dict) -> dict:
    return manifest["spec"] if manifest["kind"] == "Pod" else manifest["spec"]["template"]["spec"]


def containers(manifest: dict) -> list[dict]:
    return pod_spec(manifest)["containers"]


def env(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env", [])}


def admin_url_volume(operator: dict) -> dict:
    """The volume holding the file the operator reads its admin database URL from (--admin-database-url-file)."""
    (container,) = containers(operator)
    (path,) = [arg.split("=", 1)[1] for arg in container["args"] if arg.startswith("--admin-database-url-file=")]
    (mount,) = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod_spec(operator)["volumes"] if v["name"] == mount["name"]]
    return volume


def test_helm_lint(helm):
    helm.run("lint", str(CHART), "--strict")
    helm.run("lint", str(CHART), "--strict", "--values", str(FULL_VALUES))


@pytest.mark.parametrize("values", ["default", "full"])
def test_every_manifest_is_valid_kubernetes(values, default_manifests, full_manifests):
    manifests = default_manifests if values == "default" else full_manifests
    assert len(manifests) >= 15
    for manifest in manifests:
        # strict: an unknown or misspelled field is an error, not silently dropped by the API server.
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_validation_catches_a_misspelled_field(default_manifests):
    """The validation above can fail: a typo in a pod spec is rejected."""
    broken = copy.deepcopy(one(default_manifests, "Deployment", "-operator"))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_default_install_contents(default_manifests):
    kinds = sorted({(m["kind"], m["metadata"]["name"]) for m in default_manifests})
    assert [name for kind, name in kinds if kind == "CustomResourceDefinition"] == [
        "codebaseprojects.codebase.mcp.dev", "indexingruns.codebase.mcp.dev"]
    for kind, suffix in [("Deployment", "-operator"), ("Deployment", "-gateway"), ("Service", "-gateway"),
                         ("StatefulSet", "-postgresql"), ("Service", "-postgresql"),
                         ("Secret", "-gateway-token"), ("Secret", "-postgresql-admin"), ("Pod", "-test-gateway"),
                         ("ServiceAccount", "-operator"), ("ServiceAccount", "-gateway"),
                         ("ServiceAccount", "-indexer")]:
        one(default_manifests, kind, suffix)
    namespaced = [m for m in default_manifests
                  if m["kind"] not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding")]
    assert {m["metadata"]["namespace"] for m in namespaced} == {"codebase"}


def test_operator_is_a_single_recreated_replica_with_a_liveness_probe(default_manifests):
    operator = one(default_manifests, "Deployment", "-operator")
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = containers(operator)
    liveness_flag = [arg for arg in container["args"] if arg.startswith("--liveness=")]
    assert liveness_flag == ["--liveness=http://0.0.0.0:8080/healthz"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    assert {"name": "liveness", "containerPort": 8080} in container["ports"]


def test_gateway_serves_streamable_http_with_the_token_from_the_generated_secret(default_manifests):
    gateway = one(default_manifests, "Deployment", "-gateway")
    (container,) = containers(gateway)
    assert container["command"] == ["codebase-mcp"]
    assert container["args"][:2] == ["serve", "--transport=http"]
    assert "--control-plane=kubernetes" in container["args"]
    token_ref = env(container)["CODEBASE_MCP_TOKEN"]["valueFrom"]["secretKeyRef"]
    secret = one(default_manifests, "Secret", "-gateway-token")
    assert token_ref == {"name": secret["metadata"]["name"], "key": "token"}
    assert len(base64.b64decode(secret["data"]["token"])) == 48
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        check = container[probe].get("httpGet") or container[probe]["tcpSocket"]
        assert check["port"] == "http"
    service = one(default_manifests, "Service", "-gateway")
    assert service["spec"]["selector"] == gateway["spec"]["selector"]["matchLabels"]
    assert service["spec"]["sessionAffinity"] == "ClientIP"  # an MCP session lives in one pod
    assert service["spec"]["ports"][0]["targetPort"] == "http"


# A generated secret (secrets.token_urlsafe(32)): the schema and the gateway refuse weaker tokens.
FIXED_TOKEN = "_uDQn4MkLLmHodnrWkmV4JROgbdZoK4xSxEGmBYMIzA"


def test_generated_token_is_random_per_render_but_fixed_when_given(helm, default_manifests):
    first = one(default_manifests, "Secret", "-gateway-token")["data"]["token"]
    second = one(helm.render(), "Secret", "-gateway-token")["data"]["token"]
    assert first != second  # random without a cluster; `lookup` keeps the live one on upgrades
    fixed = one(helm.render("--set", f"gateway.auth.token={FIXED_TOKEN}"), "Secret", "-gateway-token")
    assert base64.b64decode(fixed["data"]["token"]) == FIXED_TOKEN.encode()


def test_a_new_token_in_the_values_restarts_the_gateway_and_nothing_else_does(helm, default_manifests):
    def checksum(manifests):
        return one(manifests, "Deployment", "-gateway")["spec"]["template"]["metadata"]["annotations"]["checksum/auth"]

    default = checksum(default_manifests)
    assert checksum(helm.render()) == default  # stable although the generated token differs per render
    assert checksum(helm.render("--set", f"gateway.auth.token={FIXED_TOKEN}")) != default


def test_secrets_are_looked_up_so_upgrades_keep_them():
    template = (CHART / "templates" / "secrets.yaml").read_text()
    assert template.count('lookup "v1" "Secret" .Release.Namespace $name') == 1  # the gateway token
    assert template.count('lookup "v1" "Secret" $namespace $name') == 1  # the admin Secret (operator.namespace)


def test_bundled_postgresql(default_manifests):
    statefulset = one(default_manifests, "StatefulSet", "-postgresql")
    (container,) = containers(statefulset)
    repository, tag = container["image"].rsplit(":", 1)
    assert repository == "pgvector/pgvector" and tag != "latest" and "-pg" in tag
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    admin = one(default_manifests, "Secret", "-postgresql-admin")
    assert admin["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    url = base64.b64decode(admin["data"]["url"]).decode()
    password = base64.b64decode(admin["data"]["password"]).decode()
    assert url == f"postgresql://postgres:{password}@cbm-codebase-mcp-postgresql.codebase.svc:5432/postgres"
    assert admin_url_volume(one(default_manifests, "Deployment", "-operator"))["secret"] == {
        "secretName": admin["metadata"]["name"], "defaultMode": 0o440, "items": [{"key": "url", "path": "url"}]}


def test_external_database_replaces_the_bundled_one(full_manifests):
    assert not find(full_manifests, "StatefulSet")
    assert not find(full_manifests, "Secret")  # token and admin URL both come from the user's Secrets
    assert admin_url_volume(one(full_manifests, "Deployment", "-operator"))["secret"] == {
        "secretName": "codebase-db-admin", "defaultMode": 0o440, "items": [{"key": "admin-url", "path": "url"}]}
    gateway_env = env(containers(one(full_manifests, "Deployment", "-gateway"))[0])
    assert gateway_env["CODEBASE_MCP_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "mcp-token", "key": "bearer"}


@pytest.mark.parametrize("values", ["default", "full"])
def test_workspace_is_the_same_volume_at_the_same_path_for_gateway_and_indexer(values, default_manifests,
                                                                               full_manifests):
    manifests = default_manifests if values == "default" else full_manifests
    gateway = one(manifests, "Deployment", "-gateway")
    (container,) = containers(gateway)
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "workspace"]
    (volume,) = [v for v in pod_spec(gateway)["volumes"] if v["name"] == "workspace"]
    operator_env = env(containers(one(manifests, "Deployment", "-operator"))[0])
    assert operator_env["CODEBASE_MCP_WORKSPACE_ROOT"]["value"] == mount["mountPath"]
    assert f"--workspace-root={mount['mountPath']}" in container["args"]
    if values == "default":  # a claim the chart creates (a hostPath would fail Pod Security "baseline")
        assert mount["mountPath"] == "/workspace"
        claim = one(manifests, "PersistentVolumeClaim", "-workspace")
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        assert operator_env["CODEBASE_MCP_WORKSPACE_CLAIM"]["value"] == claim["metadata"]["name"]
        assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert "CODEBASE_MCP_WORKSPACE_HOST_PATH" not in operator_env
    else:
        assert mount["mountPath"] == "/srv/repos"
        assert volume["persistentVolumeClaim"]["claimName"] == "shared-repos"
        assert operator_env["CODEBASE_MCP_WORKSPACE_CLAIM"]["value"] == "shared-repos"
        assert "CODEBASE_MCP_WORKSPACE_HOST_PATH" not in operator_env
        assert not find(manifests, "PersistentVolumeClaim")  # the user's own claim


def test_full_values_reach_the_manifests(full_manifests):
    gateway = one(full_manifests, "Deployment", "-gateway")
    operator = one(full_manifests, "Deployment", "-operator")
    (gateway_container,), (operator_container,) = containers(gateway), containers(operator)
    assert gateway["metadata"]["name"] == "cbm-prod-gateway"
    assert gateway["spec"]["replicas"] == 2
    assert gateway_container["image"] == "registry.example.com/codebase-mcp/gateway:1.2.3"
    assert gateway_container["imagePullPolicy"] == "Always"
    assert "--port=9000" in gateway_container["args"] and "--log-level=DEBUG" in gateway_container["args"]
    assert gateway_container["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    assert env(gateway_container)["EXTRA_FLAG"]["value"] == "on"
    assert pod_spec(gateway)["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod_spec(gateway)["tolerations"][0]["key"] == "dedicated"
    assert pod_spec(gateway)["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert pod_spec(gateway)["securityContext"]["runAsUser"] == 20000
    annotations = gateway["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and len(annotations["checksum/auth"]) == 16
    service = one(full_manifests, "Service", "-gateway")
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0] == {"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080}
    assert operator_container["image"] == ("registry.example.com/codebase-mcp/operator@sha256:"
                                           "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    assert "--liveness=http://0.0.0.0:9090/healthz" in operator_container["args"]
    operator_env = env(operator_container)
    assert operator_env["CODEBASE_MCP_INDEXER_IMAGE"]["value"] == "registry.example.com/codebase-mcp/indexer:1.2.3-cpu"
    assert operator_env["CODEBASE_MCP_IMAGE_PULL_POLICY"]["value"] == "Always"
    assert operator_env["CODEBASE_MCP_JOB_DEADLINE_SECONDS"]["value"] == "7200"
    assert operator_env["CODEBASE_MCP_JOB_BACKOFF_LIMIT"]["value"] == "3"
    assert operator_env["CODEBASE_MCP_JOB_TTL_SECONDS"]["value"] == "3600"
    assert "--verbose" in operator_container["args"]
    embedding = env(gateway_container)
    assert embedding["CODEBASE_MCP_EMBEDDING_PROVIDER"]["value"] == "openai"
    assert embedding["CODEBASE_MCP_EMBEDDING_URL"]["value"] == "http://tei.embeddings.svc:8080"
    assert embedding["CODEBASE_MCP_EMBEDDING_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "embedding-api", "key": "token"}
    assert not find(full_manifests, "Pod")  # tests.enabled=false


def test_operator_rbac_and_indexer_account_exist_in_every_watched_namespace(full_manifests):
    operator = one(full_manifests, "Deployment", "-operator")
    (container,) = containers(operator)
    watched = [arg.split("=", 1)[1] for arg in container["args"] if arg.startswith("--namespace=")]
    assert watched == ["codebase", "team-a", "team-b"]
    for namespace in watched:
        assert find(full_manifests, "Role", "-operator", namespace)
        (binding,) = find(full_manifests, "RoleBinding", "-operator", namespace)
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "cbm-prod-operator",
                                        "namespace": "codebase"}]
        (indexer,) = find(full_manifests, "ServiceAccount", "-indexer", namespace)
        assert indexer["automountServiceAccountToken"] is False
        # the operator's Jobs carry no pull secrets: their ServiceAccount does
        assert indexer["imagePullSecrets"] == [{"name": "registry-credentials"}]
    # the gateway only works in its own namespace
    assert [r["metadata"]["namespace"] for r in find(full_manifests, "Role", "-gateway")] == ["codebase"]


@pytest.mark.parametrize("values", ["default", "full"])
def test_every_pod_runs_as_non_root_with_pinned_images(values, default_manifests, full_manifests):
    manifests = default_manifests if values == "default" else full_manifests
    workloads = [m for m in manifests if m["kind"] in ("Deployment", "StatefulSet", "Pod")]
    assert workloads
    for workload in workloads:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, workload["metadata"]["name"]
        assert spec["securityContext"]["runAsUser"] > 0
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
            image = container["image"]
            assert "@sha256:" in image or (":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")), image


def test_test_hook_speaks_mcp_to_the_gateway_service(default_manifests):
    pod = one(default_manifests, "Pod", "-test-gateway")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = containers(pod)
    assert env(container)["MCP_URL"]["value"] == "http://cbm-codebase-mcp-gateway.codebase.svc:8000/mcp"
    script = container["command"][-1]
    assert '"method": "initialize"' in script and "401" in script
    compile(script, "helm-test", "exec")


@pytest.mark.parametrize("service, endpoint", [
    (["--set", "gateway.service.type=NodePort", "--set", "gateway.service.nodePort=30080"],
     "export MCP_URL=http://localhost:30080/mcp"),
    ([], "port-forward svc/cbm-codebase-mcp-gateway 8000:8000"),
    (["--set", "gateway.service.type=LoadBalancer"], "status.loadBalancer.ingress[0].ip"),
])
def test_notes_tell_how_to_connect_an_mcp_client(helm, service, endpoint):
    notes = helm.run("install", "cbm", str(CHART), "--dry-run=client", "--namespace", "codebase", *service).stdout
    notes = notes.split("NOTES:", 1)[1]
    assert "claude mcp add --transport http codebase" in notes
    assert 'Authorization: Bearer $CODEBASE_MCP_TOKEN' in notes
    assert "get secret cbm-codebase-mcp-gateway-token" in notes
    assert endpoint in notes
