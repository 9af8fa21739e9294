"""The Secrets a project names (embedding API key, git credentials): only those that opted in may be used.

Any Secret of the namespace could otherwise be named, for example the database
admin Secret, and its value sent to a URL the project's author chose. A Secret
opts in with the label `codebase.mcp.dev/usable=true`; the operator's own Secrets
(the per-project database credentials) are never usable this way.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codebase_indexer.contract import USABLE_LABEL

from . import jobs, kube
from .context import Context
from .specs import InvalidSpec, Source

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"


def referenced_secrets(project_spec: Mapping[str, Any], source: Source) -> list[tuple[str, str]]:
    """(spec field, Secret name) of every Secret a run of this project would read."""
    refs: list[tuple[str, str]] = []
    api_key = (project_spec.get("embedding") or {}).get("apiKeySecret") or {}
    if api_key.get("name"):
        refs.append(("spec.embedding.apiKeySecret", api_key["name"]))
    if source.git_url is not None and source.git_credentials_secret:
        refs.append(("spec.source.git.credentialsSecret", source.git_credentials_secret))
    return refs


async def check_secret_references(ctx: Context, namespace: str, project_spec: Mapping[str, Any],
                                  source: Source) -> None:
    """Raise InvalidSpec unless every Secret the project names exists and opted in."""
    for field, name in referenced_secrets(project_spec, source):
        secret = await kube.get(ctx.api, kube.Secret, namespace, name)
        if secret is None:
            raise InvalidSpec(f"{field} names Secret {name!r}, which does not exist in namespace {namespace}: "
                              f"create it (with the label {USABLE_LABEL}=true) and start a new run")
        check_usable(field, secret)


def check_usable(field: str, secret: Mapping[str, Any]) -> None:
    meta = secret.get("metadata") or {}
    labels, name = meta.get("labels") or {}, meta.get("name")
    if labels.get(MANAGED_BY_LABEL) == jobs.MANAGED_BY:
        raise InvalidSpec(f"{field} names Secret {name!r}, which holds the operator's own database "
                          f"credentials and cannot be used by a project")
    if labels.get(USABLE_LABEL) != "true":
        raise InvalidSpec(f"{field} names Secret {name!r}, which has not opted in to use by codebase-mcp "
                          f"projects; if it is meant for this, label it: kubectl label secret {name} "
                          f"-n {meta.get('namespace')} {USABLE_LABEL}=true, then start a new run")
