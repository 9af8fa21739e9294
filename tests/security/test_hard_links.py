"""Item 16c: a hard link planted in a repository to a file outside it is never indexed.

On the old code the scanner saw a regular file and indexed the outside file's text; search
then served it. Now a file with more than one link is indexed only when every link is a
path the walk met inside the repository.
"""
from __future__ import annotations

import os
from pathlib import Path

from codebase_indexer.scanning import ScanOptions, SkipCounter, list_candidates, read_source
from tests.repo_files import write_tree

OUTSIDE_TEXT = "def outside_payroll_export():\n    return 'salary table of every employee'\n"


def repo_with_links(tmp_path: Path) -> Path:
    outside = write_tree(tmp_path / "elsewhere", {"payroll.py": OUTSIDE_TEXT})
    repo = write_tree(tmp_path / "repo", {
        "app.py": "def start_application():\n    return 'started'\n",
        "shared/original.py": "def shared_helper():\n    return 'helper'\n",
    })
    os.link(outside / "payroll.py", repo / "innocent.py")
    os.link(repo / "shared/original.py", repo / "copy_of_helper.py")
    return repo


async def test_a_hard_link_to_a_file_outside_the_repository_is_not_indexed(project, tmp_path):  # noqa: F811
    repo = repo_with_links(tmp_path)

    summary = await project.index(repo)

    assert summary.skipped_by_reason.get("hard_link") == 1
    assert summary.files_indexed == 3  # app.py and both links of the file linked inside the repo
    found = await project.search("salary table of every employee", limit=10)
    assert "innocent.py" not in {result["file_path"] for result in found["results"]}
    assert all("salary" not in result["content"] for result in found["results"])
    helper = await project.search("shared_helper", mode="lexical", limit=10)
    assert {"shared/original.py", "copy_of_helper.py"} <= {r["file_path"] for r in helper["results"]}


def test_a_link_added_after_listing_is_caught_when_reading(tmp_path):
    repo = write_tree(tmp_path / "repo", {"notes.py": "x = 1\n"})
    skips = SkipCounter()
    [candidate] = list_candidates(repo, ScanOptions(), skips)
    os.link(repo / "notes.py", tmp_path / "planted-outside")  # the file now has a second, outside link

    assert read_source(candidate, skips) is None
    assert skips.counts == {"hard_link": 1}


def test_a_link_inside_a_folder_the_walk_skips_counts_as_unseen(tmp_path):
    repo = write_tree(tmp_path / "repo", {"node_modules/pkg/index.js": "module.exports = 1;\n"})
    os.link(repo / "node_modules/pkg/index.js", repo / "index.js")

    skips = SkipCounter()
    paths = [c.path for c in list_candidates(repo, ScanOptions(), skips)]

    assert paths == []
    assert skips.counts == {"default_excluded": 1, "hard_link": 1}
