"""Item 3 and 16b: confinement to the allowed roots, through a real HTTP gateway.

Before: an HTTP gateway started without --allowed-root let any token holder index /etc or
/proc/self/root; with roots, "does not exist" vs "outside the allowed roots" told a caller which
paths outside existed, an error showed the resolved target of a symbolic link, and a
`.codebase-mcp/config.json` above the root chose the project.
"""
from __future__ import annotations

import subprocess

import pytest
from fastmcp.exceptions import ToolError

from tests.gateway.conftest import (
    SERVE,
    TOKEN,
    gateway_env,
    start_http_gateway,
    stop_http_gateway,
    write_config,
    write_repo,
)

OUTSIDE_TARGET = "/usr/share"  # exists on every machine, outside the test's roots


@pytest.fixture(scope="module")
def area(tmp_path_factory):
    """`outer/` holds a config naming a project; the allowed root is `outer/workspace/`."""
    outer = tmp_path_factory.mktemp("outer")
    write_config(outer, "hijacked-by-outer-config")
    workspace = outer / "workspace"
    write_repo(workspace / "plain", {"a.py": "a = 1\n"})
    write_repo(workspace / "configured", {"b.py": "b = 2\n"})
    write_config(workspace / "configured", "configured-inside")
    (workspace / "to-outside").symlink_to(OUTSIDE_TARGET, target_is_directory=True)
    (workspace / "to-nowhere").symlink_to("/opt/no-such-secret-dir", target_is_directory=True)
    (workspace / "loop-a").symlink_to(workspace / "loop-b")
    (workspace / "loop-b").symlink_to(workspace / "loop-a")
    linked = write_repo(workspace / "linked-config", {"c.py": "c = 3\n"})
    (linked / ".codebase-mcp").mkdir()
    (linked / ".codebase-mcp" / "config.json").symlink_to(outer / ".codebase-mcp" / "config.json")
    return outer, workspace


@pytest.fixture(scope="module")
def gateway(postgres_url, area):
    _, workspace = area
    gateway = start_http_gateway("--allowed-root", str(workspace), env={"CODEBASE_MCP_TOKEN": TOKEN})
    yield gateway
    stop_http_gateway(gateway)


@pytest.mark.slow
def test_http_refuses_to_start_without_an_allowed_root():
    environment = gateway_env({"CODEBASE_MCP_TOKEN": TOKEN})
    environment.pop("CODEBASE_MCP_ALLOWED_ROOTS", None)
    done = subprocess.run([*SERVE, "--transport", "http", "--host", "127.0.0.1", "--port", "1"],
                          env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "needs at least one --allowed-root DIR" in done.stderr


def test_without_a_token_it_refuses_as_well_and_a_missing_root_is_named(tmp_path, monkeypatch, capsys):
    from codebase_gateway import serve_command

    monkeypatch.delenv("CODEBASE_MCP_ALLOWED_ROOTS", raising=False)
    assert serve_command.main(["--transport", "http", "--port", "1", "--no-auth"]) == 2
    assert "needs at least one --allowed-root DIR" in capsys.readouterr().err
    missing = tmp_path / "no-such-folder"
    assert serve_command.main(["--transport", "http", "--port", "1", "--no-auth", "--allowed-root", str(missing)]) == 2
    assert f"--allowed-root {missing} is not an existing directory" in capsys.readouterr().err


async def _error(client, tool: str, arguments: dict) -> str:
    with pytest.raises(ToolError) as caught:
        await client.call_tool(tool, arguments)
    return str(caught.value)


OUTSIDE = ["/etc", "/etc/passwd", "/no/such/directory", "/proc/self/root", "/proc/self/root/etc"]


@pytest.mark.parametrize("tool, key", [("set_working_directory", "directory"), ("index_repository", "repo_path"),
                                       ("start_indexing_background", "repo_path")])
@pytest.mark.slow
async def test_outside_the_roots_every_path_gets_the_same_error(gateway, tool, key):
    """Existing, missing, a file, /proc: nothing tells the caller which of them exist."""
    async with gateway.client() as client:
        errors = {path: await _error(client, tool, {key: path, "project_id": "p"} if key == "repo_path"
                                     else {key: path}) for path in OUTSIDE}
    shapes = {message.replace(repr(path), "PATH") for path, message in errors.items()}
    assert len(shapes) == 1, errors
    (shape,) = shapes
    assert "leads outside the allowed roots" in shape
    assert "does not exist" not in shape and "not a directory" not in shape


@pytest.mark.slow
async def test_a_link_out_of_the_roots_is_refused_without_showing_its_target(gateway, area):
    _, workspace = area
    async with gateway.client() as client:
        to_outside = await _error(client, "index_repository", {"repo_path": str(workspace / "to-outside")})
        to_nowhere = await _error(client, "index_repository", {"repo_path": str(workspace / "to-nowhere")})
        below_link = await _error(client, "set_working_directory", {"directory": str(workspace / "to-outside" / "doc")})
    for message in (to_outside, to_nowhere, below_link):
        assert "outside the allowed roots through a symbolic link" in message
        assert OUTSIDE_TARGET not in message and "/opt/no-such-secret-dir" not in message
    assert to_outside.replace("to-outside", "X") == to_nowhere.replace("to-nowhere", "X")


@pytest.mark.slow
async def test_inside_the_roots_errors_stay_precise(gateway, area):
    _, workspace = area
    async with gateway.client() as client:
        assert "does not exist" in await _error(client, "set_working_directory",
                                                {"directory": str(workspace / "missing")})
        assert "not a directory" in await _error(client, "set_working_directory",
                                                 {"directory": str(workspace / "plain" / "a.py")})
        assert "loop of symbolic links" in await _error(client, "index_repository",
                                                        {"repo_path": str(workspace / "loop-a")})


@pytest.mark.slow
async def test_a_config_above_the_allowed_root_does_not_choose_the_project(gateway, area):
    _, workspace = area
    async with gateway.client(mode="legacy") as client:
        plain = (await client.call_tool("set_working_directory", {"directory": str(workspace / "plain")})).data
        assert plain["config_found"] is False and plain["project_info"] is None
        try:  # the session's project is `default` (indexed or not), never the outer config's
            outcome = (await client.call_tool("search_code", {"query": "anything"})).data["project_id"]
        except ToolError as exc:
            outcome = str(exc)
        assert "default" in outcome and "hijacked-by-outer-config" not in outcome

        configured = (await client.call_tool("set_working_directory",
                                             {"directory": str(workspace / "configured")})).data
        assert configured["project_info"] == {"name": "configured-inside", "id": None}

        linked = await _error(client, "set_working_directory", {"directory": str(workspace / "linked-config")})
        assert "link leading outside the allowed roots" in linked and "hijacked" not in linked


def test_the_chart_confines_the_gateway_to_the_workspace():
    from codebase_gateway import serve_command

    chart = pytest.importorskip("tests.chart.chart_support")
    helm = chart.Helm(chart.fetch_tools_module().ensure_tools()["helm"])
    (container,) = chart.one(helm.render(), "Deployment", "-gateway")["spec"]["template"]["spec"]["containers"]
    args = serve_command.parse_settings(container["args"][1:])
    assert [str(root) for root in args.allowed_roots] == [str(args.workspace_root)] == ["/workspace"]
