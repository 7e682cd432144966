"""What an alert says: subject, body and, for a mail, headers.

Every channel says the same: the mail's subject and body (:class:`Notice`).
Pure: the clock and the host name are passed in. Names from the config or the
source tree never shape a header: control characters are made spaces.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from globus_auto.alerts.policy import AlertRecord, Outgoing
from globus_auto.clock import require_aware
from globus_auto.problems import Problem
from globus_auto.text import header_safe, human_bytes

SUBJECT_PREFIX = "[globus-auto]"
MAX_SUMMARY_CHARS = 160


@dataclass(frozen=True)
class Notice:
    """One message as every channel words it: the mail's subject and body."""

    outgoing: Outgoing
    now: datetime
    hostname: str

    @property
    def subject(self) -> str:
        return subject_for(self.outgoing)

    @property
    def body(self) -> str:
        return body_for(self.outgoing, self.now, self.hostname)

    @property
    def problem(self) -> Problem:
        """The problem as this run saw it, or as last announced (resolved)."""
        return self.outgoing.problem or self.outgoing.record.problem


def compose(
    outgoing: Outgoing,
    sender: str,
    recipients: Sequence[str],
    now: datetime,
    hostname: str,
) -> EmailMessage:
    """The plain-text mail for one outgoing alert, with Date and Message-ID."""
    require_aware(now)
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
        "You will get a reminder while this lasts and one message when it is resolved.",
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


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in (text.strip() or "-").splitlines())


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()


def test_wording(hostname: str) -> tuple[str, str]:
    """The subject and body of a test message, the same on every channel."""
    subject = f"{SUBJECT_PREFIX} test message from {header_safe(hostname)}"
    body = (
        f"This is a test message from globus-auto on {hostname}.\n"
        "If you can read it, alerts will reach you this way.\n"
    )
    return subject, body


ENV_PREFIX = "GLOBUS_AUTO_"


def notice_environment(notice: Notice) -> dict[str, str]:
    """The alert as environment variables for ``ON_ALERT_COMMAND``.

    ``GLOBUS_AUTO_EVENT`` is new, reminder or resolved; the rest name the job,
    the kind, the words of the mail and what is not delivered yet. NUL, which
    no environment value may hold, is made a space.
    """
    problem = notice.problem
    values = {
        "EVENT": notice.outgoing.message_kind,
        "JOB": problem.job,
        "KIND": problem.kind.value,
        "SUBJECT": notice.subject,
        "SUMMARY": problem.summary,
        "WHAT_HAPPENED": problem.what_happened,
        "WHAT_TO_DO": problem.what_to_do,
        "NEXT_ATTEMPT": problem.next_attempt,
        "PENDING_FILES": str(problem.pending_files),
        "PENDING_BYTES": str(problem.pending_bytes),
        "FIRST_SEEN": notice.outgoing.record.first_seen.isoformat(),
        "HOST": notice.hostname,
    }
    return {ENV_PREFIX + k: v.replace("\x00", " ") for k, v in values.items()}
