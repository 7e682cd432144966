"""Files that change at every scan: a log appended every few milliseconds.

Such a file is never sent with ``MIN_AGE`` (it is always too young), and
without it may have no digest at all (it changes while it is read), so
neither the pending count nor any task shows it: it would wait unseen. Two
columns of ``files`` (schema version 4) tell it apart:

- ``changed_at``: when the latest scan that saw the file changed ran (the
  stat differs from the stored one, or it changed while read); NULL once a
  later scan has seen it unchanged, and for a file a scan saw for the first
  time (a new file is not a change; so a first scan of a million files costs
  nothing here).
- ``changing_since``: when the first of the scans in a row that each saw it
  changed ran; set from the second such scan on.

Imports :mod:`.connection` and :mod:`.records`.
"""

from __future__ import annotations

from datetime import datetime

from globus_auto.datastore.connection import Connection
from globus_auto.datastore.records import ts_parse, ts_text

# The part of the scan's upsert (``Datastore.apply_scan_batch``) that keeps
# both columns: its right-hand sides see the row as it was, ``excluded`` the
# row the scan wrote; each ``?`` is the scan's time (None: left as they are).
# A problem (an unreadable file) is no change: the next scan sees it again.
_CHANGED = (
    "excluded.problem IS NULL AND (excluded.digest IS NULL"
    " OR size IS NOT excluded.size OR mtime_ns IS NOT excluded.mtime_ns"
    " OR ctime_ns IS NOT excluded.ctime_ns OR inode IS NOT excluded.inode)"
)
UPSERT_CHANGING = (
    f" changing_since = CASE WHEN NOT ({_CHANGED}) OR ? IS NULL"
    " THEN changing_since ELSE coalesce(changing_since, changed_at) END,"
    f" changed_at = CASE WHEN NOT ({_CHANGED}) THEN changed_at"
    " ELSE coalesce(?, changed_at) END,"
)


class Changing(Connection):
    """The files that changed at every scan lately."""

    def end_scan(self, job: int, scanned_at: datetime) -> None:
        """After a whole scan of ``job`` that ran at ``scanned_at``: the files
        it did not see changed have stopped changing."""
        with self.transaction() as tx:
            tx.execute(
                "UPDATE files INDEXED BY files_changed"
                " SET changed_at = NULL, changing_since = NULL"
                " WHERE job = ? AND changed_at IS NOT NULL AND changed_at IS NOT ?",
                (job, ts_text(scanned_at)),
            )

    def count_changing(self, job: int) -> tuple[int, int]:
        """(files changed by every scan lately, those of them with no digest:
        changed while read, so not counted as pending either)."""
        row = self._conn.execute(
            "SELECT count(*), coalesce(sum(digest IS NULL), 0)"
            " FROM files INDEXED BY files_changed"
            " WHERE job = ? AND changed_at IS NOT NULL AND changing_since IS NOT NULL",
            (job,),
        ).fetchone()
        return int(row[0]), int(row[1])

    def changing_files(
        self, job: int, since: datetime | None = None, limit: int = 50
    ) -> list[tuple[bytes, datetime]]:
        """(path, changing since) of the files changed by every scan lately
        (with ``since``: only those changing since then or longer), the
        longest changing first."""
        sql = (
            "SELECT path, changing_since FROM files INDEXED BY files_changed"
            " WHERE job = ? AND changed_at IS NOT NULL AND changing_since IS NOT NULL"
        )
        args: tuple[object, ...] = (job,)
        if since is not None:
            sql, args = sql + " AND changing_since <= ?", (job, ts_text(since))
        rows = self._conn.execute(
            sql + " ORDER BY changing_since, path LIMIT ?", (*args, limit)
        )
        return [(r[0], _when(r[1])) for r in rows]

    def count_changing_since(self, job: int, since: datetime) -> tuple[int, int]:
        """(files, bytes as last seen) changed at every scan since ``since`` or
        longer (a file changed while read has no size: 0)."""
        row = self._conn.execute(
            "SELECT count(*), coalesce(sum(size), 0)"
            " FROM files INDEXED BY files_changed"
            " WHERE job = ? AND changed_at IS NOT NULL AND changing_since <= ?",
            (job, ts_text(since)),
        ).fetchone()
        return int(row[0]), int(row[1])


def _when(text: str) -> datetime:
    when = ts_parse(text)
    assert when is not None  # the query asks for changing_since IS NOT NULL
    return when
