"""EXCLUDE patterns read as gitignore rules: which are not patterns at all, and
which sets would exclude everything.

Matching itself is :mod:`globus_auto.engine.exclude`; both compile the
patterns with ``pathspec``'s ``GitIgnoreSpec``, so they agree on what a
pattern means. Plain functions over strings; imports pathspec only when
there are patterns (it takes tens of milliseconds, every run would pay them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pathspec

# Names no pattern of letters can match, only wildcards: a 1-character and a
# long one (so '?' alone is not taken for "everything"), as a file and as a
# folder. NUL never occurs in a real name.
_PROBES = ("\0", "\0" * 40 + ".\0", "\0/", "\0" * 40 + "/")


def pattern_problem(pattern: str) -> str | None:
    """What is wrong with one EXCLUDE pattern as a gitignore rule, or None.

    Why a '#' is refused rather than ignored: in a .gitignore it starts a
    comment, so the pattern would silently match nothing.
    """
    if pattern.startswith("#"):
        escaped = "\\" + pattern
        return (
            f"{pattern!r} starts with '#', which gitignore rules read as a comment; "
            f"write {escaped!r} to match names that start with '#'"
        )
    try:
        (compiled,) = _spec([pattern]).patterns
    except ValueError as exc:
        return f"{pattern!r} is not a gitignore pattern ({exc})"
    if compiled.include is None:
        return (
            f"{pattern!r} is not a gitignore pattern (an unclosed '[', or nothing "
            "to match); write a name or a glob such as '*.tmp', 'cache/' or "
            "'/top-level-only'"
        )
    return None


def excludes_everything(patterns: Sequence[str]) -> bool:
    """Whether the patterns exclude every file and folder at the top of the
    source with nothing re-included (no ``!`` pattern): then nothing is ever
    sent, which is never what a config means (``["*"]``, ``["**"]``, ``["/*"]``).
    """
    if not patterns or any(p.startswith("!") for p in patterns):
        return False
    spec = _spec(patterns)
    return all(spec.match_file(probe) for probe in _PROBES)


def _spec(patterns: Sequence[str]) -> pathspec.GitIgnoreSpec:
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(patterns)
