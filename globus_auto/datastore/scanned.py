"""What a scan writes: new, changed and vanished files, and the count of them.

A vanished file that an open task carries is kept as a tombstone until that
task settles (:data:`GONE`): Globus still holds its path in the task's
document, so a file recreated there meanwhile must wait for that task (a file
is carried by at most one open task: DESIGN.md). A tombstone is no file: it
has no stat and no digest, so it is never pending, problematic or changing,
and :meth:`Scanned.count_files` leaves it out. Imports :mod:`.changing`,
:mod:`.connection` and :mod:`.records`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from globus_auto.datastore.changing import UPSERT_CHANGING
from globus_auto.datastore.connection import Connection
from globus_auto.datastore.records import Observed, ts_text

# ``files.sending`` of a tombstone: a file an open task carries that a scan saw
# gone. Like the "changed while carried" value (x'') it equals no digest, so
# settling never marks it delivered; unlike it, it says no file is there.
GONE = b"\x00"
GONE_SQL = f"x'{GONE.hex()}'"


class Scanned(Connection):
    """The files a scan saw."""

    def count_files(self, job: int) -> int:
        """Files of ``job`` the datastore tracks (not the tombstones of vanished
        files a task still carries: counted apart, from the few carried rows,
        so that the count stays a pass over the job's keys only)."""
        row = self._conn.execute("SELECT count(*) FROM files WHERE job = ?", (job,))
        gone = self._conn.execute(
            "SELECT count(*) FROM files INDEXED BY files_carried"
            f" WHERE task IS NOT NULL AND job = ? AND sending = {GONE_SQL}",
            (job,),
        )
        return int(row.fetchone()[0]) - int(gone.fetchone()[0])

    def apply_scan_batch(
        self,
        job: int,
        observed: Sequence[Observed],
        gone: Sequence[bytes],
        scanned_at: datetime | None = None,
    ) -> None:
        """Record one batch of a scan: new or changed files and vanished ones.

        ``scanned_at``: when the scan ran, to tell the files it sees changing
        every time (:mod:`.changing`; None leaves that as it was).

        A file seen changing while a task carries it gets ``sending`` set to an
        empty value that equals no digest: Globus may have read either version,
        so settling that task must not mark any version delivered. It stays
        linked to its task (``task``), so no other task carries it meanwhile.
        A blocked file whose stat changed goes to the front of the line of
        those to look at again (``blocked_at`` cleared): a change in the source
        does not change the destination, so it is not simply sent again.
        A vanished file is dropped, unless a task carries it: then its row
        becomes a tombstone (no stat, no digest, ``sending`` :data:`GONE`) still
        linked to the task; a file recreated at that path updates the row (its
        ``sending`` becomes the "changed" value) and stays busy until the task
        settles; :meth:`settle_task` drops the tombstones it unlinks.
        """
        if not observed and not gone:
            return
        stamp = None if scanned_at is None else ts_text(scanned_at)
        with self.transaction() as tx:
            tx.executemany(
                "INSERT INTO files (job, path, size, mtime_ns, ctime_ns, inode, digest,"
                " problem) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (job, path) DO UPDATE SET size = excluded.size,"
                " mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns,"
                " inode = excluded.inode, digest = excluded.digest,"
                " problem = excluded.problem,"
                + UPSERT_CHANGING
                + " sending = CASE WHEN sending IS NULL THEN NULL ELSE x'' END,"
                " blocked_at = CASE WHEN size IS excluded.size"
                " AND mtime_ns IS excluded.mtime_ns AND ctime_ns IS excluded.ctime_ns"
                " AND inode IS excluded.inode THEN blocked_at ELSE NULL END",
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
                        stamp,
                        stamp,
                    )
                    for o in observed
                ],
            )
            # A vanished file an open task carries stays, as a tombstone, until
            # that task settles: Globus still holds its path in that task's
            # document, so a file recreated there meanwhile must not go in a
            # second task (a file is carried by at most one open task).
            tx.executemany(
                "UPDATE files SET size = NULL, mtime_ns = NULL, ctime_ns = NULL,"
                " inode = NULL, digest = NULL, problem = NULL, changed_at = NULL,"
                f" changing_since = NULL, sending = {GONE_SQL}"
                " WHERE job = ? AND path = ? AND task IS NOT NULL",
                [(job, path) for path in gone],
            )
            tx.executemany(
                "DELETE FROM files WHERE job = ? AND path = ? AND task IS NULL",
                [(job, path) for path in gone],
            )
