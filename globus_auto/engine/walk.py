"""Walk a job's source tree: every file with its stat, in byte order of its path.

The walk yields files in byte order of their relative path, the same order the
datastore returns its rows in, so :mod:`.scan` merges the two streams in one pass
and neither is ever held in memory whole. Symbolic links are not followed,
excluded folders are not entered, and a file that cannot be sent (a FIFO, a
name Globus cannot carry) becomes an entry with a problem instead of stopping
the walk. The walk hands over runs of consecutive files of one folder (at most
``RUN_FILES``), so memory stays flat in the tree size. A walk may be narrowed
to a :class:`Span` of paths (one scout's share, :mod:`.scouts`): only the
folders a bound of the span falls in are filtered, the others are entered
whole or not at all. This is the serial walk (SCAN_THREADS = 1);
:mod:`.walk_parallel` gives the same runs from several threads and reuses its
helpers. Imports only the standard library.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import NamedTuple

from globus_auto.errors import SourceError

log = logging.getLogger(__name__)


# Symbolic links are skipped on purpose, as Globus skips them in a recursive
# transfer: listed by `status`, but neither alerted nor blocking recursion.
SYMLINK_NOTE = "symbolic link: not followed, not sent"


RUN_FILES = 1024  # at most this many files per run (bounds memory per folder)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_lstat = os.lstat


_mode = attrgetter("st_mode")


class Entry(NamedTuple):
    """One thing the walk found: a regular file, or something it cannot send.

    Shaped like a datastore row (:class:`globus_auto.datastore.StoredFile`) so
    that "unchanged" is tuple equality: ``regular`` stands where the row has
    ``hashed``, so a regular file matches only a row that was fully read, and a
    problem matches only a row with the same problem.
    """

    path: bytes  # relative to the source root, '/'-separated
    size: int | None
    mtime_ns: int | None
    ctime_ns: int | None
    inode: int | None
    regular: bool = True
    problem: str | None = None


# What the walk yields in runs: an Entry, or a plain tuple of the same shape.
EntryRow = tuple[
    bytes, int | None, int | None, int | None, int | None, bool, str | None
]


def problem_entry(path: bytes, problem: str) -> Entry:
    """The walk's entry for something at ``path`` that cannot be sent."""
    return Entry(path, None, None, None, None, False, problem)


# Whether a path (relative to the root, no trailing '/') is excluded; the flag
# is True for a folder, which is then not entered. Called from several threads
# at once by the parallel walk, so it must be safe to.
Excluded = Callable[[bytes, bool], bool]


def exclude_matcher(patterns: Sequence[str]) -> Excluded | None:
    """A predicate telling whether a relative path is excluded, or None if none is.

    The patterns follow the gitignore rules (:mod:`.exclude`), imported only
    when there are some: pathspec takes tens of milliseconds to import.
    """
    if not patterns:
        return None
    from globus_auto.engine.exclude import ExcludeRules

    return ExcludeRules(patterns)


# A folder's listing: the names of its regular files, directories, and others.
Listing = tuple[list[bytes], list[bytes], list[bytes]]


@dataclass(frozen=True)
class Span:
    """The relative paths from ``low`` (included) to ``high`` (excluded; None:
    to the end), in the byte order the walk and the datastore share.

    Only a folder a bound falls in (an ancestor of ``low`` or ``high``) needs
    its names filtered: any other folder lies wholly inside the span or wholly
    outside it, and a folder outside is never entered. Bounds come from
    :func:`safe_bound`, so a folder's own entry (a folder that cannot be read
    or whose name cannot be sent) is in the span its contents start in.
    """

    low: bytes = b""
    high: bytes | None = None

    def cuts(self, prefix: bytes) -> bool:
        """Whether a bound falls in the folder ``prefix`` ('/'-terminated, or
        empty for the root): its names must be filtered."""
        return (bool(self.low) and self.low.startswith(prefix)) or (
            self.high is not None and self.high.startswith(prefix)
        )

    def has_file(self, path: bytes) -> bool:
        return self.low <= path and (self.high is None or path < self.high)

    def has_folder(self, folder: bytes) -> bool:
        """Whether any path under ``folder`` ('/'-terminated) is in the span."""
        return (self.high is None or folder < self.high) and (
            self.low <= folder or self.low.startswith(folder)
        )

    def names(self, prefix: bytes, names: list[bytes]) -> list[bytes]:
        """The files among ``names`` (of the folder ``prefix``) in the span."""
        if not self.cuts(prefix):
            return names
        return [n for n in names if self.has_file(prefix + n)]

    def listing(self, prefix: bytes, listing: Listing) -> Listing:
        """What of the folder ``prefix``'s listing lies in the span."""
        if not self.cuts(prefix):
            return listing
        files, dirs, specials = listing
        return (
            [n for n in files if self.has_file(prefix + n)],
            [d for d in dirs if self.has_folder(prefix + d + b"/")],
            [n for n in specials if self.has_file(prefix + n)],
        )


