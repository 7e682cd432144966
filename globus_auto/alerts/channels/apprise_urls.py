"""The Apprise channel: one id per ``NOTIFY_URLS`` entry (Slack, ntfy, Teams, ...).

Apprise (github.com/caronc/apprise) is an optional extra, ``globus-auto[notify]``,
imported only when a notice goes out. Each URL is its own channel, so one
service that is down is retried alone by the next run. A channel id is a hash
of its URL: the URL holds a token and never reaches a log or the datastore.
Messages longer than a service takes are truncated by Apprise, which knows
each service's limits (``overflow="truncate"``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

from globus_auto.alerts.deadline import within
from globus_auto.alerts.message import Notice, test_wording
from globus_auto.errors import NotifyError
from globus_auto.settings.model import Settings
from globus_auto.text import redact

PREFIX = "notify"
INSTALL_HINT = "pip install 'globus-auto[notify]' (or pipx inject globus-auto apprise)"


def channel_id(url: str) -> str:
    """``notify:<12 hex digits>``: stable for a URL, and no secret in it."""
    return f"{PREFIX}:{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def configured(settings: Settings, job: str | None) -> list[str]:
    """One id per NOTIFY_URLS entry (the same for every job)."""
    return list(dict.fromkeys(channel_id(url) for url in settings.notify_urls))


def _url(settings: Settings, channel: str) -> tuple[int, str]:
    for i, url in enumerate(settings.notify_urls):
        if channel_id(url) == channel:
            return i, url
    raise NotifyError(f"{channel} is no longer in NOTIFY_URLS")


def index_of(settings: Settings, channel: str) -> int:
    """Where ``channel``'s URL is in NOTIFY_URLS."""
    return _url(settings, channel)[0]


def describe(settings: Settings, channel: str) -> str:
    """``to NOTIFY_URLS[i] (scheme://…)``: where, and nothing of the URL's secrets.

    Why only the scheme: a service's token may be its host or its path (a
    Slack or a webhook URL), which Apprise's own private form still shows.
    """
    i, url = _url(settings, channel)
    return f"to {_label(i, url)}"


def verify(settings: Settings, channel: str) -> None:
    """Apprise is installed and knows the URL's service (no message is sent)."""
    _service(*_url(settings, channel))


def _label(i: int, url: str) -> str:
    return f"NOTIFY_URLS[{i}] ({url.partition('://')[0]}://…)"


def _service(i: int, url: str) -> Any:
    """The Apprise plugin for ``url``; ``NotifyError`` if it cannot be had."""
    try:
        import apprise
    except ImportError:
        raise NotifyError(f"NOTIFY_URLS needs Apprise: {INSTALL_HINT}") from None
    service = apprise.Apprise.instantiate(url)
    if service is None:
        raise NotifyError(
            f"{_label(i, url)} is not a URL Apprise can use; see "
            "github.com/caronc/apprise/wiki for the form of each service's URL"
        )
    return service


def _notify(
    settings: Settings, channel: str, title: str, body: str, kind: str, timeout: float
) -> None:
    """One notification through Apprise, within ``timeout`` for the whole of it."""
    i, url = _url(settings, channel)
    service = _service(i, url)
    where = _label(i, url)
    with _apprise_log() as reasons:
        ok = within(
            timeout,
            where,
            lambda: service.notify(
                body=body, title=title, notify_type=kind, overflow="truncate"
            ),
        )
    if not ok:
        reason = redact(reasons[-1], [url]) if reasons else "no reason given"
        raise NotifyError(f"{where} did not take the message: {reason}")


def send(settings: Settings, channel: str, notice: Notice, timeout: float) -> None:
    """Send ``notice`` (the mail's subject and body) to one Apprise URL."""
    kind = "success" if notice.outgoing.message_kind == "resolved" else "failure"
    _notify(settings, channel, notice.subject, notice.body, kind, timeout)


def send_test(settings: Settings, channel: str, timeout: float) -> None:
    """Send the test message to one Apprise URL."""
    title, body = test_wording(socket.gethostname())
    _notify(settings, channel, title, body, "info", timeout)


class _Reasons(logging.Handler):
    """Keeps what Apprise logs at WARNING and up: its reason for a failure."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        lines = record.getMessage().strip().splitlines() or [""]
        self.messages.append(lines[0][:300])


@contextlib.contextmanager
def _apprise_log() -> Iterator[list[str]]:
    """While open, Apprise's warnings are kept for the error message."""
    handler = _Reasons()
    logger = logging.getLogger("apprise")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
