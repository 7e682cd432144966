"""The parallel scan: calls overlap where they wait, and nothing else changes.

A slow filesystem is stood in for by a slowed ``lstat`` (the walk's) and a
slowed ``open`` (the hash pool's) that sleep in each call and count how many
calls are under way at once. No timing is asserted: only that the calls
overlapped, and that what the scan found is what the serial walk finds.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Generator, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from scans import scan_once

from globus_auto.datastore.opening import open_datastore
from globus_auto.datastore.store import Datastore
from globus_auto.engine import scan, walk, walk_parallel
from globus_auto.errors import ConfigError, SourceError
from globus_auto.settings.source import load_settings

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
SLOW_S = 0.002  # far above SLOW_CALL_NS: what a round trip to a server costs


@pytest.fixture
def threads_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parallel walk's threads on from the start, however fast the disk."""
    monkeypatch.setenv(walk_parallel.PARALLEL_VARIABLE, "1")


class Overlap:
    """Wraps a call: each sleeps SLOW_S; ``most`` is the most under way at once."""

    def __init__(self, call: Callable[..., Any]) -> None:
        self.call = call
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.now += 1
            self.calls += 1
            self.most = max(self.most, self.now)
        try:
            time.sleep(SLOW_S)
            return self.call(*args, **kwargs)
        finally:
            with self.lock:
                self.now -= 1


