"""The datastore's records: plain values that cross its boundary.

A scan hands in :class:`Observed`; the datastore hands out :class:`StoredFile`
rows, :class:`TaskRecord` and :class:`RunRecord`. No SQLite here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import NamedTuple

# Task states kept in ``tasks.state``.
PREPARING = "preparing"  # submission id stored, submit call not known to have run
SUBMITTED = "submitted"  # Globus accepted it; task_id known
SETTLED = "settled"  # final status seen and its files settled


class StoredFile(NamedTuple):
    """The stat part of one tracked file, as the scan compares it.

    A plain tuple of this shape (``StoredRow``) is what :meth:`iter_stored`
    yields: the scan compares rows with what it sees as whole tuples, and
    building an object per row would cost more than the comparison.
    """

    path: bytes
    size: int | None
    mtime_ns: int | None
    ctime_ns: int | None
    inode: int | None
    hashed: bool
    problem: str | None = None


# One row of iter_stored: path, size, mtime_ns, ctime_ns, inode, hashed, problem.
StoredRow = tuple[
    bytes, int | None, int | None, int | None, int | None, int, str | None
]


@dataclass(frozen=True)
class Observed:
    """What a scan saw of one file: its stat and, when read, its digest."""

    path: bytes
    size: int | None
    mtime_ns: int | None
    ctime_ns: int | None
    inode: int | None
    digest: bytes | None
    problem: str | None = None


@dataclass(frozen=True)
class TaskRecord:
    """A submitted (or about to be submitted) Globus task of one job."""

    submission_id: str
    job: int
    task_id: str | None
    state: str
    recursive: bool
    files: int
    bytes: int
    created: datetime
    submitted: datetime | None
    globus_status: str | None
    detail: str | None


@dataclass(frozen=True)
class RunRecord:
    job: str
    started: datetime
    finished: datetime
    outcome: str
    detail: str
    files_sent: int
    bytes_sent: int


def ts_text(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat()


def ts_parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@dataclass(frozen=True)
class PendingFile:
    """A file whose observed digest Globus has not delivered yet."""

    path: bytes
    size: int
    digest: bytes
    new: bool = True  # never delivered in any version
