"""Which project a tool call means: explicit id → working directory's config → `default`.

Resolution happens inside the tool call; its result (plain data) is what
background work receives. The config file is only ever read.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from codebase_indexer.identifiers import InvalidProjectId, database_name, normalize_project_id

from . import validation
from .validation import InvalidArgument

CONFIG_DIR = ".codebase-mcp"
CONFIG_FILE = "config.json"
DEFAULT_PROJECT = "default"
_MAX_CONFIG_BYTES = 64 * 1024


@dataclass(frozen=True)
class ProjectConfig:
    path: Path
    name: str
    id: str | None

    @property
    def project_id(self) -> str:
        return self.id or self.name

    def to_info(self) -> dict:
        return {"name": self.name, "id": self.id}


@dataclass(frozen=True)
class ResolvedProject:
    project_id: str
    database_name: str
    source: str  # "explicit" | "config" | "default"
    config_path: Path | None = None


def find_config(start: Path, roots: Iterable[Path] = ()) -> ProjectConfig | None:
    """The nearest `.codebase-mcp/config.json` in `start` or above it, parsed.

    With allowed roots the search stops at the root: a config above it belongs to someone else's
    folders and must not choose the project (nor may a config that is a link leading out of them).
    """
    roots = list(roots)
    for directory in (start, *start.parents):
        if roots and not validation.is_within(directory, roots):
            break
        candidate = directory / CONFIG_DIR / CONFIG_FILE
        if candidate.is_file():
            target = validation.resolved_path(candidate)
            if roots and (target is None or not validation.is_within(target, [root.resolve() for root in roots])):
                raise InvalidArgument(f"project config {candidate} is a link leading outside the allowed roots: "
                                "make it a regular file")
            return read_config(candidate)
    return None


def read_config(path: Path) -> ProjectConfig:
    """Parse `{"version": 1, "project": {"name": ..., "id"?: ...}}`, with errors that name the file."""
    try:
        if path.stat().st_size > _MAX_CONFIG_BYTES:
            raise InvalidArgument(f"{path} is larger than {_MAX_CONFIG_BYTES} bytes; it is not a project config")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"cannot read project config {path}: {exc}") from None
    project = data.get("project") if isinstance(data, dict) else None
    name = project.get("name") if isinstance(project, dict) else None
    if not isinstance(project, dict) or not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f'project config {path} needs {{"project": {{"name": "..."}}}}')
    raw_id = project.get("id")
    if raw_id is not None and not isinstance(raw_id, str):
        raise InvalidArgument(f"project config {path}: project.id must be a string")
    try:
        name = normalize_project_id(name)
        project_id = normalize_project_id(raw_id) if raw_id else None
    except InvalidProjectId as exc:
        raise InvalidArgument(f"project config {path}: {exc}") from None
    return ProjectConfig(path=path, name=name, id=project_id)


def resolve_project(explicit: str | None, working_directory: Path | None,
                    roots: Iterable[Path] = ()) -> ResolvedProject:
    """Explicit id, else the working directory's config (searched up to the allowed root), else `default`."""
    if explicit is not None:
        pid = validation.project_id(explicit)
        return ResolvedProject(pid, database_name(pid), "explicit")
    if working_directory is not None:
        config = find_config(working_directory, roots)
        if config is not None:
            pid = config.project_id
            return ResolvedProject(pid, database_name(pid), "config", config.path)
    return ResolvedProject(DEFAULT_PROJECT, database_name(DEFAULT_PROJECT), "default")
