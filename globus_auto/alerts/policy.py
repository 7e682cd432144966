"""Which alerts a run should send, and over which channels: new, repeated, resolved.

Pure: plain data in, plain data out. The clock is passed in; nothing here
touches the network, the datastore or the filesystem. A run collects the
:class:`Problem` objects it found and the (job, kind) pairs it verified to be
fine, asks :func:`plan_alerts` what to do, sends each message over its channels
and persists :func:`record_after_send` (that is :mod:`.delivery`).

De-duplication rule: a problem is announced when it first appears (after the
grace, see below), repeated at most every ``repeat`` while it lasts, and
followed by one "resolved" notice when a run verifies that it is gone.

Channels (mail, each Apprise URL, the command hook) are kept apart: a record
remembers when each channel last carried the alert. A channel that failed is
retried by the next run on its own; the channels that worked are not told
again. A channel that never carried the alert gets no "resolved" notice.

Grace: kinds that a passing outage produces (a collection not answering, the
source mount missing for a moment, an error nobody anticipated) are announced
only once ``after_failures`` runs in a row have reported them; the kinds that
need a person whatever happens next are announced at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from globus_auto.clock import require_aware
from globus_auto.problems import AlertKey, Kind, Problem

MessageKind = Literal["new", "reminder", "resolved"]
ChannelsOf = Callable[[str], Sequence[str]]  # job name -> its channels

# Why these: each can come from a few seconds of trouble that the next run no
# longer sees (Globus or a collection unreachable, an automounter slow to
# answer, a network error surfacing as unexpected), and the next run retries
# by itself. Not here, so announced at once: a login or consent (only a person
# can give it), a failed, stuck or suspended task (Globus already retried for
# hours), files Globus skipped or that cannot be sent, the datastore or its
# disk, a config naming no collection, a run that has held its lock for hours:
# waiting would only delay the person who must act.
# Named by value so that this holds while the kinds grow ("globus-unavailable":
# the network, a timeout, a 429 or a 5xx from Globus).
GRACE_VALUES = {
    "endpoint-not-ready",
    "source-problem",
    "unexpected",
    "globus-unavailable",
}
GRACE_KINDS = frozenset(kind for kind in Kind if kind.value in GRACE_VALUES)


# Runs in a row: a count towards the grace lapses when its problem was last
# seen this long ago (far more than any schedule's interval).
GRACE_MEMORY = timedelta(days=1)


@dataclass(frozen=True)
class AlertRecord:
    """The persisted state of one open alert, keyed by (job, kind).

    ``sent`` maps each channel that carried the alert to when it last did (a
    "new" or a reminder). ``failures`` counts the runs that reported it, for
    the grace; ``last_seen`` is when one last did. ``resolved_at`` is set when
    a run verified the problem is gone but some channel still owes its
    "resolved" notice; the record is deleted once none does.
    """

    problem: Problem  # the latest details announced (or to be announced)
    first_seen: datetime
    sent: Mapping[str, datetime] = field(default_factory=dict)
    resolved_at: datetime | None = None
    failures: int = 0
    last_seen: datetime | None = None

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

    @property
    def last_sent(self) -> datetime | None:
        """When any channel last carried the alert; None if none has yet."""
        return max(self.sent.values(), default=None)


@dataclass(frozen=True)
class Outgoing:
    """One message about one (job, kind), due on ``channels``.

    ``record`` is the alert as this run sees it (for its first sighting);
    ``problem`` the problem as this run saw it, None for a "resolved" notice.
    """

    record: AlertRecord
    message_kind: MessageKind
    problem: Problem | None
    channels: tuple[str, ...] = ()

    @property
    def key(self) -> AlertKey:
        return self.record.key


@dataclass(frozen=True)
class Decision:
    """What one run does about one (job, kind): the messages due and the record.

    ``record`` is already updated for this run (details, count, channels no
    longer configured dropped); :func:`record_after_send` adds what was sent.
    """

    record: AlertRecord
    reported: bool
    messages: tuple[Outgoing, ...] = ()

    @property
    def key(self) -> AlertKey:
        return self.record.key


def grace_for(kind: Kind, after_failures: int) -> int:
    """How many runs in a row must report ``kind`` before it is announced."""
    return max(1, after_failures) if kind in GRACE_KINDS else 1


def plan_alerts(
    open_records: Sequence[AlertRecord],
    problems: Sequence[Problem],
    cleared: Collection[AlertKey],
    now: datetime,
    repeat: timedelta,
    *,
    channels: ChannelsOf,
    after_failures: int = 1,
) -> list[Decision]:
    """Decide what this run sends, given the stored records.

    ``problems`` are what the run found wrong; ``cleared`` the (job, kind) pairs
    it verified to be fine. A pair both reported and cleared counts as
    reported. Pairs neither reported nor cleared are left alone (the run did
    not get far enough to know), except that a "resolved" notice already due is
    retried. ``channels`` gives the channels configured for a job.
    """
    require_aware(now)
    records = {record.key: record for record in open_records}
    reported: dict[AlertKey, Problem] = {}
    for problem in problems:
        reported.setdefault(problem.key, problem)
    plan = [
        _decide_reported(
            records.get(key), problem, now, repeat, channels(key[0]), after_failures
        )
        for key, problem in reported.items()
    ]
    for key, record in records.items():
        if key not in reported and (record.resolved_at is not None or key in cleared):
            plan.append(_decide_resolved(record, now, channels(key[0])))
    return plan


def _decide_reported(
    record: AlertRecord | None,
    problem: Problem,
    now: datetime,
    repeat: timedelta,
    channels: Sequence[str],
    after_failures: int,
) -> Decision:
    """The decision for one problem this run reported."""
    if record is None or _forgotten(record, now):
        record = AlertRecord(problem, now)
    updated = dataclasses.replace(
        record,
        problem=problem,
        sent={c: t for c, t in record.sent.items() if c in channels},
        # Back before every "resolved" notice went out: for the channels still
        # owing one it never ended; the others are told anew below.
        resolved_at=None,
        failures=record.failures + 1,
        last_seen=now,
    )
    if not updated.sent and updated.failures < grace_for(problem.kind, after_failures):
        return Decision(updated, True)  # within the grace: perhaps it passes
    new = tuple(c for c in channels if c not in updated.sent)
    due = tuple(
        c for c in channels if c in updated.sent and updated.sent[c] + repeat <= now
    )
    messages = []
    if new:
        messages.append(Outgoing(updated, "new", problem, new))
    if due:
        messages.append(Outgoing(updated, "reminder", problem, due))
    return Decision(updated, True, tuple(messages))


def _forgotten(record: AlertRecord, now: datetime) -> bool:
    """A record nobody was told of, last seen longer ago than :data:`GRACE_MEMORY`.

    Why: its count is from an earlier, unrelated blip (a run that reported it,
    then runs with nothing to send, which neither report nor clear it); a new
    one must get its whole grace again.
    """
    return (
        not record.sent
        and record.last_seen is not None
        and record.last_seen + GRACE_MEMORY <= now
    )


def _decide_resolved(
    record: AlertRecord, now: datetime, channels: Sequence[str]
) -> Decision:
    """The decision for a record whose problem is gone: "resolved" where told."""
    told = {c: t for c, t in record.sent.items() if c in channels}
    updated = dataclasses.replace(
        record, sent=told, resolved_at=record.resolved_at or now
    )
    if not told:  # nobody heard of it (the grace, or every channel failed)
        return Decision(updated, False)
    resolved = Outgoing(updated, "resolved", None, tuple(told))
    return Decision(updated, False, (resolved,))


def record_after_send(
    decision: Decision, delivered: Collection[str], now: datetime
) -> AlertRecord | None:
    """The record to persist after sending ``decision``'s messages; None: delete it.

    ``delivered`` are the channels that took their message. A channel that did
    not keeps what it owes, so the next run sends it the same message again.
    """
    require_aware(now)
    record = decision.record
    if not decision.reported:
        owing = {c: t for c, t in record.sent.items() if c not in delivered}
        return dataclasses.replace(record, sent=owing) if owing else None
    sent = dict(record.sent)
    for message in decision.messages:
        sent.update({c: now for c in message.channels if c in delivered})
    return dataclasses.replace(record, sent=sent)
