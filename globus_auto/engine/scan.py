"""Merge the walk with the datastore's rows, hash only what changed.

A file whose size, mtime, ctime and inode match its row is not read; a new or
changed one is hashed with BLAKE3 in a thread pool as large as the scan's
threads (SCAN_THREADS, at least 4): on a network filesystem each open and read
waits for a server, so a first run over many small files is not serial either.
Changes are written to the datastore in batches.

Why it is shaped the way it is: a run with nothing changed should cost about
what listing the tree costs (``find``), so the per-file work is kept to the
stat call and a few C-level operations. Walk entries and datastore rows are
plain tuples of the same shape; the walk hands over runs of consecutive files
of one folder, and a run equal to the next rows as a whole (one list
comparison) is done with. Only a run that differs is merged file by file: the
single-pass merge of two sorted streams, which keeps memory flat in the tree
size. Imports :mod:`.walk`, the datastore's records and the errors; no
network.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter

import blake3

from globus_auto.datastore.records import Observed, StoredRow
from globus_auto.engine.walk import EntryRow, Walk, special_problem
from globus_auto.errors import SourceError
from globus_auto.text import counted

log = logging.getLogger(__name__)


# Filesystems such as NFSv3 and some Lustre setups keep whole seconds: a file
# modified this recently may change again without its stat changing.
RACY_NS = 2_000_000_000
SECOND_NS = 1_000_000_000
# An mtime up to this far ahead of this host's clock is clock granularity or a
# file server's slightly fast clock, not a skewed writer.
FUTURE_NS = 2_000_000_000

# The first changed files of a scan are hashed in the walking thread; past
# this many, a thread pool overlaps their reads (a first run, many changes).
HASH_INLINE_FIRST = 32

BATCH_FILES = 2000
BATCH_BYTES = 1 << 30
MIN_HASH_WORKERS = 4  # the hash pool of a serial walk, as before SCAN_THREADS
MIN_IN_FLIGHT = 64  # files handed to the hash pool ahead, at least ...
IN_FLIGHT_PER_WORKER = 4  # ... and this many per thread
MMAP_THRESHOLD = 4 << 20  # files this big are hashed on all cores (name kept)
BIG_CHUNK = 4 << 20  # read size for those (one buffer per hashing thread)
READ_CHUNK = 1 << 20
# Big files read at once, whatever the pool's size: each takes a BIG_CHUNK
# buffer and BLAKE3 already hashes each one on every core.
_BIG_READERS = threading.BoundedSemaphore(4)


_size = itemgetter(1)
_open = os.open  # looked up at each call: the tests slow it down


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


def check_source(
    root: bytes,
    tracked: int | Callable[[], int],
    reset_command: str = "globus-auto reset --job JOB",
) -> None:
    """Refuse a source that is missing, or empty while files are tracked.

    An empty source directory where the datastore remembers files is what an
    unmounted filesystem looks like; acting on it would drop every row.
    ``tracked`` may be a function, called only when the directory is empty
    (counting a large job's rows is not free).
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
    if not empty:
        return
    count = tracked() if callable(tracked) else tracked
    if count:
        raise SourceError(
            f"the source directory {shown} is empty but the datastore tracks "
            f"{counted(count, 'file')} of it: is its filesystem unmounted? Nothing "
            "was changed. If they were really removed, forget them with: "
            f"{reset_command}"
        )


class RowStream:
    """The datastore's rows, with room to put back rows taken too early."""

    def __init__(self, rows: Iterable[StoredRow]) -> None:
        self._rows = iter(rows)
        self._back: list[StoredRow] = []  # put back, last first

    def take(self, count: int) -> list[StoredRow]:
        """The next ``count`` rows (fewer at the end)."""
        if not self._back:
            return list(islice(self._rows, count))
        taken: list[StoredRow] = []
        while self._back and len(taken) < count:
            taken.append(self._back.pop())
        taken.extend(islice(self._rows, count - len(taken)))
        return taken

    def put_back(self, rows: list[StoredRow]) -> None:
        self._back.extend(reversed(rows))

    def next(self) -> StoredRow | None:
        if self._back:
            return self._back.pop()
        return next(self._rows, None)


Pair = tuple["EntryRow | None", "StoredRow | None"]


def merge_run(run: Sequence[EntryRow], rows: RowStream) -> Iterator[Pair]:
    """Pair one run of walk entries with the rows of the same paths.

    Yields (entry, None) for a new path, (None, row) for a vanished one that
    sorts before the run's last entry, and (entry, row) for a path in both
    whose stat changed. Rows after the run stay in ``rows``.
    """
    for entry in run:
        path = entry[0]
        row = rows.next()
        while row is not None and row[0] < path:
            yield None, row
            row = rows.next()
        if row is not None and row[0] == path:
            if entry[1:] != row[1:]:
                yield entry, row
        else:
            if row is not None:
                rows.put_back([row])
            yield entry, None


def merge(entries: Iterable[EntryRow], rows: Iterable[StoredRow]) -> Iterator[Pair]:
    """Pair walk entries with datastore rows of the same path (both sorted).

    Yields (entry, None) for a new path, (None, row) for a vanished one, and
    (entry, row) for a path that is in both and whose stat changed.
    Unchanged paths are not yielded at all.
    """
    stream = RowStream(rows)
    for entry in entries:
        yield from merge_run((entry,), stream)
    while (row := stream.next()) is not None:
        yield None, row


def changed_pairs(
    runs: Iterable[list[EntryRow]], rows: Iterable[StoredRow]
) -> Iterator[Pair]:
    """What :func:`merge` yields, for runs of walk entries: a run equal to the
    next rows as a whole (one list comparison) yields nothing."""
    stream = RowStream(rows)
    for run in runs:
        taken = stream.take(len(run))
        if taken == run:
            continue  # nothing changed here: the common case
        stream.put_back(taken)
        yield from merge_run(run, stream)
    while (row := stream.next()) is not None:
        yield None, row


def run_totals(run: Sequence[EntryRow]) -> tuple[int, int]:
    """The files of one run and their bytes (problems have no size: not counted)."""
    try:
        return len(run), sum(map(_size, run))
    except TypeError:  # the run holds a problem (no size)
        sizes = [e[1] for e in run if e[1] is not None]
        return len(sizes), sum(sizes)


def _runs_of(entries: Iterable[EntryRow]) -> Iterator[list[EntryRow]]:
    if isinstance(entries, Walk):
        return entries.runs()
    return ([e] for e in entries)


def hash_file(root: bytes, entry: EntryRow) -> Observed:
    """Read one file and return its digest with the stat that matches it.

    The file is opened without following links and fstat'ed before and after
    reading: a file that changed meanwhile gets no digest, so the next run reads
    it again. (Kept in one piece, though long: every path out of it is a way a
    file can change under the reader, and each is clearer next to the others.)
    """
    path = os.path.join(root, entry[0])
    try:
        fd = _open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return Observed(entry[0], None, None, None, None, None, "vanished")
    except OSError as exc:
        return _problem(entry, f"cannot be read: {exc.strerror}")
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            return _problem(entry, special_problem(before.st_mode))
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
            os.fsdecode(entry[0]),
        )
        return Observed(entry[0], None, None, None, None, None, None)
    now_ns = time.time_ns()
    stamp = before.st_mtime_ns
    if stamp - now_ns > FUTURE_NS:
        _warn_future(entry[0], stamp - now_ns)
        stamp = before.st_ctime_ns  # the filesystem's clock: when it changed
    if _racy(stamp, now_ns):
        # A whole-second timestamp this recent: a same-size rewrite within the
        # same second would leave the stat unchanged, so no mtime is kept and
        # the next run reads the file again (Git's "racily clean" rule). The
        # digest still counts.
        return Observed(
            entry[0], before.st_size, None, before.st_ctime_ns, before.st_ino, digest
        )
    return Observed(
        entry[0],
        before.st_size,
        before.st_mtime_ns,
        before.st_ctime_ns,
        before.st_ino,
        digest,
    )


