"""Gateways under test, driven by fastmcp's Client: in process (fastmcp's in-memory transport on the
server object that `codebase-mcp serve` builds, from the same flags) where the wire does not matter,
and `codebase-mcp serve` as a real subprocess for stdio framing, HTTP auth and host checks, signals
and process restarts."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastmcp import Client, FastMCP
from fastmcp.client.transports import StdioTransport, StreamableHttpTransport

from codebase_gateway.embedder import LazyEmbedder
from codebase_gateway.serve_command import checked_configuration, parse_settings
from codebase_gateway.server import create_server
from codebase_indexer.embedding import Embedder
from tests.repo_files import write_tree as write_repo  # noqa: F401 - the gateway tests import it from here

# A generated secret, as the gateway requires (secrets.token_urlsafe(32)).
TOKEN = "wKeKllAmkRxbQuBxcGNlHfRQdhTjBtXjopqgBXo0Xc0"
SERVE = [str(Path(sys.executable).with_name("codebase-mcp")), "serve"]


def gateway_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # Watching is off unless a test turns it on: a watch-started run would race the tests that edit a
    # repository and then index it themselves (tests/gateway/test_watch.py turns it on).
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", CODEBASE_MCP_WATCH="false")
    env.update(extra or {})
    return env


def stdio_client(*args: str, env: dict[str, str] | None = None, **client_options) -> Client:
    transport = StdioTransport(command=SERVE[0], args=[*SERVE[1:], *args], env=gateway_env(env),
                               keep_alive=False)
    return Client(transport, timeout=180, **client_options)


def in_process_server(*serve_args: str, embedder: Embedder | None = None) -> FastMCP:
    """What `codebase-mcp serve ARGS` serves, built by the same flag parsing and checks, without a
    process. `embedder` shares the session's model instead of loading another copy."""
    environ = {"CODEBASE_MCP_WATCH": "false", **os.environ}  # as gateway_env: watching only where a test asks
    _auth, _middleware, control_plane, roots = checked_configuration(parse_settings(list(serve_args), environ))
    query_embedder = LazyEmbedder(lambda: embedder) if embedder is not None else None
    return create_server(control_plane, allowed_roots=roots, embedder=query_embedder)


def in_process_client(*serve_args: str, embedder: Embedder | None = None) -> Client:
    return Client(in_process_server(*serve_args, embedder=embedder), timeout=180)


async def serve_exit_code(*serve_args: str, timeout: float = 60) -> int:
    """`codebase-mcp serve ARGS` through its entry point, in a thread (it runs its own event loop), for
    configurations it must refuse before serving; its messages go to stderr (capsys)."""
    from codebase_gateway.cli import main

    return await asyncio.wait_for(asyncio.to_thread(main, ["serve", *serve_args]), timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HttpGateway:
    def __init__(self, process: subprocess.Popen, url: str) -> None:
        self.process = process
        self.url = url

    def client(self, token: str | None = TOKEN, **options) -> Client:
        return Client(StreamableHttpTransport(self.url, auth=token), timeout=180, **options)


def start_http_gateway(*args: str, env: dict[str, str] | None = None) -> HttpGateway:
    port = free_port()
    process = subprocess.Popen(
        [*SERVE, "--transport", "http", "--host", "127.0.0.1", "--port", str(port), *args],
        env=gateway_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited: {process.stderr.read().decode()[-2000:]}")
        try:
            httpx.get(url, timeout=1)
            return HttpGateway(process, url)
        except httpx.TransportError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("gateway did not start listening within 60 s")


def stop_http_gateway(gateway: HttpGateway) -> None:
    gateway.process.terminate()
    try:
        gateway.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        gateway.process.kill()


@pytest.fixture(scope="session")
def http_gateway(postgres_url, tmp_path_factory):
    # Over HTTP the gateway needs an allowed root: the folder under which every test's tmp_path lives.
    gateway = start_http_gateway("--allowed-root", str(tmp_path_factory.getbasetemp()),
                                 env={"CODEBASE_MCP_TOKEN": TOKEN})
    yield gateway
    stop_http_gateway(gateway)


@pytest.fixture(scope="session")
async def stdio_gateway(postgres_url):
    """One stdio gateway shared by the tests that need no process of their own."""
    async with stdio_client() as client:
        yield client


@pytest.fixture(scope="session")
async def local_gateway(postgres_url, embedder):
    """One in-process gateway on the local control plane, shared by the tests whose point is not the wire
    (they pass project_id: the working directory it keeps is shared too)."""
    async with in_process_client(embedder=embedder) as client:
        yield client


@pytest.fixture
def kubernetes_gateway(k8s_cluster, workspace_dir, embedder, monkeypatch):
    """A new gateway on the kubernetes control plane, reaching the emulated cluster by its kubeconfig."""
    monkeypatch.setenv("KUBECONFIG", str(k8s_cluster.kubeconfig))

    def gateway() -> Client:
        return in_process_client("--control-plane", "kubernetes", "--namespace", "default",
                                 "--workspace-root", str(workspace_dir), embedder=embedder)
    return gateway


async def wait_for_job(client: Client, job_id: str, timeout: float = 120) -> dict:
    """Poll get_indexing_status until the job finishes; return the statuses seen, last one final."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = (await client.call_tool("get_indexing_status", {"job_id": job_id})).data
        if status["status"] in ("completed", "failed", "cancelled"):
            return status
        await asyncio.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s: {status}")


def write_config(directory: Path, name: str) -> Path:
    config = directory / ".codebase-mcp" / "config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'{{"version": 1, "project": {{"name": "{name}"}}}}', encoding="utf-8")
    return config


# The operator's emulator tier (an emulated API server, the real operator, a test kubelet).
from tests.support.fixtures import *  # noqa: E402,F401,F403


async def registry_job(postgres_url: str, job_id: str):
    """A local gateway's row for a job in its registry database (owner, process_id, state...)."""
    import asyncpg

    from codebase_indexer.postgres import database_url

    conn = await asyncpg.connect(database_url(postgres_url, "codebase_mcp_registry"))
    try:
        return await conn.fetchrow("SELECT * FROM indexing_jobs WHERE job_id = $1", job_id)
    finally:
        await conn.close()
