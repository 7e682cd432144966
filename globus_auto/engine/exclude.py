"""EXCLUDE: gitignore rules over a job's source tree, and which of them matched.

A job's patterns follow the rules of ``.gitignore`` (as rsync's, restic's and
rclone's users expect), matched by the ``pathspec`` library rather than a
translation of our own: a name without a ``/`` matches at any depth, ``*``
stops at ``/``, ``**`` crosses folders, a leading ``/`` anchors a pattern to
the source root, a trailing ``/`` matches folders only, and ``!`` re-includes
what an earlier pattern excluded (except inside an excluded folder, which is
never entered). :class:`ExcludeRules` is the predicate the walk calls; it also
records which patterns decided something, so that ``check`` and
``run --dry-run`` can warn about a pattern that matched nothing
(:func:`unmatched_patterns`, :func:`unmatched_warnings`). Imports pathspec and
:mod:`globus_auto.settings.model`.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import pathspec

from globus_auto.settings.model import Job

# At most this many names are listed to find the patterns that match nothing:
# `check` stays quick on a tree of millions of files, and says when it stopped.
LISTING_LIMIT = 200_000


# pathspec's regular expression for '*/' and '**/' (any folder), and the name
# of its group that marks where a folder's name ends.
_ANY_FOLDER = "(?P<ps_d>/)"
_DIR_MARK = "ps_d"


class ExcludeRules:
    """A job's EXCLUDE patterns, compiled: ``rules(relpath, is_dir)`` is True
    when the path (relative to the source root, no trailing ``/``) is excluded.

    The walk asks only about entries whose folders are not excluded, so, as in
    git, the last pattern that matches the entry itself decides. Why not
    ``GitIgnoreSpec.check_file``: it ranks a match of ``*`` above a later
    ``!*/`` on a folder, unlike git, so the common ``["*", "!*/", "!*.h5"]``
    would keep every folder out; the patterns are still pathspec's translation.

    Safe to call from several threads at once (the parallel walk does): the
    compiled patterns are read only, and the record of matched patterns is
    written under a lock, once per pattern.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        compiled = pathspec.GitIgnoreSpec.from_lines(patterns).patterns
        self._texts = [str(p.pattern) for p in compiled if p.include is not None]
        self._rules = [
            (index, _classes_without_slash(p.regex), bool(p.include))
            for index, p in enumerate(p for p in compiled if p.include is not None)
            if p.regex is not None
        ]
        self._rules.reverse()  # the last matching pattern decides
        # All patterns in one expression first: most paths match none, and
        # then one call answers (a superset of the exact test below).
        self._any = _one_expression([r.pattern for _, r, _ in self._rules])
        self._matched: set[int] = set()
        self._lock = threading.Lock()

    def __call__(self, relpath: bytes, is_dir: bool) -> bool:
        path = os.fsdecode(relpath)
        if self._any.search(path + "/" if is_dir else path) is None:
            return False
        for index, regex, include in self._rules:
            if _matches(regex, path, is_dir):
                if index not in self._matched:
                    with self._lock:
                        self._matched.add(index)
                return include
        return False

    def unmatched(self) -> tuple[str, ...]:
        """The patterns that have decided nothing so far, in their order."""
        with self._lock:
            matched = set(self._matched)
        return tuple(t for i, t in enumerate(self._texts) if i not in matched)


def _one_expression(patterns: list[str]) -> re.Pattern[str]:
    """One expression found wherever one of ``patterns`` is (none: nowhere)."""
    if not patterns:
        return re.compile(r"\A(?!)")
    joined = "|".join(f"(?:{p})" for p in patterns)
    return re.compile(joined.replace(f"(?P<{_DIR_MARK}>", "(?:"))


# The start of a negated character class in a regular expression (after an
# even number of backslashes), with a ']' right after it, which is a member.
_NEGATED_CLASS = re.compile(r"(?<!\\)((?:\\\\)*)\[\^(\]?)")


def _classes_without_slash(regex: re.Pattern[str]) -> re.Pattern[str]:
    """``regex`` with '/' added to each negated class: pathspec writes ``[!x]``
    as ``[^x]``, which matches '/', where git's never does (``a[!x]b`` would
    match the path ``a/b``)."""
    return re.compile(_NEGATED_CLASS.sub(r"\1[^\2/", regex.pattern))


def _matches(regex: re.Pattern[str], path: str, is_dir: bool) -> bool:
    """Whether one of pathspec's pattern expressions matches the entry itself.

    pathspec's expressions also match what lies inside a matching folder; the
    group ``ps_d`` marks the end of that folder's name, so a full match (with a
    folder written ``name/``) is a match of the entry itself. An expression
    without the group (``*``, ``**``, ``dir/**``) matches at any depth below.
    """
    if regex.pattern == _ANY_FOLDER:
        return is_dir
    if _DIR_MARK in regex.groupindex:
        return regex.fullmatch(path + "/" if is_dir else path) is not None
    return regex.search(path) is not None


def exclude_rules(patterns: Sequence[str]) -> ExcludeRules | None:
    """The compiled rules, or None when there are no patterns (nothing to call)."""
    return ExcludeRules(patterns) if patterns else None


@dataclass(frozen=True)
class Unmatched:
    """The patterns of a job that matched nothing in its source folder."""

    patterns: tuple[str, ...]
    complete: bool  # False: the listing stopped at LISTING_LIMIT names


def unmatched_patterns(job: Job, limit: int = LISTING_LIMIT) -> Unmatched:
    """List the job's source folder (names only, no stat, links not followed,
    excluded folders not entered) until every pattern has matched something or
    ``limit`` names were seen; an unreadable folder is passed over.
    """
    rules = exclude_rules(job.exclude)
    if rules is None:
        return Unmatched((), True)
    root = os.fsencode(job.src_local_dir)
    folders, seen = [b""], 0
    while folders and seen < limit and rules.unmatched():
        prefix = folders.pop()
        try:
            with os.scandir(os.path.join(root, prefix) if prefix else root) as it:
                entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        except OSError:
            continue
        seen += len(entries)
        for name, is_dir in entries:
            path = prefix + name
            if not rules(path, is_dir) and is_dir:
                folders.append(path + b"/")
    return Unmatched(rules.unmatched(), complete=not folders)


def unmatched_warnings(job: Job, found: Unmatched) -> list[str]:
    """One line per pattern that matched nothing: what, then (after "; ") what
    to check."""
    where = f"{job.src_local_dir}" + (
        "" if found.complete else f" (in the first {LISTING_LIMIT:,} names)"
    )
    return [
        f"the EXCLUDE pattern {pattern!r} matched nothing under {where}; check it "
        "against the gitignore rules: a name without '/' matches at any depth, "
        "'/' first anchors it to the top, '*' stops at '/', '**' crosses folders, "
        "a trailing '/' matches folders only"
        for pattern in found.patterns
    ]
