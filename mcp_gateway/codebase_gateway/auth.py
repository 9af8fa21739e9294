"""Bearer-token authentication for the HTTP transport, and the rule for when it may be off."""
from __future__ import annotations

import collections
import hmac
import ipaddress
import math

from fastmcp.server.auth import TokenVerifier
from fastmcp.server.auth.auth import AccessToken

from codebase_indexer.configuration import variable

from .settings import GatewaySettings

TOKEN_ENV = variable(GatewaySettings, "token")
MIN_TOKEN_CHARS = 32
# Estimated from the token's own character frequencies: a generated secret of 32+ characters is
# far above this (`secrets.token_urlsafe(32)` ~190 bits, `openssl rand -hex 16` ~100), while
# repeated characters, words or patterns fall far below it.
MIN_TOKEN_BITS = 80
MAKE_A_TOKEN = (f'generate one with `python -c "import secrets; print(secrets.token_urlsafe(32))"` '
                f"(or `openssl rand -hex 32`) and put it in {TOKEN_ENV}")


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
    check_token_strength(token)
    return StaticBearerToken(token)


def check_token_strength(token: str) -> None:
    """Refuse a token a person typed rather than generated: short, repetitive or low in entropy."""
    if len(token) < MIN_TOKEN_CHARS:
        raise InsecureHttpConfiguration(
            f"{TOKEN_ENV} is too short ({len(token)} characters; at least {MIN_TOKEN_CHARS}): {MAKE_A_TOKEN}")
    if token != token.strip() or _repeats_a_block(token) or estimated_bits(token) < MIN_TOKEN_BITS:
        raise InsecureHttpConfiguration(
            f"{TOKEN_ENV} has too little entropy (repeated characters, a pattern or surrounding spaces): "
            f"{MAKE_A_TOKEN}")


def estimated_bits(token: str) -> float:
    """Shannon entropy of the token's character distribution, times its length."""
    counts = collections.Counter(token)
    return -sum(n * math.log2(n / len(token)) for n in counts.values())


def _repeats_a_block(token: str) -> bool:
    """True for `abcabcabc…`: the token is a shorter block repeated."""
    return (token + token).find(token, 1) < len(token)
