"""Checks of single config values, each problem collected with its fix.

:class:`ValueChecker` holds the executed config's namespace and the problems
found so far; each check returns the value in its final form, or None (and a
problem line naming the variable and what to write instead). The assembly of
whole settings from these checks is :mod:`.validate`. Imports :mod:`.model`.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
import posixpath
import shlex
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from globus_auto.clock import DURATION_UNITS, parse_duration
from globus_auto.settings.model import (
    DEFAULT_SCAN_THREADS,
    MAX_SCAN_THREADS,
)
from globus_auto.settings.patterns import excludes_everything, pattern_problem


class _Missing:
    """Marks a name the config did not set."""


MISSING = _Missing()


DAY = 86_400
UNIT_NAMES = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
# Each time setting: its unit, the most it may be (seconds), and why.
TIME_SETTINGS = {
    "MIN_AGE": ("s", 30 * DAY, "a file would wait that long before it is sent"),
    "ALERT_REPEAT_HOURS": (
        "h",
        30 * DAY,
        "an open alert would be repeated that seldom",
    ),
    "TASK_STUCK_HOURS": ("h", 30 * DAY, "a stuck task would go unnoticed that long"),
    "AUTH_KEEPALIVE_DAYS": (
        "d",
        150 * DAY,
        "Globus drops a login left unused for 6 months (GLOBUS.md)",
    ),
    "NOTIFY_TIMEOUT": ("s", 3600, "a run would wait that long for one notification"),
    "GLOBUS_TIMEOUT": ("s", DAY, "a run would wait that long for one Globus call"),
}


def duration_text(seconds: int) -> str:
    """``30d``, ``6h``, ``15m`` or ``90s``: the largest unit that divides it."""
    for unit in ("d", "h", "m"):
        if seconds % DURATION_UNITS[unit] == 0:
            return f"{seconds // DURATION_UNITS[unit]}{unit}"
    return f"{seconds}s"


def is_placeholder(value: uuid.UUID) -> bool:
    """Whether ``value`` is one of config.example.py's placeholders
    (00000000-0000-0000-0000-000000000001 and so on): a UUID that small is
    never a real collection or client, which are random (version 4)."""
    return value.int < 2**16


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def describe(value: object) -> str:
    """A short description of a wrong value for an error message."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def suggest(name: str, candidates: tuple[str, ...] | frozenset[str]) -> str:
    matches = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f"; did you mean {matches[0]}?" if matches else ""


def _looks_like_url(text: str) -> bool:
    """``scheme://rest`` with no white space: the shape of every Apprise URL."""
    scheme, sep, rest = text.partition("://")
    plain = not any(c.isspace() for c in text)
    return bool(sep and rest and plain and scheme.replace("+", "").isalnum())


