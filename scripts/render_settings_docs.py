"""Rewrite the settings tables in the docs from the settings classes (`--check`: only compare).

A table sits between `<!-- settings: NAME -->` and `<!-- /settings -->`; NAME is one of SETTINGS.
tests/unit/test_settings.py fails while a table differs from its fields.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from codebase_gateway.settings import GatewaySettings
from codebase_indexer.configuration import settings_table
from codebase_indexer.settings import IndexerSettings
from codebase_operator.settings import OperatorSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {"gateway": GatewaySettings, "indexer": IndexerSettings, "operator": OperatorSettings}
DOCUMENTS = ("README.md", "operator/README.md", "docs/configuration.md")
BLOCK = re.compile(r"(<!-- settings: (\w+) -->\n)(.*?)(<!-- /settings -->)", re.DOTALL)


def rendered(text: str) -> str:
    def table(match: re.Match) -> str:
        return match.group(1) + settings_table(SETTINGS[match.group(2)]) + match.group(4)

    return BLOCK.sub(table, text)


def stale_documents() -> list[str]:
    return [name for name in DOCUMENTS if rendered((REPO_ROOT / name).read_text()) != (REPO_ROOT / name).read_text()]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = stale_documents()
        for name in stale:
            print(f"{name}: a settings table differs from its fields; run python scripts/render_settings_docs.py")
        return 1 if stale else 0
    for name in DOCUMENTS:
        path = REPO_ROOT / name
        path.write_text(rendered(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
