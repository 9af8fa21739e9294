"""The repository scanner: which files are indexed, which are skipped and why, and how text is read."""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path

import pytest

from codebase_indexer.scanning import (
    SKIP_REASONS,
    Candidate,
    ScanOptions,
    SkipCounter,
    list_candidates,
    read_source,
)


def permissions_are_enforced() -> bool:
    """False as root (or with CAP_DAC_OVERRIDE), where chmod 000 does not stop reads."""
    with tempfile.TemporaryDirectory() as directory:
        probe = Path(directory) / "probe"
        probe.write_text("x")
        probe.chmod(0)
        try:
            probe.read_text()
        except PermissionError:
            return True
        finally:
            probe.chmod(0o600)
    return False


PERMISSIONS_ENFORCED = permissions_are_enforced()


def write(root: Path, rel_path: str, content: bytes | str = "x = 1\n") -> Path:
    path = root / rel_path
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def scan(root: Path, **options) -> tuple[list[str], SkipCounter]:
    skips = SkipCounter()
    candidates = list_candidates(root, ScanOptions(**options), skips)
    return [candidate.path for candidate in candidates], skips


def read_all(root: Path, **options) -> tuple[dict[str, str], SkipCounter]:
    """Every indexed file's text by path, as the indexer would see it."""
    skips = SkipCounter()
    texts = {}
    for candidate in list_candidates(root, ScanOptions(**options), skips):
        source = read_source(candidate, skips)
        if source is not None:
            texts[source.path] = source.text
    return texts, skips


def candidate_for(root: Path, rel_path: str, max_size: int = 1024 * 1024) -> Candidate:
    path = root / rel_path
    return Candidate(rel_path, path, path.stat().st_size, max_size)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return root


# --- paths and order ----------------------------------------------------------


def test_paths_are_repository_relative_posix_and_sorted(repo: Path) -> None:
    for rel_path in ("z.py", "a/b/c.py", "a.py", "B.py", "a/a.py", "m/n.md"):
        write(repo, rel_path)

    skips = SkipCounter()
    candidates = list_candidates(repo, ScanOptions(), skips)

    paths = [candidate.path for candidate in candidates]
    assert paths == sorted(paths)
    assert set(paths) == {"z.py", "a/b/c.py", "a.py", "B.py", "a/a.py", "m/n.md"}
    assert all(candidate.abs_path == repo / candidate.path for candidate in candidates)
    assert all(candidate.size == (repo / candidate.path).stat().st_size for candidate in candidates)
    assert skips.total() == 0


def test_listing_is_deterministic_across_runs(repo: Path) -> None:
    for index in range(30):
        write(repo, f"d{index % 4}/f{index}.py")
    assert scan(repo)[0] == scan(repo)[0]


def test_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        list_candidates(tmp_path / "nope", ScanOptions(), SkipCounter())


# --- .gitignore -----------------------------------------------------------------


def test_nested_gitignore_patterns_negation_anchoring_and_double_star(repo: Path) -> None:
    write(repo, ".gitignore", "*.log\n!keep.log\ngenerated/\n/anchored.txt\ndocs/**/secret.md\n")
    write(repo, "sub/.gitignore", "!sub_keep.log\n/only_here.py\n")
    for rel_path in (
        "app.log", "keep.log", "sub/other.log", "sub/sub_keep.log",
        "generated/a.py", "generated/deep/b.py", "sub/generated/c.py", "sub/generated_file.py",
        "anchored.txt", "sub/anchored.txt",
        "docs/secret.md", "docs/a/b/secret.md", "docs/readme.md",
        "only_here.py", "sub/only_here.py", "sub/deeper/only_here.py",
    ):
        write(repo, rel_path)

    paths, skips = scan(repo)

    assert set(paths) == {
        ".gitignore", "sub/.gitignore",
        "keep.log", "sub/sub_keep.log",
        "sub/generated_file.py",
        "sub/anchored.txt",
        "docs/readme.md",
        "only_here.py", "sub/deeper/only_here.py",
    }
    # app.log, sub/other.log, generated/, sub/generated/, anchored.txt, 2 secrets, sub/only_here.py
    assert skips.counts == {"ignored": 8}


