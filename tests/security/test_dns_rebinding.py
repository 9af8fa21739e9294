"""Item 1: DNS rebinding. A web page whose name resolves to 127.0.0.1 used to drive a loopback gateway:
`serve --transport http --no-auth` answered initialize, index_repository and search_code for requests
whose Host and Origin were attacker.example. Now every HTTP request needs an allowed Host and, when it
carries one, an allowed Origin, with or without a token."""
from __future__ import annotations

import uuid

import httpx
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from mcp.shared.exceptions import MCPError

from tests.gateway.conftest import TOKEN, start_http_gateway, stop_http_gateway, write_repo

ATTACKER = "attacker.example"
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "page", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return tmp_path_factory.mktemp("rebinding-workspace")


@pytest.fixture(scope="module")
def open_gateway(postgres_url, workspace):
    """The configuration of the report: HTTP on loopback without a token."""
    gateway = start_http_gateway("--no-auth", "--allowed-root", str(workspace),
                                 "--allowed-host", "codebase.test", "--allowed-origin", "http://app.test:3000")
    yield gateway
    stop_http_gateway(gateway)


def client(url: str, *, host: str | None = None, origin: str | None = None, token: str | None = None) -> Client:
    headers = {}
    if host:
        headers["Host"] = host
    if origin:
        headers["Origin"] = origin
    return Client(StreamableHttpTransport(url, headers=headers, auth=token), timeout=60)


def port_of(url: str) -> int:
    return httpx.URL(url).port


@pytest.mark.parametrize("host, origin", [
    (f"{ATTACKER}:{{port}}", f"http://{ATTACKER}:{{port}}"),  # the rebinding page: both are the attacker's
    (f"{ATTACKER}:{{port}}", None),
    ("127.0.0.1:{port}", f"http://{ATTACKER}"),  # a cross-site request to the real address
    ("127.0.0.1:{port}", "null"),  # a sandboxed iframe or a file:// page
])
@pytest.mark.slow
def test_initialize_from_a_foreign_host_or_origin_gets_403(open_gateway, host, origin):
    port = port_of(open_gateway.url)
    headers = dict(MCP_HEADERS, Host=host.format(port=port))
    if origin:
        headers["Origin"] = origin.format(port=port)
    response = httpx.post(open_gateway.url, json=INITIALIZE, headers=headers, timeout=10)
    assert response.status_code == 403
    error = response.json()["error"]
    if ATTACKER in headers["Host"]:
        assert error.startswith("Host header") and "--allowed-host attacker.example" in error
    else:
        assert error.startswith("Origin header") and "--allowed-origin" in error
    assert "serverInfo" not in response.text


@pytest.mark.slow
async def test_a_rebinding_page_cannot_index_or_search(open_gateway, workspace):
    """What a page could do before: index the user's files, then read them back through search."""
    project = f"rebinding-{uuid.uuid4().hex[:8]}"
    repo = write_repo(workspace / project, {"secrets.py": "def private_notes():\n    return 'diary'\n"})
    port = port_of(open_gateway.url)
    for host, origin in [(f"{ATTACKER}:{port}", f"http://{ATTACKER}:{port}"), (f"127.0.0.1:{port}", f"http://{ATTACKER}")]:
        with pytest.raises(MCPError):  # the client sees the 403 as an error response
            async with client(open_gateway.url, host=host, origin=origin) as page:
                await page.call_tool("index_repository", {"repo_path": str(repo), "project_id": project})
        with pytest.raises(MCPError):  # the client sees the 403 as an error response
            async with client(open_gateway.url, host=host, origin=origin) as page:
                await page.call_tool("search_code", {"query": "private notes", "project_id": project})
    async with client(open_gateway.url) as user:  # the user's own client: nothing was indexed
        jobs = (await user.call_tool("list_indexing_jobs", {"project_id": project})).data
        assert jobs["jobs"] == []


@pytest.mark.slow
async def test_the_users_own_clients_still_work(open_gateway, workspace):
    port = port_of(open_gateway.url)
    for host, origin in [(None, None),  # a plain MCP client: Host 127.0.0.1:port, no Origin
                         (f"localhost:{port}", "http://localhost:6274"),  # the MCP Inspector on loopback
                         (f"codebase.test:{port}", None),  # --allowed-host
                         (f"codebase.test:{port}", f"http://codebase.test:{port}"),  # its own pages
                         (f"127.0.0.1:{port}", "http://app.test:3000")]:  # --allowed-origin
        async with client(open_gateway.url, host=host, origin=origin) as user:
            assert "projects" in (await user.call_tool("list_projects", {})).data


