"""Open the datastore: create or check its schema, move a damaged one aside.

The header, schema and version are checked at every open, ``PRAGMA
quick_check`` at most once a day. A file that fails them is moved aside (never
deleted) by :func:`move_aside`, so the caller can start afresh and keep the
old file for a bug report. Only such a file: one that is busy, or on a full
or failing disk, is healthy, and the error says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from globus_auto.datastore import schema
from globus_auto.datastore.connection import (
    NotADatastore,
    StateDiskError,
    configure,
    connect,
    datastore_error,
    disk_errors,
    is_corruption,
)
from globus_auto.datastore.records import ts_text
from globus_auto.datastore.schema import SCHEMA_VERSION
from globus_auto.datastore.store import Datastore
from globus_auto.errors import DatastoreError
from globus_auto.files import ensure_private_dir

DATASTORE_NAME = "datastore"
DRY_RUN_PREFIX = "dry-run-"  # then the process id, "-" and mkdtemp's letters
STALE_COPY_AGE = 24 * 3600.0  # seconds; an old-style copy's age past which it goes
# How often opening the datastore runs PRAGMA quick_check (see _initialise).
INTEGRITY_CHECK_EVERY = timedelta(days=1)


def datastore_path(state_dir: Path) -> Path:
    return state_dir / DATASTORE_NAME


def open_datastore(state_dir: Path, now: datetime) -> Datastore:
    """Open (creating if needed) the datastore in ``state_dir``.

    A file that is damaged or not a datastore of a known schema raises
    :class:`CorruptDatastore`; the caller moves it aside with
    :func:`move_aside` and opens a fresh one. A full or failing disk raises
    :class:`StateDiskError`, and any other failure (busy, read-only) a
    :class:`DatastoreError`: the file is healthy and stays where it is.
    """
    path = datastore_path(state_dir)
    with disk_errors(state_dir):
        ensure_private_dir(state_dir)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    try:
        conn = connect(path)
    except sqlite3.Error as exc:
        raise datastore_error(exc, path, "open") from exc
    try:
        _initialise(conn, now)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if is_corruption(exc):
            raise CorruptDatastore(path, str(exc)) from exc
        raise datastore_error(exc, path, "open") from exc
    return Datastore(path, conn)


class CorruptDatastore(DatastoreError):
    """The datastore file exists but cannot be used."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"the datastore {path} is unreadable or corrupt ({reason})")
        self.file = path
        self.reason = reason


def _initialise(conn: sqlite3.Connection, now: datetime) -> None:
    configure(conn)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        _check_schema(conn)
        schema.create(conn)
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
        if conn.in_transaction:  # SQLITE_FULL may have rolled it back already
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    for suffix in ("-wal", "-shm"):
        side = Path(str(_db_path(conn)) + suffix)
        if side.exists() and side.stat().st_mode & 0o077:
            side.chmod(0o600)


def _check_schema(conn: sqlite3.Connection) -> None:
    """Refuse a file that is not a datastore of this or an upgradable version
    (an empty one is new); upgrade an earlier one."""
    tables = {
        r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    if "meta" in tables:
        row = conn.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'"
        ).fetchone()
        try:
            version = int(row[0]) if row else 0
        except ValueError:
            raise NotADatastore(f"schema version {row[0]!r} is no number") from None
        schema.upgrade(conn, version)  # raises for a version it cannot upgrade
    elif tables:
        raise NotADatastore("not a globus-auto datastore")


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
        raise NotADatastore(f"integrity check failed: {check}")
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
    deleted with that folder afterwards; a stop signal unwinds to here too
    (:mod:`globus_auto.engine.crash`). The folder's name holds the process
    id, so that the copy of a dry run killed outright (SIGKILL, a power cut)
    is deleted by the next dry run.
    """
    remove_stale_copies(store.state_dir)
    with disk_errors(store.state_dir):
        folder = Path(
            tempfile.mkdtemp(
                prefix=f"{DRY_RUN_PREFIX}{os.getpid()}-", dir=store.state_dir
            )
        )
    try:
        store.copy_to(datastore_path(folder))
        try:
            copy = open_datastore(folder, now)
        except StateDiskError as exc:  # the folder to free is the state folder
            raise StateDiskError(store.state_dir, exc.detail, exc.full) from exc
        copy.state_dir = store.state_dir
        try:
            yield copy
        finally:
            copy.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def remove_stale_copies(state_dir: Path) -> list[Path]:
    """Delete the dry-run copies in ``state_dir`` whose process is gone;
    returns them.

    A copy from before its folder held a process id (``dry-run-XXXXXXXX``) is
    deleted once it is a day old: no dry run lasts that long.
    """
    removed = []
    for folder in state_dir.glob(f"{DRY_RUN_PREFIX}*"):
        pid = _copy_owner(folder.name)
        stale = _age(folder) > STALE_COPY_AGE if pid is None else not _alive(pid)
        if stale and folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _copy_owner(name: str) -> int | None:
    owner = name[len(DRY_RUN_PREFIX) :].partition("-")
    return int(owner[0]) if owner[1] and owner[0].isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process of that number
        return True
    return True


def _age(path: Path) -> float:
    try:
        return time.time() - path.lstat().st_mtime
    except OSError:
        return 0.0