def _racy(mtime_ns: int, now_ns: int) -> bool:
    """True for a whole-second mtime from the last RACY_NS before ``now_ns``
    (or up to FUTURE_NS after it, the clocks' granularity).

    Why bounded on both sides: a file with an mtime further in the future (a
    writer with a skewed clock) would otherwise count as racily clean until
    that time came, be read again by every run and, having no mtime on
    record, never match its stat when its task settles: a new task every run.
    For such a file the rule is applied to its ctime instead, which the
    filesystem's own clock sets on every change.
    """
    return mtime_ns % SECOND_NS == 0 and -FUTURE_NS <= now_ns - mtime_ns < RACY_NS


def _warn_future(path: bytes, ahead_ns: int) -> None:
    """Say once per version of a file that its mtime is in the future.

    Once: the file keeps its mtime, so it is not read again until it changes.
    """
    log.warning(
        "%s has a modification time %.0f s in the future (is the clock of the "
        "computer that wrote it ahead?); MIN_AGE counts its age from its ctime",
        os.fsdecode(path).encode("unicode_escape").decode(),
        ahead_ns / SECOND_NS,
    )


def _problem(entry: EntryRow, problem: str) -> Observed:
    return Observed(entry[0], None, None, None, None, None, problem)


def _digest_fd(fd: int, size: int) -> bytes:
    """BLAKE3 of the open file; big files are hashed on every core.

    Read into a buffer rather than mapped: a mapped file truncated while it is
    hashed kills the process with SIGBUS, and a live source directory is where
    that happens. Reading costs one copy, which BLAKE3 outruns anyway.
    """
    if size >= MMAP_THRESHOLD:
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        with _BIG_READERS:
            buffer = bytearray(BIG_CHUNK)
            view = memoryview(buffer)
            while count := os.readv(fd, [buffer]):
                hasher.update(view[:count])
        return bytes(hasher.digest())
    hasher = blake3.blake3()
    while chunk := os.read(fd, READ_CHUNK):
        hasher.update(chunk)
    return bytes(hasher.digest())


