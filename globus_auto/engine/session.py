"""A session: every job of one invocation run once, then alerts and the heartbeat.

What ``globus-auto run`` does below the command line (the coordinator between
the command line and the core): prepare the private state folder and the logs,
open the datastore (a corrupt one is moved aside, never deleted; a full disk is
reported as such), run each job (one job's bug never stops the others), record
each run, then remember the login outcome, send the alerts, ping the heartbeat
and write the metrics file. A SIGTERM or SIGHUP unwinds the run as Ctrl-C does
(:mod:`globus_auto.engine.crash`) and is logged.

Nothing here prompts or prints: a terminal's progress line comes in as a
callback, and the reports go back to the caller. May import the engine, the
datastore, the alerts, the settings and the base modules; the command line
imports this, never the reverse. A run with nothing to send imports no
globus-sdk: the gateway is built by :func:`connect_gateway` only when a job
asks for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from globus_auto.alerts import delivery
from globus_auto.alerts.store import FallbackAlertStore, read_only_datastore
from globus_auto.clock import utcnow
from globus_auto.datastore import opening
from globus_auto.datastore.connection import (
    StateDiskError,
    disk_error,
    disk_errors,
)
from globus_auto.datastore.records import RunRecord
from globus_auto.datastore.store import Datastore
from globus_auto.engine import diskfull, login_gate
from globus_auto.engine.crash import Terminated, stop_signals_raise
from globus_auto.engine.job import run_job
from globus_auto.engine.metrics import write_metrics
from globus_auto.engine.report import JobReport, RunEnv, RunOptions
from globus_auto.errors import EXIT_UNEXPECTED, DatastoreError, GlobusAutoError
from globus_auto.files import ensure_private_dir
from globus_auto.logs import CRON_LOG_NAME, FILE_ONLY, cap_cron_log, setup_file
from globus_auto.problems import (
    SUMMARIES,
    Kind,
    Problem,
    corrupt_problems,
    datastore_unusable_problem,
    unexpected_problem,
    what_to_do,
)
from globus_auto.settings.model import Job, Settings

if TYPE_CHECKING:
    from globus_auto.engine.report import RunProgress
    from globus_auto.globus.gateway import Gateway
    from globus_auto.globus.prompt import LoginPrompt

log = logging.getLogger(__name__)


def run_session(
    settings: Settings,
    jobs: Sequence[Job],
    opts: RunOptions,
    *,
    prompt: LoginPrompt | None = None,
    now: Callable[[], datetime] = utcnow,
    progress: RunProgress | None = None,
) -> list[JobReport]:
    """Run ``jobs`` once, then alerts and heartbeat; one report per job.

    ``prompt`` is how a needed login reaches a person (None under cron: a
    needed login is an alert, never a question); ``now`` is the clock the run
    and its alerts use (tests move it);
    ``progress`` receives the scans' and waits' progress (a terminal's status
    line).
    """
    log_file = _prepare_state(settings)
    if not opts.dry_run:
        delivery.run_started(settings)  # the heartbeat's /start
    with stop_signals_raise():
        try:
            return _run_session(settings, jobs, opts, prompt, now, progress, log_file)
        except Terminated as stop:  # the log file says why the run ended
            log.error("%s; the next run carries on safely", stop, extra=FILE_ONLY)
            raise


def _run_session(
    settings: Settings,
    jobs: Sequence[Job],
    opts: RunOptions,
    prompt: LoginPrompt | None,
    now: Callable[[], datetime],
    progress: RunProgress | None,
    log_file: Path,
) -> list[JobReport]:
    """:func:`run_session` once the state folder and the log are ready."""
    deferred: list[Problem] = []
    with ExitStack() as stack:
        try:
            store = stack.enter_context(open_store(settings, deferred))
            if opts.dry_run:  # its writes go to a copy: no write lock held
                store = stack.enter_context(opening.private_copy(store, now()))
        except DatastoreError as exc:
            if opts.dry_run:
                raise
            log.error("%s", exc, extra=FILE_ONLY)  # the reports print it
            return datastore_unusable(settings, jobs, exc, now())
        env = RunEnv(
            settings=settings,
            store=store,
            gateway_factory=lambda: connect_gateway(settings, prompt),
            now=now,
            progress=progress,
        )
        reports = [_run_one(job, env, opts, str(log_file)) for job in jobs]
        if not opts.dry_run:
            _after_jobs(settings, store, reports, now(), deferred)
            write_metrics(settings, store, reports, now())  # after the alerts
    return reports


def _after_jobs(
    settings: Settings,
    store: Datastore,
    reports: list[JobReport],
    now: datetime,
    deferred: Sequence[Problem],
) -> None:
    """Keep-alive, then the alerts and the heartbeat; on a full disk only its
    alert, remembered without writing (:mod:`globus_auto.engine.diskfull`)."""
    try:
        login_gate.after_jobs(settings, reports, now, store)  # keep-alive
    except (DatastoreError, OSError) as exc:  # a full disk: the alerts say so
        log.error("could not record the login's outcome: %s", exc, extra=FILE_ONLY)
    if diskfull.met_full_disk(reports):
        _alert_full_disk_with(settings, store, reports, now, deferred)
    else:
        delivery.after_run(settings, store, reports, now, deferred)


def _prepare_state(settings: Settings) -> Path:
    """The private state folder, the capped cron log and the run's log file.

    A disk too full to make them raises :class:`StateDiskError` (one line).
    """
    with disk_errors(settings.state_dir):
        ensure_private_dir(settings.state_dir)
        diskfull.prepare_mark(settings.state_dir)
        cap_cron_log(settings.state_dir / CRON_LOG_NAME)
        log_file = setup_file(settings.state_dir)
    for note in settings.notes:
        log.debug("%s", note)
    for warning in settings.warnings:  # under cron, the log is where it is seen
        log.warning("%s", warning)
    return log_file


def _run_one(job: Job, env: RunEnv, opts: RunOptions, log_file: str) -> JobReport:
    """One job's report, recorded in the run history (not for a dry run)."""
    started = env.now()
    try:
        blocked = (
            None
            if opts.dry_run
            else login_gate.blocked_report(env.settings, job, env.store)
        )
        report = blocked or run_job(job, env, opts)
    except Exception as exc:  # one job's bug must not stop the others
        report = _failed_report(job, env, exc, log_file)
    if not opts.dry_run and not report.skipped:  # the run holding the lock records
        _record_run(job, env, report, started)
    return report


