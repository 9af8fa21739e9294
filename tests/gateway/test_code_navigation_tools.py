"""grep_code, find_symbol, get_file_outline and read_code through a real MCP client on the local
control plane (in process; over stdio where the session's working directory matters), with the same
project resolution as search_code."""
from __future__ import annotations

import shutil
import uuid

import pytest
from fastmcp.exceptions import ToolError

from tests.conftest import FIXTURES

from .conftest import write_config

pytestmark = pytest.mark.slow  # each test indexes a repository (the real model) or drives a gateway


@pytest.fixture(scope="module")
async def indexed(local_gateway, tmp_path_factory):
    """The polyglot fixture indexed once under its own project, named by its config file."""
    repo = tmp_path_factory.mktemp("navigation") / "polyglot"
    shutil.copytree(FIXTURES / "polyglot", repo)
    project = f"nav-{uuid.uuid4().hex[:8]}"
    write_config(repo, project)
    status = (await local_gateway.call_tool("index_repository", {"repo_path": str(repo), "project_id": project})).data
    assert status["status"] == "completed", status
    return repo, project


async def call(client, tool: str, arguments: dict) -> dict:
    return (await client.call_tool(tool, arguments)).data


async def test_tools_are_listed_with_their_bounds(local_gateway):
    tools = {tool.name: tool.input_schema for tool in await local_gateway.list_tools()}
    assert {"grep_code", "find_symbol", "get_file_outline", "read_code"} <= set(tools)
    limit = tools["grep_code"]["properties"]["limit"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 500, 50)
    assert set(tools["find_symbol"]["properties"]["match"]["enum"]) == {"exact", "prefix", "fuzzy"}
    assert tools["read_code"]["properties"]["start_line"]["minimum"] == 1


def lines_holding(repo, text: str) -> int:
    return sum(text in line for path in repo.rglob("*") if path.is_file()
               for line in path.read_text(encoding="utf-8").splitlines())


@pytest.mark.slow
async def test_grep_code_with_an_explicit_project(local_gateway, indexed):
    repo, project = indexed
    result = await call(local_gateway, "grep_code", {"pattern": "capacity", "project_id": project, "limit": 2})
    assert result["project_id"] == project and result["truncated"] is True
    assert result["total_count"] == lines_holding(repo, "capacity") > 2
    assert result["matches"][0] == {"file_path": "backend/inventory.py", "line": 21, "column": 24,
                                    "line_text": "    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:",
                                    "symbol": "Inventory.__init__", "stale": False}
    regex = await call(local_gateway, "grep_code", {"pattern": r"^func \(s \*Store\) \w+", "regex": True,
                                                    "project_id": project})
    assert [(m["line"], m["symbol"]) for m in regex["matches"]] == [(29, "Store.Get"), (40, "Store.Put")]


@pytest.mark.slow
async def test_the_tools_resolve_the_project_from_the_working_directory(local_gateway, indexed):
    repo, project = indexed
    await local_gateway.call_tool("set_working_directory", {"directory": str(repo / "web")})
    found = await call(local_gateway, "find_symbol", {"name": "JobQueue.drain"})
    assert found["project_id"] == project
    assert [(s["file_path"], s["start_line"], s["end_line"], s["signature"]) for s in found["symbols"]] == [
        ("web/queue.ts", 30, 43, "async drain(): Promise<number>")]
    fuzzy = await call(local_gateway, "find_symbol", {"name": "greeter", "match": "fuzzy", "kind": "class"})
    assert fuzzy["symbols"][0]["qualified_name"] == "Greetings.Greeter"
    outline = await call(local_gateway, "get_file_outline", {"file_path": "backend/store.go"})
    assert [(s["qualified_name"], [c["name"] for c in s["children"]]) for s in outline["symbols"]] == [
        ("Getter", []), ("Store", ["mu", "data"]), ("NewStore", []), ("Store.Get", []), ("Store.Put", [])]
    read = await call(local_gateway, "read_code", {"file_path": "backend/store.go", "start_line": 29, "end_line": 31})
    assert read["content"].split("\n") == [
        "func (s *Store) Get(key string) (string, error) {", "\ts.mu.RLock()", "\tdefer s.mu.RUnlock()"]
    grep = await call(local_gateway, "grep_code", {"pattern": "JOBS", "case_sensitive": False, "file_type": "ts"})
    assert {m["file_path"] for m in grep["matches"]} == {"web/queue.ts"} and grep["total_count"] == 7


@pytest.mark.slow
async def test_search_code_puts_an_identifiers_definition_first(local_gateway, indexed):
    _, project = indexed
    found = await call(local_gateway, "search_code", {"query": "Canvas.total_area", "project_id": project})
    assert found["results"][0]["symbol"] == "Canvas.total_area"


@pytest.mark.parametrize("tool, arguments, message", [
    ("grep_code", {"pattern": "(unclosed", "regex": True}, "invalid regular expression '(unclosed'"),
    ("grep_code", {"pattern": "x", "limit": 501}, "less than or equal to 500"),
    ("grep_code", {"pattern": "x" * 1001}, "at most 1000 characters"),
    ("grep_code", {"pattern": "x", "directory": "../up"}, "contains '..'"),
    ("find_symbol", {"name": "x", "kind": "klass"}, "'function', 'method'"),
    ("find_symbol", {"name": "x", "match": "regex"}, "'exact', 'prefix' or 'fuzzy'"),
    ("get_file_outline", {"file_path": "../../etc/passwd"}, "not relative to the repository root"),
    ("get_file_outline", {"file_path": "backend/nope.py"}, "'backend/nope.py' is not in the index"),
    ("read_code", {"file_path": "backend/store.go", "start_line": 0}, "greater than or equal to 1"),
    ("read_code", {"file_path": "backend/store.go", "start_line": 45}, "past the end of backend/store.go"),
])
@pytest.mark.slow
async def test_bad_arguments_are_tool_errors_naming_the_problem(local_gateway, indexed, tool, arguments, message):
    _, project = indexed
    with pytest.raises(ToolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await local_gateway.call_tool(tool, {"project_id": project, **arguments})


async def test_a_project_never_indexed_is_named(local_gateway):
    with pytest.raises(ToolError, match="project 'never-indexed-nav' has not been indexed yet"):
        await local_gateway.call_tool("grep_code", {"pattern": "x", "project_id": "never-indexed-nav"})
