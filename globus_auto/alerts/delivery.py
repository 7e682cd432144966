"""Around the jobs: ping the heartbeat; after them, decide, send and remember alerts.

The decisions are :func:`globus_auto.alerts.policy.plan_alerts`; this module
moves records between it, the alert store and the channels (mail, Apprise, the
command hook: :mod:`.channels.registry`). A message that cannot be sent is
logged and retried by the next run on that channel alone; it never fails the
run. Each call has ``NOTIFY_TIMEOUT`` for the whole of it, and all of one run's
alerts together at most :data:`BUDGET_CALLS` times that: what does not fit goes
out with the next run.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from globus_auto.alerts import policy
from globus_auto.alerts.deadline import Budget
from globus_auto.alerts.policy import AlertRecord
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

if TYPE_CHECKING:
    from globus_auto.alerts.message import Notice

# The channels (:mod:`.channels.registry`: smtplib, ssl, email, subprocess)
# and the message (email) are imported only when a run has alerts to decide
# on: together about 15 ms of the start of every run, and most runs have none.

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


BUDGET_CALLS = 5  # a run's alerts take at most this many NOTIFY_TIMEOUTs


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
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Send what the reports call for; returns how many messages went out.

    ``extra_problems`` are reported besides the reports' own (e.g. a datastore
    that was reset before the jobs ran); ``clock`` is the monotonic clock of
    the run's budget for alerts.
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

    def channels(job: str) -> list[str]:
        from globus_auto.alerts.channels import registry

        return registry.channels_for(settings, job)

    plan = policy.plan_alerts(
        records,
        problems,
        cleared,
        now,
        timedelta(hours=settings.alert_repeat_hours),
        channels=channels,
        after_failures=settings.alert_after_failures,
    )
    sender = _Sender(
        settings, now, Budget(BUDGET_CALLS * settings.notify_timeout, clock)
    )
    sent = 0
    for decision in plan:
        delivered = sender.deliver(decision)
        sent += len(delivered)
        _note_told(settings, reports, decision.record.job, delivered)
        record = policy.record_after_send(decision, delivered, now)
        store.put_alert(
            decision.record.job,
            decision.record.kind.value,
            None if record is None else record_to_dict(record),
        )
    return sent


def _note_told(
    settings: Settings,
    reports: Sequence[RunOutcome],
    job: str,
    channels: Collection[str],
) -> None:
    """Tell ``job``'s report where its alerts went ("to ... via ..."), for a
    run on a terminal to say so (the engine's ``JobReport.alerted``)."""
    told = [_described(settings, c) for c in sorted(channels)]
    for report in reports:
        noted = getattr(report, "alerted", None)
        if report.job == job and isinstance(noted, list):
            noted.extend(t for t in told if t not in noted)


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


class _Sender:
    """Sends one run's messages over their channels, within the run's budget.

    Why a channel that failed is not tried again this run: with its server
    down each attempt would wait for its own deadline, and the next run
    retries every message it owes anyway.
    """

    def __init__(self, settings: Settings, now: datetime, budget: Budget) -> None:
        self.settings = settings
        self.now = now
        self.hostname = socket.gethostname()
        self.failed: set[str] = set()
        self.budget = budget
        self.told_spent = False

    def deliver(self, decision: policy.Decision) -> set[str]:
        """The channels that took their message of ``decision``."""
        if decision.reported and not decision.messages:
            self._note_unsent(decision)
        from globus_auto.alerts.message import Notice

        delivered = set()
        for outgoing in decision.messages:
            notice = Notice(outgoing, self.now, self.hostname)
            for channel in outgoing.channels:
                if self._send(channel, notice):
                    delivered.add(channel)
        return delivered

    def _note_unsent(self, decision: policy.Decision) -> None:
        """Log (info only: the run logs the problem itself) why nobody is told."""
        from globus_auto.alerts.channels import registry

        record = decision.record
        if not registry.channels_for(self.settings, record.job):
            why = "no EMAIL_RECIPIENTS, NOTIFY_URLS or ON_ALERT_COMMAND configured"
        elif not record.sent:
            need = policy.grace_for(record.kind, self.settings.alert_after_failures)
            why = (
                f"alerted after {need} failing runs in a row; so far {record.failures}"
            )
        else:
            return  # announced already; the reminder is not due yet
        log.info("%s: %s (%s)", record.job, record.summary, why)

    def _send(self, channel: str, notice: Notice) -> bool:
        """True when ``channel`` took ``notice``; False to retry it next run."""
        if channel in self.failed:
            return False
        if self.budget.spent:
            if not self.told_spent:
                log.warning(
                    "the time for this run's alerts is used up; the rest go out "
                    "with the next run"
                )
                self.told_spent = True
            return False
        from globus_auto.alerts.channels import registry

        module = registry.module_for(channel)
        timeout = self.budget.slice(self.settings.notify_timeout)
        try:
            module.send(self.settings, channel, notice, timeout)
        except Exception as exc:  # a channel never fails the run
            self.failed.add(channel)
            detail = str(exc) if isinstance(exc, NotifyError) else repr(exc)
            log.warning(
                "could not send the alert %r %s: %s; the next run retries",
                notice.subject,
                _described(self.settings, channel),
                detail,
                exc_info=not isinstance(exc, NotifyError),
            )
            return False
        log.info("sent %s: %s", _described(self.settings, channel), notice.subject)
        return True


def _described(settings: Settings, channel: str) -> str:
    from globus_auto.alerts.channels import registry

    try:
        return registry.module_for(channel).describe(settings, channel)
    except Exception:  # describing must not hide the message itself
        return channel


def _redact(problem: Problem, secrets: Sequence[str]) -> Problem:
    """``problem`` with every secret value replaced (defence in depth)."""
    if not secrets:
        return problem
    changes: dict[str, Any] = {}
    for name in ("summary", "what_happened", "what_to_do", "next_attempt"):
        changes[name] = redact(getattr(problem, name), secrets)
    return replace(problem, **changes)


def run_started(settings: Settings) -> None:
    """The heartbeat's ``/start``; this run's log is kept for the last ping."""
    if not settings.heartbeat_url:
        return
    # Imported only with a heartbeat: urllib.request (http.client, ssl, email)
    # is about 10 ms of every run's start, and most runs have none.
    from globus_auto.alerts import heartbeat

    heartbeat.capture_run_log()
    try:
        heartbeat.ping_heartbeat(
            settings.heartbeat_url, None, timeout=settings.notify_timeout
        )
    except NotifyError as exc:
        log.warning("%s", exc)


def ping(settings: Settings, reports: Sequence[RunOutcome]) -> None:
    """Tell the heartbeat monitor how this run ended, with its log's last lines."""
    if not settings.heartbeat_url:
        return
    code = max((r.exit_code for r in reports), default=0)
    if code == 0 and any(r.skipped for r in reports):
        # The run holding the lock pings when it ends; if it never does, the
        # monitor's missing ping is the alarm.
        log.info("no heartbeat: a job was skipped, another run holds its lock")
        return
    from globus_auto.alerts import heartbeat  # see run_started

    summary = "; ".join(f"{r.job}: {r.outcome}" for r in reports)
    excerpt = heartbeat.run_log_excerpt()
    body = redact(f"{summary}\n\n{excerpt}".strip(), secrets_of(settings))
    try:
        heartbeat.ping_heartbeat(
            settings.heartbeat_url, code, timeout=settings.notify_timeout, message=body
        )
    except NotifyError as exc:
        log.warning("%s", exc)
