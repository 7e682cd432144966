"""Walk a job's source tree, stat every file, hash only what changed.

The walk yields files in byte order of their relative path, the same order the
datastore returns its rows in, so the two streams are merged in one pass and
neither is ever held in memory whole. A file whose size, mtime, ctime and inode
match its row is not read; a new or changed one is hashed with BLAKE3 in a small
thread pool. Changes are written to the datastore in batches.
"""

from __future__ import annotations

import fnmatch
import logging
import mmap
import os
import re
import stat
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

import blake3

from globus_auto.datastore import Observed, StoredFile
from globus_auto.errors import SourceError

log = logging.getLogger(__name__)

BATCH_FILES = 2000
BATCH_BYTES = 1 << 30
MAX_IN_FLIGHT = 64
MMAP_THRESHOLD = 4 << 20
READ_CHUNK = 1 << 20


class Entry(NamedTuple):
    """One thing the walk found: a regular file, or something it cannot send."""

    path: bytes  # relative to the source root, '/'-separated
    size: int | None
    mtime_ns: int | None
    ctime_ns: int | None
    inode: int | None
    problem: str | None = None


@dataclass
class ScanSummary:
    """What one scan saw and did."""

    files: int = 0
    total_bytes: int = 0
    new: int = 0
    changed: int = 0
    gone: int = 0
    hashed_files: int = 0
    hashed_bytes: int = 0
    problems: list[tuple[bytes, str]] = field(default_factory=list)


Sink = Callable[[Sequence[Observed], Sequence[bytes]], None]
Progress = Callable[[ScanSummary], None]


def exclude_matcher(patterns: Sequence[str]) -> Callable[[bytes], bool] | None:
    """A predicate telling whether a relative path is excluded, or None if none is."""
    if not patterns:
        return None
    regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))

    def excluded(relpath: bytes) -> bool:
        return regex.match(os.fsdecode(relpath)) is not None

    return excluded


def check_source(root: bytes, tracked: int) -> None:
    """Refuse a source that is missing, or empty while files are tracked.

    An empty source directory where the datastore remembers files is what an
    unmounted filesystem looks like; acting on it would drop every row.
    """
    shown = os.fsdecode(root)
    try:
        with os.scandir(root) as it:
            empty = next(iter(it), None) is None
    except FileNotFoundError:
        raise SourceError(
            f"the source directory {shown} does not exist; check SRC_DIR (or "
            "src_local_dir) and that its filesystem is mounted"
        ) from None
    except NotADirectoryError:
        raise SourceError(
            f"the source {shown} is not a directory; check SRC_DIR"
        ) from None
    except PermissionError:
        raise SourceError(
            f"the source directory {shown} is not readable by this user; fix its "
            "permissions or run globus-auto as its owner"
        ) from None
    if empty and tracked:
        raise SourceError(
            f"the source directory {shown} is empty but {tracked} files are tracked: "
            "is its filesystem unmounted? Nothing was changed. If the files were "
            "really removed, run: globus-auto reset --job <job>"
        )


def _name_problem(name: bytes) -> str | None:
    if b"\n" in name or b"\r" in name:
        return "name contains a line break; Globus cannot transfer it, rename it"
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return "name is not valid UTF-8; Globus cannot transfer it, rename it"
    return None


def walk(
    root: bytes, excluded: Callable[[bytes], bool] | None = None
) -> Iterator[Entry]:
    """Every regular file under ``root`` (and every problem), in path byte order.

    Entries of a directory are sorted by name, with '/' appended to directory
    names: that makes the depth-first order equal to the byte order of the full
    relative paths. Symbolic links are never followed.
    """
    yield from _walk_dir(root, b"", excluded)


