"""Project identities and the PostgreSQL identifiers derived from them.

Every identifier that reaches SQL goes through `quote_ident`, which only accepts
what this module derives, so a hostile project name can never become SQL.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
import unicodedata

from .contract import DATABASE_PREFIX

MAX_PROJECT_ID_LENGTH = 200
_SANITIZED_PART_LENGTH = 40
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_NAMESPACE_PART_LENGTH = 12
_PROJECT_PART_LENGTH = 24


class InvalidProjectId(ValueError):
    """A project id that cannot name a project."""


def normalize_project_id(project_id: str) -> str:
    """Return the canonical form of a user-given project id, or raise InvalidProjectId.

    Any printable text of 1 to 200 characters is accepted (quotes, semicolons and
    unicode included): it is stored as data and never formatted into SQL.
    """
    if not isinstance(project_id, str):
        raise InvalidProjectId("project id must be a string")
    value = unicodedata.normalize("NFC", project_id.strip())
    if not value:
        raise InvalidProjectId("project id is empty: give a name such as 'my-service'")
    if len(value) > MAX_PROJECT_ID_LENGTH:
        raise InvalidProjectId(
            f"project id is {len(value)} characters long; the limit is {MAX_PROJECT_ID_LENGTH}"
        )
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise InvalidProjectId("project id contains control characters; use printable text only")
    return value


def _sanitized(project_id: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", project_id).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")
    return cleaned[:_SANITIZED_PART_LENGTH].rstrip("_") or "project"


def _digest(project_id: str) -> str:
    return hashlib.sha256(project_id.encode("utf-8")).hexdigest()[:8]


@dataclasses.dataclass(frozen=True)
class ProjectNames:
    """The PostgreSQL names of one project: its database, the role owning it, the read-only role."""
    database: str
    owner_role: str
    reader_role: str


def project_names(project_id: str, namespace: str | None = None) -> ProjectNames:
    """The names of a project's database and roles; the one function every component derives them with.

    Locally (no namespace): `cb_proj_<sanitized id>_<8 hex>`. On Kubernetes the namespace is part
    of the name and of the hash, so equal project ids in two namespaces never share a database:
    `cb_proj_<namespace>_<id>_<8 hex>`, each part cut short so that every name stays a valid
    identifier of at most 63 bytes.
    """
    pid = normalize_project_id(project_id)
    if namespace is None:
        stem = f"{_sanitized(pid)}_{_digest(pid)}"
    else:
        if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
            raise InvalidProjectId(f"namespace {namespace!r} is not a Kubernetes namespace name")
        ns_part = namespace.replace("-", "_")[:_NAMESPACE_PART_LENGTH].strip("_") or "ns"
        pid_part = _sanitized(pid)[:_PROJECT_PART_LENGTH].rstrip("_") or "project"
        stem = f"{ns_part}_{pid_part}_{_digest(namespace + '/' + pid)}"
    return ProjectNames(database=f"{DATABASE_PREFIX}{stem}", owner_role=f"cb_owner_{stem}",
                        reader_role=f"cb_reader_{stem}")


def database_name(project_id: str, namespace: str | None = None) -> str:
    """`cb_proj_<sanitized>_<8 hex>`: readable, unique per project id (and namespace), a valid identifier."""
    return project_names(project_id, namespace).database


def owner_role_name(project_id: str, namespace: str | None = None) -> str:
    """The per-project role that owns the project's database."""
    return project_names(project_id, namespace).owner_role


def reader_role_name(project_id: str, namespace: str | None = None) -> str:
    """The per-project role that searches: it may connect to the project's database and SELECT, nothing else."""
    return project_names(project_id, namespace).reader_role


def owner_secret_name(project_resource_name: str) -> str:
    """The Secret of a CodebaseProject with the owner role's credentials (indexer Jobs use it)."""
    return f"{project_resource_name}-db"


def reader_secret_name(project_resource_name: str) -> str:
    """The Secret of a CodebaseProject with the read-only role's credentials (the gateway uses it)."""
    return f"{project_resource_name}-db-reader"


def kubernetes_name(project_id: str) -> str:
    """A DNS-1123 label (<= 63 chars) for Kubernetes objects named after a project."""
    pid = normalize_project_id(project_id)
    base = _sanitized(pid).replace("_", "-")[:40].strip("-") or "project"
    return f"{base}-{_digest(pid)}"


def quote_ident(identifier: str) -> str:
    """Quote an identifier this module derived; refuse anything else."""
    if not _IDENTIFIER.match(identifier):
        raise ValueError(f"refusing to use {identifier!r} as an SQL identifier")
    return f'"{identifier}"'
