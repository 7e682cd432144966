"""The heartbeat: healthchecks.io-style pings when a run begins and ends.

A run pings ``<url>/start`` when it begins and, when it ends, ``<url>/<exit
code>`` on a healthchecks URL, else the URL itself on success and ``<url>/fail``
on failure, with a short excerpt of the run's log as the body. Each request
has a deadline for the whole of it; a failure is one ``NotifyError`` that the
caller logs as a warning. The URL's secret part never reaches the log.

The URL forms are those of healthchecks' ping API (healthchecks.io/docs/
http_api/: ``/start``, ``/fail``, ``/<exit-status>`` 0-255, a POST body kept
as the ping's log, 100 kB at most by default), which borgmatic's healthchecks
hook uses the same way (borgmatic/hooks/monitoring/healthchecks.py).
"""

from __future__ import annotations

import collections
import logging
import urllib.error
import urllib.parse
import urllib.request

from globus_auto.alerts.deadline import within
from globus_auto.errors import NotifyError
from globus_auto.text import redacted_url

log = logging.getLogger(__name__)


HEARTBEAT_MAX_BODY = 10_000  # bytes; healthchecks keeps up to 100 kB
EXCERPT_LINES = 40
# healthchecks.io's ping hosts; a self-hosted healthchecks serves /ping/<uuid>.
HEALTHCHECKS_HOSTS = frozenset({"hc-ping.com", "hchk.io"})


def is_healthchecks(url: str) -> bool:
    """Whether ``url`` is a healthchecks ping URL (which takes ``/<exit code>``)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    return host in HEALTHCHECKS_HOSTS or parts.path.startswith("/ping/")


def heartbeat_target(url: str, exit_code: int | None) -> str:
    """The URL to request: ``exit_code`` None when the run begins, else its end."""
    base = url.rstrip("/")
    if exit_code is None:
        return f"{base}/start"
    if is_healthchecks(url):
        return f"{base}/{min(max(exit_code, 0), 255)}"
    return base if exit_code == 0 else f"{base}/fail"


def ping_heartbeat(
    url: str,
    exit_code: int | None = 0,
    *,
    timeout: float = 10,
    message: str | None = None,
) -> None:
    """Tell a healthchecks.io-style monitor that a run began (None) or ended.

    With ``message`` the request is a POST carrying it (monitors show it), else
    a GET. ``timeout`` bounds the whole request. Raises ``NotifyError`` on any
    failure, without echoing the URL's path, which often holds the secret.
    """
    where = redacted_url(url)
    if not where.startswith(("http://", "https://")):
        raise NotifyError(f"heartbeat URL {where} is not an http(s) URL")
    data = None
    if message is not None:
        data = message.encode("utf-8", "replace")[-HEARTBEAT_MAX_BODY:]
    request = urllib.request.Request(
        heartbeat_target(url, exit_code),
        data=data,
        headers={"User-Agent": "globus-auto"},
    )

    def send() -> None:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(1024)

    try:
        within(timeout, f"the heartbeat {where}", send)
    except NotifyError:
        raise
    except urllib.error.HTTPError as error:
        raise NotifyError(f"heartbeat {where} answered HTTP {error.code}") from error
    except urllib.error.URLError as error:
        raise NotifyError(f"heartbeat {where} unreachable: {error.reason}") from error
    except (OSError, ValueError) as error:
        raise NotifyError(f"heartbeat {where} failed: {error}") from error


class RunLog(logging.Handler):
    """The last lines this run logged (INFO and up), for the last ping's body."""

    def __init__(self, lines: int = EXCERPT_LINES) -> None:
        super().__init__(logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=lines)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            first = record.getMessage().splitlines() or [""]
            self.lines.append(f"{record.levelname} {first[0]}")
        except Exception:  # a log call must never fail the run
            self.handleError(record)

    def text(self) -> str:
        return "\n".join(self.lines)


def capture_run_log() -> RunLog:
    """Start keeping this run's log lines (an earlier run's capture is dropped)."""
    root = logging.getLogger("globus_auto")
    for handler in list(root.handlers):
        if isinstance(handler, RunLog):
            root.removeHandler(handler)
    handler = RunLog()
    root.addHandler(handler)
    return handler


def run_log_excerpt() -> str:
    """The lines kept since :func:`capture_run_log`; empty if it was not called."""
    root = logging.getLogger("globus_auto")
    found = [h for h in root.handlers if isinstance(h, RunLog)]
    return found[-1].text() if found else ""
