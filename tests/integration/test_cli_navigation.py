"""`codebase-mcp grep / symbols / outline / read` from a terminal, with the tools' --json objects."""
from __future__ import annotations

import json

import pytest

from .conftest import write_tree
from .test_cli import cli

SOURCE = (
    "class UserService:\n"
    "    def get(self, user_id):\n"
    "        return self.users[user_id]  # 100% cached\n"
    "\n"
    "\n"
    "def parse_config(text):\n"
    "    return dict(line.split('=') for line in text.splitlines())\n"
)


@pytest.mark.slow
def test_grep_symbols_outline_and_read_from_the_terminal(postgres_url, tmp_path, unique_project_id):
    repo = write_tree(tmp_path / "svc", {
        "app/users.py": SOURCE,
        ".codebase-mcp/config.json": json.dumps({"version": 1, "project": {"name": unique_project_id}}),
    })
    assert cli("index", str(repo)).returncode == 0

    grep = cli("grep", "100%", cwd=repo)
    assert grep.returncode == 0, grep.stderr
    assert grep.stdout.splitlines() == [
        "app/users.py:3:39:         return self.users[user_id]  # 100% cached  [UserService.get]",
        "1 matching lines"]
    as_json = json.loads(cli("grep", "-E", "-i", r"^\s*RETURN\b", "--json", "--limit", "1", cwd=repo).stdout)
    assert (as_json["total_count"], as_json["truncated"], as_json["project_id"]) == (2, True, unique_project_id)
    assert as_json["matches"][0]["symbol"] == "UserService.get"

    symbols = cli("symbols", "UserService.get", cwd=repo)
    assert symbols.stdout.strip() == "app/users.py:2-3  method  UserService.get  def get(self, user_id)"
    outline = json.loads(cli("outline", "app/users.py", "--json", cwd=repo).stdout)
    assert [(s["name"], [c["name"] for c in s["children"]]) for s in outline["symbols"]] == [
        ("UserService", ["get"]), ("parse_config", [])]
    read = cli("read", "app/users.py", "--start", "6", "--project", unique_project_id)
    assert read.stdout.splitlines() == ["6  def parse_config(text):",
                                        "7      return dict(line.split('=') for line in text.splitlines())"]

    bad = cli("grep", "-E", "(open", "--project", unique_project_id)
    assert bad.returncode == 1 and "invalid regular expression '(open'" in bad.stderr
