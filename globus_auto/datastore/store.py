"""The datastore: one SQLite file holding everything the tool remembers.

Per job it keeps the observed state of every tracked file, the digest Globus is
known to have delivered, the tasks in flight and the files each carries, the
open alerts and the run history. Deleting the file resets the tool.

Every logical step is one ``BEGIN IMMEDIATE`` transaction (:mod:`.connection`);
alerts and runs are :mod:`.history`, what a scan writes :mod:`.scanned`;
opening, the schema check and moving a damaged file aside live in
:mod:`.opening`. Imports those and :mod:`.records`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from globus_auto.datastore.changing import Changing
from globus_auto.datastore.history import History
from globus_auto.datastore.records import (
    PREPARING,
    SETTLED,
    SUBMITTED,
    PendingFile,
    StoredFile,
    StoredRow,
    TaskRecord,
    ts_parse,
    ts_text,
)
from globus_auto.datastore.scanned import GONE_SQL, Scanned

log = logging.getLogger(__name__)


class Datastore(History, Changing, Scanned):
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

    def iter_stored(
        self,
        job: int,
        reader: sqlite3.Connection,
        low: bytes = b"",
        high: bytes | None = None,
    ) -> Iterator[StoredRow]:
        """Every tracked file of ``job`` in byte order of its path (from ``low``
        on, and before ``high`` if given: one scout's span).

        Rows are plain tuples shaped like :class:`StoredFile` (``hashed`` is 0
        or 1), straight from SQLite.
        """
        sql = (
            "SELECT path, size, mtime_ns, ctime_ns, inode, digest IS NOT NULL, problem"
            " FROM files WHERE job = ? AND path >= ?"
        )
        args: tuple[object, ...] = (job, low)
        if high is not None:
            sql += " AND path < ?"
            args += (high,)
        cur = reader.execute(sql + " ORDER BY path", args)
        cur.arraysize = 512
        return iter(cur)

    def split_paths(
        self, job: int, parts: int, total: int, reader: sqlite3.Connection
    ) -> list[bytes]:
        """The paths that cut ``job``'s ``total`` rows into ``parts`` runs of
        about equal length (fewer when there are fewer rows), in path order."""
        cuts: list[bytes] = []
        for part in range(1, parts):
            row = reader.execute(
                "SELECT path FROM files WHERE job = ? ORDER BY path LIMIT 1 OFFSET ?",
                (job, total * part // parts),
            ).fetchone()
            if row is not None and (not cuts or row[0] > cuts[-1]):
                cuts.append(bytes(row[0]))
        return cuts

    @staticmethod
    def _pending_where(
        job: int, modified_before_ns: int | None, free: bool
    ) -> tuple[str, tuple[object, ...]]:
        """FROM/WHERE of the files whose observed digest is not delivered
        (with ``free``, only those no task in flight carries and none blocked).

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
        if free:
            sql += " AND task IS NULL AND blocked IS NULL"
        if modified_before_ns is None:
            return sql, (job,)
        return sql + " AND min(mtime_ns, ctime_ns) <= ?", (job, modified_before_ns)

    def pending_files(
        self, job: int, modified_before_ns: int | None = None, *, free: bool = False
    ) -> Iterator[PendingFile]:
        """Files whose observed digest is not delivered, oldest-enough only;
        with ``free``, only those no task in flight carries and not blocked
        (what to send)."""
        where, args = self._pending_where(job, modified_before_ns, free)
        sql = "SELECT path, size, digest, delivered IS NULL" + where + " ORDER BY path"
        for row in self._conn.execute(sql, args):
            yield PendingFile(row[0], int(row[1]), row[2], bool(row[3]))

    def pending_totals(
        self, job: int, modified_before_ns: int | None = None, *, free: bool = False
    ) -> tuple[int, int]:
        """(files, bytes) observed but not yet delivered (old enough only;
        with ``free``, only those no task in flight carries)."""
        where, args = self._pending_where(job, modified_before_ns, free)
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

    # -- blocked files -----------------------------------------------------

    def block_files(
        self, job: int, reasons: Iterable[tuple[bytes, str]], now: datetime
    ) -> int:
        """Hold the files not yet delivered at each path, or below it (a
        folder), out of every task until unblocked; ``reasons`` pairs each
        path with why. Returns how many rows were blocked."""
        with self.transaction() as tx:
            blocked = 0
            for path, why in reasons:
                below = path + b"/"  # in byte order, all below it lies between
                blocked += tx.execute(
                    "UPDATE files SET blocked = ?, blocked_at = ? WHERE job = ?"
                    " AND (path = ? OR (path >= ? AND path < ?))"
                    f" AND delivered IS NOT digest AND sending IS NOT {GONE_SQL}",
                    (why, ts_text(now), job, path, below, path + b"0"),
                ).rowcount
            return blocked

    def unblock_files(self, job: int, paths: Iterable[bytes]) -> None:
        with self.transaction() as tx:
            tx.executemany(
                "UPDATE files SET blocked = NULL, blocked_at = NULL"
                " WHERE job = ? AND path = ?",
                [(job, path) for path in paths],
            )

    def blocked_files(
        self, job: int, limit: int = 50, since: datetime | None = None
    ) -> list[tuple[bytes, str]]:
        """Blocked files (path, why), first those changed since they were
        blocked, then the longest blocked; with ``since``, only those blocked
        at that time or before, or changed since."""
        sql = (
            "SELECT path, blocked FROM files INDEXED BY files_blocked"
            " WHERE job = ? AND blocked IS NOT NULL"
        )
        args: tuple[object, ...] = (job,)
        if since is not None:
            sql += " AND (blocked_at IS NULL OR blocked_at <= ?)"
            args = (job, ts_text(since))
        sql += " ORDER BY blocked_at, path LIMIT ?"
        rows = self._conn.execute(sql, (*args, limit))
        return [(r[0], r[1]) for r in rows]

    def count_blocked(self, job: int) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM files INDEXED BY files_blocked"
            " WHERE job = ? AND blocked IS NOT NULL",
            (job,),
        ).fetchone()
        return int(row[0])

    # -- tasks -------------------------------------------------------------

    def open_tasks(self, job: int) -> list[TaskRecord]:
        """The job's tasks not yet settled, oldest first."""
        rows = self._conn.execute(
            "SELECT submission_id, job, task_id, state, recursive, files, bytes,"
            " created, submitted, globus_status, detail FROM tasks"
            " WHERE job = ? AND state != ? ORDER BY created",
            (job, SETTLED),
        )
        return [_task(r) for r in rows]

    def count_open_tasks(self, identities: Iterable[str]) -> int:
        """Tasks not yet settled of the jobs with these identities, together."""
        keys = list(identities)
        marks = ", ".join("?" * len(keys))
        row = self._conn.execute(
            "SELECT count(*) FROM tasks JOIN jobs ON jobs.id = tasks.job"
            f" WHERE tasks.state != ? AND jobs.identity IN ({marks})",
            (SETTLED, *keys),
        ).fetchone()
        return int(row[0])

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
        (a recursive task of the whole directory). A file another open task
        carries is never linked to this one (two versions of a file must not
        race): the task carries, and counts, only the files it could link;
        :meth:`carried_files` lists them.
        """
        with self.transaction() as tx:
            if files is None:
                tx.execute(
                    "UPDATE files SET sending = digest, task = ? WHERE job = ?"
                    " AND digest IS NOT NULL AND delivered IS NOT digest"
                    " AND task IS NULL AND blocked IS NULL",
                    (submission_id, job),
                )
            else:
                tx.executemany(
                    "UPDATE files SET sending = ?, task = ? WHERE job = ? AND path = ?"
                    " AND task IS NULL",
                    [(f.digest, submission_id, job, f.path) for f in files],
                )
            count, size = tx.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM files"
                " INDEXED BY files_carried WHERE task = ?",
                (submission_id,),
            ).fetchone()
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

    def carried_files(self, submission_id: str) -> list[PendingFile]:
        """The files one open task carries (its document, and to rebuild a lost
        submission), in path order."""
        rows = self._conn.execute(
            "SELECT path, coalesce(size, 0), sending FROM files"
            " INDEXED BY files_carried WHERE task = ? ORDER BY path",
            (submission_id,),
        )
        return [PendingFile(r[0], int(r[1]), r[2]) for r in rows]

    def carried_stats(self, submission_id: str) -> Iterator[StoredFile]:
        """The stat the last scan saw of each file one open task carries."""
        rows = self._conn.execute(
            "SELECT path, size, mtime_ns, ctime_ns, inode, digest IS NOT NULL, problem"
            " FROM files INDEXED BY files_carried WHERE task = ? ORDER BY path",
            (submission_id,),
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

        Only the files linked to ``task`` are touched: other tasks of the job
        may be in flight and settle later, in any order. ``delivered_paths``
        ``None`` means all its files were delivered (SUCCEEDED); otherwise
        only those paths (what a FAILED task did manage). A carried file is
        marked delivered only if it is still the version the task was
        prepared with: not seen changing by a scan since (its digest still
        equals ``sending``) and not in ``uncertain`` (changed since the last
        scan). Any other carried file may now hold, on the destination, a
        version the tool never hashed, so its delivered digest is cleared and
        it is sent again: a redundant transfer, never a lost one. The
        tombstones of carried files a scan saw vanish are dropped (never
        delivered: their ``sending`` equals no digest).
        """
        sid = task.submission_id
        with self.transaction() as tx:
            if delivered_paths is None:
                tx.execute(
                    "UPDATE files INDEXED BY files_carried SET delivered = sending"
                    " WHERE task = ? AND sending IS digest",
                    (sid,),
                )
            else:
                tx.executemany(
                    "UPDATE files SET delivered = sending WHERE job = ? AND path = ?"
                    " AND task = ? AND sending IS digest",
                    [(task.job, p, sid) for p in delivered_paths],
                )
            tx.execute(
                "UPDATE files INDEXED BY files_carried SET delivered = NULL"
                " WHERE task = ? AND delivered IS NOT sending",
                (sid,),
            )
            tx.executemany(
                "UPDATE files SET delivered = NULL WHERE job = ? AND path = ?"
                " AND task = ?",
                [(task.job, p, sid) for p in uncertain],
            )
            tx.execute(
                "DELETE FROM files INDEXED BY files_carried"
                f" WHERE task = ? AND sending = {GONE_SQL}",
                (sid,),
            )
            tx.execute(
                "UPDATE files INDEXED BY files_carried SET sending = NULL, task = NULL"
                " WHERE task = ?",
                (sid,),
            )
            tx.execute(
                "UPDATE tasks SET state = ?, globus_status = ?, detail = ?, settled = ?"
                " WHERE submission_id = ?",
                (SETTLED, status, detail, ts_text(now), sid),
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
