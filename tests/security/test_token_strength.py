"""Item 16a: a guessable bearer token (16 spaces, "aaaa…", a repeated word) no longer opens the HTTP gateway.

Before, any 16 characters were accepted: `CODEBASE_MCP_TOKEN='                '` served every tool.
"""
from __future__ import annotations

import base64
import subprocess

import pytest

from codebase_gateway.auth import InsecureHttpConfiguration, http_auth
from tests.gateway.conftest import SERVE, TOKEN, gateway_env

WEAK_TOKENS = {
    "sixteen-spaces": " " * 16,
    "forty-spaces": " " * 40,
    "one-letter": "a" * 48,
    "repeated-word": "password" * 5,
    "a-pattern": "abc123" * 8,
    "thirty-one-random": TOKEN[:31],
}


@pytest.mark.slow
def test_the_gateway_refuses_to_start_with_a_weak_token(tmp_path):
    token = WEAK_TOKENS["sixteen-spaces"]
    done = subprocess.run([*SERVE, "--transport", "http", "--host", "127.0.0.1", "--port", "1",
                           "--allowed-root", str(tmp_path)],
                          env=gateway_env({"CODEBASE_MCP_TOKEN": token}), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "CODEBASE_MCP_TOKEN" in done.stderr
    assert "too short" in done.stderr or "too little entropy" in done.stderr
    # The error says how to make a good one.
    assert 'python -c "import secrets; print(secrets.token_urlsafe(32))"' in done.stderr


@pytest.mark.parametrize("token", WEAK_TOKENS.values(), ids=WEAK_TOKENS.keys())
def test_every_weak_token_is_refused_with_how_to_make_one(token):
    with pytest.raises(InsecureHttpConfiguration, match="secrets.token_urlsafe"):
        http_auth("127.0.0.1", token, no_auth=False)


def test_a_generated_token_is_accepted():
    assert http_auth("127.0.0.1", TOKEN, no_auth=False) is not None


def test_the_charts_generated_token_is_strong_enough():
    """The chart's own token (randAlphaNum 48, generated when no token is given) passes the gateway's check."""
    helm = pytest.importorskip("tests.chart.chart_support")
    tool = helm.Helm(helm.fetch_tools_module().ensure_tools()["helm"])
    manifests = tool.render()
    (secret,) = [m for m in manifests if m["kind"] == "Secret" and m["metadata"]["name"].endswith("-gateway-token")]
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert http_auth("0.0.0.0", token, no_auth=False) is not None
    with pytest.raises(InsecureHttpConfiguration):
        http_auth("0.0.0.0", " " * 16, no_auth=False)
