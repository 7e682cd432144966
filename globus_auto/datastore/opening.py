"""Open the datastore: create or check its schema, move a damaged one aside.

The header, schema and version are checked at every open, ``PRAGMA
quick_check`` at most once a day. A file that fails them is moved aside (never
deleted) by :func:`move_aside`, so the caller can start afresh and keep the
old file for a bug report.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from globus_auto.datastore.records import ts_text
from globus_auto.datastore.store import Datastore
from globus_auto.errors import DatastoreError
from globus_auto.files import ensure_private_dir

SCHEMA_VERSION = 1
DATASTORE_NAME = "datastore"
# How often opening the datastore runs PRAGMA quick_check (see _initialise).
INTEGRITY_CHECK_EVERY = timedelta(days=1)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    identity TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    path BLOB NOT NULL,
    size INTEGER,
    mtime_ns INTEGER,
    ctime_ns INTEGER,
    inode INTEGER,
    digest BLOB,
    delivered BLOB,
    sending BLOB,
    problem TEXT,
    PRIMARY KEY (job, path)
) WITHOUT ROWID;
-- Queries name these partial indexes (INDEXED BY): without statistics the
-- planner prefers the primary key, which reads every row of the job, and a
-- run with nothing to send would cost a pass over the whole table.
CREATE INDEX IF NOT EXISTS files_pending ON files (job)
    WHERE digest IS NOT NULL AND delivered IS NOT digest;
CREATE INDEX IF NOT EXISTS files_problem ON files (job) WHERE problem IS NOT NULL;
CREATE TABLE IF NOT EXISTS tasks (
    submission_id TEXT PRIMARY KEY,
    job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    task_id TEXT,
    state TEXT NOT NULL,
    recursive INTEGER NOT NULL,
    files INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    created TEXT NOT NULL,
    submitted TEXT,
    globus_status TEXT,
    detail TEXT,
    settled TEXT
);
CREATE INDEX IF NOT EXISTS tasks_open ON tasks (job) WHERE state != 'settled';
CREATE TABLE IF NOT EXISTS alerts (
    job TEXT NOT NULL,
    kind TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (job, kind)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    files_sent INTEGER NOT NULL DEFAULT 0,
    bytes_sent INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_job ON runs (job, id);
"""


def datastore_path(state_dir: Path) -> Path:
    return state_dir / DATASTORE_NAME


def open_datastore(state_dir: Path, now: datetime) -> Datastore:
    """Open (creating if needed) the datastore in ``state_dir``.

    A file that is not a readable datastore of a known schema raises
    :class:`CorruptDatastore`; the caller moves it aside with
    :func:`move_aside` and opens a fresh one.
    """
    ensure_private_dir(state_dir)
    path = datastore_path(state_dir)
    fresh = not path.exists()
    if fresh:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise DatastoreError(f"cannot open the datastore {path}: {exc}") from exc
    try:
        _initialise(conn, now)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise CorruptDatastore(path, str(exc)) from exc
    return Datastore(path, conn)


class CorruptDatastore(DatastoreError):
    """The datastore file exists but cannot be used."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"the datastore {path} is unreadable or corrupt ({reason})")
        self.file = path
        self.reason = reason


def _initialise(conn: sqlite3.Connection, now: datetime) -> None:
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("BEGIN IMMEDIATE")
    try:
        _check_schema(conn)
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('created', ?)",
            (ts_text(now),),
        )
        _check_integrity_if_due(conn, now)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    for suffix in ("-wal", "-shm"):
        side = Path(str(_db_path(conn)) + suffix)
        if side.exists() and side.stat().st_mode & 0o077:
            side.chmod(0o600)


def _check_schema(conn: sqlite3.Connection) -> None:
    """Refuse a file that is not this version's datastore (an empty one is new)."""
    tables = {
        r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    if "meta" in tables:
        row = conn.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'"
        ).fetchone()
        version = int(row[0]) if row else 0
        if version != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"schema version {version}, this globus-auto uses {SCHEMA_VERSION}"
            )
    elif tables:
        raise sqlite3.DatabaseError("not a globus-auto datastore")


def _check_integrity_if_due(conn: sqlite3.Connection, now: datetime) -> None:
    """Run ``PRAGMA quick_check`` if the last one is a day old (or unknown).

    Why not at every open: it reads every page, 25 ms at 200,000 files and
    linear in them, a fifth of a no-change run's own cost. A file that is not a
    datastore, or of another schema, still fails at every open (reading
    ``sqlite_master`` and ``meta`` above); a page found damaged between checks
    fails the run that reads it as a datastore problem.
    """
    row = conn.execute(
        "SELECT value FROM meta WHERE key = 'integrity_checked'"
    ).fetchone()
    try:
        last = datetime.fromisoformat(str(row[0])) if row else None
    except ValueError:
        last = None
    if last is not None and timedelta(0) <= now - last < INTEGRITY_CHECK_EVERY:
        return
    check = conn.execute("PRAGMA quick_check").fetchone()
    if check is None or check[0] != "ok":
        raise sqlite3.DatabaseError(f"integrity check failed: {check}")
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('integrity_checked', ?)",
        (ts_text(now),),
    )


def _db_path(conn: sqlite3.Connection) -> str:
    row = conn.execute("PRAGMA database_list").fetchone()
    return str(row[2])


def move_aside(path: Path, now: datetime) -> Path:
    """Rename a corrupt datastore (and its WAL files) out of the way; never delete."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    path.rename(target)
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            side.rename(Path(str(target) + suffix))
    return target


@contextlib.contextmanager
def private_copy(store: Datastore, now: datetime) -> Iterator[Datastore]:
    """A throwaway copy of ``store``, opened as a normal datastore.

    Why: a dry run records what it scans, as a run does. On a copy those
    writes never hold the real datastore's write lock, which a cron run of
    another job would wait for, and they vanish at the end. The copy is taken
    into a 0700 folder beside the datastore, where there is room for it, and
    deleted with that folder afterwards.
    """
    folder = Path(tempfile.mkdtemp(prefix="dry-run-", dir=store.path.parent))
    try:
        store.copy_to(datastore_path(folder))
        copy = open_datastore(folder, now)
        try:
            yield copy
        finally:
            copy.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