def make_tree(root: Path, folders: int, files: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    for d in range(folders):
        folder = root / f"d{d:02d}" / ("deep" if d % 3 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(files):
            (folder / f"f{f:03d}.dat").write_bytes(rng.randbytes(rng.randint(0, 300)))
    (root / "top.txt").write_bytes(b"top")


def entries(root: Path, threads: int) -> list[walk.Entry]:
    return list(walk_parallel.walk_tree(os.fsencode(root), None, threads))


@pytest.fixture
def store(tmp_path: Path) -> Datastore:
    return open_datastore(tmp_path / "state", NOW)


def run_scan(store: Datastore, root: Path, threads: int) -> scan.ScanSummary:
    return scan_once(store, root, threads)


def test_slow_stat_calls_overlap_and_the_walk_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing forces the threads on here: the walk sees its calls wait and
    turns them on itself."""
    src = tmp_path / "src"
    make_tree(src, folders=6, files=40)
    expected = entries(src, 1)
    slow = Overlap(os.lstat)
    monkeypatch.delenv(walk_parallel.PARALLEL_VARIABLE, raising=False)
    monkeypatch.setattr(walk, "_lstat", slow)
    found = entries(src, 8)
    assert found == expected
    assert slow.most > 1, "the stat calls never overlapped"


def test_a_fast_filesystem_is_walked_in_the_calling_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where calls do not wait, threads would only hand the GIL around."""
    src = tmp_path / "src"
    make_tree(src, folders=6, files=40)
    seen: set[str] = set()
    plain = os.lstat

    def lstat(*args: Any, **kwargs: Any) -> os.stat_result:
        seen.add(threading.current_thread().name)
        return plain(*args, **kwargs)

    monkeypatch.delenv(walk_parallel.PARALLEL_VARIABLE, raising=False)
    monkeypatch.setattr(walk, "_lstat", lstat)
    assert entries(src, 8) == entries(src, 1)
    assert seen == {threading.current_thread().name}


def test_a_first_scan_reads_changed_files_on_many_threads(
    tmp_path: Path, store: Datastore, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    make_tree(src, folders=4, files=30)
    slow = Overlap(os.open)
    monkeypatch.setattr(scan, "_open", slow)
    summary = run_scan(store, src, threads=8)
    assert summary.hashed_files == summary.files == 4 * 30 + 1
    assert slow.most > 1, "the files were read one at a time"
    assert slow.calls == summary.files


def test_every_folder_taken_for_a_leaf_still_walks_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads_on: None
) -> None:
    """A filesystem whose link counts say "no subfolder" wrongly (or a folder
    made after the count was read): files that turn out to be folders, in the
    first chunk and in later ones, are walked in path order all the same."""
    src = tmp_path / "src"
    big = src / "big"
    big.mkdir(parents=True)
    for i in range(walk_parallel.STAT_CHUNK * 3):
        (big / f"f{i:04d}").write_bytes(b"x")
    first = src / "first"  # a folder in the chunk the listing stats itself
    first.mkdir()
    (first / "x").write_bytes(b"x")
    for folder, name in [
        (first, "a-dir"),
        (big, f"f{walk_parallel.STAT_CHUNK * 2 + 5:04d}-"),  # in the third chunk
        (big, "zz"),
    ]:
        (folder / name).mkdir()
        (folder / name / "inner").write_bytes(b"i")
        (folder / (name + "-1")).write_bytes(b"sorts between the folder and its files")
    expected = entries(src, 1)
    relisted: list[bytes] = []
    relist = walk_parallel._Walker._relist

    def counted(self: Any, task: Any, since: bytes) -> Iterator[list[walk.EntryRow]]:
        relisted.append(task.prefix + since)
        return relist(self, task, since)

    monkeypatch.setattr(walk_parallel, "_leaf", lambda fd: True)
    monkeypatch.setattr(walk_parallel._Walker, "_relist", counted)
    assert entries(src, 4) == expected
    assert [e.path for e in expected] == sorted(e.path for e in expected)
    # The folder in a later chunk of big/ was found by a chunk of its own.
    assert relisted == [b"big/" + f"f{walk_parallel.STAT_CHUNK * 2:04d}".encode()]


def test_a_walk_left_early_closes_its_folders_and_threads(
    tmp_path: Path, threads_on: None
) -> None:
    src = tmp_path / "src"
    make_tree(src, folders=8, files=walk_parallel.STAT_CHUNK + 1)
    assert open_under(src) == [] and scan_threads() == []
    runs = walk_parallel.ParallelWalk(os.fsencode(src), None, 4).runs()
    assert next(runs)
    assert isinstance(runs, Generator)
    assert scan_threads()  # the walk is under way on its threads
    runs.close()  # as when the scan fails half-way
    # Why not compare every descriptor and thread of the process: earlier
    # tests' servers may close theirs meanwhile; only the walk's own count.
    assert open_under(src) == []
    assert scan_threads() == []


def open_under(folder: Path) -> list[str]:
    """The descriptors of this process open on ``folder`` or below it."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (e.g. listdir's own)
            continue
        if target == str(folder) or target.startswith(f"{folder}/"):
            found.append(target)
    return found


def scan_threads() -> list[str]:
    """The live threads of a parallel walk's pool (named ``scan_...``)."""
    return [t.name for t in threading.enumerate() if t.name.startswith("scan")]


def test_a_missing_root_is_an_error_and_an_excluded_folder_is_not_entered(
    tmp_path: Path, threads_on: None
) -> None:
    with pytest.raises(SourceError, match="cannot list"):
        entries(tmp_path / "nope", 4)
    src = tmp_path / "src"
    make_tree(src, folders=3, files=5)
    asked: list[tuple[bytes, bool]] = []

    def excluded(path: bytes, is_dir: bool) -> bool:
        asked.append((path, is_dir))
        return path == b"d01"

    tree = walk_parallel.walk_tree(os.fsencode(src), excluded, 4)
    paths = [e.path for e in tree]
    assert not any(p.startswith(b"d01/") for p in paths)
    assert (b"d01", True) in asked and (b"top.txt", False) in asked
    assert not any(p.startswith(b"d01/") for p, _ in asked)


@pytest.mark.parametrize(
    ("line", "expected"),
    [("", 16), ("SCAN_THREADS = 1", 1), ("SCAN_THREADS = 256", 256)],
)
def test_scan_threads_setting(tmp_path: Path, line: str, expected: int) -> None:
    assert load_settings(config(tmp_path, line), {}).scan_threads == expected


@pytest.mark.parametrize("value", ["0", "257", "'8'", "2.5"])
def test_scan_threads_out_of_range_is_one_problem(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(config(tmp_path, f"SCAN_THREADS = {value}"), {})
    (line,) = str(info.value).splitlines()
    assert "SCAN_THREADS" in line


def config(tmp_path: Path, line: str) -> Path:
    path = tmp_path / "config.py"
    path.write_text(
        "SRC_ID = '6a1f6f2e-5e5b-4c3e-9e1a-0c1d2e3f4a5b'\nSRC_DIR = '/src'\n"
        "DST_ID = '9d4e1e0c-3b2a-4f1e-8d7c-6b5a4f3e2d1c'\nDST_DIR = '/dst'\n"
        f"CLIENT_ID = '0e7d2f3a-1b2c-4d5e-8f90-a1b2c3d4e5f6'\n{line}\n"
    )
    path.chmod(0o600)
    return path
