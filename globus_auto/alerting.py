"""After the jobs ran: decide, send and remember alert mails; ping the heartbeat.

The decisions are :func:`globus_auto.alerts.plan_alerts`; this module moves
records between it, the datastore and the mail server. A mail that cannot be
sent is logged and retried by the next run; it never fails the run.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from globus_auto import alerts, notify
from globus_auto.alerts import AlertRecord, Kind, Problem
from globus_auto.datastore import Datastore
from globus_auto.runner import JobReport
from globus_auto.settings import Settings

log = logging.getLogger(__name__)


def record_to_dict(record: AlertRecord) -> dict[str, Any]:
    return {
        "problem": record.problem.to_dict(),
        "first_seen": record.first_seen.isoformat(),
        "last_sent": record.last_sent.isoformat() if record.last_sent else None,
        "resolved_at": record.resolved_at.isoformat() if record.resolved_at else None,
    }


def record_from_dict(values: dict[str, Any]) -> AlertRecord:
    def when(text: Any) -> datetime | None:
        return None if text is None else datetime.fromisoformat(str(text))

    first_seen = when(values["first_seen"])
    assert first_seen is not None
    return AlertRecord(
        problem=Problem.from_dict(dict(values["problem"])),
        first_seen=first_seen,
        last_sent=when(values.get("last_sent")),
        resolved_at=when(values.get("resolved_at")),
    )


def open_alerts(store: Datastore, job: str | None = None) -> list[AlertRecord]:
    return [record_from_dict(row) for row in store.alert_rows(job)]


def recipients_for(settings: Settings, job_name: str) -> tuple[str, ...]:
    for job in settings.jobs:
        if job.name == job_name and job.email_recipients:
            return job.email_recipients
    return ()


def process_alerts(
    settings: Settings,
    store: Datastore,
    reports: Sequence[JobReport],
    now: datetime,
) -> int:
    """Send what the reports call for; returns how many mails went out."""
    problems = [p for r in reports for p in r.problems]
    cleared = [(r.job, kind) for r in reports for kind in r.cleared]
    outgoing = alerts.plan_alerts(
        open_alerts(store),
        problems,
        cleared,
        now,
        timedelta(hours=settings.alert_repeat_hours),
    )
    sent = 0
    hostname = socket.gethostname()
    for item in outgoing:
        ok = _deliver(settings, item, now, hostname)
        sent += int(ok and item.message_kind is not None)
        record = alerts.record_after_send(item, ok, now)
        store.put_alert(
            item.record.job,
            item.record.kind.value,
            None if record is None else record_to_dict(record),
        )
    return sent


def _deliver(
    settings: Settings, item: alerts.Outgoing, now: datetime, hostname: str
) -> bool:
    if item.message_kind is None:
        return True
    recipients = recipients_for(settings, item.record.job)
    if not recipients or not settings.email_sender:
        log.warning(
            "%s: %s (no EMAIL_RECIPIENTS configured, so no mail is sent)",
            item.record.job,
            item.record.summary,
        )
        return True
    message = alerts.compose(item, settings.email_sender, recipients, now, hostname)
    try:
        notify.send_mail(message, settings.smtp)
    except notify.NotifyError as exc:
        log.warning(
            "could not send the alert mail %r: %s; the next run retries",
            str(message["Subject"]),
            exc,
        )
        return False
    log.info("mailed: %s", message["Subject"])
    return True


def ping(settings: Settings, reports: Sequence[JobReport]) -> None:
    """Tell the heartbeat monitor whether this run went well."""
    if not settings.heartbeat_url:
        return
    failed = [r for r in reports if r.exit_code != 0]
    summary = "; ".join(f"{r.job}: {r.outcome}" for r in reports)
    try:
        notify.ping_heartbeat(settings.heartbeat_url, not failed, message=summary)
    except notify.NotifyError as exc:
        log.warning("%s", exc)


def unexpected_problem(job: str, error: BaseException, log_path: str) -> Problem:
    """The alert for an error nobody anticipated, pointing at the log."""
    return Problem(
        job=job,
        kind=Kind.UNEXPECTED,
        summary="an unexpected error",
        what_happened=f"{type(error).__name__}: {error}",
        what_to_do=f"Read the traceback in {log_path} and report it if it persists.",
        next_attempt="The next scheduled run will try again.",
    )
