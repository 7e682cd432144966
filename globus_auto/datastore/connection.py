"""The datastore's connection: transactions, a reader beside them, a copy.

The connection runs in autocommit mode (``isolation_level=None``) and every
logical step is one explicit ``BEGIN IMMEDIATE`` transaction, so a crash at any
point leaves either the whole step or none of it. A write the disk refuses
(full, failing) is :class:`StateDiskError`, never taken for a damaged file:
:func:`datastore_error` tells them apart. Imports the errors and kinds only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from globus_auto.errors import DatastoreError
from globus_auto.problems import Kind

# SQLite's primary result codes (sqlite.org/rescode.html): the low byte of an
# extended code such as SQLITE_IOERR_SHMSIZE (4874), which a full tmpfs gives.
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_NOTADB = 26
# What the disk says when it is full (or over quota), or failing.
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
FAILING_ERRNOS = frozenset({errno.EIO})
# Below this much free space a SQLite I/O error is taken for a full disk: it
# cannot even size its shared-memory file (-shm, 32 KiB) then.
NEARLY_FULL = 1024 * 1024


class StateDiskError(DatastoreError):
    """The disk holding the state folder is full or failing.

    Not corruption: nothing committed is lost (SQLite's transactions, the
    atomic writes of the other files), and the run that finds room again
    carries on where the last committed step left off.
    """

    kind = Kind.STATE_DISK

    def __init__(self, folder: Path, detail: str, full: bool) -> None:
        what = "is full" if full else "has I/O errors"
        fix = (
            f"free space there (df -h {folder})"
            if full
            else "check it (dmesg, smartctl) or move STATE_DIR to a sound disk"
        )
        super().__init__(
            f"the disk holding the state folder {folder} {what} ({detail}); "
            f"{fix}, then run again: nothing already recorded is lost"
        )
        self.folder = folder
        self.detail = detail
        self.full = full


class NotADatastore(sqlite3.DatabaseError):
    """Our own check refused the file: not a globus-auto datastore, a schema
    this version cannot read as one, or a failed integrity check. Such a
    file is moved aside (never deleted)."""


class NewerDatastore(sqlite3.DatabaseError):
    """The datastore was written by a newer globus-auto. Healthy, and not ours
    to move aside: it knows the tasks in flight."""


# SQLite's messages for its primary codes (sqlite3.c, sqlite3ErrStr): how
# Python 3.10, whose exceptions carry no sqlite_errorcode, tells them apart.
_CODE_OF_MESSAGE = (
    ("database or disk is full", SQLITE_FULL),
    ("disk i/o error", SQLITE_IOERR),
    ("database disk image is malformed", SQLITE_CORRUPT),
    ("file is not a database", SQLITE_NOTADB),
    ("file is encrypted or is not a database", SQLITE_NOTADB),
)


def sqlite_code(exc: BaseException) -> int | None:
    """The primary SQLite result code of ``exc``, or None when SQLite did not
    raise it (or, on Python 3.10, when its message is none of the codes we
    act on)."""
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF
    message = str(exc).lower()
    return next((c for text, c in _CODE_OF_MESSAGE if text in message), None)


def disk_error(exc: BaseException, folder: Path) -> StateDiskError | None:
    """``exc`` as a :class:`StateDiskError` when the disk under ``folder``
    caused it (an OSError or a SQLite error), else None."""
    if isinstance(exc, StateDiskError):
        return exc
    if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS | FAILING_ERRNOS:
        detail = exc.strerror or str(exc)
        return StateDiskError(folder, detail, exc.errno in FULL_ERRNOS)
    code = sqlite_code(exc)
    if code == SQLITE_FULL:
        return StateDiskError(folder, str(exc), True)
    if code == SQLITE_IOERR:
        return StateDiskError(folder, str(exc), _nearly_full(folder))
    return None


@contextlib.contextmanager
def disk_errors(folder: Path) -> Iterator[None]:
    """For the body, an OSError of the disk under ``folder`` (full, failing)
    raises :class:`StateDiskError`; any other passes as it is."""
    try:
        yield
    except OSError as exc:
        disk = disk_error(exc, folder)
        if disk is None:
            raise
        raise disk from exc


def is_corruption(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says the file itself is damaged or not a datastore.

    Why so narrow: only such a file is moved aside. A busy, locked, read-only
    or full datastore is healthy, and moving it aside would forget what is in
    flight (a second task for the same files). An error raised by our own
    schema check is :class:`NotADatastore`; any other error without a SQLite
    code (a datastore of a newer globus-auto, an error Python raised) is not
    the file's fault.
    """
    code = sqlite_code(exc)
    if code is None:
        return isinstance(exc, NotADatastore)
    return code in (SQLITE_CORRUPT, SQLITE_NOTADB)


def datastore_error(
    exc: BaseException, path: Path, doing: str, state_dir: Path | None = None
) -> DatastoreError:
    """The error to raise when ``doing`` on the datastore ``path`` failed; a
    full disk is named by ``state_dir`` (default: the datastore's folder)."""
    folder = path.parent if state_dir is None else state_dir
    return disk_error(exc, folder) or DatastoreError(
        f"cannot {doing} the datastore {path}: {exc}"
    )


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL
    except OSError:
        return False


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the datastore ``path``, not yet :func:`configure`d."""
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def configure(conn: sqlite3.Connection) -> None:
    """The settings every one of the run's own connections has (the journal
    mode is the file's own). A file that is not a datastore may fail here."""
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")


class Connection:
    """The SQLite connection of a datastore and its explicit transactions."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        # The folder a full disk is reported for: a dry run's copy, in a
        # folder of its own, names the state folder it is in.
        self.state_dir = path.parent
        self._conn = conn

    # -- plumbing ----------------------------------------------------------

    def close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def closed(self) -> Iterator[None]:
        """Closed for the body, opened again after it (a process forked in the
        body starts with no connection of this one's)."""
        self._conn.close()
        try:
            yield
        finally:
            self._conn = connect(self.path)
            configure(self._conn)

    def copy_to(self, target: Path) -> None:
        """Copy this datastore into the new file ``target`` (0600).

        SQLite's backup API gives a consistent copy while others write.
        """
        os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        try:
            copy = sqlite3.connect(target)
            try:
                self._conn.backup(copy)
            finally:
                copy.close()
        except sqlite3.Error as exc:
            raise disk_error(exc, self.state_dir) or DatastoreError(
                f"cannot copy the datastore {self.path} into {target}: {exc}"
            ) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back if the body raises.

        A write the disk refuses, in the body or at the commit, raises
        :class:`StateDiskError`; other SQLite errors of the body pass as they are.
        """
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise datastore_error(exc, self.path, "write", self.state_dir) from exc
        try:
            yield self._conn
        except BaseException as exc:
            self._rollback()
            disk = disk_error(exc, self.state_dir)
            if disk is None or disk is exc:
                raise
            raise disk from exc
        else:
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise datastore_error(exc, self.path, "write", self.state_dir) from exc

    def _rollback(self) -> None:
        """Roll back what is open. Why guarded: after SQLITE_FULL, SQLite may
        have rolled back already, and a second error must not hide the first."""
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def check_integrity_at_next_open(self) -> None:
        """Have the next open run PRAGMA quick_check (best effort: the file
        may be too damaged to write)."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("DELETE FROM meta WHERE key = 'integrity_checked'")

    def reader(self) -> sqlite3.Connection:
        """A second connection for long reads that run beside writes (WAL)."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA query_only = ON")
        return conn
