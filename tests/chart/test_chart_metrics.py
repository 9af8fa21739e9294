"""Scraping: annotations, the operator's metrics port, the optional ServiceMonitors and who may reach them."""
from __future__ import annotations

import kubernetes_validate
import pytest

from chart_support import find, one
from network_policy import Endpoint, Network, pod_of

KUBERNETES_VERSION = "1.33"
MONITORING = "kubernetes\\.io/metadata\\.name"  # the label key, escaped for --set
PROMETHEUS = Endpoint("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"})
STRANGER = Endpoint("stranger", "codebase", {"app": "curl"})


def template(manifest: dict) -> dict:
    return manifest["spec"]["template"]


def container(manifests: list[dict], suffix: str) -> dict:
    (only,) = template(one(manifests, "Deployment", suffix))["spec"]["containers"]
    return only


def annotations(manifests: list[dict], suffix: str) -> dict:
    return template(one(manifests, "Deployment", suffix))["metadata"].get("annotations") or {}


def test_by_default_the_operator_is_announced_for_scraping_and_the_token_guarded_gateway_is_not(default_manifests):
    operator = container(default_manifests, "-operator")
    assert "--metrics-port=9100" in operator["args"]
    assert {"name": "metrics", "containerPort": 9100} in operator["ports"]
    assert operator["ports"][0]["name"] == "liveness"
    assert annotations(default_manifests, "-operator") == {
        "prometheus.io/scrape": "true", "prometheus.io/port": "9100", "prometheus.io/path": "/metrics"}
    # An annotation-driven scraper sends no token: it would only collect 401s from the gateway.
    assert "prometheus.io/scrape" not in annotations(default_manifests, "-gateway")
    gateway = container(default_manifests, "-gateway")
    assert "--metrics-public" not in gateway["args"] and "POD_IP" not in {e["name"] for e in gateway["env"]}
    assert not find(default_manifests, "ServiceMonitor")


