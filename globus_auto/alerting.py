"""After the jobs ran: decide, send and remember alert mails; ping the heartbeat.

The decisions are :func:`globus_auto.alerts.plan_alerts`; this module moves
records between it, the datastore and the mail server. A mail that cannot be
sent is logged and retried by the next run; it never fails the run.

When the datastore itself cannot be opened, the alert records live for a while
in a small JSON file beside it (``alerts-pending.json``), so that the problem is
still mailed once, not every run; the next run that opens the datastore moves
them back in and sends the "resolved" mail.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from globus_auto import alerts, notify
from globus_auto.alerts import AlertRecord, Kind, Problem
from globus_auto.datastore import Datastore, datastore_path
from globus_auto.errors import EXIT_UNEXPECTED
from globus_auto.runner import JobReport
from globus_auto.settings import Job, Settings

log = logging.getLogger(__name__)

FALLBACK_FILE = "alerts-pending.json"
REDACTED = "[redacted]"
HEARTBEAT_TIMEOUT = 10.0  # seconds; a slow monitor must not hold up cron


class AlertStore(Protocol):
    """Where alert records are kept: the datastore, or the fallback file."""

    def alert_rows(self, job: str | None = None) -> list[dict[str, object]]: ...

    def put_alert(
        self, job: str, kind: str, record: dict[str, object] | None
    ) -> None: ...


class FallbackAlertStore:
    """Alert records in a 0600 JSON file, for when the datastore is unusable."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FALLBACK_FILE

    def alert_rows(self, job: str | None = None) -> list[dict[str, object]]:
        rows = list(self._load().values())
        return [row for row in rows if job is None or _job_of(row) == job]

    def put_alert(self, job: str, kind: str, record: dict[str, object] | None) -> None:
        rows = self._load()
        key = json.dumps([job, kind])
        if record is None:
            rows.pop(key, None)
        else:
            rows[key] = record
        self._save(rows)

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)

    def _load(self) -> dict[str, dict[str, object]]:
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.path, exc)
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def _save(self, rows: dict[str, dict[str, object]]) -> None:
        if not rows:
            self.delete()
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, sort_keys=True)
        os.replace(temporary, self.path)


def _job_of(row: dict[str, object]) -> object:
    problem = row.get("problem")
    return problem.get("job") if isinstance(problem, dict) else None


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


def open_alerts(store: AlertStore, job: str | None = None) -> list[AlertRecord]:
    """The stored records; one that cannot be read is logged and skipped."""
    records = []
    for row in store.alert_rows(job):
        try:
            records.append(record_from_dict(dict(row)))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("skipping an unreadable alert record %r: %s", row, exc)
    return records


def recipients_for(settings: Settings, job_name: str) -> tuple[str, ...]:
    """The job's recipients (settings give every job the global EMAIL_RECIPIENTS
    unless it names its own); for a name no job has, everyone's."""
    for job in settings.jobs:
        if job.name == job_name:
            return job.email_recipients
    return _everyone(settings.jobs)


def _everyone(jobs: Iterable[Job]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(a for job in jobs for a in job.email_recipients))