def _failed_report(job: Job, env: RunEnv, exc: Exception, log_file: str) -> JobReport:
    """The report of a job that raised: the state folder's disk, or a bug."""
    disk = disk_error(exc, env.settings.state_dir)
    if disk is not None and _in_state_dir(exc, env.settings.state_dir):
        log.error("%s: %s", job.name, disk, extra=FILE_ONLY)  # the report says it
        report = JobReport(job.name, outcome="failed", detail=str(disk))
        report.fail(error_problem(env.settings, job, disk), disk.exit_code)
        return report
    log.error("%s: unexpected error", job.name, exc_info=True)
    report = JobReport(
        job.name,
        outcome="failed",
        exit_code=EXIT_UNEXPECTED,
        detail=f"{type(exc).__name__}: {exc}",
    )
    report.problems.append(unexpected_problem(job.name, exc, log_file))
    return report


def _in_state_dir(exc: Exception, state_dir: Path) -> bool:
    """Whether ``exc`` is about a file in ``state_dir`` (or names no file)."""
    name = getattr(exc, "filename", None)
    if name is None:
        return True
    path = Path(os.fsdecode(name)).absolute()
    return path == state_dir.absolute() or state_dir.absolute() in path.parents


def _record_run(job: Job, env: RunEnv, report: JobReport, started: datetime) -> None:
    """Add the run to the history; a failure to is one of the job's problems.

    Why caught here: a disk that filled during the run fails this last write
    too, and the job must still get its alert and the heartbeat its /fail.
    That it could write shows the state folder's disk takes writes again.
    """
    record = RunRecord(
        job.name,
        started,
        env.now(),
        report.outcome,
        report.detail,
        report.files_sent,
        report.bytes_sent,
    )
    try:
        env.store.record_run(record)
    except DatastoreError as exc:
        log.error("%s: could not record the run: %s", job.name, exc, extra=FILE_ONLY)
        if not any(p.kind is exc.kind for p in report.problems):
            report.outcome = "failed"
            report.fail(error_problem(env.settings, job, exc), exc.exit_code)
        return
    if not any(p.kind is Kind.STATE_DISK for p in report.problems):
        report.cleared.add(Kind.STATE_DISK)
        diskfull.disk_has_room(env.settings.state_dir)


