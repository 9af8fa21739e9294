"""Per-session working directories, keyed by who is calling.

On handshake-era connections (what Claude Code and Claude Desktop speak) the MCP
session id is stable for the whole session. The 2026-07-28 protocol has no
sessions: every request gets a fresh id. There the key is the connection's
scope instead: the process on stdio (it serves one client), the authenticated
client on HTTP.
"""
from __future__ import annotations

from pathlib import Path

from fastmcp import Context
from fastmcp.server.dependencies import get_access_token
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

_MAX_SESSIONS = 10_000


def session_key(ctx: Context) -> str:
    request = ctx.request_context
    modern = request is not None and request.protocol_version in MODERN_PROTOCOL_VERSIONS
    if not modern:
        return ctx.session_id
    if ctx.transport == "stdio":
        return "stdio"
    token = get_access_token()
    return f"client:{token.client_id}" if token is not None else "anonymous"


class WorkingDirectories:
    """session key → working directory; only plain paths, never a request object."""

    def __init__(self) -> None:
        self._by_session: dict[str, Path] = {}

    def set(self, key: str, directory: Path) -> None:
        self._by_session.pop(key, None)
        self._by_session[key] = directory
        while len(self._by_session) > _MAX_SESSIONS:  # forget the oldest sessions first
            self._by_session.pop(next(iter(self._by_session)))

    def get(self, key: str) -> Path | None:
        return self._by_session.get(key)
