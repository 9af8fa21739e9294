"""Checks of the specs that the API server's schema may not have enforced, and what a run indexes.

The CRD schemas (crds/) reject most bad input at admission. The operator checks
again because an API server without CEL, an older CRD, or a direct edit of
storage can still hand it a bad object: it must then say why, once, and not retry.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from codebase_indexer.credentials import redact
from codebase_indexer.git_refs import InvalidGitRef, check_git_ref
from codebase_indexer.identifiers import InvalidProjectId, database_name, normalize_project_id
from codebase_indexer.shards import MAX_SHARDS

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# What the API server accepts as the name of a custom resource (and so of a project).
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MAX_NAME_LENGTH = 63
# git@host:path (scp-like syntax, always ssh); the user and host cannot start with '-'.
_SCP_LIKE_GIT_URL = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]*@[A-Za-z0-9.][A-Za-z0-9.-]*:[^\s]+$")
ENCRYPTED_GIT_SCHEMES = ("https", "ssh")
PLAINTEXT_GIT_SCHEMES = ("http", "git")


class InvalidSpec(ValueError):
    """A spec the operator refuses; the message says what to change."""


@dataclasses.dataclass(frozen=True)
class Source:
    """What one run indexes: a path under the workspace root, or a git repository."""
    path: str | None = None
    git_url: str | None = None
    git_ref: str | None = None
    git_credentials_secret: str | None = None
    git_commit: str | None = None  # the ref's commit, pinned by the operator for a run of several shards


def check_name(name: str, what: str) -> None:
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidSpec(f"{what} {name!r} is longer than {MAX_NAME_LENGTH} characters")
    if not DNS_SUBDOMAIN.match(name):
        raise InvalidSpec(f"{what} {name!r} is not a valid resource name (lower-case letters, digits, "
                          f"'-' and '.', starting and ending with a letter or digit)")


def check_relative_path(path: Any, field: str) -> str:
    if not isinstance(path, str) or not path:
        raise InvalidSpec(f"{field} must be a non-empty string")
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts:
        raise InvalidSpec(f"{field} {path!r} must be relative to the workspace root, without '..'")
    return path


def check_project_spec(name: str, spec: Mapping[str, Any], namespace: str, *,
                       allow_plaintext_git: bool = False) -> str:
    """Validate a CodebaseProject spec; return the database name it maps to in its namespace."""
    check_name(name, "project name")
    try:
        project_id = normalize_project_id(spec.get("projectId"))  # type: ignore[arg-type]
    except InvalidProjectId as exc:
        raise InvalidSpec(f"spec.projectId: {exc}") from None
    source = project_source(spec)
    if source.git_url is not None:
        check_git_url(source.git_url, allow_plaintext=allow_plaintext_git)
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
    ref = git.get("ref") or None
    if ref is not None:
        _check_git_ref(ref, "spec.source.git.ref")
    return Source(git_url=git["url"], git_ref=ref,
                  git_credentials_secret=git.get("credentialsSecret") or None)


def check_git_url(url: str, *, allow_plaintext: bool) -> None:
    """Accept https://, ssh:// and git@host:path; http:// and git:// only when allowed explicitly.

    The URL itself is never quoted back: it may carry credentials.
    """
    if _SCP_LIKE_GIT_URL.match(url):
        return
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ENCRYPTED_GIT_SCHEMES and _has_host(url):
        return
    if scheme in PLAINTEXT_GIT_SCHEMES and _has_host(url):
        if allow_plaintext:
            return
        raise InvalidSpec(f"spec.source.git.url uses {scheme}://, which sends the code and any credentials "
                          f"unencrypted; use an https:// or ssh:// URL (an operator started with "
                          f"--allow-plaintext-git accepts {scheme}://)")
    raise InvalidSpec("spec.source.git.url must be an https:// or ssh:// URL with a host, or git@host:path")


def _has_host(url: str) -> bool:
    try:
        return bool(urlsplit(url).hostname)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False


def check_embedding_url(url: str | None, allowed: Sequence[str]) -> None:
    """With an allow-list set on the operator, the embedding URL must fall under one of its entries.

    An entry is a URL prefix (`https://llm.example/v1`: same scheme, host and port, and a path
    under that one) or a bare host (`llm.example`, `llm.example:8443`: any scheme and path).
    """
    if not allowed:
        return
    if not url:
        raise InvalidSpec("spec.embedding.url is required: this operator only sends embedding requests "
                          f"to {', '.join(allowed)} (--allowed-embedding-url)")
    if not any(_url_is_under(url, entry) for entry in allowed):
        raise InvalidSpec(f"spec.embedding.url {redact(url)!r} is not allowed by this operator: "
                          f"it only sends embedding requests to {', '.join(allowed)} "
                          f"(ask its administrator to add yours with --allowed-embedding-url)")


def _url_is_under(url: str, entry: str) -> bool:
    try:
        target = urlsplit(url)
        target_port = target.port or _DEFAULT_PORTS.get(target.scheme.lower())
        if "://" not in entry:
            host, _, port = entry.partition(":")
            return (target.hostname or "") == host.lower() and (not port or str(target_port) == port)
        prefix = urlsplit(entry)
        prefix_port = prefix.port or _DEFAULT_PORTS.get(prefix.scheme.lower())
    except ValueError:  # a malformed port
        return False
    if (target.scheme.lower(), target.hostname, target_port) != (prefix.scheme.lower(), prefix.hostname,
                                                                 prefix_port):
        return False
    base = prefix.path.rstrip("/")
    return target.path == base or target.path.startswith(base + "/")


_DEFAULT_PORTS = {"http": 80, "https": 443}


def check_run_spec(name: str, spec: Mapping[str, Any]) -> str:
    """Validate an IndexingRun spec; return the name of the project it refers to."""
    check_name(name, "run name")
    project = (spec.get("projectRef") or {}).get("name")
    if not project:
        raise InvalidSpec("spec.projectRef.name is required")
    if not isinstance(project, str) or not DNS_SUBDOMAIN.match(project) or len(project) > MAX_NAME_LENGTH:
        raise InvalidSpec(f"spec.projectRef.name {project!r} is not a valid resource name")
    if spec.get("mode", "Incremental") not in ("Full", "Incremental"):
        raise InvalidSpec(f"spec.mode must be Full or Incremental, not {spec.get('mode')!r}")
    if spec.get("repoPath") is not None:
        check_relative_path(spec["repoPath"], "spec.repoPath")
        if spec.get("gitRef") is not None:
            raise InvalidSpec("spec.repoPath and spec.gitRef are mutually exclusive")
    if spec.get("gitRef") is not None:
        _check_git_ref(spec["gitRef"], "spec.gitRef")
    if spec.get("parallelism") is not None:
        _check_parallelism(spec["parallelism"], "spec.parallelism")
    return project


def run_parallelism(run_spec: Mapping[str, Any], project_spec: Mapping[str, Any], default: int = 1) -> int:
    """How many shards (pods) the run's Job has: the run's override, else the project's, else `default`."""
    if run_spec.get("parallelism") is not None:
        return _check_parallelism(run_spec["parallelism"], "spec.parallelism")
    configured = (project_spec.get("indexing") or {}).get("parallelism")
    if configured is None:
        return default
    return _check_parallelism(configured, "the project's spec.indexing.parallelism")


def _check_parallelism(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SHARDS:
        raise InvalidSpec(f"{field} must be a whole number from 1 to {MAX_SHARDS}, not {value!r}")
    return value


def _check_git_ref(ref: Any, field: str) -> None:
    try:
        check_git_ref(ref)
    except InvalidGitRef as exc:
        raise InvalidSpec(f"{field}: {exc}") from None


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