def error_problem(settings: Settings, job: Job, exc: GlobusAutoError) -> Problem:
    """The alert for ``exc`` in ``job``, in the words of its kind."""
    return Problem(
        job=job.name,
        kind=exc.kind,
        summary=SUMMARIES[exc.kind],
        what_happened=str(exc),
        what_to_do=what_to_do(exc.kind, settings, job),
        next_attempt="The next scheduled run will try again.",
    )


def _alert_full_disk(
    settings: Settings, reports: list[JobReport], now: datetime
) -> None:
    """Alerts and the heartbeat when the disk was too full to open the
    datastore (its records are read if they can be)."""
    stored = read_only_datastore(settings)
    try:
        _alert_full_disk_with(settings, stored, reports, now)
    finally:
        if stored is not None:
            stored.close()


def _alert_full_disk_with(
    settings: Settings,
    store: Datastore | None,
    reports: list[JobReport],
    now: datetime,
    deferred: Sequence[Problem] = (),
) -> None:
    """The full disk's alert and the one-time ones (those of ``deferred``
    too: a datastore reset), remembered without writing (``diskfull``); the
    heartbeat gets every report's outcome."""
    alerts = diskfull.DiskFullAlerts(settings.state_dir, store)
    outcomes = diskfull.disk_only(settings, reports, now)
    delivery.after_run(settings, alerts, outcomes, now, deferred)


def connect_gateway(settings: Settings, prompt: LoginPrompt | None) -> Gateway:
    """Build the Transfer gateway (imports globus-sdk only now).

    Why the import is here: :mod:`globus_auto.globus.login` brings globus-sdk,
    and a run with nothing to send must not pay for that import.
    """
    from globus_auto.globus import login

    return login.connect(settings, prompt)


@contextmanager
def open_store(
    settings: Settings, deferred: list[Problem] | None = None
) -> Iterator[Datastore]:
    """The datastore; a corrupt one is moved aside, alerted, and started afresh.

    With ``deferred``, the alert's problems are appended there for the caller
    to report with the run's own, instead of being mailed at once.
    """
    try:
        store = opening.open_datastore(settings.state_dir, utcnow())
    except opening.CorruptDatastore as exc:
        aside = opening.move_aside(exc.file, utcnow())
        log.error(
            "%s; moved it to %s and started afresh (a checksum sync follows, "
            "which is safe: the destination is a superset)",
            exc,
            aside,
        )
        store = opening.open_datastore(settings.state_dir, utcnow())
        problems = corrupt_problems(settings, str(exc), aside)
        if deferred is None:
            delivery.process_alerts(settings, store, [], utcnow(), problems)
        else:
            deferred.extend(problems)
    try:
        yield store
    finally:
        store.close()


def datastore_unusable(
    settings: Settings,
    jobs: Sequence[Job],
    error: BaseException,
    now: datetime,
) -> list[JobReport]:
    """Reports (and alerts, kept in the fallback file) when the datastore
    cannot be opened: no job can run without it."""
    reports = []
    for job in jobs:
        report = JobReport(
            job.name, outcome="failed", exit_code=EXIT_UNEXPECTED, detail=str(error)
        )
        if isinstance(error, StateDiskError):
            report.problems.append(error_problem(settings, job, error))
        else:
            report.problems.append(
                datastore_unusable_problem(settings, job.name, error)
            )
        reports.append(report)
    if isinstance(error, StateDiskError):  # nowhere to keep alerts: see diskfull
        _alert_full_disk(settings, reports, now)
        write_metrics(settings, None, reports, now)
        return reports
    readable = read_only_datastore(settings)
    if readable is not None:  # e.g. readable but not writable
        with contextlib.closing(readable):
            for report in reports:
                report.problems[:] = delivery.with_pending(
                    settings, readable, report.problems
                )
    try:
        store = FallbackAlertStore(settings.state_dir)
        delivery.after_run(settings, store, reports, now)
    except OSError as exc:  # e.g. the state folder itself is unusable
        log.error("could not keep alert state in %s: %s", settings.state_dir, exc)
    write_metrics(settings, None, reports, now)
    return reports