def safe_bound(path: bytes) -> bytes:
    """A bound for a :class:`Span` at or just before ``path``, never between a
    folder's own path and its contents.

    Between ``a`` and ``a/`` sort the names that go on with a byte below '/'
    (``a.txt``, ``a-1``): a bound there would put the folder ``a``'s own entry
    in one span and its contents in the next. Such a bound is cut back to the
    folder's path (``a``), which sorts before all of them.
    """
    for i in range(1, len(path)):
        if path[i] < 47 and path[i - 1] != 47:  # a byte below '/', after a name
            return path[:i]
    return path


def _name_problem(name: bytes) -> str | None:
    if b"\n" in name or b"\r" in name:
        return "name contains a line break; Globus cannot transfer it, rename it"
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return "name is not valid UTF-8; Globus cannot transfer it, rename it"
    return None


class Walk:
    """The files under a root, in path byte order (see :func:`walk`).

    Iterating gives one :class:`Entry` per file; :meth:`runs` gives the same
    entries as lists of plain tuples, which is what the scanner uses.
    """

    def __init__(
        self, root: bytes, excluded: Excluded | None = None, span: Span | None = None
    ) -> None:
        self.root = root
        self.excluded = excluded
        self.span = span

    def __iter__(self) -> Iterator[Entry]:
        for run in self.runs():
            yield from map(Entry._make, run)

    def runs(self) -> Iterator[list[EntryRow]]:
        """Lists of consecutive entries (in path order) of one folder each."""
        return _walk_dir(self.root, b"", self.excluded, self.span)


def walk(root: bytes, excluded: Excluded | None = None) -> Walk:
    """Every regular file under ``root`` (and every problem), in path byte order.

    Entries of a directory are sorted by name, with '/' appended to directory
    names: that makes the depth-first order equal to the byte order of the full
    relative paths. Symbolic links are never followed.
    """
    return Walk(root, excluded)


def _walk_dir(
    root: bytes, prefix: bytes, excluded: Excluded | None, span: Span | None = None
) -> Iterator[list[EntryRow]]:
    folder = os.path.join(root, prefix) if prefix else root
    try:
        fd = os.open(folder, _DIR_FLAGS | (os.O_NOFOLLOW if prefix else 0))
        try:
            # A link count of 2 means no subdirectory (as find's leaf
            # optimisation assumes): the names alone, sorted, are in path
            # order, and listing them costs far less than DirEntry objects.
            # Not in a folder a span's bound falls in: its names are
            # filtered before their kinds are known, and a folder among
            # them (SMB mounts give every folder a link count of 2) must
            # be kept by has_folder, not dropped by has_file.
            leaf = os.fstat(fd).st_nlink == 2 and not (span and span.cuts(prefix))
            names = os.listdir(folder) if leaf else []
            listing = None if leaf else _list_dir(folder)
        except BaseException:
            os.close(fd)
            raise
    except OSError as exc:
        if prefix:
            if span is None or span.has_file(prefix[:-1]):
                problem = f"directory cannot be read: {exc.strerror}"
                yield [problem_entry(prefix[:-1], problem)]
            return
        raise SourceError(f"cannot list {os.fsdecode(folder)}: {exc.strerror}") from exc
    try:
        if listing is None:
            names.sort()
            if span is not None:
                names = span.names(prefix, names)
            yield from _leaf_runs(root, prefix, fd, names, excluded, span)
        else:
            if span is not None:
                listing = span.listing(prefix, listing)
            yield from _mixed_runs(root, prefix, fd, listing, excluded, span=span)
    finally:
        os.close(fd)


def _leaf_runs(
    root: bytes,
    prefix: bytes,
    fd: int,
    names: list[bytes],
    excluded: Excluded | None,
    span: Span | None = None,
) -> Iterator[list[EntryRow]]:
    """Runs of a folder without subdirectories (sorted ``names``)."""
    if excluded is not None:
        names = [n for n in names if not excluded(prefix + n, False)]
    for start in range(0, len(names), RUN_FILES):
        chunk = names[start : start + RUN_FILES]
        try:
            stats = [_lstat(n, dir_fd=fd) for n in chunk]
            kinds = list(map(stat.S_IFMT, map(_mode, stats)))
        except OSError:  # one vanished or cannot be stat'ed: one by one below
            stats = []
            kinds = [_kind(fd, n) for n in chunk]
        if stats and kinds.count(stat.S_IFREG) == len(chunk) and _names_ok(chunk):
            yield _rows(prefix, chunk, stats)
            continue
        if stat.S_IFDIR in kinds:
            # A subdirectory appeared after the link count was read: the rest
            # of the folder the slow way (what was yielded sorts before it).
            try:
                listing = _list_dir(os.path.join(root, prefix))
            except OSError:
                return
            if span is not None:
                listing = span.listing(prefix, listing)
            yield from _mixed_runs(
                root, prefix, fd, listing, excluded, chunk[0], span=span
            )
            return
        yield [e for e in (_file_entry(fd, prefix, n) for n in chunk) if e is not None]


