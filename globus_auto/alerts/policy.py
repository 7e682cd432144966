"""Which alert mails a run should send: new, repeated, resolved.

Pure: plain data in, plain data out. The clock is passed in; nothing here
touches the network, the datastore or the filesystem. A run collects the
:class:`Problem` objects it found and the (job, kind) pairs it verified to be
fine, asks :func:`plan_alerts` what to do, sends each mail and persists
:func:`record_after_send` (that is :mod:`.delivery`).

De-duplication rule: a problem is mailed when it first appears, repeated at most
every ``repeat`` while it lasts, and followed by one "resolved" mail when a run
verifies that it is gone. A mail that could not be sent changes nothing that
would lose it: the next run tries again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from globus_auto.clock import require_aware
from globus_auto.problems import AlertKey, Kind, Problem

MessageKind = Literal["new", "reminder", "resolved"]


@dataclass(frozen=True)
class AlertRecord:
    """The persisted state of one open alert, keyed by (job, kind).

    ``last_sent`` is None until a mail about it went out. ``resolved_at`` is set
    when a run verified the problem is gone but the "resolved" mail has not gone
    out yet; the record is deleted once it has.
    """

    problem: Problem  # the latest details mailed (or to be mailed)
    first_seen: datetime
    last_sent: datetime | None
    resolved_at: datetime | None = None

    @property
    def job(self) -> str:
        return self.problem.job

    @property
    def kind(self) -> Kind:
        return self.problem.kind

    @property
    def summary(self) -> str:
        return self.problem.summary

    @property
    def key(self) -> AlertKey:
        return self.problem.key


@dataclass(frozen=True)
class Outgoing:
    """One decision about one (job, kind): a mail to send, or only a state change.

    ``message_kind`` is None when no mail is due but the stored record must change
    (a problem came back before its "resolved" mail went out). ``problem`` is the
    problem as this run saw it; None for a "resolved" mail.
    """

    record: AlertRecord
    message_kind: MessageKind | None
    problem: Problem | None

    @property
    def key(self) -> AlertKey:
        return self.record.key


def plan_alerts(
    open_records: Sequence[AlertRecord],
    problems: Sequence[Problem],
    cleared: Collection[AlertKey],
    now: datetime,
    repeat: timedelta,
) -> list[Outgoing]:
    """Decide which mails this run sends, given the stored records.

    ``problems`` are what the run found wrong; ``cleared`` the (job, kind) pairs it
    verified to be fine. A pair that is both reported and cleared counts as
    reported. Pairs neither reported nor cleared are left alone (the run did not
    get far enough to know), except that a "resolved" mail already due is retried.
    """
    require_aware(now)
    records = {record.key: record for record in open_records}
    reported: dict[AlertKey, Problem] = {}
    for problem in problems:
        reported.setdefault(problem.key, problem)
    plan: list[Outgoing] = []
    for key, problem in reported.items():
        decision = _decide_reported(records.get(key), problem, now, repeat)
        if decision is not None:
            plan.append(decision)
    for key, record in records.items():
        if key not in reported and (record.resolved_at is not None or key in cleared):
            plan.append(Outgoing(record, "resolved", None))
    return plan


def _decide_reported(
    record: AlertRecord | None, problem: Problem, now: datetime, repeat: timedelta
) -> Outgoing | None:
    """The decision for one problem this run reported."""
    if record is None:
        return Outgoing(AlertRecord(problem, now, None), "new", problem)
    if record.last_sent is None:
        return Outgoing(record, "new", problem)
    if record.last_sent + repeat <= now:
        return Outgoing(record, "reminder", problem)
    if record.resolved_at is not None:
        # Back before its "resolved" mail went out: for the user it never ended.
        return Outgoing(record, None, problem)
    return None


def record_after_send(
    outgoing: Outgoing, sent_ok: bool, now: datetime
) -> AlertRecord | None:
    """The record to persist after trying to send ``outgoing``; None means delete it.

    A failed send leaves the record so that the next run sends the same mail again.
    For a decision without a mail, ``sent_ok`` is ignored.
    """
    require_aware(now)
    record = outgoing.record
    if outgoing.message_kind == "resolved":
        if sent_ok:
            return None
        return dataclasses.replace(record, resolved_at=record.resolved_at or now)
    assert outgoing.problem is not None
    reopened = dataclasses.replace(record, problem=outgoing.problem, resolved_at=None)
    if outgoing.message_kind is not None and sent_ok:
        return dataclasses.replace(reopened, last_sent=now)
    return reopened
