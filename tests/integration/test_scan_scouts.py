"""Scouts: forked processes that scan one span of a tree each (engine/scouts.py).

Real forks and pipes against a real datastore: a scan by scouts leaves the
datastore as a scan in one process does; a scout that fails or is killed
ends the scan with an error that says so (and nothing is left running); a
scout's source error is the scan's source error. When scouts are used at all
is checked last.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from scans import scan_once

from globus_auto.datastore.opening import open_datastore
from globus_auto.datastore.store import Datastore
from globus_auto.engine import job as job_module
from globus_auto.engine import scan, scouts
from globus_auto.engine.walk import Span
from globus_auto.errors import SourceError

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def make_tree(root: Path, rng: random.Random) -> None:
    for folder in range(12):
        base = root / f"d{folder:02d}"
        base.mkdir(parents=True)
        for i in range(rng.randint(5, 60)):
            (base / f"f{i:03d}{'.txt' if i % 2 else ''}").write_bytes(
                rng.randbytes(rng.randint(0, 64))
            )
        if folder % 4 == 0:
            (base / "sub").mkdir()
            (base / "sub" / "x").write_bytes(b"x")
    os.mkfifo(root / "d03" / "fifo")


def change_tree(root: Path, rng: random.Random) -> None:
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_fifo():
            continue
        roll = rng.random()
        if roll < 0.1:
            path.unlink()
        elif roll < 0.2:
            path.write_bytes(b"changed " + rng.randbytes(8))
    (root / "d05" / "added").write_bytes(b"new")
    shutil.rmtree(root / "d08")
    (root / "d08").write_bytes(b"a folder became a file")


def scanned(store: Datastore, root: Path, use: list[Span] | None) -> scan.ScanSummary:
    if use is None:
        return scan_once(store, root, 4)
    job = store.job_id("job", "job", NOW)
    src = os.fsencode(root)
    scanner = scan.Scanner(
        src, lambda obs, gone: store.apply_scan_batch(job, obs, gone), workers=4
    )
    with scouts.Scouts(scouts.ScoutJob(store, job, src, None, 2)) as group:
        group.start(use)
        return scanner.consume(group.pairs(scanner.count))


def rows(store: Datastore) -> list[tuple[object, ...]]:
    return list(store._conn.execute("SELECT * FROM files ORDER BY job, path"))


@pytest.fixture
def two_stores(tmp_path: Path) -> Iterator[tuple[Path, Datastore, Datastore]]:
    """A tree scanned once, and two datastores holding that first scan."""
    src = tmp_path / "src"
    make_tree(src, random.Random(3))
    first = open_datastore(tmp_path / "a", NOW)
    scanned(first, src, None)
    first.close()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    a, b = open_datastore(tmp_path / "a", NOW), open_datastore(tmp_path / "b", NOW)
    try:
        yield src, a, b
    finally:
        a.close()
        b.close()


def spans_of(
    store: Datastore, count: int, monkeypatch: pytest.MonkeyPatch
) -> list[Span]:
    monkeypatch.setenv(scouts.SCOUTS_VARIABLE, str(count))
    # The test process runs other tests' threads (emulators, SMTP servers).
    monkeypatch.setattr(scouts, "_alone", lambda: True)
    reader = store.reader()
    try:
        return scouts.scout_spans(store, store.job_id("job", "job", NOW), 16, reader)
    finally:
        reader.close()


@pytest.mark.parametrize("count", [2, 3, 5])
def test_scouts_leave_the_datastore_as_one_scan_does(
    two_stores: tuple[Path, Datastore, Datastore],
    monkeypatch: pytest.MonkeyPatch,
    count: int,
) -> None:
    src, alone, with_scouts = two_stores
    change_tree(src, random.Random(count))
    use = spans_of(with_scouts, count, monkeypatch)
    assert len(use) == count
    one = scanned(alone, src, None)
    many = scanned(with_scouts, src, use)
    assert (one.files, one.total_bytes) == (many.files, many.total_bytes)
    assert (one.new, one.changed, one.gone, one.hashed_files) == (
        many.new,
        many.changed,
        many.gone,
        many.hashed_files,
    )
    assert one.changed and one.gone and one.new  # the change was a real one
    assert sorted(one.problems) == sorted(many.problems)
    assert rows(alone) == rows(with_scouts)


def test_a_quiet_tree_sends_nothing_but_counts(
    two_stores: tuple[Path, Datastore, Datastore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src, _, store = two_stores
    before = rows(store)
    summary = scanned(store, src, spans_of(store, 2, monkeypatch))
    assert summary.files > 300 and summary.hashed_files == 0
    assert rows(store) == before


def failing_scout(how: str) -> object:
    def scout(job: object, span: Span, out: object) -> None:
        if how == "raise":
            raise RuntimeError("the disk said no")
        if how == "source":
            raise SourceError("cannot list /data: Permission denied")
        os.kill(os.getpid(), signal.SIGKILL)

    return scout


@pytest.mark.parametrize(
    ("how", "error", "words"),
    [
        ("raise", scouts.ScoutError, "RuntimeError: the disk said no"),
        ("kill", scouts.ScoutError, "killed by signal 9"),
        ("source", SourceError, "cannot list /data: Permission denied"),
    ],
)
def test_a_scout_that_fails_ends_the_scan_saying_so(
    two_stores: tuple[Path, Datastore, Datastore],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    error: type[Exception],
    words: str,
) -> None:
    src, _, store = two_stores
    use = spans_of(store, 3, monkeypatch)
    before = rows(store)
    monkeypatch.setattr(scouts, "_scout", failing_scout(how))
    with pytest.raises(error) as caught:
        scanned(store, src, use)
    assert words in str(caught.value)
    assert rows(store) == before
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # every scout was waited for


def test_a_run_whose_scout_fails_scans_in_one_process_instead(
    two_stores: tuple[Path, Datastore, Datastore],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What the run does with a ScoutError: says so, and scans here."""
    src, alone, store = two_stores
    change_tree(src, random.Random(8))
    use = spans_of(store, 2, monkeypatch)
    monkeypatch.setattr(scouts, "_scout", failing_scout("kill"))
    job = store.job_id("job", "job", NOW)
    scanner = scan.Scanner(
        os.fsencode(src), lambda o, g: store.apply_scan_batch(job, o, g), workers=4
    )
    work = scouts.ScoutJob(store, job, os.fsencode(src), None, 2)
    assert job_module._scan_by_scouts(work, use, scanner, True) is None
    assert "scanning in one process instead" in caplog.text
    scanned(store, src, None)  # what scan_job then does
    scanned(alone, src, None)
    assert rows(store) == rows(alone)


