"""Check API requests recorded by the emulator against RBAC rules (a ClusterRole, and a Role for
requests within a namespace, in a manifest file)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

Permission = tuple[str, str, str]  # (API group, resource[/subresource], verb)


def cluster_role_rules(manifest: Path, name: str) -> list[Mapping[str, Any]]:
    for doc in yaml.safe_load_all(manifest.read_text()):
        if doc and doc.get("kind") == "ClusterRole" and doc["metadata"]["name"] == name:
            return doc["rules"]
    raise LookupError(f"no ClusterRole {name} in {manifest}")


def role_rules(manifest: Path, name: str) -> list[Mapping[str, Any]]:
    """The rules of the Role `name` (bound in each namespace where the operator works); [] when none."""
    for doc in yaml.safe_load_all(manifest.read_text()):
        if doc and doc.get("kind") == "Role" and doc["metadata"]["name"] == name:
            return doc["rules"]
    return []


def permission(request: Any) -> Permission | None:
    """What an API request needs, as RBAC sees it; None for discovery (non-resource URLs)."""
    resource = request.resource
    if resource is None or not resource.plural or request.url.path.rstrip("/").endswith(
            f"/{resource.version}"):
        return None
    method = str(getattr(request.method, "value", request.method)).upper()
    if method == "GET":
        verb = "watch" if request.params.get("watch") == "true" else ("get" if request.name else "list")
    else:
        verb = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}.get(method, method.lower())
    plural = resource.plural + (f"/{request.subresource}" if request.subresource else "")
    return resource.group or "", plural, verb


def allowed(rules: Iterable[Mapping[str, Any]], needed: Permission) -> bool:
    group, resource, verb = needed
    return any(group in rule.get("apiGroups", ()) and resource in rule.get("resources", ())
               and (verb in rule.get("verbs", ()) or "*" in rule.get("verbs", ()))
               for rule in rules)


def violations(requests: Iterable[Any], rules: Iterable[Mapping[str, Any]],
               user_agents: tuple[str, ...], namespaced_rules: Iterable[Mapping[str, Any]] = ()) -> set[Permission]:
    """Permissions used by clients with these User-Agent prefixes and not granted.

    `rules` (a ClusterRole) grant everywhere; `namespaced_rules` (a Role) only requests within a
    namespace: a list across all namespaces needs the ClusterRole.
    """
    rules, namespaced_rules = list(rules), list(namespaced_rules)
    missing: set[Permission] = set()
    for request in requests:
        agent = request.headers.get("User-Agent", "")
        if not agent.startswith(user_agents):
            continue
        needed = permission(request)
        if needed is None or allowed(rules, needed):
            continue
        if request.namespace and allowed(namespaced_rules, needed):
            continue
        missing.add(needed)
    return missing