@pytest.mark.slow
def test_a_public_gateway_metrics_is_announced_and_accepts_the_pods_own_address(helm):
    from codebase_gateway import serve_command

    manifests = helm.render("--set", "gateway.metricsPublic=true")
    assert annotations(manifests, "-gateway")["prometheus.io/port"] == "8000"
    assert annotations(manifests, "-gateway")["prometheus.io/scrape"] == "true"
    gateway = container(manifests, "-gateway")
    (pod_ip,) = [e for e in gateway["env"] if e["name"] == "POD_IP"]
    assert pod_ip["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    args = serve_command.parse_settings([arg.replace("$(POD_IP)", "10.244.0.7") for arg in gateway["args"][1:]])
    assert args.metrics_public is True and "10.244.0.7" in args.allowed_hosts
    for manifest in manifests:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


@pytest.mark.slow
def test_the_service_monitors_scrape_the_gateway_with_its_token_and_the_operators_port(helm):
    manifests = helm.render("--set", "metrics.serviceMonitor.enabled=true",
                            "--set", "metrics.serviceMonitor.labels.release=kube-prometheus-stack",
                            "--set", "metrics.serviceMonitor.interval=15s")
    gateway_monitor = one(manifests, "ServiceMonitor", "-gateway")
    (endpoint,) = gateway_monitor["spec"]["endpoints"]
    token_ref = next(e for e in container(manifests, "-gateway")["env"]
                     if e["name"] == "CODEBASE_MCP_TOKEN")["valueFrom"]["secretKeyRef"]
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": token_ref}
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("http", "/metrics", "15s")
    assert gateway_monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    service = one(manifests, "Service", "-gateway")
    assert all(service["metadata"]["labels"][k] == v
               for k, v in gateway_monitor["spec"]["selector"]["matchLabels"].items())
    assert "http" in {port["name"] for port in service["spec"]["ports"]}
    # The scraper addresses the pod by IP: the gateway must accept it as Host.
    assert "--allowed-host=$(POD_IP)" in container(manifests, "-gateway")["args"]

    operator_monitor = one(manifests, "ServiceMonitor", "-operator")
    metrics_service = one(manifests, "Service", "-operator-metrics")
    operator_pod = template(one(manifests, "Deployment", "-operator"))
    assert all(metrics_service["metadata"]["labels"][k] == v
               for k, v in operator_monitor["spec"]["selector"]["matchLabels"].items())
    assert all(operator_pod["metadata"]["labels"][k] == v for k, v in metrics_service["spec"]["selector"].items())
    assert metrics_service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert operator_monitor["spec"]["endpoints"][0]["port"] == "metrics"
    for manifest in manifests:
        if manifest["kind"] != "ServiceMonitor":  # a CRD of the Prometheus Operator, not in the schemas
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_a_public_gateway_monitor_sends_no_token(helm):
    manifests = helm.render("--set", "metrics.serviceMonitor.enabled=true", "--set", "gateway.metricsPublic=true")
    assert "authorization" not in one(manifests, "ServiceMonitor", "-gateway")["spec"]["endpoints"][0]


def test_metrics_port_0_turns_the_operators_endpoint_off_everywhere(helm):
    manifests = helm.render("--set", "operator.metricsPort=0", "--set", "metrics.serviceMonitor.enabled=true")
    operator = container(manifests, "-operator")
    assert "--metrics-port=0" in operator["args"]
    assert [port["name"] for port in operator["ports"]] == ["liveness"]
    assert "prometheus.io/scrape" not in annotations(manifests, "-operator")
    assert not find(manifests, "ServiceMonitor", "-operator") and not find(manifests, "Service", "-operator-metrics")
    policy = one(manifests, "NetworkPolicy", "-operator")
    assert len(policy["spec"]["ingress"]) == 1  # the liveness port only


def test_user_pod_annotations_win_over_the_scrape_annotations(helm):
    manifests = helm.render("--set-string", "operator.podAnnotations.prometheus\\.io/scrape=false")
    assert annotations(manifests, "-operator")["prometheus.io/scrape"] == "false"
    assert annotations(manifests, "-operator")["prometheus.io/port"] == "9100"


def test_the_metrics_ports_are_open_to_any_source_by_default(default_manifests):
    network = Network(default_manifests)
    operator, gateway = pod_of(one(default_manifests, "Deployment", "-operator")), \
        pod_of(one(default_manifests, "Deployment", "-gateway"))
    assert network.allows(PROMETHEUS, operator, "metrics") and network.allows(STRANGER, operator, 9100)
    assert network.allows(PROMETHEUS, gateway, "http")
    assert not network.allows(STRANGER, operator, 9999)


def test_scrape_from_limits_the_operators_metrics_port_and_opens_a_restricted_gateway(helm):
    manifests = helm.render(
        "--set", f"metrics.scrapeFrom[0].namespaceSelector.matchLabels.{MONITORING}=monitoring",
        "--set", f"networkPolicy.gatewayFrom[0].namespaceSelector.matchLabels.{MONITORING}=ingress")
    network = Network(manifests)
    operator = pod_of(one(manifests, "Deployment", "-operator"))
    gateway = pod_of(one(manifests, "Deployment", "-gateway"))
    assert network.allows(PROMETHEUS, operator, "metrics") and network.allows(PROMETHEUS, gateway, "http")
    assert not network.allows(STRANGER, operator, "metrics") and not network.allows(STRANGER, gateway, "http")
    assert network.allows(STRANGER, operator, "liveness")  # the kubelet's probe is untouched
    assert network.allows(Endpoint("nginx", "ingress", {"app": "nginx"}), gateway, "http")


@pytest.mark.parametrize("setting, message", [
    ("metrics.serviceMonitor.interval=soon", "interval"),
    ("operator.metricsPort=70000", "metricsPort"),
    ("metrics.scrapeFrm=[]", "scrapeFrm"),
])
def test_bad_metrics_values_are_refused(helm, setting, message):
    done = helm.template("--set", setting, check=False)
    assert done.returncode != 0 and message in done.stderr
