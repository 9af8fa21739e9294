"""search_code puts the definition first when the query is itself an identifier."""
from __future__ import annotations

import pytest

from codebase_indexer.identifier_search import identifier_query
from codebase_indexer.provisioning import ensure_project_database

from .conftest import Project, write_tree

CALLERS = "".join(
    f"def load_{n}(path):\n    \"\"\"Read the {n} settings file and parse_config it.\"\"\"\n"
    f"    text = open(path).read()\n    return parse_config(text)  # parse_config parses config text\n\n"
    for n in ("server", "client", "cache", "queue"))
REPO = {
    "app/settings.py": "def parse_config(text):\n    return dict(line.split('=') for line in text.splitlines())\n",
    "app/loaders.py": CALLERS,
    "app/users.py": (
        "class UserService:\n"
        "    def get(self, user_id):\n        return self.users[user_id]\n\n"
        "    def get_all(self):\n        return list(self.users.values())\n\n\n"
        "class OrderService:\n    def get(self, order_id):\n        return self.orders[order_id]\n"),
    "app/http.py": ("class HTTPClient:\n    def send(self, request):\n        return self.transport(request)\n\n\n"
                    "def make_client():\n    \"\"\"Build the HTTPClient used by every HTTPClient caller.\"\"\"\n"
                    "    return HTTPClient()\n"),
}


@pytest.fixture(scope="module")
async def indexed(postgres_url, embedder, tmp_path_factory) -> Project:
    project = Project(await ensure_project_database(postgres_url, "identifier-search"), embedder)
    await project.index(write_tree(tmp_path_factory.mktemp("identifiers") / "repo", REPO), full=True)
    return project


@pytest.mark.parametrize("query, symbol", [
    ("parse_config", "parse_config"),
    ("UserService.get", "UserService.get"),
    ("HTTPClient", "HTTPClient"),
    ("OrderService::get", "OrderService.get"),
])
@pytest.mark.parametrize("mode", ["hybrid", "lexical"])
async def test_an_identifier_query_ranks_its_definition_first(indexed, query, symbol, mode):
    results = (await indexed.search(query, mode=mode, limit=5))["results"]
    assert results[0]["symbol"] == symbol and results[0]["similarity_score"] == 1.0
    assert len({r["chunk_id"] for r in results}) == len(results)


async def test_an_unqualified_name_puts_every_definition_of_it_first(indexed):
    results = (await indexed.search("get", limit=5))["results"]
    assert {r["symbol"] for r in results[:2]} == {"UserService.get", "OrderService.get"}


async def test_filters_still_apply_to_definitions(indexed):
    results = (await indexed.search("parse_config", directory="elsewhere"))["results"]
    assert results == []


@pytest.mark.parametrize("query, expected", [
    ("parse_config", "parse_config"), ("UserService.get", "UserService.get"), ("HTTPClient", "HTTPClient"),
    ("std::vector", "std.vector"), ("parse the config", None), ("parse_config()", None), ("a-b", None),
    ("", None), ("x" * 201, None),
])
def test_what_counts_as_an_identifier(query, expected):
    assert identifier_query(query) == expected