def test_directory_only_pattern_does_not_ignore_a_file_of_that_name(repo: Path) -> None:
    write(repo, ".gitignore", "tmp/\n")
    write(repo, "tmp/scratch.py")
    write(repo, "scripts/tmp", "#!/bin/sh\necho hi\n")

    paths, _ = scan(repo)

    assert "scripts/tmp" in paths
    assert "tmp/scratch.py" not in paths


def test_ignored_directory_is_pruned_not_walked_and_counted_once(repo: Path, monkeypatch) -> None:
    write(repo, ".gitignore", "vendor/\n")
    for index in range(5):
        write(repo, f"vendor/pkg{index}/mod.py")
    write(repo, "main.py")
    walked: list[str] = []
    real_scandir = os.scandir

    def recording_scandir(path):
        walked.append(os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", recording_scandir)

    paths, skips = scan(repo)

    assert paths == [".gitignore", "main.py"]
    assert skips.counts == {"ignored": 1}
    assert skips.examples("ignored") == ["vendor/"]
    assert not any("vendor" in path for path in walked)


def test_negation_cannot_reinclude_a_file_inside_an_ignored_directory(repo: Path) -> None:
    # Git's rule: once a directory is excluded, nothing below it comes back.
    write(repo, ".gitignore", "logs/\n!logs/keep.txt\n")
    write(repo, "logs/keep.txt")

    paths, _ = scan(repo)

    assert "logs/keep.txt" not in paths


def test_deeper_gitignore_patterns_are_relative_to_their_directory(repo: Path) -> None:
    write(repo, "pkg/.gitignore", "data/*.csv\n")
    write(repo, "pkg/data/a.csv")
    write(repo, "data/b.csv")
    write(repo, "other/pkg/data/c.csv")

    paths, _ = scan(repo)

    assert "pkg/data/a.csv" not in paths
    assert {"data/b.csv", "other/pkg/data/c.csv"} <= set(paths)


def test_git_info_exclude_is_honoured(repo: Path) -> None:
    write(repo, ".git/info/exclude", "local_notes.md\n")
    write(repo, "local_notes.md")
    write(repo, "README.md")

    paths, _ = scan(repo)

    assert paths == ["README.md"]


def test_malformed_ignore_line_does_not_break_the_other_lines(repo: Path) -> None:
    write(repo, ".gitignore", "[z-a]\n*.log\n")
    write(repo, "a.log")
    write(repo, "a.py")

    paths, _ = scan(repo)

    assert "a.log" not in paths
    assert "a.py" in paths


# --- project ignore file and options -------------------------------------------------


def test_project_ignore_file_is_honoured_at_every_level(repo: Path) -> None:
    write(repo, ".codebase-mcpignore", "fixtures/\n")
    write(repo, "fixtures/big.json")
    write(repo, "sub/.codebase-mcpignore", "*.txt\n")
    write(repo, "sub/notes.txt")
    write(repo, "notes.txt")

    paths, skips = scan(repo)

    assert set(paths) == {".codebase-mcpignore", "sub/.codebase-mcpignore", "notes.txt"}
    assert skips.counts == {"ignored": 2}


def test_project_ignore_file_name_is_configurable(repo: Path) -> None:
    write(repo, ".myignore", "secret.py\n")
    write(repo, ".codebase-mcpignore", "public.py\n")
    write(repo, "secret.py")
    write(repo, "public.py")

    paths, _ = scan(repo, ignore_file_name=".myignore")

    assert "secret.py" not in paths
    assert "public.py" in paths


def test_project_ignore_file_can_reinclude_what_git_and_defaults_exclude(repo: Path) -> None:
    write(repo, ".gitignore", "generated.py\n")
    write(repo, ".codebase-mcpignore", "!generated.py\n!build/\n")
    write(repo, "generated.py")
    write(repo, "build/tooling.py")

    paths, _ = scan(repo)

    assert {"generated.py", "build/tooling.py"} <= set(paths)


def test_exclude_option_excludes_and_wins_over_ignore_file_negations(repo: Path) -> None:
    write(repo, ".codebase-mcpignore", "!tests/\n")
    write(repo, "src/app.py")
    write(repo, "src/app_test.py")
    write(repo, "tests/test_app.py")
    write(repo, "docs/guide.md")

    paths, skips = scan(repo, exclude=("*_test.py", "tests/", "/docs"))

    assert set(paths) == {".codebase-mcpignore", "src/app.py"}
    assert skips.counts == {"ignored": 3}


def test_include_option_keeps_only_matching_files(repo: Path) -> None:
    write(repo, "src/app.py")
    write(repo, "src/deep/util.py")
    write(repo, "README.md")
    write(repo, "docs/guide.md")
    write(repo, "setup.cfg")
    write(repo, "src/node_modules/dep/index.js")  # default excludes still apply

    paths, skips = scan(repo, include=("src/", "*.md"))

    assert set(paths) == {"src/app.py", "src/deep/util.py", "README.md", "docs/guide.md"}
    assert skips.counts == {"not_included": 1, "default_excluded": 1}
    assert skips.examples("not_included") == ["setup.cfg"]


# --- default excludes ----------------------------------------------------------------


@pytest.mark.parametrize(
    "directory",
    [
        ".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__",
        "build", "dist", "target", "out", ".next", ".tox", ".mypy_cache", ".pytest_cache",
        "coverage", "mypkg.egg-info", ".codebase-mcp",
    ],
)
def test_default_excluded_directory_is_pruned(repo: Path, directory: str) -> None:
    write(repo, f"{directory}/inner/code.py")
    write(repo, f"nested/{directory}/code.py")
    write(repo, "main.py")

    paths, skips = scan(repo)

    assert paths == ["main.py"]
    assert skips.counts == {"default_excluded": 2}
    assert set(skips.examples("default_excluded")) == {f"{directory}/", f"nested/{directory}/"}


@pytest.mark.parametrize("directory", ["env", "my-python", ".direnv/python-3.12"])
def test_any_directory_holding_pyvenv_cfg_is_a_virtualenv(repo: Path, directory: str) -> None:
    write(repo, f"{directory}/pyvenv.cfg", "home = /usr/bin\n")
    write(repo, f"{directory}/lib/python3.12/site-packages/dep.py")
    write(repo, "main.py")

    paths, skips = scan(repo)

    assert paths == ["main.py"]
    assert skips.examples("default_excluded") == [f"{directory}/"]


def test_similar_names_that_are_not_excluded_are_indexed(repo: Path) -> None:
    for rel_path in ("env/settings.py", "build", "coverage.py", "src/output.py", "distance.py", "targets/x.py"):
        write(repo, rel_path)

    paths, skips = scan(repo)

    assert set(paths) == {"env/settings.py", "build", "coverage.py", "src/output.py", "distance.py", "targets/x.py"}
    assert skips.total() == 0


def test_git_file_of_a_submodule_is_not_indexed(repo: Path) -> None:
    write(repo, "vendored/.git", "gitdir: ../.git/modules/vendored\n")
    write(repo, "vendored/lib.py")

    paths, skips = scan(repo)

    assert paths == ["vendored/lib.py"]
    assert skips.counts == {"default_excluded": 1}


@pytest.mark.parametrize(
    "lock_file",
    [
        "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock", "Cargo.lock",
        "Gemfile.lock", "composer.lock", "uv.lock", "go.sum", "Pipfile.lock",
    ],
)
def test_lock_files_are_skipped_at_any_depth(repo: Path, lock_file: str) -> None:
    write(repo, lock_file, "{}\n")
    write(repo, f"frontend/{lock_file}", "{}\n")
    write(repo, "package.json", "{}\n")

    paths, skips = scan(repo)

    assert paths == ["package.json"]
    assert skips.counts == {"lock_file": 2}


@pytest.mark.parametrize("name", ["vendor/jquery.min.js", "static/style.min.css", "lib/x.min.mjs"])
def test_minified_files_are_skipped_by_name(repo: Path, name: str) -> None:
    write(repo, name, "var a=1;\n")

    paths, skips = scan(repo)

    assert paths == []
    assert skips.counts == {"minified": 1}


@pytest.mark.parametrize("name", ["dist2/app.js.map", "static/style.css.map", "types/index.d.ts.map"])
def test_source_maps_are_skipped(repo: Path, name: str) -> None:
    write(repo, name, '{"version":3}\n')

    paths, skips = scan(repo)

    assert paths == []
    assert skips.counts == {"source_map": 1}


def test_javascript_with_huge_lines_is_skipped_as_minified(repo: Path) -> None:
    one_line_bundle = "var " + ",".join(f"a{index}={index}" for index in range(2000)) + ";"
    write(repo, "bundle.js", one_line_bundle)
    write(repo, "bundle.css", "a{color:red}" * 500)
    readable = "\n".join(f"const a{index} = {index};" for index in range(2000))
    write(repo, "readable.js", readable)
    write(repo, "tiny.js", "module.exports = {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10};")
    long_data_line = "const logo = '" + "A" * 5000 + "';\n"
    write(repo, "with_data_uri.js", long_data_line + readable)

    texts, skips = read_all(repo)

    assert set(texts) == {"readable.js", "tiny.js", "with_data_uri.js"}
    assert skips.counts == {"minified": 2}


# --- binaries, size -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["logo.png", "photo.JPG", "lib/native.so", "pkg/mod.cpython-312.pyc", "dist.zip"])
def test_known_binary_extensions_are_skipped_without_reading(repo: Path, name: str) -> None:
    write(repo, name, "even if the bytes look like text")

    paths, skips = scan(repo)

    assert paths == []
    assert skips.counts == {"binary": 1}


def test_file_with_nul_byte_is_binary(repo: Path) -> None:
    write(repo, "data.txt", b"header\x00\x01\x02payload")
    write(repo, "script", b"#!/bin/sh\necho ok\n")

    texts, skips = read_all(repo)

    assert set(texts) == {"script"}
    assert skips.counts == {"binary": 1}
    assert skips.examples("binary") == ["data.txt"]


def test_files_over_max_file_size_are_skipped(repo: Path) -> None:
    write(repo, "big.py", b"#" * 101)
    write(repo, "limit.py", b"#" * 100)

    paths, skips = scan(repo, max_file_size=100)

    assert paths == ["limit.py"]
    assert skips.counts == {"too_large": 1}


def test_huge_file_is_rejected_from_stat_without_reading_it(repo: Path, monkeypatch) -> None:
    huge = repo / "huge.sql"
    with huge.open("wb") as handle:
        handle.truncate(12 * 1024 * 1024)  # sparse: 12 MB on paper, nothing on disk
    write(repo, "small.sql", "select 1;\n")
    bytes_read: list[int] = []
    real_read = os.read

    def counting_read(descriptor: int, size: int) -> bytes:
        data = real_read(descriptor, size)
        bytes_read.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counting_read)

    skips = SkipCounter()
    candidates = list_candidates(repo, ScanOptions(), skips)
    assert [candidate.path for candidate in candidates] == ["small.sql"]
    assert skips.counts == {"too_large": 1}

    # Handed to read_source anyway (say it grew after listing): rejected before any read.
    bytes_read.clear()
    assert read_source(Candidate("huge.sql", huge, 10, 1024 * 1024), skips) is None
    assert skips.counts == {"too_large": 2}
    assert sum(bytes_read) == 0


