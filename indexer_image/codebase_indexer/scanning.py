"""Walk a repository and decide which files are indexed.

Two steps, so a run never holds a whole repository in memory:

* `list_candidates` walks the tree (paths and `stat` results only, no file is
  opened except ignore files) and applies every rule that needs no content:
  ignore files, default excludes, include/exclude options, binary extensions,
  the size limit, symlinks and special files.
* `read_source` reads one candidate and applies the content rules: NUL bytes,
  minified JavaScript/CSS, files that grew past the limit; it decodes the text.

Which rule has the last word, lowest precedence first (like git):
default excludes < `.git/info/exclude` < `.gitignore` then the project ignore
file of each directory, root to leaf < `ScanOptions.exclude`. So `!build/` in a
`.codebase-mcpignore` re-includes a `build/` folder excluded by default.
Never overridable: VCS folders, the `.codebase-mcp` state folder, virtualenvs
(any directory holding `pyvenv.cfg`) and binary extensions.
`ScanOptions.include`, when given, then keeps only the files it matches.

Symlinks are never followed while walking. A symlink to a directory is
skipped ("symlink_dir"): its target, when inside the repository, is indexed at
its real path anyway, and not following makes loops impossible. A symlink to a
regular file inside the repository is indexed once, at the symlink's own path
(`Candidate.abs_path` is then the resolved target). A symlink whose target
leaves the repository is skipped and never read.

Hard links cannot be told apart from the file they link to, and nothing on disk says
where the other links are: a link planted in the repository to `~/.ssh/id_rsa` (or to
any file of another user on the same file system) looks like a regular file. So a file
with more than one link is indexed only when the walk itself met every link, each at a
distinct path inside the repository (a file hard-linked twice within the repo is
harmless); otherwise it is skipped ("hard_link"). Links inside folders the walk does not
enter (ignored or default-excluded ones) count as unseen, which errs on the safe side.
`read_source` re-checks the link count on the open descriptor, so a link added after
listing is caught too.
"""
from __future__ import annotations

import codecs
import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pathspec import GitIgnoreSpec

from .languages import language_for_path
from .models import SourceFile

DEFAULT_MAX_FILE_SIZE = 1024 * 1024

SKIP_REASONS: dict[str, str] = {
    "ignored": "matched .gitignore, the project ignore file, .git/info/exclude or ScanOptions.exclude"
    " (a pruned directory counts once)",
    "not_included": "ScanOptions.include is set and the file matches none of its globs",
    "default_excluded": "VCS, dependency, virtualenv, cache or build-output folder (counted once per folder)",
    "lock_file": "package-manager lock file (package-lock.json, Cargo.lock, go.sum, ...)",
    "minified": "*.min.js / *.min.css, or JavaScript/CSS whose average line is very long",
    "source_map": "generated source map (*.js.map, *.css.map, ...)",
    "binary": "known binary extension, or a NUL byte in the first 8 KiB",
    "too_large": "bigger than ScanOptions.max_file_size (checked with stat, before reading)",
    "symlink_outside": "symlink whose target is outside the repository (never read)",
    "symlink_dir": "symlink to a directory (never followed)",
    "broken_symlink": "symlink whose target is missing or is a symlink loop",
    "special_file": "fifo, socket or device (never opened)",
    "hard_link": "file with more than one hard link where some link is outside the repository"
    " (or in a part of it that is not walked)",
    "unreadable": "permission or other OS error while listing or reading",
    "invalid_name": "file name that is not valid UTF-8",
}

_MAX_EXAMPLES = 5
_BINARY_SNIFF_BYTES = 8192
_READ_CHUNK = 1024 * 1024
_MAX_IGNORE_FILE_SIZE = 1024 * 1024
# JavaScript/CSS at least this big whose mean line is longer than this is minified or generated.
_MINIFIED_MIN_SIZE = 1024
_MINIFIED_MEAN_LINE = 200
_MINIFIABLE_SUFFIXES = frozenset({".js", ".mjs", ".cjs", ".css"})

_ALWAYS_EXCLUDED_NAMES = frozenset({".git", ".hg", ".svn", ".bzr", ".codebase-mcp"})
_VIRTUALENV_MARKER = "pyvenv.cfg"
_GIT_INFO_EXCLUDE = ".git/info/exclude"
_GITIGNORE = ".gitignore"

