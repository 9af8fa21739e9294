"""Tool arguments as agents meet them: the gateway in process (fastmcp's Client on the server
object), with the local control plane on the session's PostgreSQL.

The gateway checks search_code's arguments by the data plane's own rules, before it resolves
the project, so an agent learns what was wrong with its call whatever the project.
"""
from __future__ import annotations

import subprocess
import sys

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from codebase_gateway import validation
from codebase_gateway.control_plane.local import LocalControlPlane
from codebase_gateway.server import create_server
from codebase_indexer.search import SearchError, file_extension

NEVER_INDEXED = "never-indexed-project"


@pytest.fixture(scope="module")
async def gateway(postgres_url, tmp_path_factory):
    control_plane = LocalControlPlane(postgres_url, logs_dir=tmp_path_factory.mktemp("logs"))
    async with Client(create_server(control_plane)) as client:
        yield client


async def search(gateway, **arguments):
    return await gateway.call_tool("search_code", {"query": "open a connection", "project_id": NEVER_INDEXED,
                                                   **arguments})


FILE_TYPES = ["py", "PY", "tsx", "c++", "objective-c", "d_ts", ".py", "c sharp", "c#", "py/x", "x" * 17,
              "x" * 32, "ts;drop", "é"]


@pytest.mark.parametrize("value", FILE_TYPES)
def test_the_gateway_checks_file_type_by_the_data_planes_rule(value):
    try:
        expected = file_extension(value)
    except SearchError as exc:
        with pytest.raises(validation.InvalidArgument) as raised:
            validation.file_type(value)
        assert str(raised.value) == str(exc)
    else:
        assert validation.file_type(value) == expected


@pytest.mark.parametrize("value, message", [
    (".py", "starts with a dot: give it without one"),
    ("c sharp", "is not a file extension: give one such as 'py'"),
    ("x" * 20, "is not a file extension: give one such as 'py'"),
    ("py/x", "is not a file extension"),
])
async def test_a_bad_file_type_is_refused_before_the_project_is_looked_up(gateway, value, message):
    with pytest.raises(ToolError, match=message):
        await search(gateway, file_type=value)


async def test_a_good_file_type_passes_to_the_project_lookup(gateway):
    with pytest.raises(ToolError, match="has not been indexed yet"):
        await search(gateway, file_type="PY")


def test_argument_checks_raise_the_projects_own_error_not_a_transport_one():
    with pytest.raises(validation.InvalidArgument) as raised:
        validation.query("   ")
    assert isinstance(raised.value, ValueError) and not isinstance(raised.value, ToolError)


async def test_agents_get_the_checks_text_unchanged(gateway, tmp_path):
    broken = tmp_path / "broken"
    (broken / ".codebase-mcp").mkdir(parents=True)
    (broken / ".codebase-mcp" / "config.json").write_text('{"project": {}}')
    calls = [
        ("search_code", {"query": "   "}, "query is empty: describe the code you are looking for"),
        ("set_working_directory", {"directory": "relative/path"},
         "directory 'relative/path' is relative: give an absolute path such as /home/me/project"),
        ("set_working_directory", {"directory": str(broken)},
         f'project config {broken}/.codebase-mcp/config.json needs {{"project": {{"name": "..."}}}}'),
    ]
    for tool, arguments, text in calls:
        with pytest.raises(ToolError) as raised:
            await gateway.call_tool(tool, arguments)
        assert str(raised.value) == text


@pytest.mark.slow
def test_the_terminal_cli_prints_a_broken_config_as_an_error(tmp_path):
    (tmp_path / ".codebase-mcp").mkdir()
    (tmp_path / ".codebase-mcp" / "config.json").write_text("not json")
    done = subprocess.run([sys.executable, "-m", "codebase_gateway.cli", "index", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.startswith("error: cannot read project config")
    assert "Traceback" not in done.stderr


async def test_the_tools_schema_states_the_bounds_agents_must_keep(gateway):
    tools = {tool.name: tool.input_schema["properties"] for tool in await gateway.list_tools()}
    search_limit, mode = tools["search_code"]["limit"], tools["search_code"]["mode"]
    assert (search_limit["type"], search_limit["minimum"], search_limit["maximum"]) == ("integer", 1, 50)
    assert mode["enum"] == ["hybrid", "semantic", "lexical"] and mode["default"] == "hybrid"
    jobs_limit = tools["list_indexing_jobs"]["limit"]
    assert (jobs_limit["type"], jobs_limit["minimum"], jobs_limit["maximum"]) == ("integer", 1, 100)


@pytest.mark.parametrize("tool, arguments, words", [
    ("search_code", {"query": "q", "limit": 0}, ["limit", "greater than or equal to 1"]),
    ("search_code", {"query": "q", "limit": 51}, ["limit", "less than or equal to 50"]),
    ("search_code", {"query": "q", "limit": True}, ["limit", "valid integer"]),
    ("search_code", {"query": "q", "limit": "5"}, ["limit", "valid integer"]),
    ("search_code", {"query": "q", "mode": "fuzzy"}, ["mode", "'hybrid', 'semantic' or 'lexical'"]),
    ("list_indexing_jobs", {"limit": 101}, ["limit", "less than or equal to 100"]),
    ("list_indexing_jobs", {"limit": -1}, ["limit", "greater than or equal to 1"]),
])
async def test_out_of_range_arguments_get_an_error_naming_the_argument_and_its_bound(gateway, tool, arguments,
                                                                                      words):
    with pytest.raises(ToolError) as raised:
        await gateway.call_tool(tool, {"project_id": NEVER_INDEXED, **arguments} if tool == "search_code"
                                else arguments)
    assert all(word in str(raised.value) for word in words), str(raised.value)
