"""Per-session working directories, keyed by who is calling, and the scope that key has.

On handshake-era connections (what Claude Code and Claude Desktop speak) the MCP
session id is stable for the whole session: a working directory is the session's
own. The 2026-07-28 protocol has no sessions: every request gets a fresh id, and
nothing in a request tells one client from another with the same credentials.
There the key is the widest scope that is still honest: the process on stdio (it
serves one client), the token on HTTP (every client using it). The scope is
reported to the client, so that it knows when to pass project_id instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastmcp import Context
from fastmcp.server.dependencies import get_access_token
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

_MAX_SESSIONS = 10_000
_SHARED = ("every client of this gateway that uses the same token over the sessionless MCP protocol "
           "(2026-07-28), which gives no connection to keep it per client. Pass project_id to each call "
           "to be independent of it, or connect with a protocol version that has sessions")


@dataclass(frozen=True)
class SessionScope:
    key: str
    scope: str  # "session" | "process" | "shared"
    description: str


def session_scope(ctx: Context) -> SessionScope:
    """Whose working directory a call reads and writes, and how far that reaches."""
    request = ctx.request_context
    modern = request is not None and request.protocol_version in MODERN_PROTOCOL_VERSIONS
    if not modern:
        return SessionScope(ctx.session_id, "session", "this MCP session only")
    if ctx.transport == "stdio":
        return SessionScope("stdio", "process", "this gateway process, which serves only this client over stdio")
    token = get_access_token()
    return SessionScope(f"client:{token.client_id}" if token is not None else "anonymous", "shared", _SHARED)


def session_key(ctx: Context) -> str:
    return session_scope(ctx).key


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
