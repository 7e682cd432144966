"""Alerts while the state folder's disk is full: remembered without free space.

The alert records live in the datastore, which a full disk cannot write, and
a mail whose record is lost would go out again at every run. So, while the
disk refuses writes:

- only the "disk full" alert is mailed (one per job), and the one-time
  problems of every job (:data:`ONE_TIME_KINDS`). Other problems found
  meanwhile are logged; the first run that can record them again mails them.
- that it was mailed is kept in the modification time of an empty file made
  ahead, ``alerts-disk-full`` in the state folder: setting a time needs no
  free block. While that time is less than ``ALERT_REPEAT_HOURS`` old, no
  alert is mailed again (the heartbeat still gets its ``/fail`` every run).
- the first run that records its run again in the datastore resets it, and
  logs that the disk has room again. (No "resolved" mail follows an episode
  that was never recorded: its record is the thing the disk could not keep.)
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from globus_auto.alerts.store import AlertStore, record_from_dict
from globus_auto.engine.report import JobReport
from globus_auto.errors import GlobusAutoError
from globus_auto.problems import Kind, Problem
from globus_auto.settings.model import Settings

log = logging.getLogger(__name__)

MARK_NAME = "alerts-disk-full"
# The mark's modification time when no "disk full" alert has been mailed.
NOT_MAILED = 0.0
# What the alert store may raise when the disk refuses a write.
WRITE_ERRORS = (GlobusAutoError, sqlite3.Error, OSError)
# Problems only the run that found them reports: a task FAILED (or lost) or
# with skipped files is settled by that run, so no later run sees it again.
# Why they are mailed on a full disk too: held back "until the disk has room"
# they would never be mailed, and a record the disk cannot keep costs no
# repeat, since no run reports them again. (A refused submission is
# TASK_FAILED too, and each run that retries it reports it; but each first
# records its task, which a disk refusing writes does not let it do.) The
# reset of a corrupt datastore is one-time too, and comes as ``deferred``
# problems, not in a report (engine/session.py).
ONE_TIME_KINDS = frozenset({Kind.TASK_FAILED, Kind.SKIPPED})


def mark_path(state_dir: Path) -> Path:
    return state_dir / MARK_NAME


def prepare_mark(state_dir: Path) -> None:
    """Make the empty mark file if it is missing (best effort).

    Why at every run: it must exist before the disk fills, since making it
    then may fail; when it exists this is one ``stat``.
    """
    path = mark_path(state_dir)
    if path.exists():
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.utime(path, (NOT_MAILED, NOT_MAILED))
    except OSError as exc:
        log.debug("could not make %s: %s", path, exc)


def mailed_at(state_dir: Path) -> datetime | None:
    """When the last "disk full" alert went out unrecorded; None if none did."""
    try:
        when = mark_path(state_dir).stat().st_mtime
    except OSError:
        return None
    return None if when == NOT_MAILED else datetime.fromtimestamp(when, timezone.utc)


def note_mailed(state_dir: Path, when: datetime) -> bool:
    """Remember that a "disk full" alert went out at ``when``; False if not kept."""
    stamp = when.timestamp()
    try:
        os.utime(mark_path(state_dir), (stamp, stamp))
    except OSError as exc:
        log.warning(
            "could not note in %s that the alert was mailed (%s); the next run "
            "may mail it again",
            mark_path(state_dir),
            exc,
        )
        return False
    return True


def disk_has_room(state_dir: Path) -> None:
    """A run recorded itself again: the next full disk is mailed anew."""
    if mailed_at(state_dir) is None:
        return
    log.warning("the disk holding the state folder %s has room again", state_dir)
    try:
        os.utime(mark_path(state_dir), (NOT_MAILED, NOT_MAILED))
    except OSError as exc:
        log.debug("could not reset %s: %s", mark_path(state_dir), exc)


@dataclass
class DiskFullAlerts:
    """The alert store of a run on a full disk (an ``AlertStore``).

    Reads the records from ``inner`` (none if it cannot be read); a record
    that cannot be written stays in this run's memory, and a "disk full" one
    that was mailed is noted in the mark instead.
    """

    state_dir: Path
    inner: AlertStore | None
    kept: dict[tuple[str, str], dict[str, object] | None] = field(default_factory=dict)

    def alert_rows(self, job: str | None = None) -> list[dict[str, object]]:
        """The stored rows, overlaid with what this run put (and could not
        write): later steps of the run see its own changes."""
        rows: list[dict[str, object]] = []
        if self.inner is not None:
            try:
                rows = self.inner.alert_rows(job)
            except WRITE_ERRORS as exc:  # a full disk may not even be read
                log.info("could not read the stored alerts: %s", exc)
        kept = [r for (j, _), r in self.kept.items() if job in (None, j)]
        return [r for r in rows if _key(r) not in self.kept] + [
            r for r in kept if r is not None
        ]

    def put_alert(self, job: str, kind: str, record: dict[str, object] | None) -> None:
        self.kept[(job, kind)] = record
        try:
            if self.inner is None:
                raise OSError("no datastore to keep it in")
            self.inner.put_alert(job, kind, record)
        except WRITE_ERRORS as exc:
            log.info("could not record the alert %s of %s: %s", kind, job, exc)
            if kind == Kind.STATE_DISK.value and record is not None:
                sent = record_from_dict(dict(record)).last_sent
                if sent is not None:
                    note_mailed(self.state_dir, sent)


def _key(row: dict[str, object]) -> tuple[str, str] | None:
    """The (job, kind) of a stored alert row, as ``put_alert`` was given it."""
    problem = row.get("problem")
    if not isinstance(problem, dict):
        return None
    return str(problem.get("job")), str(problem.get("kind"))


@dataclass(frozen=True)
class DiskOnlyOutcome:
    """A job's outcome as the alerts see it while the disk is full (a
    ``RunOutcome``): the disk's problem only, nothing verified as fixed."""

    job: str
    outcome: str
    exit_code: int
    skipped: bool
    problems: Sequence[Problem]
    cleared: Collection[Kind] = frozenset()


def disk_only(
    settings: Settings, reports: Sequence[JobReport], now: datetime
) -> list[DiskOnlyOutcome]:
    """What the alerts get of ``reports`` when some met a full disk.

    Of every job, its one-time problems (:data:`ONE_TIME_KINDS`) and its
    "disk full" ones, these only when no such alert went out unrecorded
    within ``ALERT_REPEAT_HOURS``; the exit codes stay, for the heartbeat.
    """
    last = mailed_at(settings.state_dir)
    repeat = timedelta(hours=settings.alert_repeat_hours)
    quiet = last is not None and timedelta(0) <= now - last < repeat
    if quiet:
        log.info("the disk-full alert went out at %s; not mailed again yet", last)
    kinds = ONE_TIME_KINDS | ({Kind.STATE_DISK} if not quiet else set())
    return [
        DiskOnlyOutcome(
            r.job,
            r.outcome,
            r.exit_code,
            r.skipped,
            [p for p in r.problems if p.kind in kinds],
        )
        for r in reports
    ]


def met_full_disk(reports: Sequence[JobReport]) -> bool:
    """Whether any of ``reports`` has a "disk full" problem."""
    return any(p.kind is Kind.STATE_DISK for r in reports for p in r.problems)