class ValueChecker:
    """An executed config namespace and the problems found in it so far."""

    def __init__(
        self, path: Path, namespace: Mapping[str, Any], environ: Mapping[str, str]
    ) -> None:
        self.path = path
        self.ns = namespace
        self.environ = environ
        self.problems: list[str] = []
        self.notes: list[str] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{self.path}: {where}: {message}")

    def get(self, name: str) -> Any:
        return self.ns.get(name, MISSING)

    def uuid_value(self, where: str, value: object, fix: str) -> str | None:
        """A canonical lowercase UUID string, or None after recording a problem
        (also for the template's placeholders, see :func:`is_placeholder`)."""
        found = None
        if isinstance(value, uuid.UUID):
            found = value
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                found = uuid.UUID(value.strip())
        if found is None:
            self.problem(where, f"{value!r} is not a UUID; {fix}")
            return None
        if is_placeholder(found):
            self.problem(
                where,
                f"{found} is the template's placeholder, not a real UUID; {fix}",
            )
            return None
        return str(found)

    def required_uuid(self, where: str, value: object, fix: str) -> str | None:
        if value is MISSING or value is None:
            self.problem(where, f"required but not set; {fix}")
            return None
        return self.uuid_value(where, value, fix)

    def string(self, where: str, value: object) -> str | None:
        if isinstance(value, str) and value.strip():
            return value.strip()
        self.problem(where, f"must be a non-empty string, not {describe(value)}")
        return None

    def collection_path(self, where: str, value: object) -> str | None:
        """An absolute POSIX path, normalized, without a trailing slash."""
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value:
            self.problem(where, f"must be a path string, not {describe(value)}")
            return None
        if "\x00" in value or "\n" in value or "\r" in value:
            self.problem(where, f"{value!r} contains a NUL or newline character")
            return None
        if not value.startswith("/"):
            self.problem(
                where,
                f"{value!r} is not an absolute path; write the full path starting "
                "with '/'",
            )
            return None
        normalized = posixpath.normpath(value)
        # POSIX keeps a leading '//' as special; Globus paths never need it.
        return "/" + normalized.lstrip("/")

    def local_dir(self, where: str, value: object) -> Path | None:
        """An absolute local path ('~' expanded), or None if unset or wrong."""
        if value is MISSING or value is None:
            return None
        if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
            self.problem(where, f"must be a path string, not {describe(value)}")
            return None
        text = os.path.expanduser(os.fspath(value))
        if not isinstance(text, str) or "\x00" in text:
            self.problem(where, f"{value!r} is not a valid path")
            return None
        if not os.path.isabs(text):
            self.problem(
                where, f"{value!r} is not an absolute path; write the full path"
            )
            return None
        return Path(os.path.normpath(text))

    def number(
        self, where: str, value: object, default: float, *, integer: bool = False
    ) -> float:
        """A finite non-negative number (int when ``integer``), else the default."""
        if value is MISSING:
            return default
        kind = "a whole number" if integer else "a number"
        if not is_number(value) or (integer and not isinstance(value, int)):
            self.problem(where, f"must be {kind}, not {describe(value)}")
            return default
        number = cast(float, value)
        try:
            as_float = float(number)
        except OverflowError:  # an int too large for a float
            as_float = math.inf if number > 0 else -math.inf
        if math.isnan(as_float) or as_float < 0:
            self.problem(where, f"must be zero or more, not {describe(value)}")
            return default
        if math.isinf(as_float):
            self.problem(where, f"must be a finite number, not {describe(value)}")
            return default
        return number

    def flag(self, name: str) -> bool | None:
        """True, False, or None (not set: the tool decides)."""
        value = self.get(name)
        if value is MISSING or value is None:
            return None
        if isinstance(value, bool):
            return value
        self.problem(name, f"must be True, False or None, not {describe(value)}")
        return None

    def scan_threads(self, where: str, value: object) -> int:
        """SCAN_THREADS: a whole number from 1 (the serial walk) to 256."""
        default = DEFAULT_SCAN_THREADS
        number = int(self.number(where, value, default, integer=True))
        if not 1 <= number <= MAX_SCAN_THREADS:
            self.problem(
                where,
                f"must be 1 to {MAX_SCAN_THREADS}, not {number} (1: one thread, "
                f"the default {default} suits NFS, Lustre and GPFS)",
            )
            return default
        return number

    def time(
        self, where: str, value: object, default: float, name: str | None = None
    ) -> float:
        """A time setting (``name`` in TIME_SETTINGS, default ``where``) in its
        own unit, or the default after a problem.

        A number is in the setting's unit; a text such as '90s', '15m', '6h' or
        '2d' (:func:`parse_duration`, as ``cron --every`` reads it) is converted
        to it. From zero up to the setting's most.
        """
        if value is MISSING:
            return default
        unit, most, why = TIME_SETTINGS[name or where]
        if isinstance(value, str):
            try:
                seconds = float(parse_duration(value, unit))
            except ValueError as exc:
                self.problem(where, str(exc))
                return default
            shown = repr(value)
        else:
            before = len(self.problems)
            number = self.number(where, value, default)
            if len(self.problems) > before:
                return default
            seconds = float(number) * DURATION_UNITS[unit]
            shown = f"{number:g} {UNIT_NAMES[unit]}"
        if seconds > most:
            self.problem(
                where,
                f"{shown} is more than {duration_text(most)}, the most it may be "
                f"({why}); write a shorter time",
            )
            return default
        return seconds / DURATION_UNITS[unit]

    def seconds_above_zero(self, name: str, default: float) -> float:
        """A number of seconds more than zero (a deadline), else the default."""
        seconds = self.time(name, self.get(name), default)
        if seconds <= 0:
            self.problem(name, "must be more than 0 seconds")
            return default
        return seconds

    def count_from_one(self, name: str, default: int) -> int:
        """A whole number of at least 1, else the default."""
        count = int(self.number(name, self.get(name), default, integer=True))
        if count < 1:
            self.problem(name, f"must be 1 or more (1: alert at once), not {count}")
            return default
        return count

    def notify_urls(self, where: str, value: object) -> tuple[str, ...]:
        """Apprise URLs (``scheme://...``), one string or a list of them.

        Never echoes a value: these URLs hold tokens. Whether Apprise knows the
        scheme is for ``globus-auto check``: loading the config imports no Apprise.
        """
        if value is MISSING or value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            kind = type(value).__name__  # not the value: it may hold a token
            self.problem(where, f"must be a list of Apprise URLs, not a {kind}")
            return ()
        urls = []
        for i, item in enumerate(items):
            if isinstance(item, str) and _looks_like_url(item):
                urls.append(item)
                continue
            self.problem(
                f"{where}[{i}]",
                "is not an Apprise URL like 'ntfy://ntfy.sh/topic' or "
                "'slack://T/B/C' (see github.com/caronc/apprise/wiki)",
            )
        return tuple(urls)

    def command(self, where: str, value: object) -> tuple[str, ...]:
        """A command as a list of arguments, or one string split as a shell would
        (no shell runs it: write ["sh", "-c", "..."] for one)."""
        if value is MISSING or value is None:
            return ()
        if isinstance(value, str):
            try:
                value = shlex.split(value)
            except ValueError as exc:
                self.problem(where, f"cannot be split into arguments: {exc}")
                return ()
        if (
            not isinstance(value, (list, tuple))
            or not value
            or not all(isinstance(arg, str) and "\x00" not in arg for arg in value)
            or not value[0]
        ):
            self.problem(
                where,
                "must be a command such as ['/usr/local/bin/page-oncall', '--team', "
                f"'data'] or one string, not {describe(value)}",
            )
            return ()
        return tuple(value)

    def address(self, where: str, value: object) -> str | None:
        text = self.string(where, value)
        if text is None:
            return None
        if "\n" in text or "\r" in text or "@" not in text:
            self.problem(where, f"{text!r} is not an e-mail address")
            return None
        return text

    def optional_address(self, where: str, value: object) -> str | None:
        if value is MISSING or value is None:
            return None
        return self.address(where, value)

    def recipients(self, where: str, value: object) -> tuple[str, ...]:
        """One address, a comma-separated string, or a list/tuple of addresses."""
        if value is MISSING or value is None:
            return ()
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            self.problem(
                where, f"must be a list of e-mail addresses, not {describe(value)}"
            )
            return ()
        found = [self.address(f"{where}[{i}]", item) for i, item in enumerate(value)]
        return tuple(address for address in found if address is not None)

    def patterns(self, where: str, value: object) -> tuple[str, ...]:
        """EXCLUDE patterns: gitignore rules over paths relative to the source
        root (:mod:`.patterns`); a set that would exclude everything is refused.
        """
        if value is MISSING or value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            self.problem(
                where, f"must be a list of glob patterns, not {describe(value)}"
            )
            return ()
        result = []
        for i, item in enumerate(value):
            pattern = self.string(f"{where}[{i}]", item)
            problem = None if pattern is None else pattern_problem(pattern)
            if problem is not None:
                self.problem(f"{where}[{i}]", problem)
            elif pattern is not None:
                result.append(pattern)
        if excludes_everything(result):
            self.problem(
                where,
                f"{result!r} excludes every file and folder, so nothing would ever "
                "be sent; remove the catch-all pattern, or re-include what to send "
                "after it, e.g. ['*', '!*/', '!*.h5']",
            )
        return tuple(result)
