"""Streamable HTTP: a bearer token is required unless auth is explicitly off on a loopback address."""
from __future__ import annotations

import httpx
import pytest

from .conftest import serve_exit_code, start_http_gateway, stop_http_gateway

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "curl", "version": "1"}}}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-0123456789", "Basic dXNlcjpwYXNz"])
@pytest.mark.slow
def test_requests_without_the_right_token_get_401(http_gateway, authorization):
    headers = dict(HEADERS, **({"Authorization": authorization} if authorization else {}))
    response = httpx.post(http_gateway.url, json=INITIALIZE, headers=headers, timeout=10)
    assert response.status_code == 401


@pytest.mark.slow
def test_probes_answer_without_a_token(http_gateway):
    base = http_gateway.url.rsplit("/mcp", 1)[0]
    assert httpx.get(f"{base}/healthz", timeout=10).json() == {"ok": True}
    ready = httpx.get(f"{base}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["control_plane"] == "local"


@pytest.mark.slow
async def test_the_right_token_is_served(http_gateway):
    async with http_gateway.client() as client:
        assert "projects" in (await client.call_tool("list_projects", {})).data


@pytest.mark.parametrize("args, env, message", [
    (["--host", "0.0.0.0", "--no-auth"], {}, "only allowed on a loopback address"),
    (["--host", "127.0.0.1"], {}, "needs a bearer token"),
    (["--host", "127.0.0.1"], {"CODEBASE_MCP_TOKEN": "short"}, "too short"),
])
async def test_refuses_to_serve_http_insecurely(args, env, message, monkeypatch, capsys):
    monkeypatch.delenv("CODEBASE_MCP_TOKEN", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert await serve_exit_code("--transport", "http", "--port", "1", *args) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
async def test_no_auth_on_loopback_serves_without_a_token(postgres_url, tmp_path):
    gateway = start_http_gateway("--no-auth", "--allowed-root", str(tmp_path))
    try:
        async with gateway.client(token=None) as client:
            assert "projects" in (await client.call_tool("list_projects", {})).data
    finally:
        stop_http_gateway(gateway)
