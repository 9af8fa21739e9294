"""One settings object per program: flags and environment names derived from its fields, the names
of earlier releases still read (with a warning), bad values named, secrets kept out of sight, and the
docs' tables equal to the fields."""
from __future__ import annotations

import argparse
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from codebase_indexer.configuration import (
    InvalidSetting,
    add_arguments,
    as_environment,
    deprecated_names,
    environment_names,
    load,
)
from codebase_indexer.settings import EmbeddingSettings, IndexerSettings, LocalSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


def parsed(settings_class: type, argv: list[str], environ: dict[str, str]):
    parser = argparse.ArgumentParser()
    add_arguments(parser, settings_class)
    return load(settings_class, parser.parse_args(argv), environ)


def test_a_flag_beats_the_environment_which_beats_the_default():
    environ = {"CODEBASE_MCP_MAX_FILE_SIZE": "2048", "CODEBASE_MCP_INCLUDE": "*.py, *.go"}
    assert parsed(IndexerSettings, [], {}).max_file_size == IndexerSettings().max_file_size
    assert parsed(IndexerSettings, [], environ).max_file_size == 2048
    assert parsed(IndexerSettings, ["--max-file-size", "99"], environ).max_file_size == 99
    assert parsed(IndexerSettings, [], environ).include == ("*.py", "*.go")
    assert parsed(IndexerSettings, ["--include", "a/**", "--include", "b,c"], environ).include == ("a/**", "b", "c")


def test_an_old_name_still_works_for_a_release_and_says_which_name_replaces_it():
    with pytest.warns(FutureWarning, match="CODEBASE_MAX_FILE_SIZE is deprecated.*CODEBASE_MCP_MAX_FILE_SIZE"):
        assert parsed(IndexerSettings, [], {"CODEBASE_MAX_FILE_SIZE": "77"}).max_file_size == 77
    with pytest.warns(FutureWarning, match="DATABASE_URL is deprecated.*CODEBASE_MCP_ADMIN_DATABASE_URL"):
        assert load(LocalSettings, environ={"DATABASE_URL": "postgresql://a@h/d"}).admin_database_url
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name alone: no warning, and it wins over the old one
        both = {"CODEBASE_MCP_MAX_FILE_SIZE": "5", "CODEBASE_MAX_FILE_SIZE": "6"}
        assert parsed(IndexerSettings, [], both).max_file_size == 5


@pytest.mark.parametrize("environ, named", [
    ({"CODEBASE_MCP_MAX_FILE_SIZE": "big"}, "CODEBASE_MCP_MAX_FILE_SIZE='big': not a whole number"),
    ({"CODEBASE_MCP_INDEX_MODE": "sideways"}, "CODEBASE_MCP_INDEX_MODE='sideways': choose one of full, incremental"),
    ({"CODEBASE_MCP_EMBEDDING_PROVIDER": "word2vec"}, "choose one of local, openai, ollama"),
    ({"CODEBASE_MCP_LOCK_WAIT_SECONDS": "-1"}, "--lock-wait-seconds must be 0 or more"),
])
def test_a_bad_value_is_refused_naming_the_variable_and_what_is_allowed(environ, named):
    with pytest.raises(InvalidSetting, match=named.replace("(", r"\(").replace(")", r"\)")):
        parsed(IndexerSettings, [], environ)


def test_query_threads_default_to_one_and_refuse_zero():
    from codebase_gateway.settings import GatewaySettings

    assert parsed(GatewaySettings, [], {}).query_threads == 1
    assert parsed(GatewaySettings, ["--query-threads", "2"], {}).query_threads == 2
    with pytest.raises(InvalidSetting, match="--query-threads must be a whole number of at least 1, got 0"):
        parsed(GatewaySettings, [], {"CODEBASE_MCP_QUERY_THREADS": "0"})


def test_a_boolean_variable_must_say_true_or_false():
    from codebase_gateway.settings import GatewaySettings

    assert parsed(GatewaySettings, [], {"CODEBASE_MCP_METRICS_PUBLIC": "yes"}).metrics_public is True
    with pytest.raises(InvalidSetting, match="CODEBASE_MCP_METRICS_PUBLIC='maybe' is not a boolean"):
        parsed(GatewaySettings, [], {"CODEBASE_MCP_METRICS_PUBLIC": "maybe"})


def test_secrets_never_show_in_a_settings_repr():
    from codebase_gateway.settings import GatewaySettings
    from codebase_operator.settings import OperatorSettings

    environ = {"CODEBASE_MCP_TOKEN": "tok-123456", "CODEBASE_MCP_ADMIN_DATABASE_URL": "postgresql://a:pw-999@h/d",
               "CODEBASE_MCP_EMBEDDING_API_KEY": "sk-777", "CODEBASE_MCP_DATABASE_URL": "postgresql://i:pw-888@h/p",
               "CODEBASE_MCP_GIT_PASSWORD": "git-666"}
    shown = " ".join(repr(parsed(cls, [], environ)) for cls in (GatewaySettings, OperatorSettings, IndexerSettings))
    for secret in ("tok-123456", "pw-999", "sk-777", "pw-888", "git-666"):
        assert secret not in shown


def test_the_three_programs_share_one_prefix_and_the_workspace_root_one_name():
    from codebase_gateway.settings import GatewaySettings
    from codebase_operator.settings import OperatorSettings

    for settings_class in (GatewaySettings, OperatorSettings, IndexerSettings):
        assert all(name.startswith("CODEBASE_MCP_") for name in environment_names(settings_class)
                   if name not in deprecated_names(settings_class))
    assert "CODEBASE_MCP_WORKSPACE_ROOT" in environment_names(GatewaySettings) & environment_names(OperatorSettings)


def test_what_configures_an_indexer_is_what_the_indexer_reads():
    environ = as_environment(IndexerSettings, database_url="postgresql://x@h/p", project_id="shop",
                             source_path="/src", index_mode="full", include=("*.py", "*.go"))
    environ.update(as_environment(EmbeddingSettings, provider="openai", url="http://tei:8080", model="m"))
    settings = load(IndexerSettings, environ=environ)
    assert (settings.project_id, settings.source_path, settings.index_mode) == ("shop", "/src", "full")
    assert settings.include == ("*.py", "*.go") and settings.embedding.provider == "openai"


def test_indexer_jobs_configure_the_indexer_by_its_current_names():
    """Every CODEBASE_* variable of an indexer Job the operator builds is an indexer setting, not an old name."""
    from codebase_operator.config import OperatorConfig
    from codebase_operator.jobs import indexer_env
    from codebase_operator.specs import Source

    project = {"metadata": {"name": "shop"}, "spec": {
        "projectId": "shop", "indexing": {"include": ["*.py"], "maxFileSize": 10},
        "embedding": {"provider": "openai", "url": "http://tei", "model": "m",
                      "apiKeySecret": {"name": "k", "key": "key"}}}}
    run = {"metadata": {"uid": "u-1"}, "spec": {"mode": "Full"}}
    source = Source(path=None, git_url="https://git.example/shop.git", git_ref="main", git_credentials_secret="cred")
    names = {item["name"] for item in indexer_env(run, project, source, OperatorConfig(admin_database_url="x"))}
    readable = environment_names(IndexerSettings) - set(deprecated_names(IndexerSettings))
    assert {name for name in names if name.startswith("CODEBASE")} <= readable
    assert {"CODEBASE_MCP_GIT_PASSWORD", "CODEBASE_MCP_EMBEDDING_API_KEY", "CODEBASE_MCP_DATABASE_URL"} <= names


def test_the_docs_tables_are_the_settings_fields():
    result = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "render_settings_docs.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
