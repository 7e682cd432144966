"""Datastores as an earlier schema version left them, for the upgrade tests."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from globus_auto.datastore import schema


@contextmanager
def old_datastore(
    path: Path, files_table: str, version: int, created: datetime
) -> Iterator[sqlite3.Connection]:
    """Write a datastore at ``path`` (its folder made 0700) with today's
    tables but for ``files_table``, marked schema ``version``, holding job 1
    (identity ``identity``, name ``j``, created at ``created``).

    Yields the connection inside that one transaction, for the test's rows;
    then closes it and makes the file 0600.
    """
    path.parent.mkdir(mode=0o700)
    conn = sqlite3.connect(path)
    try:
        with conn:
            for statement in schema.SCHEMA.split(";"):
                if "CREATE TABLE IF NOT EXISTS files" in statement:
                    conn.execute(files_table)
                elif statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO meta VALUES ('schema_version', ?)", (str(version),)
            )
            conn.execute(
                "INSERT INTO jobs VALUES (1, 'identity', 'j', ?)",
                (created.isoformat(),),
            )
            yield conn
    finally:
        conn.close()
    path.chmod(0o600)


def stored_schema_version(path: Path) -> Any:
    """The row of ``meta`` holding the schema version of the datastore at
    ``path`` (a one-value tuple), or None."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'"
        ).fetchone()
    finally:
        conn.close()
