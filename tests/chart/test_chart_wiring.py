"""The chart configures the real programs: the rendered args and env go through the operator's and the
gateway's own argument parsers, and every variable the chart sets is one the code reads."""
from __future__ import annotations

import argparse
import re

import pytest
import yaml

from chart_support import REPO_ROOT, one

VALUES = {"default": REPO_ROOT / "charts" / "codebase-mcp" / "values.yaml",
          "full": REPO_ROOT / "tests" / "chart" / "values-full.yaml"}


def container_of(manifests: list[dict], suffix: str) -> dict:
    (container,) = one(manifests, "Deployment", suffix)["spec"]["template"]["spec"]["containers"]
    return container


def plain_env(container: dict) -> dict[str, str]:
    """The container's environment, with Secret references replaced by placeholder values."""
    values = {}
    for item in container.get("env", []):
        if "value" in item:
            values[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            values[item["name"]] = f"postgresql://admin:pw@{ref['name']}.example:5432/postgres" \
                if "DATABASE_URL" in item["name"] else f"secret-{ref['name']}-{ref['key']}-0123456789abcdef"
    return values


def names_read_by(component: str) -> set[str]:
    """The environment names the component's settings object reads (derived from its fields)."""
    from codebase_indexer.configuration import environment_names

    if component == "-operator":
        from codebase_operator.settings import OperatorSettings as settings_class
    else:
        from codebase_gateway.settings import GatewaySettings as settings_class
    return environment_names(settings_class)


def deprecated_names_of(component: str) -> set[str]:
    from codebase_indexer.configuration import deprecated_names

    if component == "-operator":
        from codebase_operator.settings import OperatorSettings as settings_class
    else:
        from codebase_gateway.settings import GatewaySettings as settings_class
    return set(deprecated_names(settings_class))


@pytest.fixture(params=["default", "full"])
def manifests(request, default_manifests, full_manifests):
    return default_manifests if request.param == "default" else full_manifests


@pytest.fixture
def values(request) -> dict:
    """The values the rendered `manifests` came from (the full file overrides the defaults)."""
    defaults = yaml.safe_load(VALUES["default"].read_text())
    if request.node.callspec.params["manifests"] == "full":
        for section, overrides in yaml.safe_load(VALUES["full"].read_text()).items():
            if isinstance(overrides, dict):
                defaults.setdefault(section, {}).update(overrides)
    return defaults


def with_mounted_files(arguments: list[str], container: dict, folder, content: str) -> list[str]:
    """The arguments with each `--...-file=PATH` on one of the container's volumes replaced by a local file
    holding `content`, as the kubelet would have mounted it."""
    replaced = []
    for argument in arguments:
        flag, _, path = argument.partition("=")
        if flag.endswith("-file") and any(path.startswith(m["mountPath"] + "/") for m in container["volumeMounts"]):
            local = folder / path.rsplit("/", 1)[-1]
            local.write_text(content)
            argument = f"{flag}={local}"
        replaced.append(argument)
    return replaced


def test_operator_parses_its_rendered_configuration(manifests, values, monkeypatch, tmp_path):
    from codebase_operator import command

    container = container_of(manifests, "-operator")
    assert container["command"] == ["codebase-operator"]
    environment = plain_env(container)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)  # the parser reads its defaults from the environment
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(with_mounted_files(container["args"], container, tmp_path,
                                                "postgresql://admin:pw@db.example:5432/postgres\n"))
    settings = command.settings_from_args(args)
    config = settings.operator_config()

    assert config.admin_database_url.startswith("postgresql://")
    assert config.indexer_image == environment["CODEBASE_MCP_INDEXER_IMAGE"]
    assert config.indexer_service_account == next(
        m["metadata"]["name"] for m in manifests if m["kind"] == "ServiceAccount"
        and m["metadata"]["name"].endswith("-indexer"))
    gateway = one(manifests, "Deployment", "-gateway")
    (mount,) = [m for m in container_of(manifests, "-gateway")["volumeMounts"] if m["name"] == "workspace"]
    (volume,) = [v for v in gateway["spec"]["template"]["spec"]["volumes"] if v["name"] == "workspace"]
    assert config.workspace_root == mount["mountPath"]
    # The indexer Jobs get the very volume the gateway has.
    job_volume = config.workspace.as_volume("workspace")
    if "hostPath" in volume:
        assert job_volume["hostPath"]["path"] == volume["hostPath"]["path"]
    else:
        assert job_volume["persistentVolumeClaim"]["claimName"] == volume["persistentVolumeClaim"]["claimName"]
    assert settings.watched_namespaces()[0] == "codebase"
    assert config.recheck_interval == values["operator"]["recheckIntervalSeconds"]
    assert config.refresh_check_interval == values["operator"]["refreshCheckIntervalSeconds"]
    assert config.min_refresh_interval == values["operator"]["minRefreshIntervalSeconds"]
    assert (settings.liveness_endpoint or "").endswith(f":{container['ports'][0]['containerPort']}/healthz")


def test_gateway_parses_its_rendered_configuration(manifests, values, monkeypatch):
    pytest.importorskip("fastmcp")
    from codebase_gateway import serve_command
    from codebase_gateway.auth import TOKEN_ENV, http_auth

    container = container_of(manifests, "-gateway")
    assert container["command"] == ["codebase-mcp"] and container["args"][0] == "serve"
    environment = plain_env(container)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    args = serve_command.parse_settings(container["args"][1:])
    assert (args.transport, args.control_plane, args.namespace, args.path) == ("http", "kubernetes", "codebase", "/mcp")
    assert args.port == container["ports"][0]["containerPort"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "workspace"]
    assert str(args.workspace_root) == mount["mountPath"]
    assert args.token == environment[TOKEN_ENV]
    assert http_auth(args.host, args.token, no_auth=args.no_auth) is not None
    assert args.max_database_connections == values["gateway"]["maxDatabaseConnections"]
    assert args.statement_timeout == values["gateway"]["statementTimeoutSeconds"]


@pytest.mark.parametrize("component", ["-operator", "-gateway"])
def test_every_variable_the_chart_sets_is_a_current_setting(manifests, component):
    """Each CODEBASE_* variable the chart sets is a field of that program's settings, by its
    current name (not one deprecated for removal)."""
    read, deprecated = names_read_by(component), deprecated_names_of(component)
    assert "CODEBASE_MCP_TOKEN" in read or component == "-operator"
    for name in plain_env(container_of(manifests, component)):
        assert name not in deprecated, f"the chart sets {name}, a deprecated name"
        if name.startswith("CODEBASE_"):
            assert name in read, f"the chart sets {name} on {component}, which no code reads"


def test_gateway_probes_use_a_route_the_gateway_serves(default_manifests):
    """An HTTP probe must hit a route the server registers without auth (a 401 fails a probe)."""
    container = container_of(default_manifests, "-gateway")
    sources = "\n".join(path.read_text() for path in (REPO_ROOT / "mcp_gateway").rglob("*.py"))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if "httpGet" in container[probe]:
            path = container[probe]["httpGet"]["path"]
            assert re.search(rf"custom_route\(\s*[\"']{re.escape(path)}[\"']", sources), \
                f"{probe} probes {path}, which the gateway does not serve"
        else:
            assert container[probe]["tcpSocket"]["port"] == "http"
