"""The scan against a real temporary tree and a real datastore.

Every test runs twice (the ``walk_threads`` fixture): with the serial walk
(SCAN_THREADS = 1) and with the parallel one, its threads on from the start.
"""

from __future__ import annotations

import codecs
import os
import pickle
import shutil
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from globus_auto.datastore.opening import open_datastore
from globus_auto.datastore.records import StoredFile
from globus_auto.datastore.store import Datastore
from globus_auto.engine import walk_parallel
from globus_auto.engine.scan import Scanner, ScanSummary, check_source, merge
from globus_auto.engine.walk import Entry, exclude_matcher
from globus_auto.errors import SourceError

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
Result = TypeVar("Result")
THREADS = 1  # set by the walk_threads fixture for each test


@pytest.fixture(autouse=True, params=[1, 4], ids=["serial", "parallel"])
def walk_threads(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> int:
    """SCAN_THREADS for the test; the parallel walk's threads on at once."""
    monkeypatch.setattr(sys.modules[__name__], "THREADS", request.param)
    monkeypatch.setenv(walk_parallel.PARALLEL_VARIABLE, "1")
    return int(request.param)


@pytest.fixture
def store(tmp_path: Path) -> Datastore:
    return open_datastore(tmp_path / "state", NOW)


def scan(store: Datastore, root: Path, exclude: tuple[str, ...] = ()) -> ScanSummary:
    job = store.job_id("job", "job", NOW)
    reader = store.reader()
    try:
        scanner = Scanner(
            os.fsencode(root),
            lambda observed, gone: store.apply_scan_batch(job, observed, gone),
            workers=THREADS,
        )
        return scanner.run(
            walk_parallel.walk_tree(
                os.fsencode(root), exclude_matcher(exclude), THREADS
            ),
            store.iter_stored(job, reader),
        )
    finally:
        reader.close()


def pending(store: Datastore) -> dict[bytes, bytes]:
    job = store.job_id("job", "job", NOW)
    return {f.path: f.digest for f in store.pending_files(job)}


def test_a_whole_second_mtime_from_just_now_is_read_again_next_run(
    tmp_path: Path, store: Datastore
) -> None:
    """On whole-second filesystems (NFSv3, some Lustre) a same-size rewrite
    within the second keeps the stat; such a file is read again next run."""
    src = tmp_path / "src"
    make_tree(src, {"fresh": b"1", "old": b"2"})
    second = time.time_ns() // 1_000_000_000 * 1_000_000_000
    os.utime(src / "fresh", ns=(second, second))
    os.utime(src / "old", ns=(second - 60_000_000_000, second - 60_000_000_000))
    scan(store, src)
    again = scan(store, src)
    assert again.hashed_files == 1  # "fresh" only
    assert set(pending(store)) == {b"fresh", b"old"}  # its digest still counts


def make_tree(root: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def test_first_scan_reads_everything_and_digests_are_blake3(
    tmp_path: Path, store: Datastore
) -> None:
    src = tmp_path / "src"
    make_tree(src, {"a.txt": b"alpha", "d/b.bin": b"beta" * 1000, "d/e/c": b""})
    summary = scan(store, src)
    assert (summary.files, summary.new, summary.hashed_files) == (3, 3, 3)
    assert pending(store) == {
        b"a.txt": blake3.blake3(b"alpha").digest(),
        b"d/b.bin": blake3.blake3(b"beta" * 1000).digest(),
        b"d/e/c": blake3.blake3(b"").digest(),
    }


def test_unchanged_files_are_not_read_again(tmp_path: Path, store: Datastore) -> None:
    src = tmp_path / "src"
    make_tree(src, {"a": b"1", "b/c": b"2"})
    scan(store, src)
    summary = scan(store, src)
    assert (summary.files, summary.hashed_files, summary.new, summary.changed) == (
        2,
        0,
        0,
        0,
    )


def test_changed_new_and_deleted_files(tmp_path: Path, store: Datastore) -> None:
    src = tmp_path / "src"
    make_tree(src, {"a": b"1", "b/c": b"2", "z": b"3"})
    scan(store, src)
    (src / "b/c").write_bytes(b"two")
    (src / "b/new").write_bytes(b"new")
    (src / "z").unlink()
    summary = scan(store, src)
    assert (summary.changed, summary.new, summary.gone, summary.hashed_files) == (
        1,
        1,
        1,
        2,
    )
    assert set(pending(store)) == {b"a", b"b/c", b"b/new"}


def test_large_file_hash_matches_blake3(tmp_path: Path, store: Datastore) -> None:
    src = tmp_path / "src"
    content = os.urandom(9 << 20)
    make_tree(src, {"big": content})
    scan(store, src)
    assert pending(store)[b"big"] == blake3.blake3(content).digest()


def test_exclude_matches_files_and_directories(
    tmp_path: Path, store: Datastore
) -> None:
    src = tmp_path / "src"
    make_tree(src, {"keep": b"k", "x.tmp": b"t", "cache/a": b"c", "d/y.tmp": b"t"})
    scan(store, src, exclude=("*.tmp", "cache"))
    assert set(pending(store)) == {b"keep"}


def test_special_files_and_bad_names_are_problems_not_failures(
    tmp_path: Path, store: Datastore
) -> None:
    src = tmp_path / "src"
    make_tree(src, {"ok": b"fine"})
    os.mkfifo(src / "fifo")
    (src / "link").symlink_to("/etc/passwd")
    (src / "loop").symlink_to(src)
    os.makedirs(os.fsencode(src) + b"/bad\xffdir")
    (Path(os.fsdecode(os.fsencode(src) + b"/bad\xffdir")) / "inner").write_bytes(b"x")
    with open(os.fsencode(src) + b"/name\nwith-newline", "wb") as f:
        f.write(b"n")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "sock"))
    try:
        summary = scan(store, src)
    finally:
        sock.close()
    assert set(pending(store)) == {b"ok"}
    problems = dict(summary.problems)
    assert "FIFO" in problems[b"fifo"]
    assert "symbolic link" in problems[b"link"]
    assert "symbolic link" in problems[b"loop"]
    assert "socket" in problems[b"sock"]
    assert "UTF-8" in problems[b"bad\xffdir"]
    assert "line break" in problems[b"name\nwith-newline"]
    job = store.job_id("job", "job", NOW)
    assert store.count_problems(job) == 6
    # A second scan neither re-reports as new nor rewrites them.
    again = scan(store, src)
    assert again.hashed_files == 0