class Scanner:
    """One scan of one source tree against the datastore's rows.

    ``workers`` is the scan's number of threads (SCAN_THREADS): the hash pool
    has that many, and at least MIN_HASH_WORKERS.
    """

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
        self.workers = max(MIN_HASH_WORKERS, workers)
        self.max_in_flight = max(MIN_IN_FLIGHT, self.workers * IN_FLIGHT_PER_WORKER)
        self.progress = progress
        self.progress_every = progress_every
        self.summary = ScanSummary()
        self._observed: list[Observed] = []
        self._gone: list[bytes] = []
        self._pending_bytes = 0
        self._last_progress = time.monotonic()
        # Called once, at the first new or changed file to read: what the run
        # will then need (the Globus modules) loads while the scan goes on.
        self.on_change: Callable[[], None] | None = None

    def run(
        self,
        entries: Iterable[EntryRow],
        rows: Iterable[StoredRow],
    ) -> ScanSummary:
        """Merge, hash what changed, write batches; return the summary.

        ``entries`` is best a :class:`Walk`: its runs are compared with the
        rows a whole run at a time.
        """
        return self.consume(changed_pairs(self._counted(_runs_of(entries)), rows))

    def consume(self, pairs: Iterable[Pair]) -> ScanSummary:
        """Act on the pairs of a merge (in any order), hash what changed,
        write batches; return the summary. Files and bytes seen are counted
        by whoever makes the pairs (:meth:`count`)."""
        in_flight: deque[Future[Observed]] = deque()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="hash") as pool:
            for entry, row in pairs:
                if self.on_change and entry is not None and entry[6] is None:
                    self.on_change()
                    self.on_change = None
                self._pair(entry, row, pool, in_flight)
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

    def _pair(
        self,
        entry: EntryRow | None,
        row: StoredRow | None,
        pool: ThreadPoolExecutor,
        in_flight: deque[Future[Observed]],
    ) -> None:
        """Act on one pair from the merge: gone, a problem, or to be read."""
        if entry is None:
            assert row is not None
            self._gone.append(row[0])
            self.summary.gone += 1
        elif entry[6] is not None:
            self._note_problem(entry[0], entry[6])
            self._add(Observed(entry[0], None, None, None, None, None, entry[6]))
        else:
            if row is None:
                self.summary.new += 1
            else:
                self.summary.changed += 1
            if (
                self.summary.new + self.summary.changed <= HASH_INLINE_FIRST
                and (entry[1] or 0) < MMAP_THRESHOLD
            ):
                # A few small changes: hashing them here is cheaper than
                # handing the GIL back and forth with a pool thread.
                self._take(hash_file(self.root, entry))
                self._maybe_flush()
                return
            in_flight.append(pool.submit(hash_file, self.root, entry))
            while len(in_flight) > self.max_in_flight or (
                in_flight and in_flight[0].done()
            ):
                self._take(in_flight.popleft().result())
        self._maybe_flush()

    def count(self, files: int, size: int) -> None:
        """Count files seen (and their bytes), changed or not."""
        self.summary.files += files
        self.summary.total_bytes += size
        if self.progress is not None:
            self._report()

    def _counted(self, runs: Iterator[list[EntryRow]]) -> Iterator[list[EntryRow]]:
        for run in runs:
            self.count(*run_totals(run))
            yield run

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
