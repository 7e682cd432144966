"""Text for people: byte counts, file names, secrets kept out of messages.

One definition of each: the control-character pattern, the redaction of
secrets and of a URL's token. Imports only the standard library (the settings
for type checking).
"""

from __future__ import annotations

import contextlib
import re
import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from globus_auto.settings.model import Settings

REDACTED = "[redacted]"
# Runs of C0/C1 control characters and the Unicode line and paragraph
# separators: anything that could start a new line in a mail or a terminal.
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


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


def counted(count: int, noun: str) -> str:
    """``1 file``, ``0 files``, ``50,000 files``: thousands separated, and the
    noun singular for one (nouns here take an ``s``)."""
    return f"{count:,} {noun if count == 1 else noun + 's'}"


def header_safe(text: str) -> str:
    """``text`` with every run of control characters (CR, LF, ...) made one space.

    A job or file name must never be able to start a new header line.
    """
    return CONTROL_CHARS.sub(" ", text).strip()


def printable_name(path: bytes) -> str:
    """A file name for people: undecodable bytes and control characters escaped."""
    text = path.decode("utf-8", "backslashreplace")
    return CONTROL_CHARS.sub(
        lambda m: m.group().encode("unicode_escape").decode(), text
    )


def secrets_of(settings: Settings) -> list[str]:
    """Values of ``settings`` that must never appear in a message or a file.

    The client secret, the SMTP password and the Apprise URLs (they hold
    tokens); values shorter than 4 characters are left alone, since replacing
    them would garble ordinary text.
    """
    found = [settings.client_secret or "", *settings.notify_urls]
    with contextlib.suppress(Exception):  # unreadable: then nothing to hide
        found.append(settings.smtp.password() or "")
    return [s for s in found if len(s) >= 4]


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every value of ``secrets`` replaced by ``[redacted]``."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def redacted_url(url: str) -> str:
    """The scheme and host of ``url``, enough to say where, without its path,
    query or user info: a monitor's URL (a heartbeat, an Apprise URL) carries
    its secret token there. ``(malformed)`` when neither can be told."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(malformed)"
    if not parts.scheme or not parts.hostname:
        return "(malformed)"
    return f"{parts.scheme}://{parts.hostname}{port}/…"


def with_rest_counted(lines: list[str], count: int) -> list[str]:
    """An alert's list of files: ``lines``, one for each file shown of
    ``count`` in all, then ``... and N more`` when some were not shown."""
    if count > len(lines):
        return [*lines, f"... and {count - len(lines)} more"]
    return lines