@pytest.mark.slow
def test_probes_are_guarded_too(open_gateway):
    base = open_gateway.url.rsplit("/mcp", 1)[0]
    assert httpx.get(f"{base}/healthz", headers={"Host": ATTACKER}, timeout=10).status_code == 403
    assert httpx.get(f"{base}/healthz", headers={"Host": "localhost"}, timeout=10).json() == {"ok": True}


@pytest.mark.slow
async def test_with_a_token_a_foreign_host_is_refused_as_well(postgres_url, workspace):
    gateway = start_http_gateway("--allowed-root", str(workspace), env={"CODEBASE_MCP_TOKEN": TOKEN})
    try:
        port = port_of(gateway.url)
        with pytest.raises(MCPError):  # the client sees the 403 as an error response
            async with client(gateway.url, host=f"{ATTACKER}:{port}", token=TOKEN) as page:
                await page.call_tool("list_projects", {})
        async with client(gateway.url, token=TOKEN) as user:
            assert "projects" in (await user.call_tool("list_projects", {})).data
    finally:
        stop_http_gateway(gateway)


def test_the_chart_allows_its_service_names_and_the_values_hosts_and_refuses_others(monkeypatch):
    """The chart's rendered args build the guard: in-cluster Service names, gateway.allowedHosts and the
    probes' Host pass; a rebinding name does not."""
    from starlette.datastructures import Headers

    from codebase_gateway import serve_command
    from codebase_gateway.host_guard import HostOriginGuard

    chart = pytest.importorskip("tests.chart.chart_support")
    helm = chart.Helm(chart.fetch_tools_module().ensure_tools()["helm"])
    manifests = helm.render("--set", "gateway.allowedHosts={codebase.example.com}",
                            "--set", "gateway.allowedOrigins={https://app.example.com}")
    deployment = chart.one(manifests, "Deployment", "-gateway")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    service = chart.one(manifests, "Service", "-gateway")["metadata"]["name"]
    monkeypatch.delenv("CODEBASE_MCP_ALLOWED_HOSTS", raising=False)
    (middleware,) = serve_command.http_middleware(serve_command.parse_settings(container["args"][1:]))
    guard = HostOriginGuard(app=None, policy=middleware.kwargs["policy"])

    def refused(host: str, origin: str | None = None) -> bool:
        return guard.refusal(Headers({"host": host, **({"origin": origin} if origin else {})})) is not None

    for host in (f"{service}:8000", f"{service}.codebase.svc:8000", f"{service}.codebase.svc.cluster.local",
                 "codebase.example.com", "localhost:8000"):
        assert not refused(host), host
    assert not refused("codebase.example.com", "https://app.example.com")
    assert refused(f"{ATTACKER}:8000") and refused("10.1.2.3:8000")
    assert refused("codebase.example.com", f"https://{ATTACKER}")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        (header,) = container[probe]["httpGet"]["httpHeaders"]
        assert header["name"] == "Host" and not refused(header["value"])


@pytest.mark.parametrize("args, message", [
    (["--no-auth", "--allowed-host", "*"], "turns off DNS-rebinding protection"),
    (["--no-auth", "--allowed-host", "http://codebase.test/"], "is not a host name"),
    (["--no-auth", "--allowed-origin", "app.test"], "is not an origin"),
], ids=["any-host-without-token", "url-as-host", "host-as-origin"])
def test_allow_lists_that_would_open_the_gateway_or_match_nothing_are_refused(args, message, tmp_path, capsys):
    from codebase_gateway import serve_command

    argv = ["--transport", "http", "--port", "1", "--allowed-root", str(tmp_path), *args]
    assert serve_command.main(argv) == 2  # refused before anything listens
    assert message in capsys.readouterr().err


def test_the_allow_lists_also_come_from_the_environment(monkeypatch, tmp_path):
    """CODEBASE_MCP_ALLOWED_HOSTS / _ORIGINS (comma-separated) stand in for the flags."""
    from starlette.datastructures import Headers

    from codebase_gateway import serve_command
    from codebase_gateway.host_guard import HostOriginGuard

    monkeypatch.setenv("CODEBASE_MCP_ALLOWED_HOSTS", "one.test, two.test:8443")
    monkeypatch.setenv("CODEBASE_MCP_ALLOWED_ORIGINS", "https://app.test")
    (middleware,) = serve_command.http_middleware(serve_command.parse_settings(["--transport", "http"]))
    guard = HostOriginGuard(app=None, policy=middleware.kwargs["policy"])
    assert guard.refusal(Headers({"host": "one.test:8000", "origin": "https://app.test"})) is None
    assert guard.refusal(Headers({"host": "two.test:8443"})) is None
    assert guard.refusal(Headers({"host": "two.test:9999"})) is not None  # a name with a port is exact
    assert guard.refusal(Headers({"host": f"{ATTACKER}"})) is not None
