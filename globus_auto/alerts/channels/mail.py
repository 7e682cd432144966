"""The mail channel: one id, ``mail``, for every job with recipients.

A job's recipients are its own ``email_recipients`` (or the global
``EMAIL_RECIPIENTS``), and nobody without an ``EMAIL_SENDER``.
"""

from __future__ import annotations

from globus_auto.alerts.message import Notice, compose
from globus_auto.alerts.smtp import send_mail, send_test_mail
from globus_auto.settings.model import Settings

PREFIX = "mail"


def _recipients(settings: Settings, job: str | None) -> tuple[str, ...]:
    if job is not None:
        return settings.recipients_for(job)
    if not settings.email_sender:
        return ()
    return tuple(dict.fromkeys(a for j in settings.jobs for a in j.email_recipients))


def configured(settings: Settings, job: str | None) -> list[str]:
    """``["mail"]`` when ``job`` (None: any job) has somebody to mail."""
    return [PREFIX] if _recipients(settings, job) else []


def describe(settings: Settings, channel: str) -> str:
    server = f"{settings.smtp.host}:{settings.smtp.effective_port}"
    return f"to {', '.join(_recipients(settings, None))} via {server}"


def verify(settings: Settings, channel: str) -> None:
    """Nothing to know without a server's answer: ``--test-notify`` asks it."""


def send(settings: Settings, channel: str, notice: Notice, timeout: float) -> None:
    """Mail ``notice`` to its job's recipients; ``NotifyError`` on failure."""
    assert settings.email_sender is not None  # configured() said so
    recipients = settings.recipients_for(notice.outgoing.record.job)
    message = compose(
        notice.outgoing, settings.email_sender, recipients, notice.now, notice.hostname
    )
    send_mail(message, settings.smtp, timeout=timeout)


def send_test(settings: Settings, channel: str, timeout: float) -> None:
    """Mail a test message to every recipient of every job."""
    assert settings.email_sender is not None
    recipients = _recipients(settings, None)
    send_test_mail(settings.smtp, settings.email_sender, recipients, timeout=timeout)
