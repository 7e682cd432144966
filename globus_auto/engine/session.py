"""A session: every job of one invocation run once, then alerts and the heartbeat.

What ``globus-auto run`` does below the command line (the coordinator between
the command line and the core): prepare the private state folder and the logs,
open the datastore (a corrupt one is moved aside, never deleted), run each job
(one job's bug never stops the others), record each run, then remember the
login outcome, send the alerts and ping the heartbeat.

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from globus_auto.alerts import delivery
from globus_auto.alerts.store import FallbackAlertStore, read_only_datastore
from globus_auto.clock import utcnow
from globus_auto.datastore import opening
from globus_auto.datastore.records import RunRecord
from globus_auto.datastore.store import Datastore
from globus_auto.engine import login_gate
from globus_auto.engine.job import run_job
from globus_auto.engine.report import JobReport, RunEnv, RunOptions
from globus_auto.errors import EXIT_UNEXPECTED, DatastoreError
from globus_auto.files import ensure_private_dir
from globus_auto.logs import CRON_LOG_NAME, cap_cron_log, setup_file
from globus_auto.problems import (
    Problem,
    corrupt_problems,
    datastore_unusable_problem,
    unexpected_problem,
)
from globus_auto.settings.model import Job, Settings

if TYPE_CHECKING:
    from globus_auto.engine.scan import Progress
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
    progress: Progress | None = None,
) -> list[JobReport]:
    """Run ``jobs`` once, then alerts and heartbeat; one report per job.

    ``prompt`` is how a needed login reaches a person (None under cron: a
    needed login is an alert, never a question); ``now`` is the clock the run
    and its alerts use (tests move it);
    ``progress`` receives the scan's progress (a terminal's status line).
    """
    log_file = _prepare_state(settings)
    deferred: list[Problem] = []
    with ExitStack() as stack:
        try:
            store = stack.enter_context(open_store(settings, deferred))
            if opts.dry_run:  # its writes go to a copy: no write lock held
                store = stack.enter_context(opening.private_copy(store, now()))
        except DatastoreError as exc:
            if opts.dry_run:
                raise
            log.error("%s", exc)
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
            login_gate.after_jobs(settings, reports, now(), store)  # keep-alive
            delivery.after_run(settings, store, reports, now(), deferred)
    return reports


def _prepare_state(settings: Settings) -> Path:
    """The private state folder, the capped cron log and the run's log file."""
    ensure_private_dir(settings.state_dir)
    cap_cron_log(settings.state_dir / CRON_LOG_NAME)
    log_file = setup_file(settings.state_dir)
    for note in settings.notes:
        log.debug("%s", note)
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
        log.error("%s: unexpected error", job.name, exc_info=True)
        report = JobReport(
            job.name,
            outcome="failed",
            exit_code=EXIT_UNEXPECTED,
            detail=f"{type(exc).__name__}: {exc}",
        )
        report.problems.append(unexpected_problem(job.name, exc, log_file))
    if not opts.dry_run and not report.skipped:  # the run holding the lock records
        env.store.record_run(
            RunRecord(
                job.name,
                started,
                env.now(),
                report.outcome,
                report.detail,
                report.files_sent,
                report.bytes_sent,
            )
        )
    return report


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
        report.problems.append(datastore_unusable_problem(settings, job.name, error))
        reports.append(report)
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
    return reports
