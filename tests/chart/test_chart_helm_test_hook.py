"""The `helm test` hook's script, run against a real gateway (`codebase-mcp serve --transport http`, local
control plane): it passes with the token and fails with a wrong one."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chart_support import one

TOKEN = "hook-test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory):
    pytest.importorskip("fastmcp")
    port = free_port()
    env = {**os.environ, "CODEBASE_MCP_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1",
           "CODEBASE_MCP_HOME": str(tmp_path_factory.mktemp("gateway-home"))}
    log = tmp_path_factory.mktemp("gateway-log") / "gateway.log"
    with log.open("w") as output:
        process = subprocess.Popen([sys.executable, "-m", "codebase_gateway.cli", "serve", "--transport", "http",
                                    "--host", "127.0.0.1", "--port", str(port),
                                    "--allowed-root", str(tmp_path_factory.mktemp("workspace"))],
                                   env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, f"the gateway exited:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"the gateway did not start:\n{log.read_text()[-3000:]}"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        stop_embedded_postgres(Path(env["CODEBASE_MCP_HOME"]))


def stop_embedded_postgres(home: Path) -> None:
    """The local control plane's embedded PostgreSQL outlives the gateway: stop it (fast shutdown) by its pid."""
    for pid_file in home.rglob("postmaster.pid"):
        pid = int(pid_file.read_text().splitlines()[0])
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            continue


@pytest.fixture(scope="module")
def hook_script(default_manifests) -> str:
    pod = one(default_manifests, "Pod", "-test-gateway")
    (container,) = pod["spec"]["containers"]
    assert container["command"][:2] == ["python", "-c"]
    return container["command"][2]


def run_hook(script: str, url: str, token: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MCP_URL": url, "CODEBASE_MCP_TOKEN": token}
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_hook_passes_against_a_gateway_with_the_token(hook_script, gateway_url):
    result = run_hook(hook_script, gateway_url, TOKEN)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK:")


@pytest.mark.slow
def test_hook_fails_with_a_wrong_token(hook_script, gateway_url):
    result = run_hook(hook_script, gateway_url, "another-token-0123456789abcdef")
    assert result.returncode != 0 and "FAIL" in result.stderr


def test_hook_fails_when_nothing_listens(hook_script):
    result = run_hook(hook_script, f"http://127.0.0.1:{free_port()}/mcp", TOKEN)
    assert result.returncode != 0
