"""The fast paths of the scan: leaf folders, runs compared whole, rows put back.

tests/integration/test_scan.py covers what a scan finds; these cover the ways the walk
takes to get there quickly, each against the plain answer. The scans run twice (the
``walk_threads`` fixture): serial (SCAN_THREADS = 1) and parallel.
"""

from __future__ import annotations

import os
import random
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from scans import scan_once

from globus_auto.datastore.opening import open_datastore
from globus_auto.datastore.store import Datastore
from globus_auto.engine import scan, walk, walk_parallel

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
THREADS = 1  # set by the walk_threads fixture for each test


@pytest.fixture(autouse=True, params=[1, 4], ids=["serial", "parallel"])
def walk_threads(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> int:
    """SCAN_THREADS for the test; the parallel walk's threads on at once."""
    monkeypatch.setattr(sys.modules[__name__], "THREADS", request.param)
    monkeypatch.setenv(walk_parallel.PARALLEL_VARIABLE, "1")
    return int(request.param)


def walked(root: bytes) -> list[walk.Entry]:
    return list(walk_parallel.walk_tree(root, None, THREADS))


@pytest.fixture
def store(tmp_path: Path) -> Datastore:
    return open_datastore(tmp_path / "state", NOW)


def run_scan(store: Datastore, root: Path) -> scan.ScanSummary:
    return scan_once(store, root, THREADS)


def tracked(store: Datastore) -> set[bytes]:
    job = store.job_id("job", "job", NOW)
    reader = store.reader()
    try:
        return {row[0] for row in store.iter_stored(job, reader)}
    finally:
        reader.close()


def test_a_leaf_folder_reports_special_files_and_bad_names(tmp_path: Path) -> None:
    leaf = tmp_path / "leaf"
    leaf.mkdir()
    (leaf / "ok").write_bytes(b"fine")
    os.mkfifo(leaf / "fifo")
    (leaf / "link").symlink_to("/etc/passwd")
    with open(os.fsencode(leaf) + b"/bad\xffname", "wb") as handle:
        handle.write(b"x")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(leaf / "sock"))
    try:
        assert os.stat(leaf).st_nlink == 2  # the leaf path is taken
        entries = walked(os.fsencode(tmp_path))
    finally:
        sock.close()
    problems = {e.path: e.problem for e in entries if e.problem}
    assert [e.path for e in entries if not e.problem] == [b"leaf/ok"]
    assert "FIFO" in (problems[b"leaf/fifo"] or "")
    assert "symbolic link" in (problems[b"leaf/link"] or "")
    assert "socket" in (problems[b"leaf/sock"] or "")
    assert "UTF-8" in (problems[b"leaf/bad\xffname"] or "")
    assert [e.path for e in entries] == sorted(e.path for e in entries)


def test_a_subdirectory_appearing_in_a_leaf_folder_is_walked_in_order(
    tmp_path: Path,
) -> None:
    """What the walk does when the link count said "no subdirectory" wrongly."""
    names = ["a", "a.txt", "a0", "b", "c"]
    for name in names:
        (tmp_path / name).write_bytes(name.encode())
    (tmp_path / "a.txt").unlink()
    (tmp_path / "a.txt").mkdir()  # sorts after "a" but before "a0" as "a.txt/"
    (tmp_path / "a.txt" / "inner").write_bytes(b"i")
    root = os.fsencode(tmp_path)
    listed = sorted(os.listdir(root))
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        runs = list(walk._leaf_runs(root, b"", fd, listed, None))
    finally:
        os.close(fd)
    paths = [entry[0] for run in runs for entry in run]
    assert paths == [b"a", b"a.txt/inner", b"a0", b"b", b"c"]
    assert paths == [e.path for e in walked(root)]


def test_big_folders_with_scattered_changes_are_merged_exactly(
    tmp_path: Path, store: Datastore
) -> None:
    """Runs longer than RUN_FILES, rows put back across runs, files gone
    between runs and at the end, new files before, inside and after."""
    src = tmp_path / "src"
    big = src / "big"
    big.mkdir(parents=True)
    count = walk.RUN_FILES * 2 + 37
    for i in range(count):
        (big / f"f{i:05d}").write_bytes(b"%d" % i)
    (src / "z-last").write_bytes(b"z")
    first = run_scan(store, src)
    assert (first.files, first.new, first.hashed_files) == (
        count + 1,
        count + 1,
        count + 1,
    )
    rng = random.Random(5)
    changed = rng.sample(range(count), 25)
    for i in changed:
        (big / f"f{i:05d}").write_bytes(b"changed %d" % i)
    gone = [i for i in rng.sample(range(count), 20) if i not in changed]
    for i in gone:
        (big / f"f{i:05d}").unlink()
    (src / "z-last").unlink()
    for name in ("a-first", "big/f00000a", f"big/f{walk.RUN_FILES:05d}x", "big/zz"):
        (src / name).write_bytes(b"new")
    again = run_scan(store, src)
    assert (again.changed, again.new, again.gone) == (25, 4, len(gone) + 1)
    assert again.hashed_files == 29
    assert tracked(store) == {
        os.fsencode(p.relative_to(src)) for p in src.rglob("*") if p.is_file()
    }
    quiet = run_scan(store, src)
    assert (quiet.changed, quiet.new, quiet.gone, quiet.hashed_files) == (0, 0, 0, 0)
