"""NetworkPolicy semantics (networking.k8s.io/v1), evaluated offline over rendered pods.

A connection from `source` to `destination:port` happens when the source's egress allows it and the destination's
ingress allows it. A pod selected by no policy of a direction is not isolated in that direction; a pod selected by
any is isolated, and a connection is allowed when at least one rule of one selecting policy matches. Pod and
namespace selectors are evaluated against the pods' and namespaces' labels (`kubernetes.io/metadata.name` is set
on every namespace by the API server). `ipBlock` peers match only addresses outside the cluster: what they do for
pod addresses is left to the network plugin, so the chart never relies on it.
"""
from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A pod (namespace and labels), or an address outside the cluster (ip)."""
    name: str
    namespace: str | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    named_ports: Mapping[str, int] = dataclasses.field(default_factory=dict)
    ip: str | None = None

    @property
    def is_pod(self) -> bool:
        return self.namespace is not None


def pod(name: str, namespace: str, pod_spec_or_template: Mapping[str, Any]) -> Endpoint:
    """The pod a workload's template (or a Pod manifest) would create: its labels and named ports."""
    metadata, spec = pod_spec_or_template["metadata"], pod_spec_or_template["spec"]
    ports = {port["name"]: port["containerPort"] for container in spec.get("containers") or ()
             for port in container.get("ports") or () if port.get("name")}
    return Endpoint(name, namespace, dict(metadata.get("labels") or {}), ports)


def pod_of(manifest: Mapping[str, Any]) -> Endpoint:
    """The pod of a rendered Deployment, StatefulSet, Job or Pod."""
    template = manifest if manifest["kind"] == "Pod" else manifest["spec"]["template"]
    return pod(manifest["metadata"]["name"], manifest["metadata"]["namespace"], template)


def external(ip: str, name: str = "") -> Endpoint:
    return Endpoint(name or ip, ip=ip)


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector against labels; an empty selector selects everything."""
    selector = selector or {}
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or ():
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or ()
        matched = {"In": key in labels and labels[key] in values,
                   "NotIn": key not in labels or labels[key] not in values,
                   "Exists": key in labels,
                   "DoesNotExist": key not in labels}[operator]
        if not matched:
            return False
    return True


class Network:
    """The policies of a cluster, and the labels of its namespaces."""

    def __init__(self, policies: Iterable[Mapping[str, Any]],
                 namespace_labels: Mapping[str, Mapping[str, str]] | None = None):
        self.policies = [p for p in policies if p["kind"] == "NetworkPolicy"]
        self.namespace_labels = dict(namespace_labels or {})

    def labels_of_namespace(self, namespace: str) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": namespace, **self.namespace_labels.get(namespace, {})}

    def allows(self, source: Endpoint, destination: Endpoint, port: int | str, protocol: str = "TCP") -> bool:
        return (self._allowed(source, destination, port, protocol, "Egress")
                and self._allowed(destination, source, port, protocol, "Ingress"))

    def _allowed(self, selected: Endpoint, peer: Endpoint, port: int | str, protocol: str, direction: str) -> bool:
        if not selected.is_pod:
            return True  # outside the cluster: no policy of ours applies
        policies = [p for p in self.policies if self._isolates(p, selected, direction)]
        if not policies:
            return True
        destination = peer if direction == "Egress" else selected
        key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
        return any(self._peers_match(rule.get(peers_key), peer, policy["metadata"]["namespace"])
                   and self._ports_match(rule.get("ports"), destination, port, protocol)
                   for policy in policies for rule in policy["spec"].get(key) or ())

    @staticmethod
    def _isolates(policy: Mapping[str, Any], endpoint: Endpoint, direction: str) -> bool:
        spec = policy["spec"]
        types = spec.get("policyTypes") or (["Ingress", "Egress"] if spec.get("egress") else ["Ingress"])
        return (direction in types and policy["metadata"]["namespace"] == endpoint.namespace
                and selects(spec.get("podSelector"), endpoint.labels))

    def _peers_match(self, peers: list[Mapping[str, Any]] | None, endpoint: Endpoint, policy_namespace: str) -> bool:
        if not peers:
            return True  # no `to`/`from`: every peer
        return any(self._peer_matches(peer, endpoint, policy_namespace) for peer in peers)

    def _peer_matches(self, peer: Mapping[str, Any], endpoint: Endpoint, policy_namespace: str) -> bool:
        if "ipBlock" in peer:
            if endpoint.is_pod:
                return False
            address = ipaddress.ip_address(endpoint.ip)
            block = peer["ipBlock"]
            return address in ipaddress.ip_network(block["cidr"]) and not any(
                address in ipaddress.ip_network(excluded) for excluded in block.get("except") or ())
        if not endpoint.is_pod:
            return False
        if "namespaceSelector" in peer:
            if not selects(peer["namespaceSelector"], self.labels_of_namespace(endpoint.namespace)):
                return False
        elif endpoint.namespace != policy_namespace:
            return False
        return selects(peer.get("podSelector"), endpoint.labels)

    @staticmethod
    def _ports_match(ports: list[Mapping[str, Any]] | None, destination: Endpoint, port: int | str,
                     protocol: str) -> bool:
        if not ports:
            return True
        number = destination.named_ports.get(port) if isinstance(port, str) else port
        for allowed in ports:
            if allowed.get("protocol", "TCP") != protocol:
                continue
            if "port" not in allowed:
                return True
            allowed_port = allowed["port"]
            if isinstance(allowed_port, str):
                allowed_port = destination.named_ports.get(allowed_port)
            if allowed_port is None or number is None:
                continue
            if allowed_port <= number <= allowed.get("endPort", allowed_port):
                return True
        return False
