"""After the jobs ran: decide, send and remember alert mails; ping the heartbeat.

The decisions are :func:`globus_auto.alerts.policy.plan_alerts`; this module
moves records between it, the alert store and the mail server. A mail that
cannot be sent is logged and retried by the next run; it never fails the run.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from globus_auto.alerts import policy
from globus_auto.alerts.heartbeat import ping_heartbeat
from globus_auto.alerts.message import compose
from globus_auto.alerts.policy import AlertRecord
from globus_auto.alerts.smtp import send_mail
from globus_auto.alerts.store import (
    AlertStore,
    FallbackAlertStore,
    open_alerts,
    record_to_dict,
)
from globus_auto.datastore.store import Datastore, pending_or_nothing
from globus_auto.errors import NotifyError
from globus_auto.problems import Kind, Problem
from globus_auto.settings.model import Settings
from globus_auto.text import redact, secrets_of

log = logging.getLogger(__name__)


class RunOutcome(Protocol):
    """What the alerts read of one job's run (the engine's ``JobReport``)."""

    @property
    def job(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def exit_code(self) -> int: ...
    @property
    def skipped(self) -> bool: ...
    @property
    def problems(self) -> Sequence[Problem]: ...
    @property
    def cleared(self) -> Collection[Kind]: ...


HEARTBEAT_TIMEOUT = 10.0  # seconds; a slow monitor must not hold up cron


def after_run(
    settings: Settings,
    store: AlertStore,
    reports: Sequence[RunOutcome],
    now: datetime,
    extra_problems: Sequence[Problem] = (),
) -> None:
    """Alerts, then the heartbeat; neither can fail the run or hide its outcome."""
    try:
        process_alerts(settings, store, reports, now, extra_problems)
    except Exception:
        log.error("could not process alerts; the next run retries", exc_info=True)
    ping(settings, reports)


def process_alerts(
    settings: Settings,
    store: AlertStore,
    reports: Sequence[RunOutcome],
    now: datetime,
    extra_problems: Sequence[Problem] = (),
) -> int:
    """Send what the reports call for; returns how many mails went out.

    ``extra_problems`` are reported besides the reports' own (e.g. a datastore
    that was reset before the jobs ran).
    """
    if not isinstance(store, FallbackAlertStore):
        _adopt_fallback(settings, store)
    _rekey_unsendable(store)
    secrets = secrets_of(settings)
    problems = [_redact(p, secrets) for r in reports for p in r.problems]
    problems += [_redact(p, secrets) for p in extra_problems]
    if isinstance(store, Datastore):
        problems = with_pending(settings, store, problems)
    cleared = [(r.job, kind) for r in reports for kind in r.cleared]
    records = _configured_only(settings, store, open_alerts(store))
    outgoing = policy.plan_alerts(
        records, problems, cleared, now, timedelta(hours=settings.alert_repeat_hours)
    )
    sent = 0
    mailer = _Mailer(settings, now)
    for item in outgoing:
        ok = mailer.deliver(item)
        sent += int(ok and item.message_kind is not None and mailer.mailed)
        record = policy.record_after_send(item, ok, now)
        store.put_alert(
            item.record.job,
            item.record.kind.value,
            None if record is None else record_to_dict(record),
        )
    return sent


def with_pending(
    settings: Settings, store: Datastore, problems: Sequence[Problem]
) -> list[Problem]:
    """``problems``, those without pending counts given their job's from ``store``.

    Why: some are made where the datastore is not at hand (an unexpected error,
    a datastore reset or not usable), yet the user still wants to know what is
    not delivered. Counts that cannot be read stay 0.
    """
    totals: dict[str, tuple[int, int]] = {}
    filled = []
    for problem in problems:
        if problem.pending_files or problem.pending_bytes:
            filled.append(problem)
            continue
        if problem.job not in totals:
            totals[problem.job] = _pending_of(settings, store, problem.job)
        files, size = totals[problem.job]
        filled.append(replace(problem, pending_files=files, pending_bytes=size))
    return filled


def _pending_of(settings: Settings, store: Datastore, name: str) -> tuple[int, int]:
    job = settings.job_named(name)
    return pending_or_nothing(store, None if job is None else job.identity)


def _adopt_fallback(settings: Settings, store: AlertStore) -> None:
    """Move records kept while the datastore was unusable back into it."""
    fallback = FallbackAlertStore(settings.state_dir)
    if not fallback.path.exists():
        return
    known = {(r.job, r.kind) for r in open_alerts(store)}
    for record in open_alerts(fallback):
        if record.key not in known:
            store.put_alert(record.job, record.kind.value, record_to_dict(record))
    fallback.delete()


LEGACY_UNSENDABLE = "some files cannot be sent"


def _rekey_unsendable(store: AlertStore) -> None:
    """Move an open alert about unsendable files, kept under the source's kind
    by earlier versions, to its own kind: on upgrade it is neither mailed anew
    nor wrongly called resolved."""
    for record in open_alerts(store):
        if record.kind is Kind.SOURCE_PROBLEM and record.summary == LEGACY_UNSENDABLE:
            problem = replace(record.problem, kind=Kind.UNSENDABLE)
            moved = replace(record, problem=problem)
            store.put_alert(record.job, Kind.UNSENDABLE.value, record_to_dict(moved))
            store.put_alert(record.job, Kind.SOURCE_PROBLEM.value, None)


def _configured_only(
    settings: Settings, store: AlertStore, records: list[AlertRecord]
) -> list[AlertRecord]:
    """Drop (without mail) the records of jobs no longer in the config."""
    names = {job.name for job in settings.jobs}
    kept = []
    for record in records:
        if record.job in names:
            kept.append(record)
        else:
            log.info("forgetting the alert %r of a removed job", record.summary)
            store.put_alert(record.job, record.kind.value, None)
    return kept


class _Mailer:
    """Sends one run's mails; after a connection failure it stops trying.

    Why stop: with the server down each attempt would wait for its own
    timeout, and the next run retries every unsent mail anyway.
    """

    def __init__(self, settings: Settings, now: datetime) -> None:
        self.settings = settings
        self.now = now
        self.hostname = socket.gethostname()
        self.failed = False
        self.mailed = False  # whether the last successful deliver sent a mail

    def deliver(self, item: policy.Outgoing) -> bool:
        """True when the mail went out or none was wanted; False to retry later."""
        self.mailed = False
        if item.message_kind is None:
            return True
        recipients = self.settings.recipients_for(item.record.job)
        if not recipients or not self.settings.email_sender:
            # Info only: the run logs the problem itself; the user chose no mail.
            log.info(
                "%s: %s (no EMAIL_RECIPIENTS configured, so no mail is sent)",
                item.record.job,
                item.record.summary,
            )
            return True
        if self.failed:
            return False
        message = compose(
            item, self.settings.email_sender, recipients, self.now, self.hostname
        )
        try:
            send_mail(message, self.settings.smtp)
        except NotifyError as exc:
            self.failed = True
            log.warning(
                "could not send the alert mail %r: %s; the next run retries",
                str(message["Subject"]),
                exc,
            )
            return False
        log.info("mailed: %s", message["Subject"])
        self.mailed = True
        return True


def _redact(problem: Problem, secrets: Sequence[str]) -> Problem:
    """``problem`` with every secret value replaced (defence in depth)."""
    if not secrets:
        return problem
    changes: dict[str, Any] = {}
    for name in ("summary", "what_happened", "what_to_do", "next_attempt"):
        changes[name] = redact(getattr(problem, name), secrets)
    return replace(problem, **changes)


def ping(settings: Settings, reports: Sequence[RunOutcome]) -> None:
    """Tell the heartbeat monitor whether this run went well."""
    if not settings.heartbeat_url:
        return
    failed = [r for r in reports if r.exit_code != 0]
    if not failed and any(r.skipped for r in reports):
        # The run holding the lock pings when it ends; if it never does, the
        # monitor's missing ping is the alarm.
        log.info("no heartbeat: a job was skipped, another run holds its lock")
        return
    summary = "; ".join(f"{r.job}: {r.outcome}" for r in reports)
    try:
        ping_heartbeat(
            settings.heartbeat_url,
            not failed,
            timeout=HEARTBEAT_TIMEOUT,
            message=summary,
        )
    except NotifyError as exc:
        log.warning("%s", exc)
