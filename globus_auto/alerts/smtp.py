"""Alert mails over SMTP.

Every session has a deadline for the whole of it, and every failure becomes
one ``NotifyError`` with a message that says what went wrong and where. The
caller logs it as a warning and carries on: a notification failure never fails
a run nor hides its own error.
"""

from __future__ import annotations

import email.utils
import logging
import smtplib
import socket
import ssl
from collections.abc import Sequence
from datetime import datetime, timezone
from email.message import EmailMessage
from typing import Literal, Protocol

from globus_auto.alerts.deadline import within
from globus_auto.alerts.message import message_id, test_wording
from globus_auto.errors import GlobusAutoError, NotifyError
from globus_auto.settings.model import DEFAULT_PORTS
from globus_auto.text import header_safe

log = logging.getLogger(__name__)


class SmtpSettingsLike(Protocol):
    """The shape of ``settings.SmtpSettings`` that this module relies on.

    A Protocol keeps this module importable without the settings loader; the
    tests pass a real ``SmtpSettings`` to show that it fits.
    """

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int | None: ...
    @property
    def security(self) -> Literal["starttls", "ssl", "none"]: ...
    @property
    def username(self) -> str | None: ...
    def password(self) -> str | None: ...


def smtp_port(smtp: SmtpSettingsLike) -> int:
    """The configured port, else 465 for ssl, 587 for starttls and 25 otherwise."""
    return smtp.port if smtp.port is not None else DEFAULT_PORTS.get(smtp.security, 25)


def send_mail(
    message: EmailMessage,
    smtp: SmtpSettingsLike,
    timeout: float = 30,
    tls_context: ssl.SSLContext | None = None,
) -> None:
    """Send ``message`` to the addresses in its To/Cc headers.

    ``timeout`` bounds the whole session, not only each read: a server that
    answers one line every few seconds is given up at it. ``tls_context``
    defaults to the system's certificate checks; tests pass one that trusts
    their own certificate. Raises ``NotifyError`` on any failure.
    """
    where = f"{smtp.host}:{smtp_port(smtp)} ({smtp.security})"
    context = tls_context or ssl.create_default_context()

    def session() -> dict[str, tuple[int, bytes]]:
        with _connect(smtp, timeout, context) as client:
            _login_if_configured(client, smtp)
            return client.send_message(message)

    try:
        refused = within(timeout, f"the SMTP session with {where}", session)
    except NotifyError:
        raise
    except smtplib.SMTPAuthenticationError as error:
        raise NotifyError(f"SMTP login to {where} failed: {_reply(error)}") from error
    except smtplib.SMTPException as error:
        raise NotifyError(
            f"could not send mail via {where}: {_reply(error)}"
        ) from error
    except ssl.SSLError as error:
        raise NotifyError(f"TLS with {where} failed: {error}") from error
    except OSError as error:
        text = error.strerror or str(error) or type(error).__name__
        raise NotifyError(f"could not reach the SMTP server {where}: {text}") from error
    if refused:
        log.warning("the SMTP server refused some recipients: %s", sorted(refused))


def _connect(
    smtp: SmtpSettingsLike, timeout: float, context: ssl.SSLContext
) -> smtplib.SMTP:
    """An SMTP session, already encrypted unless security is "none"."""
    port = smtp_port(smtp)
    if smtp.security == "ssl":
        return smtplib.SMTP_SSL(smtp.host, port, timeout=timeout, context=context)
    client = smtplib.SMTP(smtp.host, port, timeout=timeout)
    if smtp.security == "starttls":
        try:
            client.ehlo()
            client.starttls(context=context)
            client.ehlo()
        except BaseException:
            client.close()
            raise
    return client


def _login_if_configured(client: smtplib.SMTP, smtp: SmtpSettingsLike) -> None:
    if smtp.username is None:
        return
    try:
        password = smtp.password()
    except GlobusAutoError as error:  # e.g. an unreadable EMAIL_PASSWORD_FILE
        raise NotifyError(f"cannot log in to the SMTP server: {error}") from error
    if password is None:
        raise NotifyError(
            f"EMAIL_USERNAME is set to {smtp.username!r} but no password was found: "
            "set EMAIL_PASSWORD_FILE or the password environment variable"
        )
    client.login(smtp.username, password)


def _reply(error: smtplib.SMTPException) -> str:
    """The server's reply in an SMTP error, as one readable line."""
    code = getattr(error, "smtp_code", None)
    text = getattr(error, "smtp_error", None)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if code is not None and text:
        return f"{code} {text}"
    return str(error) or type(error).__name__


def send_test_mail(
    smtp: SmtpSettingsLike,
    sender: str,
    recipients: Sequence[str],
    timeout: float = 30,
    tls_context: ssl.SSLContext | None = None,
) -> None:
    """Send one short test message (for ``globus-auto check --test-notify``)."""
    hostname = socket.gethostname()
    now = datetime.now(timezone.utc)
    subject, body = test_wording(hostname)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = header_safe(sender)
    message["To"] = ", ".join(header_safe(address) for address in recipients)
    message["Date"] = email.utils.format_datetime(now)
    message["Message-ID"] = message_id(hostname)
    message.set_content(body)
    send_mail(message, smtp, timeout=timeout, tls_context=tls_context)
