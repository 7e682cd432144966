"""Checks of single config values, each problem collected with its fix.

:class:`ValueChecker` holds the executed config's namespace and the problems
found so far; each check returns the value in its final form, or None (and a
problem line naming the variable and what to write instead). The assembly of
whole settings from these checks is :mod:`.validate`. Imports :mod:`.model`.
"""

from __future__ import annotations

import difflib
import math
import os
import posixpath
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast


class _Missing:
    """Marks a name the config did not set."""


MISSING = _Missing()


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
        """A canonical lowercase UUID string, or None after recording a problem."""
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, str):
            try:
                return str(uuid.UUID(value.strip()))
            except ValueError:
                pass
        self.problem(where, f"{value!r} is not a UUID; {fix}")
        return None

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

    def hours(self, name: str, default: float) -> float:
        return float(self.number(name, self.get(name), default))

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
        """Glob patterns relative to the source root."""
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
            if pattern is None:
                continue
            if pattern.startswith("/"):
                self.problem(
                    f"{where}[{i}]",
                    f"{pattern!r}: patterns are relative to the source root; "
                    f"write {pattern.lstrip('/')!r}",
                )
                continue
            result.append(pattern)
        return tuple(result)