def test_no_process_to_spare_means_no_scouts_and_nothing_left_open(
    two_stores: tuple[Path, Datastore, Datastore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src, _, store = two_stores
    use = spans_of(store, 3, monkeypatch)
    forks = 0
    real_fork = os.fork

    def fork_once() -> int:  # the second fork meets a process limit
        nonlocal forks
        forks += 1
        if forks > 1:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real_fork()

    before = open_pipes()
    monkeypatch.setattr(os, "fork", fork_once)
    group = scouts.Scouts(scouts.ScoutJob(store, 1, os.fsencode(src), None, 2))
    with pytest.raises(scouts.NoScouts, match="temporarily unavailable"):
        group.start(use)
    assert group.scouts == []
    assert open_pipes() == before
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # the one started was killed and waited for
    assert store.count_files(1) > 0  # the datastore is open again


def open_pipes() -> int:
    """How many of this process's descriptors are pipes."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        # (the listing's own descriptor is closed by the time it is read)
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")
    return count


def test_scouts_only_where_they_pay(
    two_stores: tuple[Path, Datastore, Datastore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, _, store = two_stores
    job = store.job_id("job", "job", NOW)
    reader = store.reader()
    try:
        monkeypatch.delenv(scouts.SCOUTS_VARIABLE, raising=False)
        monkeypatch.setattr(scouts, "_cores", lambda: 2)
        alone = scouts._alone
        monkeypatch.setattr(scouts, "_alone", lambda: True)
        # A few hundred files: fewer than SCOUT_MIN_FILES, one process.
        assert scouts.scout_spans(store, job, 16, reader) == []
        monkeypatch.setattr(scouts, "SCOUT_MIN_FILES", 10)
        assert len(scouts.scout_spans(store, job, 16, reader)) == 2
        assert scouts.scout_spans(store, job, 1, reader) == []  # SCAN_THREADS = 1
        monkeypatch.setattr(scouts, "_cores", lambda: 1)
        assert scouts.scout_spans(store, job, 16, reader) == []
        monkeypatch.setattr(scouts, "_cores", lambda: 8)
        assert len(scouts.scout_spans(store, job, 16, reader)) == scouts.MAX_SCOUTS
        monkeypatch.setattr(scouts, "_alone", alone)
        stop = threading.Event()
        other = threading.Thread(target=stop.wait)
        other.start()
        try:  # a fork would copy whatever lock that thread holds
            assert scouts.scout_spans(store, job, 16, reader) == []
        finally:
            stop.set()
            other.join()
    finally:
        reader.close()
