"""The walk on several threads: the same runs, in the same order, as :mod:`.walk`.

Why: on NFS, Lustre and GPFS a stat or a directory read is a round trip to a
metadata server (0.1 to 1 ms), and a serial walk waits for each in turn while
the server could answer many at once. Here worker threads list folders and
stat files (both calls release the GIL) while the calling thread hands their
results over in path byte order, so the scan still merges them with the
datastore's rows in one pass.

How: the walk is a queue, in path order, of runs already made and of tasks (a
folder to list, or up to ``STAT_CHUNK`` of its files to stat). The first
``window`` tasks of the queue are handed to the pool; a folder's listing, once
done, is replaced in the queue by what it found (its files in chunks, its
subfolders as folders to list), and the caller takes the queue's head when it
is ready. At most ``window`` tasks are out at a time, so memory stays flat in
the tree size.

When: threads pay only where calls wait. On a local filesystem with a warm
cache a stat takes a microsecond or two, and threads handing the GIL to one
another at every call made the walk two to three times slower. So the walk
starts by running its tasks in the calling thread, timing one call of each
(the folder's open, a chunk's first stat), and hands work to the pool once
``SLOW_SAMPLES`` such calls of one kind in a row took more than
``SLOW_CALL_NS``: a round trip to a server, or a disk. One call at a time,
because a task's time as a whole also counts the moments another process had
the CPU, and on a busy machine that alone made a warm local walk look slow.
Imports only the standard library and :mod:`.walk`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import stat
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from operator import attrgetter

from globus_auto.engine import walk as serial
from globus_auto.engine.walk import (
    EntryRow,
    Excluded,
    Span,
    Walk,
    problem_entry,
)
from globus_auto.errors import SourceError

log = logging.getLogger(__name__)

STAT_CHUNK = 128  # files one task stats: small, so one folder spreads over threads
WINDOW_PER_THREAD = 4  # tasks handed out ahead of the caller, per thread
LOOK_AHEAD_PER_THREAD = 16  # queued items looked at for tasks to hand out

# An NFS round trip takes 100 us to 1 ms, a cached local stat 1 to 3 us.
SLOW_CALL_NS = 50_000  # a local folder's open took up to 13 us on a busy machine
SLOW_SAMPLES = 3  # timed calls in a row that must be slow to turn threads on
# Test-only: "1" turns the threads on from the start, whatever the speed.
PARALLEL_VARIABLE = "GLOBUS_AUTO_TEST_SCAN_PARALLEL"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_mode = attrgetter("st_mode")


@dataclass(eq=False)
class _Folder:
    """An open folder, closed when the last task that needs it is done with."""

    fd: int
    users: int = 0


@dataclass(eq=False)
class _Task:
    """A folder to list (``names`` None) or some of its files to stat."""

    prefix: bytes  # the folder's path relative to the root, with a trailing '/'
    names: list[bytes] | None = None
    folder: _Folder | None = None
    future: Future[list[Item]] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class _Relist:
    """A task's answer when a file turned out to be a folder: walk the rest of
    its folder from ``since`` the serial way (a race, or a filesystem whose link
    counts mean something else)."""

    since: bytes


Item = list[EntryRow] | _Task | _Relist


class ParallelWalk(Walk):
    """What :func:`globus_auto.engine.walk.walk` gives, walked by ``threads``."""

    def __init__(
        self,
        root: bytes,
        excluded: Excluded | None,
        threads: int,
        span: Span | None = None,
    ) -> None:
        super().__init__(root, excluded, span)
        self.threads = threads

    def runs(self) -> Iterator[list[EntryRow]]:
        """Lists of consecutive entries of one folder each, in path order."""
        return _Walker(self.root, self.excluded, self.threads, self.span).runs()


def walk_tree(
    root: bytes, excluded: Excluded | None, threads: int, span: Span | None = None
) -> Walk:
    """The walk of ``root`` (or of its paths in ``span``): serial for one
    thread, else :class:`ParallelWalk`."""
    if threads <= 1:
        return Walk(root, excluded, span)
    return ParallelWalk(root, excluded, threads, span)


class _Walker:
    """One parallel walk; the queue and the pool are the calling thread's."""

    def __init__(
        self,
        root: bytes,
        excluded: Excluded | None,
        threads: int,
        span: Span | None,
    ) -> None:
        self.root = root
        self.excluded = excluded
        self.span = span
        self.threads = threads
        self.window = threads * WINDOW_PER_THREAD
        self.queue: deque[Item] = deque()
        self.out = 0  # tasks handed to the pool and not yet taken back
        self.finished: queue.SimpleQueue[None] = queue.SimpleQueue()
        self.folders: set[_Folder] = set()  # open ones, closed at the end
        self.pool: ThreadPoolExecutor | None = None  # started once calls wait
        # How long the last timed calls took (ns): folder opens, first stats.
        self.opens: deque[int] = deque(maxlen=SLOW_SAMPLES)
        self.stats: deque[int] = deque(maxlen=SLOW_SAMPLES)

    def runs(self) -> Iterator[list[EntryRow]]:
        if os.environ.get(PARALLEL_VARIABLE) == "1":
            self._start_pool()
        self.queue.append(_Task(b""))
        try:
            while self.queue:
                item = self.queue.popleft()
                if isinstance(item, list):
                    yield item
                    continue
                assert isinstance(item, _Task)
                found = self._wait(item) if self.pool else self._inline(item)
                if found and isinstance(found[0], _Relist):
                    yield from self._relist(item, found[0].since)
                else:
                    self.queue.extendleft(reversed(found))
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
            for folder in self.folders:
                os.close(folder.fd)
            self.folders.clear()

    def _start_pool(self) -> None:
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="scan")

    def _inline(self, task: _Task) -> list[Item]:
        """Run the head task in this thread; start the pool if calls are slow."""
        found = self._list(task) if task.names is None else self._stat(task)
        self._release(task)
        if _slow(self.opens) or _slow(self.stats):
            log.debug(
                "the scan's calls take %.2f ms: walking on %d threads",
                max(min(self.opens, default=0), min(self.stats, default=0)) / 1e6,
                self.threads,
            )
            self._start_pool()
        return found

    def _wait(self, task: _Task) -> list[Item]:
        """The head task's result, handing out more work while it runs."""
        if task.future is None or self.out < self.window // 2:
            self._hand_out(task)
        future = task.future
        assert future is not None
        while not future.done():
            self.finished.get()  # some task ended: maybe a listing to expand
            self._hand_out()
        self.out -= 1
        found = future.result()
        self._release(task)
        return found

    def _hand_out(self, head: _Task | None = None) -> None:
        """Submit the first tasks of the queue (the head first) up to the
        window, replacing each finished listing by what it found."""
        while True:  # drop the stale signals
            try:
                self.finished.get_nowait()
            except queue.Empty:
                break
        if head is not None and head.future is None:
            self._submit(head)
        index = 0
        # Not past LOOK_AHEAD_PER_THREAD items a thread: a folder of many
        # special files queues a run for each, which need no handing out.
        end = self.threads * LOOK_AHEAD_PER_THREAD
        while index < min(len(self.queue), end) and self.out < self.window:
            item = self.queue[index]
            if isinstance(item, _Task):
                if item.future is None:
                    self._submit(item)
                elif (
                    item.names is None
                    and item.future.done()
                    and self._expand(index, item)
                ):
                    continue  # look at what it found, from the same place
            index += 1

    def _submit(self, task: _Task) -> None:
        work = self._list if task.names is None else self._stat
        assert self.pool is not None
        task.future = self.pool.submit(work, task)
        task.future.add_done_callback(self._signal)
        self.out += 1

    def _signal(self, _: Future[list[Item]]) -> None:
        self.finished.put(None)

    def _expand(self, index: int, task: _Task) -> bool:
        """Replace a finished listing at ``index`` by what it found; False
        (and left in place, for the caller to raise) if it failed."""
        assert task.future is not None
        if task.future.exception() is not None:
            return False
        found = task.future.result()
        self.out -= 1
        self.queue.rotate(-index)
        self.queue.popleft()
        self.queue.extendleft(reversed(found))
        self.queue.rotate(index)
        return True

    def _release(self, task: _Task) -> None:
        folder = task.folder
        if folder is not None:
            folder.users -= 1
            if folder.users == 0:
                self.folders.discard(folder)
                os.close(folder.fd)

    def _relist(self, task: _Task, since: bytes) -> Iterator[list[EntryRow]]:
        """The rest of the task's folder from ``since``, walked serially.

        What the queue still holds of that folder (its later chunks and its
        subfolders, all directly after it) is dropped first.
        """
        prefix = task.prefix
        while self.queue and _within(self.queue[0], prefix):
            dropped = self.queue.popleft()
            if not isinstance(dropped, _Task):
                continue
            if dropped.future is not None:
                self.out -= 1
                if not dropped.future.cancel():
                    with contextlib.suppress(Exception):
                        dropped.future.result()
            self._release(dropped)
        folder = os.path.join(self.root, prefix) if prefix else self.root
        fd = os.open(folder, _DIR_FLAGS | (os.O_NOFOLLOW if prefix else 0))
        try:
            listing = serial._list_dir(folder)
            if self.span is not None:
                listing = self.span.listing(prefix, listing)
            yield from serial._mixed_runs(
                self.root, prefix, fd, listing, self.excluded, since, span=self.span
            )
        finally:
            os.close(fd)

    # -- the tasks, run on the pool's threads ---------------------------------

    def _list(self, task: _Task) -> list[Item]:
        """List one folder: its files (the first chunk stat'ed here, the rest as
        tasks), its subfolders as folders to list, its problems as entries."""
        prefix = task.prefix
        path = os.path.join(self.root, prefix) if prefix else self.root
        started = time.perf_counter_ns()
        try:
            fd = os.open(path, _DIR_FLAGS | (os.O_NOFOLLOW if prefix else 0))
        except OSError as exc:
            return _unreadable(self.root, prefix, exc, self.span)
        self.opens.append(time.perf_counter_ns() - started)
        folder = _Folder(fd)
        self.folders.add(folder)
        try:
            found = self._listing(path, prefix, folder)
        except OSError as exc:
            found = _unreadable(self.root, prefix, exc, self.span)
        if folder.users == 0:
            self.folders.discard(folder)
            os.close(fd)
        return found

    def _listing(self, path: bytes, prefix: bytes, folder: _Folder) -> list[Item]:
        if _leaf(folder.fd) and not (self.span and self.span.cuts(prefix)):
            names = sorted(os.listdir(path))
            if self.span is not None:
                names = self.span.names(prefix, names)
            excluded = self.excluded
            if excluded is not None:
                names = [n for n in names if not excluded(prefix + n, False)]
            found = self._files(prefix, folder, names, inline=True)
            if not (found and isinstance(found[0], _Relist)):
                return found
        return self._mixed(path, prefix, folder)

    def _mixed(self, path: bytes, prefix: bytes, folder: _Folder) -> list[Item]:
        """A folder with subfolders, in path order (see walk._mixed_runs)."""
        listing = serial._list_dir(path)
        if self.span is not None:
            listing = self.span.listing(prefix, listing)
        files, dirs, specials = listing
        keys = files + [d + b"/" for d in dirs] + [n + b"\0" for n in specials]
        keys.sort()
        excluded = self.excluded
        found: list[Item] = []
        names: list[bytes] = []
        for key in keys:
            last = key[-1]
            if last != 47 and last != 0:  # neither '/' nor NUL: a file
                if excluded is None or not excluded(prefix + key, False):
                    names.append(key)
                continue
            found += self._files(prefix, folder, names)
            names = []
            rel = prefix + key[:-1]
            if excluded is not None and excluded(rel, last == 47):
                continue
            if last == 0:
                entry = serial._file_entry(folder.fd, prefix, key[:-1])
                if entry is not None:  # else it vanished since the listing
                    found.append([entry])
            elif problem := serial._name_problem(key[:-1]):
                if self.span is None or self.span.has_file(rel):
                    found.append([problem_entry(rel, problem)])
            else:
                found.append(_Task(prefix + key))
        found += self._files(prefix, folder, names)
        return found

    def _files(
        self, prefix: bytes, folder: _Folder, names: list[bytes], inline: bool = False
    ) -> list[Item]:
        """Runs of these files as tasks of their own; with ``inline``, the first
        chunk stat'ed here (a leaf folder: no file there can turn out to be a
        folder after a run of the same folder was handed over)."""
        found: list[Item] = []
        first = 0
        if inline and names:
            run = _stat_names(folder.fd, prefix, names[:STAT_CHUNK], self.stats)
            if isinstance(run, _Relist):
                return [run]
            found.append(run)
            first = STAT_CHUNK
        for start in range(first, len(names), STAT_CHUNK):
            folder.users += 1
            found.append(_Task(prefix, names[start : start + STAT_CHUNK], folder))
        return found

    def _stat(self, task: _Task) -> list[Item]:
        assert task.folder is not None and task.names is not None
        return [_stat_names(task.folder.fd, task.prefix, task.names, self.stats)]