NOBODY = 65534  # uid and gid of nobody/nogroup


def test_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    """Root reads every file, so as root the scan runs in a child as nobody, on
    a tree and a datastore under a fresh folder in /tmp that nobody owns."""
    if os.geteuid() != 0:
        problems, sent = scan_unreadable(tmp_path)
    else:
        base = Path(tempfile.mkdtemp(dir="/tmp"))
        try:
            os.chown(base, NOBODY, NOBODY)
            problems, sent = in_child_as(NOBODY, lambda: scan_unreadable(base))
        finally:
            shutil.rmtree(base)
    assert "cannot be read" in problems[b"secret"]
    assert sent == {b"ok"}


def scan_unreadable(base: Path) -> tuple[dict[bytes, str], set[bytes]]:
    """Scan a tree under ``base`` with one 000 file; its problems and pending."""
    src = base / "src"
    make_tree(src, {"ok": b"fine", "secret": b"s"})
    (src / "secret").chmod(0)
    store = open_datastore(base / "state", NOW)
    summary = scan(store, src)
    return dict(summary.problems), set(pending(store))


def in_child_as(user: int, work: Callable[[], Result]) -> Result:
    """``work()``'s result, computed in a forked child running as ``user``."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        os.close(read_end)
        code = 1
        try:
            # The stdlib may be unreadable by ``user`` (here it lives under
            # /root): load the codec the scan's problem log lines use first.
            codecs.lookup("unicode_escape")
            os.setgroups([])
            os.setgid(user)
            os.setuid(user)
            result: object = ("ok", work())
            code = 0
        except BaseException:
            result = ("error", traceback.format_exc())
        finally:
            with os.fdopen(write_end, "wb") as out:
                pickle.dump(result, out)
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as incoming:
        outcome, value = pickle.load(incoming)
    os.waitpid(pid, 0)
    assert outcome == "ok", value
    return value  # type: ignore[no-any-return]


def test_missing_source_and_empty_source_with_tracked_files(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        check_source(os.fsencode(tmp_path / "nope"), 0)
    empty = tmp_path / "empty"
    empty.mkdir()
    check_source(os.fsencode(empty), 0)
    with pytest.raises(SourceError, match="unmounted"):
        check_source(os.fsencode(empty), 12)


names = st.text(
    alphabet=st.sampled_from(["a", "b", ".", "-", "0", "é", "Z", "_"]),
    min_size=1,
    max_size=4,
).filter(lambda n: n not in (".", ".."))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(names, min_size=1, max_size=3), min_size=1, max_size=15))
def test_walk_order_is_byte_order_of_paths(
    tmp_path_factory: pytest.TempPathFactory, paths: list[list[str]]
) -> None:
    root = tmp_path_factory.mktemp("tree")
    made: set[bytes] = set()
    for parts in paths:
        target = root.joinpath(*parts)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.write_bytes(b"x")
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            continue
    for dirpath, _, files in os.walk(os.fsencode(root)):
        for name in files:
            made.add(os.path.relpath(os.path.join(dirpath, name), os.fsencode(root)))
    walked = [e.path for e in walk_parallel.walk_tree(os.fsencode(root), None, THREADS)]
    assert walked == sorted(made)


def _stored(path: bytes) -> StoredFile:
    return StoredFile(path, 1, 1, 1, 1, True)


@given(
    st.sets(st.binary(min_size=1, max_size=3)),
    st.sets(st.binary(min_size=1, max_size=3)),
)
def test_merge_pairs_every_path_once(disk: set[bytes], rows: set[bytes]) -> None:
    entries = iter([Entry(p, 2, 2, 2, 2) for p in sorted(disk)])
    stored = iter([_stored(p) for p in sorted(rows)])
    pairs = list(merge(entries, stored))
    new = {e.path for e, r in pairs if e is not None and r is None}
    gone = {r.path for e, r in pairs if e is None and r is not None}
    changed = {e.path for e, r in pairs if e is not None and r is not None}
    assert new == disk - rows
    assert gone == rows - disk
    assert changed == disk & rows  # stat differs in every common path here
