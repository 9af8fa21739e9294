"""Item 12: working directories per client where the protocol gives a session, and said in the result.

Before: `set_working_directory` never said whom it applied to. On the sessionless protocol
(2026-07-28) every client with the gateway's token shares one working directory, and a client
could not know that another client's call had just changed the project its own calls resolve to.
"""
from __future__ import annotations

import uuid

import pytest
from fastmcp.exceptions import ToolError

from tests.gateway.conftest import TOKEN, start_http_gateway, stop_http_gateway, write_config, write_repo


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    workspace = tmp_path_factory.mktemp("sessions-workspace")
    for name in ("alpha", "beta"):
        write_config(write_repo(workspace / name, {f"{name}.py": f"{name} = 1\n"}), f"{name}-{uuid.uuid4().hex[:8]}")
    return workspace


@pytest.fixture(scope="module")
def gateway(postgres_url, workspace):
    gateway = start_http_gateway("--allowed-root", str(workspace), env={"CODEBASE_MCP_TOKEN": TOKEN})
    yield gateway
    stop_http_gateway(gateway)


async def resolved_project(client) -> str:
    """The project a call without project_id resolves to (the error names it; nothing is indexed)."""
    with pytest.raises(ToolError, match="has not been indexed yet") as caught:
        await client.call_tool("search_code", {"query": "anything"})
    return str(caught.value).split("'")[1]


@pytest.mark.slow
async def test_with_sessions_each_client_keeps_its_own_working_directory(gateway, workspace):
    async with gateway.client(mode="legacy") as a, gateway.client(mode="legacy") as b:
        set_a = (await a.call_tool("set_working_directory", {"directory": str(workspace / "alpha")})).data
        set_b = (await b.call_tool("set_working_directory", {"directory": str(workspace / "beta")})).data
        for result in (set_a, set_b):
            assert result["scope"] == "session"
            assert "this MCP session" in result["scope_description"]
        assert set_a["session_id"] != set_b["session_id"]
        assert await resolved_project(a) == set_a["project_info"]["name"]
        assert await resolved_project(b) == set_b["project_info"]["name"]


@pytest.mark.slow
async def test_without_sessions_the_result_says_the_directory_is_shared(gateway, workspace):
    """The sessionless protocol gives no connection to key on: the result says so, and how to stay
    independent of it, and what it says is what happens."""
    async with gateway.client() as a, gateway.client() as b:  # the default: the sessionless protocol
        set_a = (await a.call_tool("set_working_directory", {"directory": str(workspace / "alpha")})).data
        assert set_a["scope"] == "shared"
        assert "every client" in set_a["scope_description"] and "project_id" in set_a["scope_description"]
        assert await resolved_project(b) == set_a["project_info"]["name"]  # as announced
        explicit = await _error(b, "search_code", {"query": "anything", "project_id": "beta-own"})
        assert "'beta-own'" in explicit  # an explicit project_id is independent of the shared directory


async def _error(client, tool: str, arguments: dict) -> str:
    with pytest.raises(ToolError) as caught:
        await client.call_tool(tool, arguments)
    return str(caught.value)