_DEFAULT_EXCLUDES: dict[str, tuple[str, ...]] = {
    "default_excluded": (
        "node_modules/", "bower_components/", ".venv/", "venv/", "__pycache__/",
        "build/", "dist/", "target/", "out/", ".next/", ".nuxt/", ".tox/", ".nox/",
        ".mypy_cache/", ".pytest_cache/", ".ruff_cache/", "coverage/", "htmlcov/",
        "*.egg-info/", ".eggs/",
    ),
    "lock_file": (
        "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb",
        "poetry.lock", "Pipfile.lock", "pdm.lock", "uv.lock", "Cargo.lock", "Gemfile.lock",
        "composer.lock", "go.sum", "flake.lock", "mix.lock", "pubspec.lock", "Podfile.lock",
        "packages.lock.json",
    ),
    "minified": ("*.min.js", "*.min.mjs", "*.min.cjs", "*.min.css"),
    "source_map": ("*.js.map", "*.mjs.map", "*.cjs.map", "*.css.map", "*.ts.map"),
}

_BINARY_EXTENSIONS = frozenset({
    # images
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".ico", ".icns", ".webp", ".tif", ".tiff", ".psd",
    # archives and packages
    ".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst", ".jar", ".war",
    ".whl", ".egg", ".deb", ".rpm", ".dmg", ".iso",
    # compiled code
    ".so", ".dll", ".dylib", ".exe", ".o", ".a", ".lib", ".obj", ".pyc", ".pyo", ".pyd",
    ".class", ".wasm",
    # media and fonts
    ".mp3", ".mp4", ".wav", ".ogg", ".flac", ".avi", ".mov", ".mkv", ".webm",
    ".ttf", ".otf", ".woff", ".woff2", ".eot",
    # documents, databases, data and model files
    ".pdf", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".sqlite", ".sqlite3", ".db",
    ".npy", ".npz", ".pkl", ".pickle", ".parquet", ".h5", ".onnx", ".pt", ".pth", ".safetensors",
})

# BOMs of encodings whose text is full of NUL bytes; checked before the NUL sniff.
_WIDE_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True)
class ScanOptions:
    max_file_size: int = DEFAULT_MAX_FILE_SIZE  # bytes; larger files are skipped ("too_large")
    include: tuple[str, ...] = ()  # gitignore-style globs; when non-empty only matching files are indexed
    exclude: tuple[str, ...] = ()  # extra gitignore-style globs to exclude
    ignore_file_name: str = ".codebase-mcpignore"  # gitignore syntax, honoured at every level like .gitignore


@dataclass(frozen=True)
class Candidate:
    path: str  # repository-relative, POSIX separators
    abs_path: Path  # where the bytes are read; for a file symlink, its resolved target
    size: int  # bytes, from stat at listing time
    max_size: int = DEFAULT_MAX_FILE_SIZE  # the limit read_source enforces if the file grew
    links: int = 1  # hard links accepted at listing time; read_source skips the file if it gained more


