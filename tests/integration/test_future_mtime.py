"""A file whose mtime lies in the future (a writer with a skewed clock),
against a real temporary tree and a real datastore."""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from globus_auto.datastore.opening import open_datastore
from globus_auto.datastore.store import Datastore
from globus_auto.engine.scan import Scanner, ScanSummary
from globus_auto.engine.walk import exclude_matcher, walk

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
SECOND = 1_000_000_000
HOUR = 3600 * SECOND


@pytest.fixture
def store(tmp_path: Path) -> Datastore:
    return open_datastore(tmp_path / "state", NOW)


def scan(store: Datastore, root: Path) -> ScanSummary:
    job = store.job_id("job", "job", NOW)
    reader = store.reader()
    try:
        scanner = Scanner(
            os.fsencode(root),
            lambda observed, gone: store.apply_scan_batch(job, observed, gone),
        )
        return scanner.run(
            walk(os.fsencode(root), exclude_matcher(())),
            store.iter_stored(job, reader),
        )
    finally:
        reader.close()


def pending(store: Datastore, cutoff: int | None = None) -> set[bytes]:
    job = store.job_id("job", "job", NOW)
    return {f.path for f in store.pending_files(job, cutoff)}


def whole_second_file(root: Path, name: str, mtime_ns: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    path.write_bytes(name.encode())
    when = mtime_ns // SECOND * SECOND
    os.utime(path, ns=(when, when))
    return path


def test_a_future_whole_second_mtime_is_kept_and_not_read_again(
    tmp_path: Path, store: Datastore, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "src"
    whole_second_file(src, "ahead", time.time_ns() + HOUR)
    whole_second_file(src, "fresh", time.time_ns())
    with caplog.at_level(logging.WARNING):
        scan(store, src)
        again = scan(store, src)
    assert again.hashed_files == 1  # "fresh" (racily clean) only
    warnings = [r.getMessage() for r in caplog.records if "future" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith("ahead has a modification time 3")


def test_within_the_tolerance_a_whole_second_mtime_is_still_racy(
    tmp_path: Path, store: Datastore, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "src"
    whole_second_file(src, "barely", time.time_ns() + SECOND)
    with caplog.at_level(logging.WARNING):
        scan(store, src)
        again = scan(store, src)
    assert again.hashed_files == 1  # read again: a same-second rewrite is caught
    assert not [r for r in caplog.records if "future" in r.getMessage()]


def test_min_age_measures_a_future_mtime_by_the_ctime(
    tmp_path: Path, store: Datastore
) -> None:
    src = tmp_path / "src"
    ahead = whole_second_file(src, "ahead", time.time_ns() + HOUR)
    old = whole_second_file(src, "old", time.time_ns() - HOUR)
    scan(store, src)
    changed = max(ahead.stat().st_ctime_ns, old.stat().st_ctime_ns)
    # Just before the files' last change they are too young; just after, the
    # future mtime no longer holds "ahead" back.
    assert pending(store, changed - HOUR - 2 * SECOND) == set()
    assert pending(store, changed - SECOND) == {b"old"}
    assert pending(store, changed) == {b"ahead", b"old"}
    assert pending(store) == {b"ahead", b"old"}