def test_file_that_grew_past_the_limit_after_listing_is_skipped(repo: Path) -> None:
    write(repo, "growing.py", "x = 1\n")
    skips = SkipCounter()
    [candidate] = list_candidates(repo, ScanOptions(max_file_size=50), skips)
    write(repo, "growing.py", "x = 1\n" * 100)

    assert read_source(candidate, skips) is None
    assert skips.counts == {"too_large": 1}


# --- symlinks ---------------------------------------------------------------------------


def test_symlinks_leaving_the_repository_are_never_followed(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside, "secret.txt", "TOPSECRET token\n")
    write(outside, "nested/more.py", "TOPSECRET = 1\n")
    write(repo, "main.py")
    (repo / "leak.txt").symlink_to(outside / "secret.txt")
    (repo / "leak_dir").symlink_to(outside, target_is_directory=True)
    (repo / "passwd").symlink_to("/etc/passwd")
    (repo / "etc").symlink_to("/etc", target_is_directory=True)
    (repo / "relative_escape.txt").symlink_to(Path("..") / "outside" / "secret.txt")

    texts, skips = read_all(repo)

    assert set(texts) == {"main.py"}
    assert not any("TOPSECRET" in text or "root:" in text for text in texts.values())
    assert skips.counts == {"symlink_outside": 5}