class SkipCounter:
    """Counts skipped files by reason; keeps a few example paths per reason."""

    def __init__(self, max_examples: int = _MAX_EXAMPLES) -> None:
        self.counts: dict[str, int] = {}
        self._examples: dict[str, list[str]] = {}
        self._max_examples = max_examples

    def add(self, reason: str, path: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        examples = self._examples.setdefault(reason, [])
        if len(examples) < self._max_examples:
            examples.append(path)

    def total(self) -> int:
        return sum(self.counts.values())

    def examples(self, reason: str) -> list[str]:
        return list(self._examples.get(reason, ()))


class _Skip(Exception):
    """A file turned out not to be indexable; `reason` is a key of SKIP_REASONS."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- ignore rules -------------------------------------------------------------


@dataclass(frozen=True)
class _IgnoreLayer:
    base: str  # repository-relative directory the patterns are relative to; "" is the root
    spec: GitIgnoreSpec
    reason: str  # the skip reason when this layer has the last word


# pathspec raises ValueError for some bad patterns; others (e.g. "[z-a]") surface from the regex compiler.
_PATTERN_ERRORS = (ValueError, re.error)


def _compile(lines: list[str]) -> GitIgnoreSpec:
    """A spec from gitignore lines; a malformed line is dropped, as git does."""
    try:
        return GitIgnoreSpec.from_lines(lines)
    except _PATTERN_ERRORS:
        return GitIgnoreSpec.from_lines([line for line in lines if _is_valid_pattern(line)])


def _is_valid_pattern(line: str) -> bool:
    try:
        GitIgnoreSpec.from_lines([line])
    except _PATTERN_ERRORS:
        return False
    return True


def _relative_to_base(rel_path: str, base: str) -> str | None:
    if not base:
        return rel_path
    prefix = base + "/"
    return rel_path[len(prefix):] if rel_path.startswith(prefix) else None


def _excluding_layer(layers: tuple[_IgnoreLayer, ...], rel_path: str, is_dir: bool) -> _IgnoreLayer | None:
    """The layer whose last matching pattern excludes the path, or None when the path is kept."""
    verdict: tuple[bool, _IgnoreLayer] | None = None
    for layer in layers:
        sub_path = _relative_to_base(rel_path, layer.base)
        if sub_path is None:
            continue
        result = layer.spec.check_file(sub_path + "/" if is_dir else sub_path)
        if result.include is not None:
            verdict = (result.include, layer)
    if verdict is not None and verdict[0]:
        return verdict[1]
    return None


def _default_layers() -> tuple[_IgnoreLayer, ...]:
    return tuple(_IgnoreLayer("", _compile(list(patterns)), reason) for reason, patterns in _DEFAULT_EXCLUDES.items())


# --- walking ------------------------------------------------------------------


@dataclass(frozen=True)
class _Directory:
    abs_path: str
    rel_path: str  # "" for the root
    layers: tuple[_IgnoreLayer, ...]  # ignore files of this directory and its parents, root first


class _Walker:
    """One walk of one repository; accumulates candidates and skips."""

    def __init__(self, root: Path, options: ScanOptions, skips: SkipCounter) -> None:
        self.root = os.path.realpath(root)
        self.options = options
        self.skips = skips
        self.candidates: list[Candidate] = []
        self.default_layers = _default_layers()
        self.exclude_layers = (_IgnoreLayer("", _compile(list(options.exclude)), "ignored"),) if options.exclude else ()
        self.include_spec = _compile(list(options.include)) if options.include else None
        self.linked = _HardLinks()

    def walk(self) -> list[Candidate]:
        if not os.path.isdir(self.root):
            raise NotADirectoryError(f"repository root is not a directory: {self.root}")
        info_exclude = self._read_ignore_file(os.path.join(self.root, _GIT_INFO_EXCLUDE), _GIT_INFO_EXCLUDE, "")
        pending = [_Directory(self.root, "", info_exclude)]
        while pending:
            pending.extend(reversed(self._visit(pending.pop())))
        self.candidates.extend(self.linked.resolve(self.skips))
        self.candidates.sort(key=lambda candidate: candidate.path)
        return self.candidates

    def _visit(self, directory: _Directory) -> list[_Directory]:
        """Classify every entry of one directory; return its subdirectories to walk."""
        try:
            with os.scandir(directory.abs_path) as iterator:
                entries = sorted(iterator, key=lambda entry: entry.name)
        except OSError:
            self.skips.add("unreadable", directory.rel_path + "/" if directory.rel_path else ".")
            return []
        layers = directory.layers + self._own_ignore_layers(directory, entries)
        subdirectories: list[_Directory] = []
        for entry in entries:
            rel_path = _join(directory.rel_path, entry.name)
            try:
                subdirectory = self._classify(entry, rel_path, layers)
            except OSError:
                self.skips.add("unreadable", rel_path)
                continue
            if subdirectory is not None:
                subdirectories.append(subdirectory)
        return subdirectories

    def _own_ignore_layers(self, directory: _Directory, entries: list[os.DirEntry[str]]) -> tuple[_IgnoreLayer, ...]:
        """The .gitignore, then the project ignore file, of one directory (a later layer wins)."""
        by_name = {entry.name: entry for entry in entries}
        layers: tuple[_IgnoreLayer, ...] = ()
        for name in (_GITIGNORE, self.options.ignore_file_name):
            entry = by_name.get(name) if name else None
            if entry is not None and entry.is_file(follow_symlinks=False):
                layers += self._read_ignore_file(entry.path, _join(directory.rel_path, name), directory.rel_path)
        return layers

    def _read_ignore_file(self, abs_path: str, rel_path: str, base: str) -> tuple[_IgnoreLayer, ...]:
        try:
            descriptor = _open_regular_file(abs_path)
        except (FileNotFoundError, NotADirectoryError, _Skip):
            return ()
        except OSError:
            self.skips.add("unreadable", rel_path)
            return ()
        try:
            data = _read_at_most(descriptor, _MAX_IGNORE_FILE_SIZE)
        except OSError:
            self.skips.add("unreadable", rel_path)
            return ()
        finally:
            os.close(descriptor)
        return (_IgnoreLayer(base, _compile(data.decode("utf-8", errors="replace").splitlines()), "ignored"),)

    def _classify(self, entry: os.DirEntry[str], rel_path: str, layers: tuple[_IgnoreLayer, ...]) -> _Directory | None:
        if not _is_utf8(entry.name):
            self.skips.add("invalid_name", rel_path)
            return None
        is_dir = entry.is_dir(follow_symlinks=False)
        shown_path = rel_path + "/" if is_dir else rel_path
        if entry.name in _ALWAYS_EXCLUDED_NAMES:
            self.skips.add("default_excluded", shown_path)
            return None
        excluding = _excluding_layer(self.default_layers + layers + self.exclude_layers, rel_path, is_dir)
        if excluding is not None:
            self.skips.add(excluding.reason, shown_path)
            return None
        if entry.is_symlink():
            self._add_symlink(entry, rel_path)
            return None
        if is_dir:
            if os.path.lexists(os.path.join(entry.path, _VIRTUALENV_MARKER)):
                self.skips.add("default_excluded", shown_path)
                return None
            return _Directory(entry.path, rel_path, layers)
        if not entry.is_file(follow_symlinks=False):
            self.skips.add("special_file", rel_path)
            return None
        self._add_file(rel_path, Path(entry.path), entry.stat(follow_symlinks=False))
        return None

    def _add_symlink(self, entry: os.DirEntry[str], rel_path: str) -> None:
        target = os.path.realpath(entry.path)
        if not _is_within(target, self.root):
            self.skips.add("symlink_outside", rel_path)
            return
        try:
            target_stat = os.stat(target)
        except OSError:  # missing target, or a loop of symlinks (ELOOP)
            self.skips.add("broken_symlink", rel_path)
            return
        if stat.S_ISDIR(target_stat.st_mode):
            self.skips.add("symlink_dir", rel_path)
        elif not stat.S_ISREG(target_stat.st_mode):
            self.skips.add("special_file", rel_path)
        elif _ALWAYS_EXCLUDED_NAMES.intersection(PurePosixPath(os.path.relpath(target, self.root)).parts):
            # e.g. a link to .git/config, which may hold credentials
            self.skips.add("default_excluded", rel_path)
        else:
            self._add_file(rel_path, Path(target), target_stat)

    def _add_file(self, rel_path: str, abs_path: Path, file_stat: os.stat_result) -> None:
        if self.include_spec is not None and not self.include_spec.match_file(rel_path):
            self.skips.add("not_included", rel_path)
        elif PurePosixPath(rel_path).suffix.lower() in _BINARY_EXTENSIONS:
            self.skips.add("binary", rel_path)
        elif file_stat.st_size > self.options.max_file_size:
            self.skips.add("too_large", rel_path)
        else:
            candidate = Candidate(rel_path, abs_path, file_stat.st_size, self.options.max_file_size,
                                  links=file_stat.st_nlink)
            if file_stat.st_nlink > 1:
                self.linked.add(candidate, file_stat)
            else:
                self.candidates.append(candidate)


class _HardLinks:
    """Candidates with several hard links, grouped by inode until the walk has seen everything."""

    def __init__(self) -> None:
        self._groups: dict[tuple[int, int], list[Candidate]] = {}

    def add(self, candidate: Candidate, file_stat: os.stat_result) -> None:
        self._groups.setdefault((file_stat.st_dev, file_stat.st_ino), []).append(candidate)

    def resolve(self, skips: SkipCounter) -> list[Candidate]:
        """The candidates whose every link was met inside the repository; the rest are skipped."""
        kept: list[Candidate] = []
        for group in self._groups.values():
            # A symlink to a linked file shares its target's path: count distinct paths only.
            distinct_paths = {str(candidate.abs_path) for candidate in group}
            if len(distinct_paths) >= max(candidate.links for candidate in group):
                kept.extend(group)
            else:
                for candidate in group:
                    skips.add("hard_link", candidate.path)
        return kept


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes arrive as lone surrogates
        return False
    return True


def list_candidates(root: Path, options: ScanOptions, skips: SkipCounter) -> list[Candidate]:
    """Walk the repository (deterministic, sorted order) and return the files that may be indexed.

    Raises NotADirectoryError when `root` is not a directory; any problem with
    one entry below it becomes a counted skip.
    """
    return _Walker(root, options, skips).walk()


# --- reading ------------------------------------------------------------------


def read_source(candidate: Candidate, skips: SkipCounter) -> SourceFile | None:
    """Read one candidate.

    None (and a counted skip) for binaries, minified files, unreadable files and
    files grown past the limit; else a SourceFile with the sha256 of the raw
    bytes and the decoded text (CRLF normalised to LF).
    """
    try:
        data = _read_regular_file(candidate)
    except _Skip as skip:
        skips.add(skip.reason, candidate.path)
        return None
    except OSError:
        skips.add("unreadable", candidate.path)
        return None
    reason = _content_skip_reason(candidate.path, data)
    if reason is not None:
        skips.add(reason, candidate.path)
        return None
    return SourceFile(
        path=candidate.path,
        language=language_for_path(candidate.path),
        size=len(data),
        content_hash=hashlib.sha256(data).hexdigest(),
        text=decode_text(data).replace("\r\n", "\n"),
    )


def _read_regular_file(candidate: Candidate) -> bytes:
    """The file's bytes, if it is still a regular file within the size limit."""
    descriptor = _open_regular_file(candidate.abs_path)
    try:
        opened = os.fstat(descriptor)
        if opened.st_nlink > candidate.links:  # linked again since it was listed
            raise _Skip("hard_link")
        if opened.st_size > candidate.max_size:
            raise _Skip("too_large")
        data = _read_at_most(descriptor, candidate.max_size + 1)
    finally:
        os.close(descriptor)
    if len(data) > candidate.max_size:  # grew between fstat and read
        raise _Skip("too_large")
    return data


def _open_regular_file(path: str | Path) -> int:
    """A read-only descriptor on a regular file; raises _Skip("special_file") for anything else.

    The file may have changed since it was listed: lstat first so a fifo or
    device is never opened, then O_NOFOLLOW | O_NONBLOCK and fstat on the open
    descriptor so a swap in between can neither make us follow a link nor block.
    """
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise _Skip("special_file")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise _Skip("special_file")
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _read_at_most(descriptor: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(descriptor, min(remaining, _READ_CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _content_skip_reason(path: str, data: bytes) -> str | None:
    if _wide_encoding(data) is None and b"\0" in data[:_BINARY_SNIFF_BYTES]:
        return "binary"
    if PurePosixPath(path).suffix.lower() in _MINIFIABLE_SUFFIXES and _looks_minified(data):
        return "minified"
    return None


def _looks_minified(data: bytes) -> bool:
    if len(data) < _MINIFIED_MIN_SIZE:
        return False
    line_count = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    return len(data) / line_count > _MINIFIED_MEAN_LINE


def _wide_encoding(data: bytes) -> str | None:
    for bom, encoding in _WIDE_BOMS:
        if data.startswith(bom):
            return encoding
    return None


def decode_text(data: bytes) -> str:
    """Decode file bytes without ever failing.

    UTF-8 (a BOM is dropped), UTF-16/32 when they carry a BOM, else cp1252 —
    the usual legacy encoding of source files, a superset of latin-1's
    printable range — and finally latin-1, which maps every byte.
    """
    wide = _wide_encoding(data)
    if wide is not None:
        return data.decode(wide, errors="replace")  # the codec consumes the BOM
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")