def _mixed_runs(
    root: bytes,
    prefix: bytes,
    fd: int,
    listing: Listing,
    excluded: Excluded | None,
    since: bytes = b"",
    *,
    span: Span | None = None,
) -> Iterator[list[EntryRow]]:
    """Runs of a folder with subdirectories, from name ``since`` on (the
    listing already narrowed to ``span``, which its subfolders are walked in)."""
    files, dirs, specials = listing
    # '/' after directory names and NUL (never in a name) after special
    # files keep the sorted keys in the byte order of the full paths.
    keys = files + [d + b"/" for d in dirs] + [n + b"\0" for n in specials]
    keys.sort()
    names: list[bytes] = []
    for key in keys:
        last = key[-1]
        if last != 47 and last != 0:  # neither '/' nor NUL: a file
            if key >= since:
                names.append(key)
            continue
        if key[:-1] < since:
            continue
        yield from _file_runs(fd, prefix, names, excluded)
        names = []
        if last == 47:
            yield from _enter(root, prefix, key, excluded, span)
        elif excluded is None or not excluded(prefix + key[:-1], False):
            entry = _file_entry(fd, prefix, key[:-1])
            if entry is not None:  # else it vanished since the listing
                yield [entry]
    yield from _file_runs(fd, prefix, names, excluded)


def _list_dir(folder: bytes) -> Listing:
    """Names of regular files, directories and other things in ``folder``."""
    files: list[bytes] = []
    dirs: list[bytes] = []
    specials: list[bytes] = []
    with os.scandir(folder) as it:
        for e in it:
            if e.is_file(follow_symlinks=False):
                files.append(e.name)
            elif e.is_dir(follow_symlinks=False):
                dirs.append(e.name)
            else:
                specials.append(e.name)
    return files, dirs, specials


def _enter(
    root: bytes,
    prefix: bytes,
    key: bytes,
    excluded: Excluded | None,
    span: Span | None = None,
) -> Iterator[list[EntryRow]]:
    rel = prefix + key[:-1]
    if excluded is not None and excluded(rel, True):
        return
    problem = _name_problem(key[:-1])
    if problem:
        if span is None or span.has_file(rel):
            yield [problem_entry(rel, problem)]
    elif span is None or span.has_folder(prefix + key):
        yield from _walk_dir(root, prefix + key, excluded, span)


def _file_runs(
    fd: int,
    prefix: bytes,
    names: list[bytes],
    excluded: Excluded | None,
) -> Iterator[list[EntryRow]]:
    """Entries of regular files (sorted ``names``), RUN_FILES at a time."""
    if excluded is not None:
        names = [n for n in names if not excluded(prefix + n, False)]
    for start in range(0, len(names), RUN_FILES):
        chunk = names[start : start + RUN_FILES]
        if _names_ok(chunk):
            try:
                stats = [_lstat(n, dir_fd=fd) for n in chunk]
            except OSError:
                pass  # a file vanished or cannot be stat'ed: one by one
            else:
                yield _rows(prefix, chunk, stats)
                continue
        yield [e for e in (_file_entry(fd, prefix, n) for n in chunk) if e is not None]


def _rows(
    prefix: bytes, names: list[bytes], stats: list[os.stat_result]
) -> list[EntryRow]:
    """The hot loop of a run with nothing changed: one tuple per regular file,
    from one lstat each (relative to the folder's descriptor)."""
    return [
        (prefix + n, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, True, None)
        for n, st in zip(names, stats, strict=True)
    ]


def _names_ok(names: list[bytes]) -> bool:
    """No name has a problem (see :func:`_name_problem`), checked at once."""
    joined = b"\0".join(names)
    return b"\n" not in joined and b"\r" not in joined and _is_utf8(joined)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _file_entry(fd: int, prefix: bytes, name: bytes) -> Entry | None:
    """One file's entry, its problem, or None if it vanished since the listing."""
    rel = prefix + name
    problem = _name_problem(name)
    try:
        st = _lstat(name, dir_fd=fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return problem_entry(rel, problem or f"cannot stat: {exc.strerror}")
    if not stat.S_ISREG(st.st_mode):
        problem = problem or special_problem(st.st_mode)
    if problem:
        return problem_entry(rel, problem)
    return Entry(rel, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _kind(fd: int, name: bytes) -> int:
    """The file type bits of ``name`` in the folder, 0 if it cannot be stat'ed."""
    try:
        return stat.S_IFMT(_lstat(name, dir_fd=fd).st_mode)
    except OSError:
        return 0


def special_problem(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return SYMLINK_NOTE
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO): not a regular file, not sent"
    if stat.S_ISSOCK(mode):
        return "socket: not a regular file, not sent"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device file: not a regular file, not sent"
    return "not a regular file, not sent"