def test_directory_symlink_loops_terminate(repo: Path) -> None:
    write(repo, "a/b/code.py")
    (repo / "a" / "b" / "up").symlink_to("..", target_is_directory=True)
    (repo / "self").symlink_to(".", target_is_directory=True)
    (repo / "a" / "to_root").symlink_to(repo, target_is_directory=True)

    paths, skips = scan(repo)

    assert paths == ["a/b/code.py"]
    assert skips.counts == {"symlink_dir": 3}


def test_directory_symlink_inside_the_repository_is_not_followed(repo: Path) -> None:
    write(repo, "real/mod.py")
    (repo / "alias").symlink_to("real", target_is_directory=True)

    paths, skips = scan(repo)

    assert paths == ["real/mod.py"]  # indexed once, at its real path
    assert skips.counts == {"symlink_dir": 1}


def test_file_symlink_inside_the_repository_is_indexed_at_its_own_path(repo: Path) -> None:
    write(repo, "real/mod.py", "def f():\n    return 1\n")
    (repo / "link.py").symlink_to(Path("real") / "mod.py")

    texts, skips = read_all(repo)

    assert texts == {"link.py": "def f():\n    return 1\n", "real/mod.py": "def f():\n    return 1\n"}
    assert skips.total() == 0


def test_dangling_and_cyclic_file_symlinks_are_skipped(repo: Path) -> None:
    write(repo, "main.py")
    (repo / "dangling.py").symlink_to("missing.py")
    (repo / "ping").symlink_to("pong")
    (repo / "pong").symlink_to("ping")

    paths, skips = scan(repo)

    assert paths == ["main.py"]
    assert skips.counts == {"broken_symlink": 3}


