"""Checks of the specs that the API server's schema may not have enforced, and what a run indexes.

The CRD schemas (crds/) reject most bad input at admission. The operator checks
again because an API server without CEL, an older CRD, or a direct edit of
storage can still hand it a bad object: it must then say why, once, and not retry.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from codebase_indexer.identifiers import InvalidProjectId, database_name, normalize_project_id

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME_LENGTH = 63
_GIT_REF = re.compile(r"^[A-Za-z0-9._/@+-]+$")


class InvalidSpec(ValueError):
    """A spec the operator refuses; the message says what to change."""


@dataclasses.dataclass(frozen=True)
class Source:
    """What one run indexes: a path under the workspace root, or a git repository."""
    path: str | None = None
    git_url: str | None = None
    git_ref: str | None = None
    git_credentials_secret: str | None = None


def check_name(name: str, what: str) -> None:
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidSpec(f"{what} {name!r} is longer than {MAX_NAME_LENGTH} characters")


def check_relative_path(path: Any, field: str) -> str:
    if not isinstance(path, str) or not path:
        raise InvalidSpec(f"{field} must be a non-empty string")
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts:
        raise InvalidSpec(f"{field} {path!r} must be relative to the workspace root, without '..'")
    return path


def check_project_spec(name: str, spec: Mapping[str, Any], namespace: str) -> str:
    """Validate a CodebaseProject spec; return the database name it maps to in its namespace."""
    check_name(name, "project name")
    try:
        project_id = normalize_project_id(spec.get("projectId"))  # type: ignore[arg-type]
    except InvalidProjectId as exc:
        raise InvalidSpec(f"spec.projectId: {exc}") from None
    project_source(spec)
    derived = database_name(project_id, namespace)
    requested = (spec.get("database") or {}).get("name")
    if requested and requested != derived:
        raise InvalidSpec(f"spec.database.name {requested!r} does not match the name derived "
                          f"from the project id ({derived!r}); leave it empty")
    policy = (spec.get("database") or {}).get("reclaimPolicy", "Retain")
    if policy not in ("Retain", "Delete"):
        raise InvalidSpec(f"spec.database.reclaimPolicy must be Retain or Delete, not {policy!r}")
    return derived


def project_source(spec: Mapping[str, Any]) -> Source:
    source = spec.get("source") or {}
    path, git = source.get("path"), source.get("git")
    if (path is None) == (git is None):
        raise InvalidSpec("exactly one of spec.source.path and spec.source.git must be set")
    if path is not None:
        return Source(path=check_relative_path(path, "spec.source.path"))
    if not isinstance(git, Mapping) or not git.get("url"):
        raise InvalidSpec("spec.source.git.url is required")
    return Source(git_url=git["url"], git_ref=git.get("ref") or None,
                  git_credentials_secret=git.get("credentialsSecret") or None)


def check_run_spec(name: str, spec: Mapping[str, Any]) -> str:
    """Validate an IndexingRun spec; return the name of the project it refers to."""
    check_name(name, "run name")
    project = (spec.get("projectRef") or {}).get("name")
    if not project:
        raise InvalidSpec("spec.projectRef.name is required")
    if not isinstance(project, str) or not DNS_LABEL.match(project) or len(project) > MAX_NAME_LENGTH:
        raise InvalidSpec(f"spec.projectRef.name {project!r} is not a valid resource name")
    if spec.get("mode", "Incremental") not in ("Full", "Incremental"):
        raise InvalidSpec(f"spec.mode must be Full or Incremental, not {spec.get('mode')!r}")
    if spec.get("repoPath") is not None:
        check_relative_path(spec["repoPath"], "spec.repoPath")
        if spec.get("gitRef") is not None:
            raise InvalidSpec("spec.repoPath and spec.gitRef are mutually exclusive")
    if spec.get("gitRef") is not None and not _GIT_REF.match(str(spec["gitRef"])):
        raise InvalidSpec(f"spec.gitRef {spec['gitRef']!r} is not a valid git ref")
    return project


def run_source(run_spec: Mapping[str, Any], project_spec: Mapping[str, Any]) -> Source:
    """The project's source with the run's overrides (a repoPath, or a git ref)."""
    base = project_source(project_spec)
    if run_spec.get("repoPath") is not None:
        return Source(path=check_relative_path(run_spec["repoPath"], "spec.repoPath"))
    if run_spec.get("gitRef") is not None:
        if base.git_url is None:
            raise InvalidSpec("spec.gitRef is set but the project's source is a path, not git")
        return dataclasses.replace(base, git_ref=run_spec["gitRef"])
    return base
