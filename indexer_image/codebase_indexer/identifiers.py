"""Project identities and the PostgreSQL identifiers derived from them.

Every identifier that reaches SQL goes through `quote_ident`, which only accepts
what this module derives, so a hostile project name can never become SQL.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_PROJECT_ID_LENGTH = 200
_SANITIZED_PART_LENGTH = 40
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


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


def database_name(project_id: str) -> str:
    """`cb_proj_<sanitized>_<8 hex>`: readable, unique per project id, a valid identifier."""
    pid = normalize_project_id(project_id)
    return f"cb_proj_{_sanitized(pid)}_{_digest(pid)}"


def owner_role_name(project_id: str) -> str:
    """The per-project role that owns the project's database."""
    pid = normalize_project_id(project_id)
    return f"cb_owner_{_sanitized(pid)}_{_digest(pid)}"


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