def _slow(samples: deque[int]) -> bool:
    """Whether the last SLOW_SAMPLES timed calls all took over SLOW_CALL_NS."""
    return len(samples) == SLOW_SAMPLES and min(samples) > SLOW_CALL_NS


def _leaf(fd: int) -> bool:
    """A link count of 2 means no subdirectory (find's leaf optimisation): the
    names alone, sorted, are then in path order."""
    return os.fstat(fd).st_nlink == 2


def _stat_names(
    fd: int, prefix: bytes, names: list[bytes], samples: deque[int]
) -> list[EntryRow] | _Relist:
    """One run of the folder's files ``names``, or a _Relist if one is a
    folder; the time the first stat took goes to ``samples``."""
    lstat = serial._lstat  # looked up here: the tests slow it down
    try:
        started = time.perf_counter_ns()
        stats = [lstat(names[0], dir_fd=fd)]
        samples.append(time.perf_counter_ns() - started)
        stats += [lstat(n, dir_fd=fd) for n in names[1:]]
        kinds = list(map(stat.S_IFMT, map(_mode, stats)))
    except OSError:  # one vanished or cannot be stat'ed: one by one below
        stats = []
        kinds = [serial._kind(fd, n) for n in names]
    if stats and kinds.count(stat.S_IFREG) == len(names) and serial._names_ok(names):
        return serial._rows(prefix, names, stats)
    if stat.S_IFDIR in kinds:
        return _Relist(names[0])  # nothing of this chunk was handed over
    entries = (serial._file_entry(fd, prefix, n) for n in names)
    return [e for e in entries if e is not None]


def _unreadable(
    root: bytes, prefix: bytes, exc: OSError, span: Span | None
) -> list[Item]:
    """A subfolder that cannot be read is a problem (where its own path is in
    the span); the root, an error."""
    if not prefix:
        shown = os.fsdecode(root)
        raise SourceError(f"cannot list {shown}: {exc.strerror}") from exc
    if span is not None and not span.has_file(prefix[:-1]):
        return []
    problem = f"directory cannot be read: {exc.strerror}"
    return [[problem_entry(prefix[:-1], problem)]]


def _within(item: Item, prefix: bytes) -> bool:
    """Whether a queued item lies in the folder ``prefix`` or below it."""
    if isinstance(item, _Task):
        return item.prefix.startswith(prefix)
    if isinstance(item, list):
        return not item or item[0][0].startswith(prefix)
    return True