def test_symlink_into_the_git_folder_is_not_indexed(repo: Path) -> None:
    write(repo, ".git/config", "[remote]\nurl = https://user:token@example.com/repo\n")
    (repo / "config.ini").symlink_to(Path(".git") / "config")

    texts, skips = read_all(repo)

    assert texts == {}
    assert skips.counts == {"default_excluded": 2}


# --- special and unreadable files ------------------------------------------------------


def run_with_timeout(function, seconds: float = 10.0):
    """Run `function` in a daemon thread, so a blocking open fails the test instead of hanging it."""
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("value", function()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked (a fifo was opened?)"
    return outcome["value"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no fifos on this platform")
def test_fifo_is_skipped_and_never_opened(repo: Path) -> None:
    write(repo, "main.py")
    os.mkfifo(repo / "pipe")

    texts, skips = run_with_timeout(lambda: read_all(repo))

    assert set(texts) == {"main.py"}
    assert skips.counts == {"special_file": 1}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no fifos on this platform")
def test_file_replaced_by_fifo_after_listing_is_not_opened(repo: Path) -> None:
    write(repo, "swap.py")
    skips = SkipCounter()
    [candidate] = list_candidates(repo, ScanOptions(), skips)
    (repo / "swap.py").unlink()
    os.mkfifo(repo / "swap.py")

    assert run_with_timeout(lambda: read_source(candidate, skips)) is None
    assert skips.counts == {"special_file": 1}


def test_file_replaced_by_outside_symlink_after_listing_is_not_followed(repo: Path, tmp_path: Path) -> None:
    write(tmp_path, "outside.txt", "TOPSECRET\n")
    write(repo, "swap.py")
    skips = SkipCounter()
    [candidate] = list_candidates(repo, ScanOptions(), skips)
    (repo / "swap.py").unlink()
    (repo / "swap.py").symlink_to(tmp_path / "outside.txt")

    assert read_source(candidate, skips) is None
    assert skips.total() == 1


def test_permission_error_on_read_is_a_counted_skip(repo: Path, monkeypatch) -> None:
    # Works as root too, where chmod 000 does not stop reads.
    write(repo, "locked.py")
    write(repo, "open.py")
    real_open = os.open

    def denying_open(path, flags, *args, **kwargs):
        if os.fspath(path).endswith("locked.py"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", denying_open)

    texts, skips = read_all(repo)

    assert set(texts) == {"open.py"}
    assert skips.counts == {"unreadable": 1}
    assert skips.examples("unreadable") == ["locked.py"]


@pytest.mark.skipif(not PERMISSIONS_ENFORCED,
                    reason="as root chmod 000 does not stop reads; see the monkeypatched test")
def test_chmod_000_file_and_directory_are_counted_unreadable(repo: Path) -> None:
    write(repo, "locked.py").chmod(0)
    write(repo, "closed/inner.py")
    (repo / "closed").chmod(0)
    write(repo, "open.py")
    try:
        texts, skips = read_all(repo)
    finally:
        (repo / "closed").chmod(0o755)
        (repo / "locked.py").chmod(0o644)

    assert set(texts) == {"open.py"}
    assert skips.counts == {"unreadable": 2}


def test_file_deleted_after_listing_is_a_counted_skip(repo: Path) -> None:
    write(repo, "gone.py")
    skips = SkipCounter()
    [candidate] = list_candidates(repo, ScanOptions(), skips)
    (repo / "gone.py").unlink()

    assert read_source(candidate, skips) is None
    assert skips.counts == {"unreadable": 1}


def test_file_name_that_is_not_utf8_is_skipped(repo: Path) -> None:
    write(repo, "main.py")
    descriptor = os.open(os.fsencode(repo) + b"/bad\xff.py", os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(descriptor)

    paths, skips = scan(repo)

    assert paths == ["main.py"]
    assert skips.counts == {"invalid_name": 1}


# --- decoding and hashing --------------------------------------------------------------


def read_one(repo: Path, rel_path: str, content: bytes):
    write(repo, rel_path, content)
    skips = SkipCounter()
    source = read_source(candidate_for(repo, rel_path), skips)
    assert skips.total() == 0
    assert source is not None
    return source


def test_source_file_fields(repo: Path) -> None:
    raw = b"def f():\n    return 1\n"

    source = read_one(repo, "pkg/mod.py", raw)

    assert source.path == "pkg/mod.py"
    assert source.language == "python"
    assert source.size == len(raw)
    assert source.content_hash == hashlib.sha256(raw).hexdigest()
    assert source.text == raw.decode()


def test_latin1_file_is_decoded_readably(repo: Path) -> None:
    source = read_one(repo, "menu.txt", "café crème brûlée\n".encode("latin-1"))

    assert source.text == "café crème brûlée\n"


def test_cp1252_punctuation_is_decoded(repo: Path) -> None:
    source = read_one(repo, "quote.txt", "“smart” quotes – and € sign\n".encode("cp1252"))

    assert source.text == "“smart” quotes – and € sign\n"


def test_bytes_undefined_in_cp1252_never_crash(repo: Path) -> None:
    raw = b"odd \x81\x8d\x8f\x90\x9d bytes\xff\n"

    source = read_one(repo, "odd.txt", raw)

    assert source.text.startswith("odd ") and source.text.endswith("bytes\xff\n")
    assert source.content_hash == hashlib.sha256(raw).hexdigest()


def test_utf8_bom_is_stripped_but_hashed(repo: Path) -> None:
    raw = b"\xef\xbb\xbfprint('hi')\n"

    source = read_one(repo, "bom.py", raw)

    assert source.text == "print('hi')\n"
    assert source.content_hash == hashlib.sha256(raw).hexdigest()


def test_utf16_with_bom_is_text_not_binary(repo: Path) -> None:
    raw = "namespace Demo { class Héllo {} }\r\n".encode("utf-16")

    source = read_one(repo, "Hello.cs", raw)

    assert source.text == "namespace Demo { class Héllo {} }\n"


def test_crlf_is_normalised_but_hash_is_of_raw_bytes(repo: Path) -> None:
    raw = b"line one\r\nline two\r\n"

    source = read_one(repo, "win.py", raw)

    assert source.text == "line one\nline two\n"
    assert source.content_hash == hashlib.sha256(raw).hexdigest()
    assert source.size == len(raw)


def test_utf8_text_round_trips(repo: Path) -> None:
    source = read_one(repo, "greek.md", "# Καλημέρα 🌍\n".encode())

    assert source.text == "# Καλημέρα 🌍\n"
    assert source.language == "markdown"


def test_empty_file_is_indexed(repo: Path) -> None:
    source = read_one(repo, "pkg/__init__.py", b"")

    assert source.text == ""
    assert source.content_hash == hashlib.sha256(b"").hexdigest()


# --- skip accounting -------------------------------------------------------------------


def test_skip_counter_counts_by_reason_and_keeps_few_examples() -> None:
    skips = SkipCounter()
    for index in range(20):
        skips.add("binary", f"img{index}.png")
    skips.add("too_large", "dump.sql")

    assert skips.counts == {"binary": 20, "too_large": 1}
    assert skips.total() == 21
    assert skips.examples("binary") == [f"img{index}.png" for index in range(5)]
    assert skips.examples("too_large") == ["dump.sql"]
    assert skips.examples("minified") == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no fifos on this platform")
def test_every_skip_reason_is_documented_and_reachable(repo: Path, tmp_path: Path) -> None:
    write(tmp_path, "outside.txt", "x\n")
    write(repo, ".gitignore", "*.log\n")
    write(repo, "a.log")
    write(repo, "node_modules/x.js")
    write(repo, "yarn.lock")
    write(repo, "a.min.js")
    write(repo, "a.js.map")
    write(repo, "a.png")
    write(repo, "nul.txt", b"\x00")
    write(repo, "big.txt", b"x" * 2000)
    write(repo, "bundle.js", "x" * 1200)
    write(repo, "vanishing.py")
    (repo / "out_link").symlink_to(tmp_path / "outside.txt")
    os.link(tmp_path / "outside.txt", repo / "hard_linked.txt")
    write(repo, ".env", "PASSWORD=x\n")
    write(repo, "api.pb.go", "// Code generated by protoc-gen-go. DO NOT EDIT.\npackage api\n")
    (repo / "dir_link").symlink_to(".", target_is_directory=True)
    (repo / "dangling").symlink_to("nowhere")
    os.mkfifo(repo / "fifo")
    os.close(os.open(os.fsencode(repo) + b"/\xfe.py", os.O_WRONLY | os.O_CREAT, 0o644))

    skips = SkipCounter()
    list_candidates(repo, ScanOptions(include=("*.md",)), skips)  # not_included, among others
    texts = {}
    for candidate in list_candidates(repo, ScanOptions(max_file_size=1500), skips):
        if candidate.path == "vanishing.py":
            (repo / "vanishing.py").unlink()
        source = read_source(candidate, skips)
        if source is not None:
            texts[source.path] = source.text

    assert set(texts) == {".gitignore"}
    assert set(skips.counts) == set(SKIP_REASONS) - {"too_many_chunks"}  # the pipeline's, after chunking
    assert all(isinstance(description, str) and description for description in SKIP_REASONS.values())
