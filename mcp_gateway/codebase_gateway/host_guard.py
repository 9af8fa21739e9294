"""DNS-rebinding protection: every HTTP request must name an allowed Host and, when a browser sends
one, an allowed Origin.

A web page the user visits can make its own name resolve to 127.0.0.1 and then talk to a gateway
on the user's machine; the browser then sends the page's name as Host and the page's origin as
Origin. Refusing names the gateway was not told about closes that door, with or without a token.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from codebase_indexer.configuration import variable

from .settings import GatewaySettings

ALLOWED_HOSTS_ENV = variable(GatewaySettings, "allowed_hosts")
ALLOWED_ORIGINS_ENV = variable(GatewaySettings, "allowed_origins")
ANY = "*"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


class InvalidAllowList(ValueError):
    """An --allowed-host or --allowed-origin value that cannot match anything."""


@dataclass(frozen=True)
class HostPolicy:
    """Host names (with an optional port) and origins a request may carry."""

    hosts: frozenset[str]
    origins: frozenset[str]

    @property
    def any_host(self) -> bool:
        return ANY in self.hosts

    @property
    def any_origin(self) -> bool:
        return ANY in self.origins

    def host_allowed(self, host: str) -> bool:
        if self.any_host:
            return True
        name, port = split_host(host)
        return name in self.hosts or (port is not None and f"{name}:{port}" in self.hosts)

    def origin_allowed(self, origin: str) -> bool:
        if self.any_origin or origin.lower().rstrip("/") in self.origins:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False
        name, _port = split_host(parts.netloc)
        # A page served from a name the gateway answers to is the gateway's own site.
        return name in self.hosts


def build_policy(bind_host: str, extra_hosts: list[str], extra_origins: list[str]) -> HostPolicy:
    """Loopback names and the bound address, plus what the operator of the gateway allowed."""
    hosts = {*LOOPBACK_NAMES, *(_normalized_host(h) for h in extra_hosts)}
    bound = _bracketed(bind_host.strip().lower())
    if not _is_unspecified(bound):  # 0.0.0.0 / :: is never a name a client sends
        hosts.add(bound)
    origins = {_normalized_origin(o) for o in extra_origins}
    return HostPolicy(frozenset(hosts), frozenset(origins))


def split_host(host: str) -> tuple[str, str | None]:
    """`Name:port` → (`name`, `port`); IPv6 stays bracketed: `[::1]:8000` → (`[::1]`, `8000`)."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end == -1:
            return host, None
        rest = host[end + 1:]
        return host[:end + 1], rest[1:] if rest.startswith(":") and rest[1:] else None
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name, port
    return host, None


def _normalized_host(value: str) -> str:
    text = value.strip().lower()
    if text == ANY:
        return ANY
    if not text or "/" in text or " " in text:
        raise InvalidAllowList(f"--allowed-host {value!r} is not a host name: give a name such as "
                               "codebase.example.com or codebase.example.com:8443 (no scheme, no path)")
    name, port = split_host(_bracketed(text))
    return f"{name}:{port}" if port else name


def _normalized_origin(value: str) -> str:
    text = value.strip().lower().rstrip("/")
    if text == ANY:
        return ANY
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
        raise InvalidAllowList(f"--allowed-origin {value!r} is not an origin: give scheme and host, "
                               "such as https://app.example.com or http://localhost:6274")
    return text


def _bracketed(host: str) -> str:
    """A bare IPv6 address gets the brackets a Host header carries."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


def _is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


class HostOriginGuard:
    """ASGI middleware: 403 for a request whose Host or Origin the policy does not allow."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            refusal = self.refusal(Headers(scope=scope))
            if refusal is not None:
                await JSONResponse({"error": refusal}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, headers: Headers) -> str | None:
        host = headers.get("host")
        if not host:
            return "the request has no Host header: send the gateway's address as Host"
        if not self.policy.host_allowed(host):
            name = split_host(host)[0]
            return (f"Host header {host!r} is not allowed (DNS-rebinding protection). "
                    f"If clients really reach this gateway as {name!r}, start it with "
                    f"--allowed-host {name} (or {ALLOWED_HOSTS_ENV}, or the chart's gateway.allowedHosts)")
        origin = headers.get("origin")
        if origin is not None and not self.policy.origin_allowed(origin):
            return (f"Origin header {origin!r} is not allowed (DNS-rebinding protection). "
                    f"If a web page at that origin may use this gateway, start it with "
                    f"--allowed-origin {origin} (or {ALLOWED_ORIGINS_ENV}, or the chart's gateway.allowedOrigins)")
        return None
