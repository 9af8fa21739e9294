"""GET /metrics on the HTTP gateway: Prometheus text, behind the token unless --metrics-public."""
from __future__ import annotations

import httpx
import pytest
from fastmcp.exceptions import ToolError

from . import prometheus_text
from .conftest import TOKEN, serve_exit_code, start_http_gateway, stop_http_gateway, write_repo

AUTH = {"Authorization": f"Bearer {TOKEN}"}
INVOICE = '''\
def total_with_tax(amount, rate):
    """Add the sales tax to an invoice amount."""
    return amount * (1 + rate)
'''


def metrics_url(gateway) -> str:
    return gateway.url.rsplit("/mcp", 1)[0] + "/metrics"


def scrape(gateway, **headers) -> dict:
    response = httpx.get(metrics_url(gateway), headers=dict(AUTH, **headers), timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return prometheus_text.parse(response.text)


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-0123456789", "Basic dXNlcjpwYXNz", f"{TOKEN}"])
@pytest.mark.slow
def test_metrics_without_the_token_get_401_saying_how_to_scrape(http_gateway, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.get(metrics_url(http_gateway), headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "--metrics-public" in response.text and "codebase_mcp" not in response.text


@pytest.mark.slow
def test_metrics_with_the_token_parse_and_carry_every_family(http_gateway):
    samples = scrape(http_gateway)
    names = {name for name, _ in samples}
    assert {"codebase_mcp_search_latency_seconds_count", "codebase_mcp_database_connections_max",
            "codebase_mcp_database_connections_reserved", "codebase_mcp_database_search_pools"} <= names
    assert prometheus_text.value(samples, "codebase_mcp_database_connections_max") == 16
    assert prometheus_text.value(samples, "codebase_mcp_database_connections_reserved") >= 1  # the registry's pool
    assert ("codebase_mcp_database_connections", (("state", "idle"),)) in samples
    assert ("codebase_mcp_database_connections", (("state", "in_use"),)) in samples


@pytest.mark.slow
def test_a_foreign_host_is_refused_even_with_the_token(http_gateway):
    response = httpx.get(metrics_url(http_gateway), headers=dict(AUTH, Host="attacker.example"), timeout=10)
    assert response.status_code == 403 and "attacker.example" in response.json()["error"]


@pytest.mark.slow
async def test_counts_and_latency_move_after_search_code(http_gateway, tmp_path):
    repo = write_repo(tmp_path / "invoices", {"invoice.py": INVOICE})
    async with http_gateway.client() as client:
        indexed = (await client.call_tool("index_repository",
                                          {"repo_path": str(repo), "project_id": "metrics-invoices"})).data
        assert indexed["status"] == "completed", indexed
        before = scrape(http_gateway)
        found = (await client.call_tool("search_code", {"query": "sales tax on an invoice",
                                                        "project_id": "metrics-invoices"})).data
        assert found["results"]
        after = scrape(http_gateway)

    def moved(name: str, **labels: str) -> float:
        return prometheus_text.value(after, name, **labels) - prometheus_text.value(before, name, **labels)

    assert moved("codebase_mcp_tool_calls_total", tool="search_code") == 1
    assert moved("codebase_mcp_tool_errors_total", tool="search_code") == 0
    assert moved("codebase_mcp_tool_duration_seconds_count", tool="search_code") == 1
    assert moved("codebase_mcp_search_latency_seconds_count") == 1
    assert prometheus_text.value(after, "codebase_mcp_tool_duration_seconds_bucket",
                                 tool="index_repository", le="+Inf") >= 1
    assert prometheus_text.value(after, "codebase_mcp_indexing_runs", state="succeeded") >= 1
    assert prometheus_text.value(after, "codebase_mcp_database_search_pools") >= 1


@pytest.mark.slow
async def test_a_made_up_tool_name_cannot_inject_series(http_gateway):
    async with http_gateway.client() as client:
        with pytest.raises(ToolError):
            await client.call_tool('x"} 1\ncodebase_mcp_fake_total{a="', {})
    samples = scrape(http_gateway)
    assert prometheus_text.value(samples, "codebase_mcp_tool_calls_total", tool="unknown") >= 1
    assert not any(name.startswith("codebase_mcp_fake") for name, _ in samples)


@pytest.mark.slow
async def test_metrics_public_lets_scrapers_in_but_not_into_the_tools(postgres_url, tmp_path):
    gateway = start_http_gateway("--allowed-root", str(tmp_path),
                                 env={"CODEBASE_MCP_TOKEN": TOKEN, "CODEBASE_MCP_METRICS_PUBLIC": "true"})
    try:
        response = httpx.get(metrics_url(gateway), timeout=30)
        assert response.status_code == 200
        prometheus_text.parse(response.text)
        refused = httpx.get(metrics_url(gateway), headers={"Host": "attacker.example"}, timeout=10)
        assert refused.status_code == 403
        tools = httpx.post(gateway.url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                           headers={"Accept": "application/json, text/event-stream"}, timeout=10)
        assert tools.status_code == 401
    finally:
        stop_http_gateway(gateway)


async def test_a_metrics_public_value_that_is_not_a_boolean_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CODEBASE_MCP_TOKEN", TOKEN)
    monkeypatch.setenv("CODEBASE_MCP_METRICS_PUBLIC", "sure")
    assert await serve_exit_code("--transport", "http", "--port", "1", "--allowed-root", str(tmp_path)) == 2
    assert "CODEBASE_MCP_METRICS_PUBLIC='sure' is not a boolean" in capsys.readouterr().err
