"""The run's login policy: stop a job that cannot run without a login, and say so.

Found without the network (no stored login, a collection the login has never
seen), so a cron run stops at once with exit 3 and one alert instead of
failing later. After the jobs, the run's authentication outcome is remembered
and the tokens are renewed when the keep-alive is due.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from globus_auto.datastore.store import pending_or_nothing
from globus_auto.errors import EXIT_LOGIN_REQUIRED, GlobusAutoError, LoginRequired
from globus_auto.globus.consents import job_collections, known_collections
from globus_auto.globus.login import keep_alive
from globus_auto.globus.tokens import (
    clear_auth_error,
    keepalive_due,
    record_auth_error,
    tokens_path,
)
from globus_auto.logs import FILE_ONLY
from globus_auto.problems import (
    SUMMARIES,
    Kind,
    Problem,
    login_command,
    login_what_to_do,
)
from globus_auto.text import redact, secrets_of

if TYPE_CHECKING:
    from globus_auto.datastore.store import Datastore
    from globus_auto.engine.report import JobReport
    from globus_auto.settings.model import Job, Settings

log = logging.getLogger(__name__)


def login_problem(settings: Settings, job: Job) -> str | None:
    """Why ``job`` cannot run without a login, found without the network; or None."""
    if settings.client_secret:
        return None
    if not tokens_path(settings.state_dir).exists():
        return f"there is no stored Globus login in {settings.state_dir}"
    known = known_collections(settings)
    new = [c for c in job_collections([job]) if c not in known]
    if new:
        return (
            f"collection {', '.join(new)} is not covered by the stored Globus login "
            "(it was added to the config after the last login)"
        )
    return None


def blocked_report(
    settings: Settings, job: Job, store: Datastore | None = None
) -> JobReport | None:
    """A failed report when ``job`` needs a login first (no network); else None.

    ``store``, when given, supplies what is waiting to be sent, for the alert.
    """
    from globus_auto.engine.report import JobReport

    reason = login_problem(settings, job)
    if reason is None:
        return None
    message = f"{reason}; run on a terminal: {login_command(settings)}"
    # The log file only: the report's lines (what happened, what to do) are
    # what the user reads on stderr, once.
    log.error("%s: %s", job.name, message, extra=FILE_ONLY)
    report = JobReport(job.name, outcome="failed", detail=message)
    report.fail(
        login_required_problem(
            settings, job.name, reason, pending_or_nothing(store, job.identity)
        ),
        EXIT_LOGIN_REQUIRED,
    )
    return report


def login_required_problem(
    settings: Settings, job: str, message: str, waiting: tuple[int, int] = (0, 0)
) -> Problem:
    """The login-required problem of ``job``; ``waiting`` is (files, bytes)
    not yet delivered."""
    return Problem(
        job=job,
        kind=Kind.LOGIN_REQUIRED,
        summary=SUMMARIES[Kind.LOGIN_REQUIRED],
        what_happened=redact(message, secrets_of(settings)),
        what_to_do=login_what_to_do(
            settings, first=not tokens_path(settings.state_dir).exists()
        ),
        next_attempt="Runs stop at once, without prompting, until you log in.",
        pending_files=waiting[0],
        pending_bytes=waiting[1],
    )


def after_jobs(
    settings: Settings,
    reports: list[JobReport],
    now: datetime,
    store: Datastore | None = None,
) -> None:
    """Remember the run's authentication outcome; renew tokens if keep-alive is due.

    A renewal that fails adds a login-required problem to every report (with
    what is waiting to be sent, from ``store`` when given).
    """
    errors = [
        p.what_happened
        for r in reports
        for p in r.problems
        if p.kind is Kind.LOGIN_REQUIRED
    ]
    if errors:
        record_auth_error(settings, now, errors[0])
        return
    if any(Kind.LOGIN_REQUIRED in r.cleared for r in reports):
        clear_auth_error(settings)
    if keepalive_due(settings, now):
        _keep_alive(settings, reports, now, store)


def _keep_alive(
    settings: Settings,
    reports: list[JobReport],
    now: datetime,
    store: Datastore | None,
) -> None:
    """Renew the stored tokens; a renewal Globus refuses fails every report."""
    try:
        keep_alive(settings)
    except LoginRequired as exc:
        message = (
            "renewing the Globus tokens (unused for "
            f"{settings.auth_keepalive_days:g} days) failed: {exc}"
        )
        record_auth_error(settings, now, message)
        for report in reports:
            job = settings.job_named(report.job)
            waiting = pending_or_nothing(store, None if job is None else job.identity)
            report.fail(
                login_required_problem(settings, report.job, message, waiting),
                EXIT_LOGIN_REQUIRED,
            )
    except GlobusAutoError as exc:  # Globus unreachable: the next run retries
        log.warning("could not renew the Globus tokens: %s", exc)
    else:
        log.info("renewed the Globus tokens (keep-alive)")
        clear_auth_error(settings)
