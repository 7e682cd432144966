"""The heartbeat: one HTTP request to a healthchecks.io-style URL after a run.

The request has a timeout; a failure is one ``NotifyError`` that the caller
logs as a warning. The URL's secret part never reaches the log.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.parse
import urllib.request

from globus_auto.errors import NotifyError

log = logging.getLogger(__name__)


HEARTBEAT_MAX_BODY = 10_000


def ping_heartbeat(
    url: str, ok: bool, timeout: float = 10, message: str | None = None
) -> None:
    """Tell a healthchecks.io-style monitor how the run ended.

    On success the URL itself is requested, on failure the URL with ``/fail``.
    With ``message`` the request is a POST carrying it (monitors show it), else a
    GET. Raises ``NotifyError`` on any failure, without echoing the URL's path,
    which often holds the check's secret token.
    """
    where = _redacted(url)
    if not where.startswith(("http://", "https://")):
        raise NotifyError(f"heartbeat URL {where} is not an http(s) URL")
    target = url if ok else url.rstrip("/") + "/fail"
    data = None
    if message is not None:
        data = message.encode("utf-8", "replace")[:HEARTBEAT_MAX_BODY]
    request = urllib.request.Request(
        target, data=data, headers={"User-Agent": "globus-auto"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(1024)
    except urllib.error.HTTPError as error:
        raise NotifyError(f"heartbeat {where} answered HTTP {error.code}") from error
    except urllib.error.URLError as error:
        raise NotifyError(f"heartbeat {where} unreachable: {error.reason}") from error
    except (OSError, ValueError) as error:
        raise NotifyError(f"heartbeat {where} failed: {error}") from error


def _redacted(url: str) -> str:
    """The scheme and host of ``url``: enough to say where, without the token."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(malformed)"
    if not parts.scheme or not parts.hostname:
        return "(malformed)"
    return f"{parts.scheme}://{parts.hostname}{port}/…"
