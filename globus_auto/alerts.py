"""Which alert mails a run should send, and what they say.

Pure: plain data in, plain data out. The clock and the host name are passed in;
nothing here touches the network, the datastore or the filesystem. The runner
collects the ``Problem`` objects a run found and the (job, kind) pairs it verified
to be fine, asks ``plan_alerts`` what to do, sends each mail with
``notify.send_mail(compose(...))`` and persists ``record_after_send(...)``.

De-duplication rule: a problem is mailed when it first appears, repeated at most
every ``repeat`` while it lasts, and followed by one "resolved" mail when a run
verifies that it is gone. A mail that could not be sent changes nothing that
would lose it: the next run tries again.
"""

from __future__ import annotations

import dataclasses
import email.utils
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from enum import Enum
from typing import Any, Literal

SUBJECT_PREFIX = "[globus-auto]"
MAX_SUMMARY_CHARS = 160

MessageKind = Literal["new", "reminder", "resolved"]


class Kind(str, Enum):
    """The kinds of problem a run can report; one open alert per job and kind."""

    ENDPOINT_NOT_READY = "endpoint-not-ready"
    LOGIN_REQUIRED = "login-required"
    TASK_FAILED = "task-failed"
    TASK_STUCK = "task-stuck"
    SOURCE_PROBLEM = "source-problem"  # the source is missing or unmounted
    UNSENDABLE = "unsendable-files"  # some files in it cannot be sent as they are
    DATASTORE = "datastore"
    RUN_STUCK = "run-stuck"  # a run has held the job's lock too long
    UNEXPECTED = "unexpected"


AlertKey = tuple[str, Kind]


@dataclass(frozen=True)
class Problem:
    """Something a run found wrong for one job, in words meant for its user."""

    job: str
    kind: Kind
    summary: str  # short, for the subject: "[globus-auto] <job>: <summary>"
    what_happened: str
    what_to_do: str  # exact commands where possible
    next_attempt: str  # e.g. "The next cron run will try again."
    pending_files: int = 0  # what has not been delivered yet
    pending_bytes: int = 0

    @property
    def key(self) -> AlertKey:
        return (self.job, self.kind)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, for the datastore."""
        values = dataclasses.asdict(self)
        values["kind"] = self.kind.value
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Problem:
        """The inverse of ``to_dict``."""
        return cls(**{**values, "kind": Kind(values["kind"])})


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
    _require_aware(now)
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
    _require_aware(now)
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


def compose(
    outgoing: Outgoing,
    sender: str,
    recipients: Sequence[str],
    now: datetime,
    hostname: str,
) -> EmailMessage:
    """The plain-text mail for one outgoing alert, with Date and Message-ID."""
    _require_aware(now)
    if outgoing.message_kind is None:
        raise ValueError("this decision has no mail to compose")
    message = EmailMessage()
    message["Subject"] = subject_for(outgoing)
    message["From"] = header_safe(sender)
    message["To"] = ", ".join(header_safe(address) for address in recipients)
    message["Date"] = email.utils.format_datetime(now)
    message["Message-ID"] = message_id(hostname)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body_for(outgoing, now, hostname))
    return message


def message_id(hostname: str) -> str:
    """A fresh Message-ID whose domain part is ``hostname`` made plain ASCII."""
    domain = re.sub(r"[^A-Za-z0-9.-]+", "-", hostname).strip(".-") or "localhost"
    return email.utils.make_msgid("globus-auto", domain)


def subject_for(outgoing: Outgoing) -> str:
    """``[globus-auto] <job>: <summary>``, marked for reminders and recoveries."""
    record = outgoing.record
    summary = (outgoing.problem or record.problem).summary
    text = _shorten(header_safe(summary), MAX_SUMMARY_CHARS)
    if outgoing.message_kind == "resolved":
        text = f"resolved: {text}"
    elif outgoing.message_kind == "reminder":
        text = f"{text} (still failing since {_when(record.first_seen)})"
    return f"{SUBJECT_PREFIX} {header_safe(record.job)}: {text}"


def body_for(outgoing: Outgoing, now: datetime, hostname: str) -> str:
    """The plain-text body: what happened, what is pending, what to do, what next."""
    record = outgoing.record
    if outgoing.message_kind == "resolved":
        return _resolved_body(record, now, hostname)
    problem = outgoing.problem or record.problem
    lines = [f"Job {problem.job!r} on {hostname}: {problem.summary}", ""]
    if outgoing.message_kind == "reminder":
        lines += [f"This problem has lasted since {_when(record.first_seen)}.", ""]
    lines += ["What happened:", _indent(problem.what_happened), ""]
    lines += ["Not delivered yet:", f"  {pending_text(problem)}", ""]
    lines += ["What to do:", _indent(problem.what_to_do), ""]
    lines += ["Next attempt:", _indent(problem.next_attempt), ""]
    lines += [
        "You will get a reminder while this lasts and one mail when it is resolved.",
        f"Kind: {problem.kind.value}; first seen {_when(record.first_seen)}.",
    ]
    return "\n".join(lines) + "\n"


def _resolved_body(record: AlertRecord, now: datetime, hostname: str) -> str:
    resolved_at = record.resolved_at or now
    lines = [
        f"Job {record.job!r} on {hostname}: resolved: {record.summary}",
        "",
        f"First seen {_when(record.first_seen)}; "
        f"found fine again {_when(resolved_at)}.",
        "Nothing needs doing. Files that were waiting are sent by the normal runs.",
        f"Kind: {record.kind.value}.",
    ]
    return "\n".join(lines) + "\n"


def pending_text(problem: Problem) -> str:
    """'3 files (1.5 MiB)', or a plain statement that nothing is waiting."""
    if problem.pending_files == 0 and problem.pending_bytes == 0:
        return "nothing is waiting to be sent"
    noun = "file" if problem.pending_files == 1 else "files"
    size = human_bytes(problem.pending_bytes)
    return f"{problem.pending_files} {noun} ({size}) waiting to be sent"


def human_bytes(count: int) -> str:
    """Binary units: 0 B, 1023 B, 1.0 KiB, 1.5 MiB, ..."""
    if count < 1024:
        return f"{count} B"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            break
    return f"{value:.1f} {unit}"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def header_safe(text: str) -> str:
    """``text`` with every run of control characters (CR, LF, ...) made one space.

    A job or file name must never be able to start a new header line.
    """
    return _CONTROL.sub(" ", text).strip()


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in (text.strip() or "-").splitlines())


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a timezone-aware datetime is required, got {moment!r}")
