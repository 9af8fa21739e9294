"""kind-config.yaml, the e2e values and the chart agree: the mounted repositories are the chart's workspace,
and the mapped host port is the gateway's NodePort."""
from __future__ import annotations

import pytest
import yaml

from chart_support import CHART, REPO_ROOT, one

KIND_CONFIG = yaml.safe_load((REPO_ROOT / "kind-config.yaml").read_text())
E2E_VALUES = REPO_ROOT / "tests" / "e2e" / "values-kind.yaml"


@pytest.fixture(scope="module")
def e2e_manifests(helm) -> list[dict]:
    """The chart as the e2e suite installs it (its values file; the image tags it adds change nothing here)."""
    return helm.render("--values", str(E2E_VALUES))


def test_kind_config_shape():
    assert KIND_CONFIG["apiVersion"] == "kind.x-k8s.io/v1alpha4" and KIND_CONFIG["kind"] == "Cluster"
    (node,) = KIND_CONFIG["nodes"]
    image = node["image"]
    assert image.startswith("kindest/node:v1.") and not image.endswith(":latest")


def test_sample_repositories_are_mounted_where_the_chart_expects_the_workspace(e2e_manifests):
    (node,) = KIND_CONFIG["nodes"]
    (mount,) = node["extraMounts"]
    host_folder = REPO_ROOT / mount["hostPath"]
    assert (host_folder / "polyglot" / "backend" / "inventory.py").is_file()  # what the e2e suite indexes
    gateway = one(e2e_manifests, "Deployment", "-gateway")
    (volume,) = [v for v in gateway["spec"]["template"]["spec"]["volumes"] if v["name"] == "workspace"]
    assert volume["hostPath"]["path"] == mount["containerPath"]
    default_values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert default_values["workspace"]["hostPath"]["path"] == mount["containerPath"]


def test_the_gateway_node_port_is_mapped_to_the_host(e2e_manifests):
    (node,) = KIND_CONFIG["nodes"]
    (mapping,) = node["extraPortMappings"]
    service = one(e2e_manifests, "Service", "-gateway")
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["nodePort"] == mapping["containerPort"]
    assert mapping["hostPort"] == 30080 and mapping.get("listenAddress") == "127.0.0.1"


def test_e2e_images_are_never_pulled():
    values = yaml.safe_load(E2E_VALUES.read_text())
    for component in ("gateway", "operator", "indexer"):
        assert values[component]["image"]["pullPolicy"] == "Never"  # `kind load`ed, tagged e2e-<commit>-<random>


def test_the_e2e_suite_mounts_an_absolute_path(tmp_path):
    """kind resolves nothing for us inside the test: the suite writes an absolute hostPath."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("kind_support", REPO_ROOT / "tests" / "e2e" / "kind_support.py")
    kind_support = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kind_support)
    config = yaml.safe_load(kind_support.kind_config("codebase-mcp-e2e-x", tmp_path).read_text())
    assert config["name"] == "codebase-mcp-e2e-x"
    (mount,) = config["nodes"][0]["extraMounts"]
    assert mount["hostPath"] == str((REPO_ROOT / "tests" / "fixtures").resolve())
    assert kind_support.image_tag().startswith("e2e-") and "latest" not in kind_support.image_tag()