def after_run(
    settings: Settings,
    store: AlertStore,
    reports: Sequence[JobReport],
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
    reports: Sequence[JobReport],
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
    secrets = _secrets(settings)
    problems = [_redact(p, secrets) for r in reports for p in r.problems]
    problems += [_redact(p, secrets) for p in extra_problems]
    if isinstance(store, Datastore):
        problems = with_pending(settings, store, problems)
    cleared = [(r.job, kind) for r in reports for kind in r.cleared]
    records = _configured_only(settings, store, open_alerts(store))
    outgoing = alerts.plan_alerts(
        records, problems, cleared, now, timedelta(hours=settings.alert_repeat_hours)
    )
    sent = 0
    mailer = _Mailer(settings, now)
    for item in outgoing:
        ok = mailer.deliver(item)
        sent += int(ok and item.message_kind is not None and mailer.mailed)
        record = alerts.record_after_send(item, ok, now)
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
    identities = [job.identity for job in settings.jobs if job.name == name]
    try:
        job_id = store.existing_job_id(identities[0]) if identities else None
        return (0, 0) if job_id is None else store.pending_totals(job_id)
    except Exception as exc:  # the datastore may be the problem
        log.debug("no pending counts for %s: %s", name, exc)
        return 0, 0


def _read_only_datastore(settings: Settings) -> Datastore | None:
    """The datastore opened read-only, or None if even that fails."""
    path = datastore_path(settings.state_dir).absolute()
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(
            f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
    except sqlite3.Error:
        return None
    return Datastore(path, conn)


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

    def deliver(self, item: alerts.Outgoing) -> bool:
        """True when the mail went out or none was wanted; False to retry later."""
        self.mailed = False
        if item.message_kind is None:
            return True
        recipients = recipients_for(self.settings, item.record.job)
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
        message = alerts.compose(
            item, self.settings.email_sender, recipients, self.now, self.hostname
        )
        try:
            notify.send_mail(message, self.settings.smtp)
        except notify.NotifyError as exc:
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


def _secrets(settings: Settings) -> list[str]:
    """Values that must never appear in a mail."""
    found = [settings.client_secret or ""]
    with contextlib.suppress(Exception):  # unreadable: then nothing to hide
        found.append(settings.smtp.password() or "")
    return [s for s in found if len(s) >= 4]


def _redact(problem: Problem, secrets: Sequence[str]) -> Problem:
    """``problem`` with every secret value replaced (defence in depth)."""
    if not secrets:
        return problem
    changes = {}
    for name in ("summary", "what_happened", "what_to_do", "next_attempt"):
        text = getattr(problem, name)
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        changes[name] = text
    return replace(problem, **changes)


def ping(settings: Settings, reports: Sequence[JobReport]) -> None:
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
        notify.ping_heartbeat(
            settings.heartbeat_url,
            not failed,
            timeout=HEARTBEAT_TIMEOUT,
            message=summary,
        )
    except notify.NotifyError as exc:
        log.warning("%s", exc)


def unexpected_problem(job: str, error: BaseException, log_path: str) -> Problem:
    """The alert for an error nobody anticipated, pointing at the log."""
    return Problem(
        job=job,
        kind=Kind.UNEXPECTED,
        summary="an unexpected error",
        what_happened=f"{type(error).__name__}: {error}",
        what_to_do=(
            f"Read the traceback in the log {log_path}; if the error persists, "
            "report it with that traceback."
        ),
        next_attempt="The next scheduled run will try again.",
    )


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
        report.problems.append(
            Problem(
                job=job.name,
                kind=Kind.DATASTORE,
                summary="the datastore is not usable",
                what_happened=f"{error}. No job ran.",
                what_to_do=(
                    f"Check that {settings.state_dir} is writable by this user and "
                    "that its disk has free space, then run: globus-auto --config "
                    f"{settings.config_path} status"
                ),
                next_attempt="The next scheduled run will try again.",
            )
        )
        reports.append(report)
    readable = _read_only_datastore(settings)
    if readable is not None:  # e.g. readable but not writable
        with contextlib.closing(readable):
            for report in reports:
                report.problems[:] = with_pending(settings, readable, report.problems)
    try:
        store = FallbackAlertStore(settings.state_dir)
        after_run(settings, store, reports, now)
    except OSError as exc:  # e.g. the state folder itself is unusable
        log.error("could not keep alert state in %s: %s", settings.state_dir, exc)
    return reports


def corrupt_problems(settings: Settings, reason: str, aside: Path) -> list[Problem]:
    """One problem per job: the datastore was unreadable and was started afresh."""
    return [
        Problem(
            job=job.name,
            kind=Kind.DATASTORE,
            summary="the datastore was corrupt and was reset",
            what_happened=f"{reason}. It was moved to {aside}.",
            what_to_do="Nothing is needed: the tool started afresh and sends "
            "everything again with a checksum sync, which skips what the "
            "destination already has. Keep the moved file for a bug report.",
            next_attempt="This run carries on with a fresh datastore.",
        )
        for job in settings.jobs
    ]
