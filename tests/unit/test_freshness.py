"""freshness.is_stale: a stat compared with what was recorded at index time."""
from __future__ import annotations

import os

from codebase_indexer.freshness import is_stale, mark_stale


def test_size_time_and_presence_decide(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    stat = (tmp_path / "a.py").stat()
    recorded = (stat.st_size, stat.st_mtime_ns)
    assert is_stale(tmp_path, "a.py", recorded) is False
    os.utime(tmp_path / "a.py", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert is_stale(tmp_path, "a.py", recorded) is True
    assert is_stale(tmp_path, "gone.py", recorded) is True


def test_unknown_when_it_cannot_be_told(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    assert is_stale(tmp_path, "a.py", None) is None  # not in the index any more
    assert is_stale(tmp_path, "a.py", (6, None)) is None  # indexed before times were recorded
    assert is_stale(tmp_path, "../etc/passwd", (1, 1)) is None  # never leaves the root
    assert is_stale(tmp_path, "/etc/passwd", (1, 1)) is None
    results = [{"file_path": "a.py"}]
    mark_stale(results, None, {})  # a gateway that cannot see the files (Kubernetes)
    assert results == [{"file_path": "a.py", "stale": None}]