def _walk_dir(
    root: bytes, prefix: bytes, excluded: Callable[[bytes], bool] | None
) -> Iterator[Entry]:
    folder = os.path.join(root, prefix) if prefix else root
    try:
        with os.scandir(folder) as it:
            items = [
                (e.name + b"/" if e.is_dir(follow_symlinks=False) else e.name, e)
                for e in it
            ]
    except OSError as exc:
        if prefix:
            yield Entry(
                prefix.rstrip(b"/"),
                None,
                None,
                None,
                None,
                f"directory cannot be read: {exc.strerror}",
            )
            return
        raise SourceError(f"cannot list {os.fsdecode(folder)}: {exc.strerror}") from exc
    items.sort()
    for key, entry in items:
        rel = prefix + entry.name
        if excluded is not None and excluded(rel):
            continue
        problem = _name_problem(entry.name)
        if key[-1:] == b"/":
            if problem:
                yield Entry(rel, None, None, None, None, problem)
            else:
                yield from _walk_dir(root, prefix + key, excluded)
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            if exc.errno == 2:  # vanished since the listing
                continue
            yield Entry(rel, None, None, None, None, f"cannot stat: {exc.strerror}")
            continue
        if not stat.S_ISREG(st.st_mode):
            problem = problem or _special_problem(st.st_mode)
        if problem:
            yield Entry(rel, None, None, None, None, problem)
        else:
            yield Entry(rel, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _special_problem(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symbolic link: not followed, not sent"
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO): not a regular file, not sent"
    if stat.S_ISSOCK(mode):
        return "socket: not a regular file, not sent"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device file: not a regular file, not sent"
    return "not a regular file, not sent"


def same_stat(entry: Entry, row: StoredFile) -> bool:
    """True when the row describes this entry exactly and was fully read."""
    if entry.problem is not None or row.problem is not None:
        return entry.problem == row.problem
    return (
        row.hashed
        and entry.size == row.size
        and entry.mtime_ns == row.mtime_ns
        and entry.ctime_ns == row.ctime_ns
        and entry.inode == row.inode
    )


def merge(
    entries: Iterator[Entry], rows: Iterator[StoredFile]
) -> Iterator[tuple[Entry | None, StoredFile | None]]:
    """Pair walk entries with datastore rows of the same path (both sorted).

    Yields (entry, None) for a new path, (None, row) for a vanished one, and
    (entry, row) for a path that is in both and whose stat changed.
    Unchanged paths are not yielded at all.
    """
    row = next(rows, None)
    for entry in entries:
        while row is not None and row.path < entry.path:
            yield None, row
            row = next(rows, None)
        if row is not None and row.path == entry.path:
            if not same_stat(entry, row):
                yield entry, row
            row = next(rows, None)
        else:
            yield entry, None
    while row is not None:
        yield None, row
        row = next(rows, None)


def hash_file(root: bytes, entry: Entry) -> Observed:
    """Read one file and return its digest with the stat that matches it.

    The file is opened without following links and fstat'ed before and after
    reading: a file that changed meanwhile gets no digest, so the next run reads
    it again.
    """
    path = os.path.join(root, entry.path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return Observed(entry.path, None, None, None, None, None, "vanished")
    except OSError as exc:
        return _problem(entry, f"cannot be read: {exc.strerror}")
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            return _problem(entry, _special_problem(before.st_mode))
        digest = _digest_fd(fd, before.st_size)
        after = os.fstat(fd)
    except OSError as exc:
        return _problem(entry, f"cannot be read: {exc.strerror}")
    finally:
        os.close(fd)
    key = (before.st_size, before.st_mtime_ns, before.st_ctime_ns)
    if key != (after.st_size, after.st_mtime_ns, after.st_ctime_ns):
        log.info(
            "%s changed while it was read; it will be read again next run",
            os.fsdecode(entry.path),
        )
        return Observed(entry.path, None, None, None, None, None, None)
    return Observed(
        entry.path,
        before.st_size,
        before.st_mtime_ns,
        before.st_ctime_ns,
        before.st_ino,
        digest,
    )


def _problem(entry: Entry, problem: str) -> Observed:
    return Observed(entry.path, None, None, None, None, None, problem)


def _digest_fd(fd: int, size: int) -> bytes:
    if size >= MMAP_THRESHOLD:
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mapped:
            mapped.madvise(mmap.MADV_SEQUENTIAL)
            hasher.update(mapped)
        return bytes(hasher.digest())
    hasher = blake3.blake3()
    while chunk := os.read(fd, READ_CHUNK):
        hasher.update(chunk)
    return bytes(hasher.digest())


class Scanner:
    """One scan of one source tree against the datastore's rows."""

    def __init__(
        self,
        root: bytes,
        sink: Sink,
        *,
        workers: int = 4,
        progress: Progress | None = None,
        progress_every: float = 0.5,
    ) -> None:
        self.root = root
        self.sink = sink
        self.workers = workers
        self.progress = progress
        self.progress_every = progress_every
        self.summary = ScanSummary()
        self._observed: list[Observed] = []
        self._gone: list[bytes] = []
        self._pending_bytes = 0
        self._last_progress = time.monotonic()

    def run(self, entries: Iterator[Entry], rows: Iterator[StoredFile]) -> ScanSummary:
        """Merge, hash what changed, write batches; return the summary."""
        in_flight: deque[Future[Observed]] = deque()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="hash") as pool:
            for entry, row in merge(self._counted(entries), rows):
                if entry is None:
                    assert row is not None
                    self._gone.append(row.path)
                    self.summary.gone += 1
                elif entry.problem is not None:
                    self._note_problem(entry.path, entry.problem)
                    self._add(
                        Observed(
                            entry.path, None, None, None, None, None, entry.problem
                        )
                    )
                else:
                    if row is None:
                        self.summary.new += 1
                    else:
                        self.summary.changed += 1
                    in_flight.append(pool.submit(hash_file, self.root, entry))
                    while len(in_flight) > MAX_IN_FLIGHT or (
                        in_flight and in_flight[0].done()
                    ):
                        self._take(in_flight.popleft().result())
                self._maybe_flush()
            while in_flight:
                self._take(in_flight.popleft().result())
        self._flush()
        self._report(force=True)
        summary = self.summary
        log.debug(
            "scan of %s: %d files, %d bytes; read %d files, %d bytes",
            os.fsdecode(self.root),
            summary.files,
            summary.total_bytes,
            summary.hashed_files,
            summary.hashed_bytes,
        )
        return summary

    def _counted(self, entries: Iterator[Entry]) -> Iterator[Entry]:
        summary = self.summary
        for entry in entries:
            if entry.size is not None:
                summary.files += 1
                summary.total_bytes += entry.size
                if summary.files & 1023 == 0:
                    self._report()
            yield entry

    def _take(self, observed: Observed) -> None:
        if observed.problem == "vanished":
            self._gone.append(observed.path)
            return
        if observed.problem is not None:
            self._note_problem(observed.path, observed.problem)
        if observed.digest is not None and observed.size is not None:
            self.summary.hashed_files += 1
            self.summary.hashed_bytes += observed.size
            self._pending_bytes += observed.size
        self._add(observed)

    def _add(self, observed: Observed) -> None:
        self._observed.append(observed)

    def _note_problem(self, path: bytes, problem: str) -> None:
        self.summary.problems.append((path, problem))
        log.warning(
            "%s: %s", os.fsdecode(path).encode("unicode_escape").decode(), problem
        )

    def _maybe_flush(self) -> None:
        if (
            len(self._observed) + len(self._gone) >= BATCH_FILES
            or self._pending_bytes >= BATCH_BYTES
        ):
            self._flush()

    def _flush(self) -> None:
        if self._observed or self._gone:
            self.sink(self._observed, self._gone)
        self._observed = []
        self._gone = []
        self._pending_bytes = 0
        self._report()

    def _report(self, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if force or now - self._last_progress >= self.progress_every:
            self._last_progress = now
            self.progress(self.summary)
