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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from globus_auto.settings.model import Job


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

    # paths that would lose data ---------------------------------------------------

    def check_own_paths(self, job: Job, label: Callable[[str], str]) -> None:
        """Refuse a job whose destination and source overlap on one collection.

        Why each case loses data or loops: a destination equal to the source
        copies every file onto itself; one inside the source is itself part of
        the source, so every run sends its own output again, one level deeper,
        without end; a source inside the destination means a source folder
        whose relative path begins with the source's own place in the
        destination (say /data/raw/raw/f, sent from /data/raw to /data) is
        written over the source's own files (/data/raw/f).
        """
        if job.src_id != job.dst_id:
            return
        src, dst = job.src_dir, job.dst_dir
        if dst == src:
            how = "is its source folder"
        elif is_inside(dst, src):
            how = "is inside its source folder, so every run would send its own "
            how += "output again, one level deeper"
        elif is_inside(src, dst):
            how = "contains its source folder, so files sent could overwrite the "
            how += "source's own files"
        else:
            return
        self.problem(
            label("dst_dir"),
            f"job {job.name!r}: the destination {dst} {how} ({label('src_dir')} "
            f"{src}, both on collection {job.src_id}); choose a destination outside "
            "the source folder, or on another collection",
        )

    def check_destinations(
        self, placed: Sequence[tuple[Job, Callable[[str], str]]]
    ) -> None:
        """Refuse two jobs writing the same destination folder, or one inside
        the other's, on one collection.

        Why: a file of one job (say results.csv) would silently replace the
        other's of the same name, and neither job would ever notice. Two jobs
        with the same source and different destinations are fine.
        """
        for i, (second, second_label) in enumerate(placed):
            for first, first_label in placed[:i]:
                if first.identity == second.identity:
                    continue  # already refused as a duplicate job
                clash = destination_clash(first, second)
                if clash is None:
                    continue
                a, b = first_label("dst_dir"), second_label("dst_dir")
                outer = min(first.dst_dir, second.dst_dir, key=len)
                self.problem(
                    b,
                    f"jobs {first.name!r} and {second.name!r} {clash} on collection "
                    f"{second.dst_id} ({a} {first.dst_dir}, {b} {second.dst_dir}): "
                    "files of the same name would overwrite each other; give each "
                    "job its own destination folder, neither inside the other, e.g. "
                    f"{posixpath.join(outer, first.name)} and "
                    f"{posixpath.join(outer, second.name)}",
                )


def is_inside(path: str, folder: str) -> bool:
    """True when ``path`` is strictly below ``folder`` (both normalized), at a
    '/' boundary: /data/run2 is not inside /data/run."""
    prefix = folder if folder.endswith("/") else folder + "/"
    return path != folder and path.startswith(prefix)


def destination_clash(first: Job, second: Job) -> str | None:
    """How two jobs' destinations overlap, as words to follow "jobs 'a' and
    'b'", or None when they are apart.

    Collection ids are canonical lowercase UUIDs and paths normalized by the
    value checks, so plain comparison is exact. One destination inside the
    other is allowed only when the sources nest the same way on the same
    collection, as then both jobs send the same file to every path.
    """
    if first.dst_id != second.dst_id:
        return None
    if first.dst_dir == second.dst_dir:
        return f"both write to {first.dst_dir}"
    outer, inner = sorted((first, second), key=lambda job: len(job.dst_dir))
    if not is_inside(inner.dst_dir, outer.dst_dir):
        return None
    # The same nesting on the source side (/src -> /dst and /src/sub ->
    # /dst/sub) sends the same file to each path: redundant, never a loss.
    sub = posixpath.relpath(inner.dst_dir, outer.dst_dir)
    if inner.src_id == outer.src_id and inner.src_dir == posixpath.join(
        outer.src_dir, sub
    ):
        return None
    return "write to folders one inside the other"
