"""The datastore's connection: transactions, a reader beside them, a copy.

The connection runs in autocommit mode (``isolation_level=None``) and every
logical step is one explicit ``BEGIN IMMEDIATE`` transaction, so a crash at any
point leaves either the whole step or none of it. Imports the errors only.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from globus_auto.errors import DatastoreError


class Connection:
    """The SQLite connection of a datastore and its explicit transactions."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    # -- plumbing ----------------------------------------------------------

    def close(self) -> None:
        self._conn.close()

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
            raise DatastoreError(
                f"cannot copy the datastore {self.path} into {target}: {exc}; "
                "check the disk has free space"
            ) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back if the body raises."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise DatastoreError(
                f"cannot write the datastore {self.path}: {exc}"
            ) from exc
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise DatastoreError(
                    f"cannot write the datastore {self.path}: {exc}; "
                    "check the disk has free space"
                ) from exc

    def check_integrity_at_next_open(self) -> None:
        """Have the next open run PRAGMA quick_check (best effort: the file
        may be too damaged to write)."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("DELETE FROM meta WHERE key = 'integrity_checked'")

    def reader(self) -> sqlite3.Connection:
        """A second connection for long reads that run beside writes (WAL)."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
        return conn
