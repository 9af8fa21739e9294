"""The watch's change filter: a change the scanner would never index never starts a run."""
from __future__ import annotations

from pathlib import Path

from codebase_indexer.scanning import ChangeFilter, ScanOptions
from tests.repo_files import write_tree


def repo(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "repo", {
        ".gitignore": "generated/\n*.log\n",
        "src/.gitignore": "scratch.py\n",
        "src/app.py": "x = 1\n",
        "src/scratch.py": "x = 2\n",
        "generated/out.py": "x = 3\n",
        "node_modules/pkg/index.js": "x\n",
        ".git/index": "binary\n",
        "venv/pyvenv.cfg": "home = /usr\n",
        "venv/lib/site.py": "x\n",
        ".env": "TOKEN=abc\n",
        "notes.log": "x\n",
    })


def test_ignored_paths_are_the_ones_the_walk_never_indexes(tmp_path):
    root = repo(tmp_path)
    changes = ChangeFilter(root, ScanOptions())
    ignored = {path for path in ("generated/out.py", "node_modules/pkg/index.js", ".git/index",
                                 "venv/lib/site.py", ".env", "notes.log", "src/scratch.py")
               if changes.ignores(root / path)}
    assert ignored == {"generated/out.py", "node_modules/pkg/index.js", ".git/index",
                       "venv/lib/site.py", ".env", "notes.log", "src/scratch.py"}
    for kept in ("src/app.py", ".gitignore", "src/.gitignore", "src/new_file.py", "src"):
        assert not changes.ignores(root / kept), kept


def test_a_deleted_path_is_ignored_only_when_ignored_both_as_file_and_as_folder(tmp_path):
    root = repo(tmp_path)
    changes = ChangeFilter(root, ScanOptions())
    assert changes.ignores(root / "gone.log")  # *.log: a file or a folder, never indexed
    assert not changes.ignores(root / "gone")  # might have been a folder of sources
    assert changes.ignores(root / "generated" / "gone")  # inside an ignored folder


def test_exclude_and_include_options_apply(tmp_path):
    root = repo(tmp_path)
    changes = ChangeFilter(root, ScanOptions(exclude=("src/app.py",), include=("src/**",)))
    assert changes.ignores(root / "src" / "app.py")
    (root / "README.md").write_text("# hello\n")
    assert changes.ignores(root / "README.md")  # not included
    assert not changes.ignores(root / "src" / "other.py")


def test_the_root_itself_and_paths_outside_it(tmp_path):
    root = repo(tmp_path)
    changes = ChangeFilter(root, ScanOptions())
    assert not changes.ignores(root)  # deleted or moved: the watch must hear of it
    assert changes.ignores(tmp_path / "elsewhere.py")
