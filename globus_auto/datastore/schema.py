"""The datastore's schema, its version, and the upgrade from earlier versions.

:mod:`.opening` runs :data:`SCHEMA` on every open and, inside the same
``BEGIN IMMEDIATE`` transaction, :func:`upgrade` on a datastore an earlier
version wrote, so an upgrade is all or nothing. Imports nothing of the project.

Version 2 links each carried file to the task carrying it (``files.task``, the
task's submission id), so several tasks of a job can be in flight at once and
each settles only its own files; version 1 had one task per job and a
``sending`` digest with no task named. Version 3 adds ``files.blocked`` (why a
file waits, held out of every task: the destination has a folder where it
goes, or a file where a folder above it must be) and ``files.blocked_at``.
Version 4 adds ``files.changed_at`` and ``files.changing_since`` (a file seen
changed by every scan lately: :mod:`.changing`).
"""

from __future__ import annotations

import sqlite3

from globus_auto.datastore.connection import NewerDatastore, NotADatastore

SCHEMA_VERSION = 4

SCHEMA = """
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
    task TEXT,
    blocked TEXT,
    blocked_at TEXT,
    changed_at TEXT,
    changing_since TEXT,
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

# Run after SCHEMA (and after an upgrade added the column it names).
INDEXES = """
CREATE INDEX IF NOT EXISTS files_carried ON files (task) WHERE task IS NOT NULL;
CREATE INDEX IF NOT EXISTS files_blocked ON files (job) WHERE blocked IS NOT NULL;
CREATE INDEX IF NOT EXISTS files_changed ON files (job) WHERE changed_at IS NOT NULL;
"""


def create(conn: sqlite3.Connection) -> None:
    """Create whatever of the current schema is missing (a no-op when complete)."""
    for script in (SCHEMA, INDEXES):
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)


def upgrade(conn: sqlite3.Connection, version: int) -> None:
    """Bring a datastore of ``version`` to :data:`SCHEMA_VERSION` (in the
    caller's transaction), one version at a time; sqlite3.DatabaseError for a
    version it cannot."""
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:  # a downgrade: keep it, it knows the tasks
        raise NewerDatastore(
            f"it was written by a newer globus-auto (schema version {version}; "
            f"this one reads up to {SCHEMA_VERSION}): upgrade globus-auto, or "
            "move the datastore away to start afresh"
        )
    if version not in (1, 2, 3):
        raise NotADatastore(
            f"schema version {version}, this globus-auto uses {SCHEMA_VERSION}"
        )
    if version == 1:
        _upgrade_from_1(conn)
    if version <= 2:
        # From 2: no file was blocked (version 2 sent a file onto a folder
        # again and again), so both new columns start empty.
        conn.execute("ALTER TABLE files ADD COLUMN blocked TEXT")
        conn.execute("ALTER TABLE files ADD COLUMN blocked_at TEXT")
    # From 3: no scan has been seen yet to change a file, so both start empty.
    conn.execute("ALTER TABLE files ADD COLUMN changed_at TEXT")
    conn.execute("ALTER TABLE files ADD COLUMN changing_since TEXT")
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = 'schema_version'",
        (str(SCHEMA_VERSION),),
    )


def _upgrade_from_1(conn: sqlite3.Connection) -> None:
    """From 1 to 2: a job had at most one open task, so every file with a
    ``sending`` digest is carried by that task. Why the orphan case: a file
    marked sending with no open task (which version 1 never left behind) would
    otherwise be held forever; with no task named it is simply pending.
    """
    conn.execute("ALTER TABLE files ADD COLUMN task TEXT")
    conn.execute(
        "UPDATE files SET task = (SELECT submission_id FROM tasks"
        " WHERE tasks.job = files.job AND tasks.state != 'settled'"
        " ORDER BY created LIMIT 1) WHERE sending IS NOT NULL"
    )
    conn.execute("UPDATE files SET sending = NULL WHERE task IS NULL")
