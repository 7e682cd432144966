"""The state folder's disk and its datastore, on real SQLite and real files.

A full or failing disk is not a damaged file: only SQLite's CORRUPT and
NOTADB (and our own schema check) move a datastore aside. The "disk full"
alert's memory lives in an empty file's modification time. A dry run's copy
left by a killed process is removed by the next. (The end-to-end case, on a
real full tmpfs, is tests/e2e/test_full_disk.py.)
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from disk_fixtures import fill, mount_tmpfs, unmount

from globus_auto.alerts.policy import AlertRecord
from globus_auto.alerts.store import FallbackAlertStore, record_to_dict
from globus_auto.datastore.connection import (
    StateDiskError,
    datastore_error,
    disk_error,
    is_corruption,
)
from globus_auto.datastore.opening import (
    DRY_RUN_PREFIX,
    CorruptDatastore,
    datastore_path,
    open_datastore,
    remove_stale_copies,
)
from globus_auto.datastore.records import RunRecord
from globus_auto.engine import diskfull
from globus_auto.engine.report import JobReport
from globus_auto.errors import DatastoreError
from globus_auto.problems import Kind, Problem
from globus_auto.settings.model import Settings
from globus_auto.settings.source import load_settings

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def sqlite_full() -> sqlite3.Error:
    """A real SQLITE_FULL: a database capped at two pages, then filled."""
    conn = sqlite3.connect(":memory:")
    conn.execute("PRAGMA max_page_count = 2")
    try:
        conn.execute("CREATE TABLE t (x)")
        with pytest.raises(sqlite3.Error) as caught:
            for _ in range(100):
                conn.execute("INSERT INTO t VALUES (?)", (b"x" * 4096,))
        return caught.value
    finally:
        conn.close()


def sqlite_busy(tmp_path: Path) -> sqlite3.Error:
    """A real SQLITE_BUSY: another connection holds the write lock."""
    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with pytest.raises(sqlite3.Error) as caught:
            other.execute("INSERT INTO t VALUES (1)")
        return caught.value
    finally:
        other.close()
        holder.close()


def test_sqlite_full_and_enospc_are_a_full_disk(tmp_path: Path) -> None:
    for error in (sqlite_full(), OSError(errno.ENOSPC, "No space left on device")):
        disk = disk_error(error, tmp_path)
        assert isinstance(disk, StateDiskError) and disk.full
        assert disk.kind is Kind.STATE_DISK
        assert f"the disk holding the state folder {tmp_path} is full" in str(disk)
        assert f"df -h {tmp_path}" in str(disk)
    failing = disk_error(OSError(errno.EIO, "Input/output error"), tmp_path)
    assert failing is not None and not failing.full
    assert "has I/O errors" in str(failing)


def test_other_errors_are_neither_disk_nor_corruption(tmp_path: Path) -> None:
    busy = sqlite_busy(tmp_path)
    assert disk_error(busy, tmp_path) is None
    assert not is_corruption(busy)
    assert not is_corruption(sqlite_full())
    assert disk_error(OSError(errno.EACCES, "Permission denied"), tmp_path) is None
    plain = datastore_error(busy, tmp_path / "datastore", "write")
    assert "cannot write the datastore" in str(plain)
    assert not isinstance(plain, StateDiskError)


def test_a_file_that_is_not_a_datastore_is_corruption(tmp_path: Path) -> None:
    datastore_path(tmp_path).write_bytes(b"not a database at all" * 100)
    with pytest.raises(CorruptDatastore):
        open_datastore(tmp_path, NOW)


def without_code(error: sqlite3.Error) -> sqlite3.Error:
    """``error`` as Python 3.10 raises it: the same message, no
    ``sqlite_errorcode`` (that attribute is new in 3.11)."""
    return type(error)(str(error))


def test_errors_without_a_sqlite_code_are_told_apart_by_message(
    tmp_path: Path,
) -> None:
    full = without_code(sqlite_full())
    assert getattr(full, "sqlite_errorcode", None) is None
    disk = disk_error(full, tmp_path)
    assert disk is not None and disk.full
    assert not is_corruption(full)
    busy = without_code(sqlite_busy(tmp_path))
    assert disk_error(busy, tmp_path) is None and not is_corruption(busy)
    damaged = sqlite3.DatabaseError("database disk image is malformed")
    assert is_corruption(damaged)
    assert not is_corruption(sqlite3.ProgrammingError("Cannot operate on a closed"))


def test_a_datastore_of_a_newer_globus_auto_stays_where_it_is(tmp_path: Path) -> None:
    open_datastore(tmp_path, NOW).close()
    path = datastore_path(tmp_path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(DatastoreError) as caught:
        open_datastore(tmp_path, NOW)
    assert not isinstance(caught.value, CorruptDatastore)
    assert "written by a newer globus-auto" in str(caught.value)
    assert "upgrade globus-auto" in str(caught.value)
    assert path.exists()
    assert not [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]


def test_a_write_the_datastore_refuses_is_a_disk_error_and_loses_nothing(
    tmp_path: Path,
) -> None:
    store = open_datastore(tmp_path, NOW)
    record = RunRecord("job", NOW, NOW, "ok", "", 1, 10)
    store.record_run(record)
    pages = store.reader().execute("PRAGMA page_count").fetchone()[0]
    # Why the private connection: the cap is per connection, and it is the
    # one SQLite way to make a real SQLITE_FULL without a full disk.
    store._conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StateDiskError), store.transaction() as conn:
        conn.execute("INSERT INTO meta VALUES ('filler', ?)", ("x" * 100_000,))
    store.close()
    again = open_datastore(tmp_path, NOW)
    try:
        filler = "SELECT count(*) FROM meta WHERE key = 'filler'"
        assert again.reader().execute(filler).fetchone()[0] == 0
        assert again.reader().execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    finally:
        again.close()


def dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_copies_of_dead_dry_runs_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / f"{DRY_RUN_PREFIX}{dead_pid()}-abc"
    mine = tmp_path / f"{DRY_RUN_PREFIX}{os.getpid()}-def"
    old_style, young_style = tmp_path / "dry-run-k3j_x9q2", tmp_path / "dry-run-zz"
    for folder in (dead, mine, old_style, young_style):
        folder.mkdir()
        (folder / "datastore").write_bytes(b"copy")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old_style, (two_days_ago, two_days_ago))
    removed = remove_stale_copies(tmp_path)
    assert sorted(removed) == sorted([dead, old_style])
    assert mine.exists() and young_style.exists()


def settings_in(tmp_path: Path) -> Settings:
    config = tmp_path / "config.py"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(
            "CLIENT_ID = '00000000-0000-4000-8000-000000000001'\n"
            "SRC_ID = '00000000-0000-4000-8000-000000000002'\n"
            "DST_ID = '00000000-0000-4000-8000-000000000003'\n"
            f"SRC_DIR = '/data'\nSRC_LOCAL_DIR = {str(tmp_path)!r}\n"
            f"DST_DIR = '/backup'\nSTATE_DIR = {str(tmp_path / 'state')!r}\n"
            "ALERT_REPEAT_HOURS = 24\n"
        )
    return load_settings(config, environ={})


def disk_report() -> JobReport:
    report = JobReport("default", outcome="failed", exit_code=1)
    report.problems.append(
        Problem("default", Kind.STATE_DISK, "full", "it is full", "free it", "later")
    )
    report.problems.append(
        Problem("default", Kind.ENDPOINT_NOT_READY, "no", "offline", "wait", "later")
    )
    report.cleared.add(Kind.UNEXPECTED)
    return report


def test_on_a_full_disk_only_its_alert_goes_out_once_per_repeat(
    tmp_path: Path,
) -> None:
    settings = settings_in(tmp_path)
    state = settings.state_dir
    state.mkdir()
    diskfull.prepare_mark(state)
    assert diskfull.mailed_at(state) is None
    (first,) = diskfull.disk_only(settings, [disk_report()], NOW)
    assert [p.kind for p in first.problems] == [Kind.STATE_DISK]
    assert not first.cleared and first.exit_code == 1

    assert diskfull.note_mailed(state, NOW)
    assert diskfull.mailed_at(state) == NOW
    soon = NOW + timedelta(hours=23)
    (quiet,) = diskfull.disk_only(settings, [disk_report()], soon)
    assert quiet.problems == [] and quiet.exit_code == 1  # the heartbeat still fails
    later = NOW + timedelta(hours=25)
    (again,) = diskfull.disk_only(settings, [disk_report()], later)
    assert [p.kind for p in again.problems] == [Kind.STATE_DISK]

    diskfull.disk_has_room(state)
    assert diskfull.mailed_at(state) is None


def test_a_full_disk_keeps_the_alert_state_and_the_datastore_as_they_were(
    tmp_path: Path,
) -> None:
    """The atomic writer leaves the old file (and no temporary one), and the
    datastore keeps every committed step, when the disk fills up."""
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "1m")
    try:
        alerts = FallbackAlertStore(disk)
        alerts.put_alert("job", "datastore", {"kept": True})
        store = open_datastore(disk, NOW)
        store.record_run(RunRecord("job", NOW, NOW, "ok", "", 1, 10))
        fill(disk)
        with pytest.raises(OSError):
            alerts.put_alert("job", "other", {"big": "x" * 100_000})
        committed = 1
        with pytest.raises(StateDiskError):
            for n in range(1000):
                store.record_run(RunRecord("job", NOW, NOW, "x" * 4000, "", n, n))
                committed += 1
        store.close()
        (disk / "filler").unlink()
        assert alerts.alert_rows() == [{"kept": True}]
        assert sorted(p.name for p in disk.iterdir() if p.name.startswith(".")) == []
        again = open_datastore(disk, NOW)
        try:
            runs = again.reader().execute("SELECT count(*) FROM runs").fetchone()[0]
        finally:
            again.close()
        assert runs == committed  # each step whole or not at all
    finally:
        unmount(disk)


def test_alerts_that_cannot_be_written_are_kept_for_the_run_and_noted(
    tmp_path: Path,
) -> None:
    diskfull.prepare_mark(tmp_path)
    alerts = diskfull.DiskFullAlerts(tmp_path, None)  # nothing can be written
    problem = Problem("job", Kind.STATE_DISK, "full", "it is full", "free it", "")
    record = record_to_dict(AlertRecord(problem, NOW, sent={"mail": NOW}))
    alerts.put_alert("job", Kind.STATE_DISK.value, record)
    assert alerts.alert_rows() == [record]  # later steps of the run see it
    assert alerts.alert_rows("other") == []
    assert diskfull.mailed_at(tmp_path) == NOW
    alerts.put_alert("job", Kind.STATE_DISK.value, None)
    assert alerts.alert_rows() == []
