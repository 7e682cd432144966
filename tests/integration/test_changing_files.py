"""Files that change at every scan, on real SQLite (issue 15, item 9).

A file is changing once two scans in a row saw it changed (its stat differs,
or it changed while it was read and so has no digest); it stops changing at
the first whole scan that sees it unchanged. A new file, one changed once and
an unreadable one are not changing. One changed while read counts as waiting
although it has no digest (it used to show as "ok, 0 waiting"). A version-3
datastore gains the two columns on upgrade.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from old_datastores import stored_schema_version

from globus_auto.datastore import schema
from globus_auto.datastore.opening import datastore_path, open_datastore
from globus_auto.datastore.records import Observed
from globus_auto.datastore.store import Datastore
from globus_auto.engine.standing import job_standing
from globus_auto.settings.model import Job

T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)
JOB = Job(
    name="j",
    src_id="00000000-0000-0000-0000-00000000000a",
    src_dir="/data",
    src_local_dir=Path("/data"),
    dst_id="00000000-0000-0000-0000-00000000000b",
    dst_dir="/backup",
)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def store(tmp_path: Path) -> Datastore:
    return open_datastore(tmp_path / "state", T0)


def scan(store: Datastore, job: int, when: datetime, *seen: Observed) -> None:
    """One whole scan at ``when`` that saw ``seen`` new or changed."""
    store.apply_scan_batch(job, list(seen), [], when)
    store.end_scan(job, when)


def version(path: bytes, size: int) -> Observed:
    return Observed(path, size, size, size, 1, b"d%d" % size)


def mid_read(path: bytes) -> Observed:
    """Changed while it was read: no stat, no digest (engine/scan.py)."""
    return Observed(path, None, None, None, None, None)


def test_a_file_changed_at_two_scans_in_a_row_is_changing_until_one_sees_it_not(
    store: Datastore,
) -> None:
    job = store.job_id(JOB.identity, "j", T0)
    scan(store, job, at(0), version(b"log", 1), version(b"once", 1))
    assert store.count_changing(job) == (0, 0)  # new files are not changes
    scan(store, job, at(5), version(b"log", 2), version(b"once", 2))
    assert store.count_changing(job) == (0, 0)  # changed once: an edit
    scan(store, job, at(10), version(b"log", 3))
    assert store.count_changing(job) == (1, 0)
    assert store.changing_files(job) == [(b"log", at(5))]
    scan(store, job, at(15), version(b"log", 4))
    assert store.changing_files(job) == [(b"log", at(5))]  # since the first
    assert store.count_changing_since(job, at(5)) == (1, 4)
    assert store.count_changing_since(job, at(4)) == (0, 0)
    assert store.changing_files(job, since=at(4)) == []
    scan(store, job, at(20))  # unchanged: settled
    assert store.count_changing(job) == (0, 0)
    scan(store, job, at(25), version(b"log", 5))  # a fresh series starts anew
    scan(store, job, at(30), version(b"log", 6))
    assert store.changing_files(job) == [(b"log", at(25))]


def test_a_file_changed_while_read_at_every_scan_is_waiting_and_changing(
    store: Datastore,
) -> None:
    job = store.job_id(JOB.identity, "j", T0)
    for minute in (0, 5, 10):
        scan(store, job, at(minute), mid_read(b"live.log"))
    assert store.pending_totals(job) == (0, 0)  # no digest: never pending
    assert store.count_changing(job) == (1, 1)
    standing = job_standing(store, JOB)
    assert standing.waiting_files == 1
    assert standing.changing_files == 1


def test_an_unreadable_file_seen_at_every_scan_is_not_changing(
    store: Datastore,
) -> None:
    job = store.job_id(JOB.identity, "j", T0)
    unreadable = Observed(b"secret", None, None, None, None, None, "cannot be read")
    for minute in (0, 5, 10):
        scan(store, job, at(minute), unreadable)
    assert store.count_changing(job) == (0, 0)


def test_a_scan_without_its_time_leaves_the_series_alone(store: Datastore) -> None:
    job = store.job_id(JOB.identity, "j", T0)
    for minute, size in ((0, 1), (5, 2), (10, 3)):
        scan(store, job, at(minute), version(b"log", size))
    store.apply_scan_batch(job, [version(b"log", 4)], [])
    assert store.changing_files(job) == [(b"log", at(5))]


def test_a_version_3_datastore_gains_the_two_columns(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = open_datastore(state, T0)
    job = store.job_id(JOB.identity, "j", T0)
    scan(store, job, at(0), version(b"log", 1))
    store.close()
    path = datastore_path(state)
    conn = sqlite3.connect(path)
    with conn:  # back to what version 3 wrote
        conn.execute("DROP INDEX files_changed")
        conn.execute("ALTER TABLE files DROP COLUMN changing_since")
        conn.execute("ALTER TABLE files DROP COLUMN changed_at")
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    conn.close()
    store = open_datastore(state, T0)
    for minute, size in ((5, 2), (10, 3)):
        scan(store, job, at(minute), version(b"log", size))
    assert store.changing_files(job) == [(b"log", at(5))]
    store.close()
    assert stored_schema_version(path) == (str(schema.SCHEMA_VERSION),) == ("4",)
