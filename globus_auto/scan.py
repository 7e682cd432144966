"""Walk a job's source tree, stat every file, hash only what changed.

The walk yields files in byte order of their relative path, the same order the
datastore returns its rows in, so the two streams are merged in one pass and
neither is ever held in memory whole. A file whose size, mtime, ctime and inode
match its row is not read; a new or changed one is hashed with BLAKE3 in a small
thread pool. Changes are written to the datastore in batches.

Why it is shaped the way it is: a run with nothing changed should cost about
what listing the tree costs (``find``), so the per-file work is kept to the
stat call and a few C-level operations. Walk entries and datastore rows are
plain tuples of the same shape; the walk hands over runs of consecutive files
of one folder, and a run equal to the next rows as a whole (one list
comparison) is done with. Only a run that differs is merged file by file.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import re
import stat
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from operator import attrgetter, itemgetter
from typing import NamedTuple

import blake3

from globus_auto.datastore import Observed, StoredRow
from globus_auto.errors import SourceError

log = logging.getLogger(__name__)

# Symbolic links are skipped on purpose, as Globus skips them in a recursive
# transfer: listed by `status`, but neither alerted nor blocking recursion.
SYMLINK_NOTE = "symbolic link: not followed, not sent"

# Filesystems such as NFSv3 and some Lustre setups keep whole seconds: a file
# modified this recently may change again without its stat changing.
RACY_NS = 2_000_000_000
SECOND_NS = 1_000_000_000

# The first changed files of a scan are hashed in the walking thread; past
# this many, a thread pool overlaps their reads (a first run, many changes).
HASH_INLINE_FIRST = 32

BATCH_FILES = 2000
BATCH_BYTES = 1 << 30
MAX_IN_FLIGHT = 64
MMAP_THRESHOLD = 4 << 20  # files this big are hashed on all cores (name kept)
BIG_CHUNK = 4 << 20  # read size for those (one buffer per hashing thread)
READ_CHUNK = 1 << 20
RUN_FILES = 1024  # at most this many files per run (bounds memory per folder)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_lstat = os.lstat
_size = itemgetter(1)
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
    if empty and callable(tracked):
        tracked = tracked()
    if empty and tracked:
        raise SourceError(
            f"the source directory {shown} is empty but {tracked} files are tracked: "
            "is its filesystem unmounted? Nothing was changed. If the files were "
            f"really removed, forget them with: {reset_command}"
        )


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
        self, root: bytes, excluded: Callable[[bytes], bool] | None = None
    ) -> None:
        self.root = root
        self.excluded = excluded

    def __iter__(self) -> Iterator[Entry]:
        for run in self.runs():
            yield from map(Entry._make, run)

    def runs(self) -> Iterator[list[EntryRow]]:
        """Lists of consecutive entries (in path order) of one folder each."""
        return _walk_dir(self.root, b"", self.excluded)


def walk(root: bytes, excluded: Callable[[bytes], bool] | None = None) -> Walk:
    """Every regular file under ``root`` (and every problem), in path byte order.

    Entries of a directory are sorted by name, with '/' appended to directory
    names: that makes the depth-first order equal to the byte order of the full
    relative paths. Symbolic links are never followed.
    """
    return Walk(root, excluded)


def _walk_dir(
    root: bytes, prefix: bytes, excluded: Callable[[bytes], bool] | None
) -> Iterator[list[EntryRow]]:
    folder = os.path.join(root, prefix) if prefix else root
    try:
        fd = os.open(folder, _DIR_FLAGS | (os.O_NOFOLLOW if prefix else 0))
        try:
            # A link count of 2 means no subdirectory (as find's leaf
            # optimisation assumes): the names alone, sorted, are in path
            # order, and listing them costs far less than DirEntry objects.
            leaf = os.fstat(fd).st_nlink == 2
            names = os.listdir(folder) if leaf else []
            listing = None if leaf else _list_dir(folder)
        except BaseException:
            os.close(fd)
            raise
    except OSError as exc:
        if prefix:
            problem = f"directory cannot be read: {exc.strerror}"
            yield [problem_entry(prefix[:-1], problem)]
            return
        raise SourceError(f"cannot list {os.fsdecode(folder)}: {exc.strerror}") from exc
    try:
        if listing is None:
            names.sort()
            yield from _leaf_runs(root, prefix, fd, names, excluded)
        else:
            yield from _mixed_runs(root, prefix, fd, listing, excluded)
    finally:
        os.close(fd)


def _leaf_runs(
    root: bytes,
    prefix: bytes,
    fd: int,
    names: list[bytes],
    excluded: Callable[[bytes], bool] | None,
) -> Iterator[list[EntryRow]]:
    """Runs of a folder without subdirectories (sorted ``names``)."""
    if excluded is not None:
        names = [n for n in names if not excluded(prefix + n)]
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
            yield from _mixed_runs(root, prefix, fd, listing, excluded, chunk[0])
            return
        yield [e for e in (_file_entry(fd, prefix, n) for n in chunk) if e is not None]


def _mixed_runs(
    root: bytes,
    prefix: bytes,
    fd: int,
    listing: tuple[list[bytes], list[bytes], list[bytes]],
    excluded: Callable[[bytes], bool] | None,
    since: bytes = b"",
) -> Iterator[list[EntryRow]]:
    """Runs of a folder with subdirectories, from name ``since`` on."""
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
            yield from _enter(root, prefix, key, excluded)
        elif excluded is None or not excluded(prefix + key[:-1]):
            entry = _file_entry(fd, prefix, key[:-1])
            if entry is not None:  # else it vanished since the listing
                yield [entry]
    yield from _file_runs(fd, prefix, names, excluded)


def _list_dir(folder: bytes) -> tuple[list[bytes], list[bytes], list[bytes]]:
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
    excluded: Callable[[bytes], bool] | None,
) -> Iterator[list[EntryRow]]:
    rel = prefix + key[:-1]
    if excluded is not None and excluded(rel):
        return
    problem = _name_problem(key[:-1])
    if problem:
        yield [problem_entry(rel, problem)]
    else:
        yield from _walk_dir(root, prefix + key, excluded)


def _file_runs(
    fd: int,
    prefix: bytes,
    names: list[bytes],
    excluded: Callable[[bytes], bool] | None,
) -> Iterator[list[EntryRow]]:
    """Entries of regular files (sorted ``names``), RUN_FILES at a time."""
    if excluded is not None:
        names = [n for n in names if not excluded(prefix + n)]
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
        problem = problem or _special_problem(st.st_mode)
    if problem:
        return problem_entry(rel, problem)
    return Entry(rel, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _kind(fd: int, name: bytes) -> int:
    """The file type bits of ``name`` in the folder, 0 if it cannot be stat'ed."""
    try:
        return stat.S_IFMT(_lstat(name, dir_fd=fd).st_mode)
    except OSError:
        return 0


