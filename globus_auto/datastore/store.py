"""The datastore: one SQLite file holding everything the tool remembers.

Per job it keeps the observed state of every tracked file, the digest Globus is
known to have delivered, the tasks in flight and the files each carries, the
open alerts and the run history. Deleting the file resets the tool.

Every logical step is one ``BEGIN IMMEDIATE`` transaction (:mod:`.connection`);
alerts and runs are :mod:`.history`; opening, the schema check and moving a
damaged file aside live in :mod:`.opening`. Imports those and :mod:`.records`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from globus_auto.datastore.history import History
from globus_auto.datastore.records import (
    PREPARING,
    SETTLED,
    SUBMITTED,
    Observed,
    PendingFile,
    StoredFile,
    StoredRow,
    TaskRecord,
    ts_parse,
    ts_text,
)

log = logging.getLogger(__name__)


class Datastore(History):
    """The SQLite datastore. Open it with :func:`open_datastore`."""

    # -- jobs --------------------------------------------------------------

    def job_id(self, identity: str, name: str, now: datetime) -> int:
        """The row id of the job with this identity, created if new."""
        row = self._conn.execute(
            "SELECT id FROM jobs WHERE identity = ?", (identity,)
        ).fetchone()
        if row is not None:
            return int(row[0])
        with self.transaction() as tx:
            cur = tx.execute(
                "INSERT INTO jobs (identity, name, created) VALUES (?, ?, ?)",
                (identity, name, ts_text(now)),
            )
            return int(cur.lastrowid or 0)

    def existing_job_id(self, identity: str) -> int | None:
        row = self._conn.execute(
            "SELECT id FROM jobs WHERE identity = ?", (identity,)
        ).fetchone()
        return None if row is None else int(row[0])

    def forget_job(self, name: str) -> int:
        """Delete every row of every job called ``name``; returns files dropped."""
        with self.transaction() as tx:
            ids = [
                r[0] for r in tx.execute("SELECT id FROM jobs WHERE name = ?", (name,))
            ]
            dropped = 0
            for job in ids:
                dropped += tx.execute(
                    "DELETE FROM files WHERE job = ?", (job,)
                ).rowcount
                tx.execute("DELETE FROM tasks WHERE job = ?", (job,))
                tx.execute("DELETE FROM jobs WHERE id = ?", (job,))
            tx.execute("DELETE FROM alerts WHERE job = ?", (name,))
            return dropped

    # -- files -------------------------------------------------------------

    def iter_stored(self, job: int, reader: sqlite3.Connection) -> Iterator[StoredRow]:
        """Every tracked file of ``job`` in byte order of its path.

        Rows are plain tuples shaped like :class:`StoredFile` (``hashed`` is 0
        or 1), straight from SQLite.
        """
        cur = reader.execute(
            "SELECT path, size, mtime_ns, ctime_ns, inode, digest IS NOT NULL, problem"
            " FROM files WHERE job = ? ORDER BY path",
            (job,),
        )
        cur.arraysize = 512
        return iter(cur)

    def count_files(self, job: int) -> int:
        row = self._conn.execute("SELECT count(*) FROM files WHERE job = ?", (job,))
        return int(row.fetchone()[0])

    def apply_scan_batch(
        self, job: int, observed: Sequence[Observed], gone: Sequence[bytes]
    ) -> None:
        """Record one batch of a scan: new or changed files and vanished ones.

        A file seen changing while a task carries it gets ``sending`` set to an
        empty value that equals no digest: Globus may have read either version,
        so settling that task must not mark any version delivered.
        """
        if not observed and not gone:
            return
        with self.transaction() as tx:
            tx.executemany(
                "INSERT INTO files (job, path, size, mtime_ns, ctime_ns, inode, digest,"
                " problem) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (job, path) DO UPDATE SET size = excluded.size,"
                " mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns,"
                " inode = excluded.inode, digest = excluded.digest,"
                " problem = excluded.problem,"
                " sending = CASE WHEN sending IS NULL THEN NULL ELSE x'' END",
                [
                    (
                        job,
                        o.path,
                        o.size,
                        o.mtime_ns,
                        o.ctime_ns,
                        o.inode,
                        o.digest,
                        o.problem,
                    )
                    for o in observed
                ],
            )
            tx.executemany(
                "DELETE FROM files WHERE job = ? AND path = ?",
                [(job, path) for path in gone],
            )

    @staticmethod
    def _pending_where(
        job: int, modified_before_ns: int | None
    ) -> tuple[str, tuple[object, ...]]:
        """FROM/WHERE of the files whose observed digest is not delivered.

        With ``modified_before_ns`` (MIN_AGE), only files whose last change is
        that old: the earlier of mtime and ctime. Why: a writer with a skewed
        clock (or ``touch -d``, ``cp -p``, tar) can set an mtime in the future,
        and age measured from it would hold the file back forever. The ctime is
        set by the filesystem itself on every write and cannot be set by a
        writer, so for such a file it is the true time of the last change; for
        any other file the mtime is the earlier one and nothing changes. A
        racily clean row (no mtime yet) waits for the next scan, as before.
        """
        sql = (
            " FROM files INDEXED BY files_pending WHERE job = ?"
            " AND digest IS NOT NULL AND delivered IS NOT digest"
        )
        if modified_before_ns is None:
            return sql, (job,)
        return sql + " AND min(mtime_ns, ctime_ns) <= ?", (job, modified_before_ns)

    def pending_files(
        self, job: int, modified_before_ns: int | None = None
    ) -> Iterator[PendingFile]:
        """Files whose observed digest is not delivered, oldest-enough only."""
        where, args = self._pending_where(job, modified_before_ns)
        sql = "SELECT path, size, digest, delivered IS NULL" + where + " ORDER BY path"
        for row in self._conn.execute(sql, args):
            yield PendingFile(row[0], int(row[1]), row[2], bool(row[3]))

    def pending_totals(
        self, job: int, modified_before_ns: int | None = None
    ) -> tuple[int, int]:
        """(files, bytes) observed but not yet delivered (old enough only)."""
        where, args = self._pending_where(job, modified_before_ns)
        sql = "SELECT count(*), coalesce(sum(size), 0)" + where
        row = self._conn.execute(sql, args).fetchone()
        return int(row[0]), int(row[1])

    def problems(self, job: int, limit: int = 50) -> list[tuple[bytes, str]]:
        """Files the scan could not handle, with the reason."""
        rows = self._conn.execute(
            "SELECT path, problem FROM files INDEXED BY files_problem"
            " WHERE job = ? AND problem IS NOT NULL"
            " ORDER BY path LIMIT ?",
            (job, limit),
        )
        return [(r[0], r[1]) for r in rows]

    def count_problems(self, job: int, besides: str | None = None) -> int:
        """Files the scan could not handle (not counting those noted ``besides``)."""
        row = self._conn.execute(
            "SELECT count(*) FROM files INDEXED BY files_problem"
            " WHERE job = ? AND problem IS NOT NULL"
            " AND problem IS NOT ?",
            (job, besides),
        ).fetchone()
        return int(row[0])

    # -- tasks -------------------------------------------------------------

    def open_tasks(self, job: int) -> list[TaskRecord]:
        rows = self._conn.execute(
            "SELECT submission_id, job, task_id, state, recursive, files, bytes,"
            " created, submitted, globus_status, detail FROM tasks"
            " WHERE job = ? AND state != ? ORDER BY created",
            (job, SETTLED),
        )
        return [_task(r) for r in rows]

    def prepare_task(
        self,
        job: int,
        submission_id: str,
        *,
        recursive: bool,
        files: Sequence[PendingFile] | None,
        now: datetime,
    ) -> TaskRecord:
        """Record a task before its submission: the files it carries, by digest.
        (One transaction, so one function: its length is its SQL.)

        ``files`` lists the carried files; ``None`` means every pending file
        (a recursive task of the whole directory).
        """
        with self.transaction() as tx:
            if files is None:
                tx.execute(
                    "UPDATE files SET sending = digest WHERE job = ?"
                    " AND digest IS NOT NULL AND delivered IS NOT digest",
                    (job,),
                )
                count, size = tx.execute(
                    "SELECT count(*), coalesce(sum(size), 0) FROM files"
                    " WHERE job = ? AND sending IS NOT NULL",
                    (job,),
                ).fetchone()
            else:
                tx.executemany(
                    "UPDATE files SET sending = ? WHERE job = ? AND path = ?",
                    [(f.digest, job, f.path) for f in files],
                )
                count, size = len(files), sum(f.size for f in files)
            tx.execute(
                "INSERT INTO tasks (submission_id, job, state, recursive, files, bytes,"
                " created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    submission_id,
                    job,
                    PREPARING,
                    int(recursive),
                    count,
                    size,
                    ts_text(now),
                ),
            )
        return TaskRecord(
            submission_id, job, None, PREPARING, recursive, int(count), int(size),
            now, None, None, None,
        )  # fmt: skip

    def carried_files(self, job: int) -> list[PendingFile]:
        """The files the job's open task carries (to rebuild a lost submission)."""
        rows = self._conn.execute(
            "SELECT path, coalesce(size, 0), sending FROM files"
            " WHERE job = ? AND sending IS NOT NULL ORDER BY path",
            (job,),
        )
        return [PendingFile(r[0], int(r[1]), r[2]) for r in rows]

    def carried_stats(self, job: int) -> Iterator[StoredFile]:
        """The stat the last scan saw of each file the job's open task carries."""
        rows = self._conn.execute(
            "SELECT path, size, mtime_ns, ctime_ns, inode, digest IS NOT NULL, problem"
            " FROM files WHERE job = ? AND sending IS NOT NULL ORDER BY path",
            (job,),
        )
        for r in rows:
            yield StoredFile(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6])

    def mark_submitted(self, submission_id: str, task_id: str, now: datetime) -> None:
        with self.transaction() as tx:
            tx.execute(
                "UPDATE tasks SET task_id = ?, state = ?, submitted = ?"
                " WHERE submission_id = ?",
                (task_id, SUBMITTED, ts_text(now), submission_id),
            )

    def note_task_status(self, submission_id: str, status: str, detail: str) -> None:
        with self.transaction() as tx:
            tx.execute(
                "UPDATE tasks SET globus_status = ?, detail = ?"
                " WHERE submission_id = ?",
                (status, detail, submission_id),
            )

    def settle_task(
        self,
        task: TaskRecord,
        status: str,
        detail: str,
        delivered_paths: Iterable[bytes] | None,
        now: datetime,
        uncertain: Iterable[bytes] = (),
    ) -> None:
        """Close a finished task; the digests it carried become delivered.
        (One transaction, so one function: its length is its SQL.)

        ``delivered_paths`` ``None`` means all carried files were delivered
        (SUCCEEDED); otherwise only those paths (what a FAILED task did manage).
        A carried file is marked delivered only if it is still the version the
        task was prepared with: not seen changing by a scan since (its digest
        still equals ``sending``) and not in ``uncertain`` (changed since the
        last scan). Any other carried file may now hold, on the destination,
        a version the tool never hashed, so its delivered digest is cleared and
        it is sent again: a redundant transfer, never a lost one.
        """
        with self.transaction() as tx:
            if delivered_paths is None:
                tx.execute(
                    "UPDATE files SET delivered = sending WHERE job = ?"
                    " AND sending IS NOT NULL AND sending IS digest",
                    (task.job,),
                )
            else:
                tx.executemany(
                    "UPDATE files SET delivered = sending WHERE job = ? AND path = ?"
                    " AND sending IS NOT NULL AND sending IS digest",
                    [(task.job, p) for p in delivered_paths],
                )
            tx.execute(
                "UPDATE files SET delivered = NULL WHERE job = ?"
                " AND sending IS NOT NULL AND delivered IS NOT sending",
                (task.job,),
            )
            tx.executemany(
                "UPDATE files SET delivered = NULL WHERE job = ? AND path = ?",
                [(task.job, p) for p in uncertain],
            )
            tx.execute("UPDATE files SET sending = NULL WHERE job = ?", (task.job,))
            tx.execute(
                "UPDATE tasks SET state = ?, globus_status = ?, detail = ?, settled = ?"
                " WHERE submission_id = ?",
                (SETTLED, status, detail, ts_text(now), task.submission_id),
            )

    def last_delivery(self, job: int) -> datetime | None:
        row = self._conn.execute(
            "SELECT max(settled) FROM tasks WHERE job = ? AND globus_status = ?",
            (job, "SUCCEEDED"),
        ).fetchone()
        return ts_parse(row[0])

    # -- alerts ------------------------------------------------------------


def _task(row: Sequence[object]) -> TaskRecord:
    return TaskRecord(
        submission_id=str(row[0]),
        job=int(row[1]),  # type: ignore[call-overload]
        task_id=None if row[2] is None else str(row[2]),
        state=str(row[3]),
        recursive=bool(row[4]),
        files=int(row[5]),  # type: ignore[call-overload]
        bytes=int(row[6]),  # type: ignore[call-overload]
        created=datetime.fromisoformat(str(row[7])),
        submitted=ts_parse(None if row[8] is None else str(row[8])),
        globus_status=None if row[9] is None else str(row[9]),
        detail=None if row[10] is None else str(row[10]),
    )


def pending_or_nothing(
    store: Datastore | None, identity: str | None
) -> tuple[int, int]:
    """(files, bytes) not yet delivered for the job of ``identity``, never raising.

    Why never raising: the counts fill alerts, and the datastore may itself be
    the problem an alert is about; then they are (0, 0), as for an unknown job.
    """
    if store is None or identity is None:
        return 0, 0
    try:
        job_id = store.existing_job_id(identity)
        return (0, 0) if job_id is None else store.pending_totals(job_id)
    except Exception as exc:
        log.debug("could not count the files waiting: %s", exc)
        return 0, 0
