"""Bearer-token authentication for the HTTP transport, and the rule for when it may be off."""
from __future__ import annotations

import hmac
import ipaddress

from fastmcp.server.auth import TokenVerifier
from fastmcp.server.auth.auth import AccessToken

TOKEN_ENV = "CODEBASE_MCP_TOKEN"


class InsecureHttpConfiguration(ValueError):
    """HTTP would be served without authentication where others could reach it."""


class StaticBearerToken(TokenVerifier):
    """Accepts exactly one shared token (compared in constant time); anything else is a 401."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token.encode("utf-8")

    async def verify_token(self, token: str) -> AccessToken | None:
        if not token or not hmac.compare_digest(token.encode("utf-8"), self._token):
            return None
        return AccessToken(token=token, client_id="codebase-mcp", scopes=[], expires_at=None)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def http_auth(host: str, token: str | None, *, no_auth: bool) -> StaticBearerToken | None:
    """The verifier to install, or None when auth is explicitly off on a loopback address."""
    if no_auth:
        if not is_loopback(host):
            raise InsecureHttpConfiguration(
                f"--no-auth is only allowed on a loopback address (127.0.0.1, ::1, localhost), "
                f"not {host!r}: set {TOKEN_ENV} instead")
        return None
    if not token:
        raise InsecureHttpConfiguration(
            f"HTTP transport needs a bearer token: set {TOKEN_ENV} (for example "
            f"`export {TOKEN_ENV}=$(openssl rand -hex 32)`), or pass --no-auth with --host 127.0.0.1")
    if len(token) < 16:
        raise InsecureHttpConfiguration(f"{TOKEN_ENV} is too short: use at least 16 characters")
    return StaticBearerToken(token)