def _special_problem(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return SYMLINK_NOTE
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO): not a regular file, not sent"
    if stat.S_ISSOCK(mode):
        return "socket: not a regular file, not sent"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device file: not a regular file, not sent"
    return "not a regular file, not sent"


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


def _runs_of(entries: Iterable[EntryRow]) -> Iterator[list[EntryRow]]:
    if isinstance(entries, Walk):
        return entries.runs()
    return ([e] for e in entries)


def hash_file(root: bytes, entry: EntryRow) -> Observed:
    """Read one file and return its digest with the stat that matches it.

    The file is opened without following links and fstat'ed before and after
    reading: a file that changed meanwhile gets no digest, so the next run reads
    it again.
    """
    path = os.path.join(root, entry[0])
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return Observed(entry[0], None, None, None, None, None, "vanished")
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
            os.fsdecode(entry[0]),
        )
        return Observed(entry[0], None, None, None, None, None, None)
    if _racy(before.st_mtime_ns):
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


def _racy(mtime_ns: int) -> bool:
    """True for a whole-second mtime within RACY_NS of now."""
    return mtime_ns % SECOND_NS == 0 and time.time_ns() - mtime_ns < RACY_NS


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

    def run(
        self,
        entries: Iterable[EntryRow],
        rows: Iterable[StoredRow],
    ) -> ScanSummary:
        """Merge, hash what changed, write batches; return the summary.

        ``entries`` is best a :class:`Walk`: its runs are compared with the
        rows a whole run at a time.
        """
        in_flight: deque[Future[Observed]] = deque()
        stream = RowStream(rows)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="hash") as pool:
            for run in self._counted(_runs_of(entries)):
                taken = stream.take(len(run))
                if taken == run:
                    continue  # nothing changed here: the common case
                stream.put_back(taken)
                for entry, row in merge_run(run, stream):
                    self._pair(entry, row, pool, in_flight)
            while (row := stream.next()) is not None:
                self._pair(None, row, pool, in_flight)
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
            while len(in_flight) > MAX_IN_FLIGHT or (in_flight and in_flight[0].done()):
                self._take(in_flight.popleft().result())
        self._maybe_flush()

    def _counted(self, runs: Iterator[list[EntryRow]]) -> Iterator[list[EntryRow]]:
        summary = self.summary
        for run in runs:
            try:
                size = sum(map(_size, run))
                files = len(run)
            except TypeError:  # the run holds a problem (no size)
                sizes = [e[1] for e in run if e[1] is not None]
                size, files = sum(sizes), len(sizes)
            summary.files += files
            summary.total_bytes += size
            if self.progress is not None:
                self._report()
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
