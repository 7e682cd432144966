"""A big tree's scan on several cores: scouts that walk one span each.

Why: on a local filesystem with a warm cache a no-change scan is bound by the
interpreter, not by the disk. Listing and ``lstat``-ing 200,000 files and
comparing them with their rows is about half a second of one core's Python,
and threads cannot share that work (they take turns at the GIL; on NFS they
help because each call waits for a server, see :mod:`.walk_parallel`).
Processes can. So the scan of a job whose datastore tracks many files is
handed to scouts: processes forked from the run, one per core (at most
``MAX_SCOUTS``), each walking one :class:`~.walk.Span` of the tree (cut at
the datastore's quantile paths, so each span holds about as many rows) and
comparing it with that span's rows exactly as the scan in one process does
(:func:`.scan.changed_pairs`).

A scout writes to its pipe only counts and the pairs that differ; the run's
own process reads them and does everything else: reads the changed files,
writes the datastore, shows progress. A run with nothing changed moves
nothing but counts through the pipes.

Why this is safe:

- A scout only reads: its own read-only connection and its own snapshot,
  opened in a process forked while the run had no connection open. The run
  writes only rows of the pairs it was sent, each in the span of the scout
  that sent it, so no scout reads a row another span's writes touch.
- A scout never returns into the run's code: its body ends in ``os._exit``
  whatever happens. It closes every descriptor it inherited but its pipe (so
  a dead run's job lock is not kept by a scout), logs nothing, and leaves
  stop signals to the run, which kills its scouts as it unwinds. It is forked
  before the scan starts a thread, and only from a process with no other
  thread, so it cannot inherit a lock another thread held.
- The run reads until every scout said it is done. A scout that fails or
  dies (out of memory, a bug) is logged, and the run scans in one process
  instead: what was written by then are batches like any other, and the scan
  in one process finds the rest from a snapshot taken after them. A scout's
  source error (the source cannot be listed) is the scan's, as in one
  process. No scout starts (and the run scans in one process) when the
  system has no process or descriptor to spare.
- When the run stops (a signal, an error), it kills the scouts still
  running and waits for them; a scout whose run was killed outright finds
  its pipe closed at its next write (at least every ``COUNT_EVERY``) and
  ends.

Imports :mod:`.scan`, :mod:`.walk` and :mod:`.walk_parallel`; no network.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import marshal
import os
import selectors
import signal
import sqlite3
import struct
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from globus_auto.engine.scan import Pair, changed_pairs, run_totals
from globus_auto.engine.walk import EntryRow, Excluded, Span, safe_bound
from globus_auto.engine.walk_parallel import walk_tree
from globus_auto.errors import SourceError

if TYPE_CHECKING:
    from globus_auto.datastore.records import StoredRow
    from globus_auto.datastore.store import Datastore

log = logging.getLogger(__name__)

MAX_SCOUTS = 4
# Below this many tracked files a scan takes a few tens of milliseconds, less
# than forking and connecting would save.
SCOUT_MIN_FILES = 20_000
PAIRS_PER_FRAME = 512
COUNT_EVERY = 0.1  # seconds between a scout's count frames (progress, liveness)
# Test-only: the number of scouts to use whatever the tree's size ("0": none).
SCOUTS_VARIABLE = "GLOBUS_AUTO_TEST_SCOUTS"

_HEADER = struct.Struct(">I")
# Frames, marshalled tuples whose first item says what they hold:
_PAIRS = 0  # (_PAIRS, files, bytes, pairs): counts since the last, pairs that differ
_DONE = 1  # (_DONE,): the span is walked; nothing follows
_SOURCE = 2  # (_SOURCE, message): a SourceError, as the walk raised it
_FAILED = 3  # (_FAILED, traceback): any other exception


class ScoutError(Exception):
    """A scan process failed or died before it finished its span (the run
    then scans in one process)."""


class NoScouts(Exception):
    """Scouts could not be started (no process or descriptor to spare)."""


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGHUP, signal.SIGINT}


@dataclass(frozen=True)
class ScoutJob:
    """What a scout needs to know, fixed when it is forked."""

    store: Datastore
    job_id: int
    root: bytes
    excluded: Excluded | None
    threads: int  # walk threads of each scout (SCAN_THREADS shared out)


def scout_spans(
    store: Datastore, job_id: int, scan_threads: int, reader: sqlite3.Connection
) -> list[Span]:
    """The spans to scan in scouts, or an empty list to scan in this process.

    In this process when: SCAN_THREADS is 1 (the serial walk, as documented),
    there is one core or no ``fork``, another thread runs (a fork would copy
    the locks it holds), the datastore tracks fewer than SCOUT_MIN_FILES (a
    first run tracks none: every file is new and goes through the run), or
    it is not in WAL mode (where a reader's lock would hold back the run's
    writes while the reader waits for the run).
    """
    forced = os.environ.get(SCOUTS_VARIABLE)
    wanted = int(forced) if forced is not None else min(MAX_SCOUTS, _cores())
    if wanted < 2 or scan_threads <= 1 or not hasattr(os, "fork"):
        return []
    if not _alone():
        log.debug("scanning in one process: another thread is running")
        return []
    total = store.count_files(job_id)
    if total < (0 if forced is not None else SCOUT_MIN_FILES):
        return []
    if reader.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        return []
    cuts: list[bytes] = []
    for path in store.split_paths(job_id, wanted, total, reader):
        bound = safe_bound(path)
        if bound and (not cuts or bound > cuts[-1]):
            cuts.append(bound)
    if not cuts:
        return []
    lows: list[bytes] = [b"", *cuts]
    highs: list[bytes | None] = [*cuts, None]
    return [Span(low, high) for low, high in zip(lows, highs, strict=True)]


def _alone() -> bool:
    """Whether this process runs no other thread."""
    return threading.active_count() == 1


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass
class _Scout:
    pid: int
    fd: int
    span: Span
    done: bool = False
    reaped: bool = False


class Scouts:
    """The scouts of one scan: started by :meth:`start`, their pairs read by
    :meth:`pairs`, and killed (if still running) and waited for on exit."""

    def __init__(self, job: ScoutJob) -> None:
        self.job = job
        self.scouts: list[_Scout] = []

    def __enter__(self) -> Scouts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, spans: Sequence[Span]) -> None:
        """Fork one scout per span; :class:`NoScouts` (none left running) if
        the system has no process or descriptor to spare.

        The datastore's connection is closed meanwhile, and no other may be
        open in this process: SQLite's locks and its shared memory do not
        survive a fork, and a connection a child opened would share their
        bookkeeping with the parent's (sqlite.org/howtocorrupt.html,
        "Carrying an open database connection across a fork()"). Stop
        signals wait meanwhile, so none reaches a child before it ignores
        them (the run's handler would raise in the child's copy of the run).
        """
        with self.job.store.closed():
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
            try:
                for span in spans:
                    self._fork(span, blocked)
            except OSError as exc:
                self.close()
                raise NoScouts(str(exc)) from exc
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        log.debug(
            "scanning in %d processes, split at %s",
            len(spans),
            ", ".join(repr(os.fsdecode(s.low)) for s in spans[1:]),
        )

    def _fork(self, span: Span, mask: Iterable[int]) -> None:
        read_fd, write_fd = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            raise
        if pid == 0:  # the scout: never returns
            try:
                _scout_main(self.job, span, write_fd, mask)
            finally:
                os._exit(1)
        os.close(write_fd)
        self.scouts.append(_Scout(pid, read_fd, span))

    def pairs(self, count: Callable[[int, int], None]) -> Iterator[Pair]:
        """Every scout's pairs, as they come; files and bytes seen go to
        ``count``. Ends when every scout is done; raises if one fails."""
        with selectors.DefaultSelector() as selector:
            for each in self.scouts:
                selector.register(each.fd, selectors.EVENT_READ, each)
            waiting = len(self.scouts)
            while waiting:
                for key, _ in selector.select():
                    scout: _Scout = key.data
                    frame = self._frame(scout)
                    if frame[0] == _PAIRS:
                        count(frame[1], frame[2])
                        yield from frame[3]
                    elif frame[0] == _DONE:
                        scout.done = True
                        selector.unregister(scout.fd)
                        waiting -= 1
                    elif frame[0] == _SOURCE:
                        raise SourceError(frame[1])
                    else:
                        log.warning("a scan process failed:\n%s", frame[1])
                        raise ScoutError(
                            f"the scan of {_shown(scout.span)} in a process of "
                            f"its own failed: {frame[1].strip().splitlines()[-1]}"
                        )

    def _frame(self, scout: _Scout) -> tuple[Any, ...]:
        header = _read_exactly(scout.fd, _HEADER.size)
        if header is not None:
            body = _read_exactly(scout.fd, _HEADER.unpack(header)[0])
            if body is not None:
                frame = marshal.loads(body)
                assert isinstance(frame, tuple)
                return frame
        raise ScoutError(
            f"the scan of {_shown(scout.span)} in a process of its own ended "
            f"before it finished ({self._ending(scout)})"
        )

    def _ending(self, scout: _Scout) -> str:
        """How a scout ended, once its pipe closed."""
        _, status = os.waitpid(scout.pid, 0)
        scout.reaped = True
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            return f"killed by signal {-code} ({signal.strsignal(-code)})"
        return f"exit status {code}"

    def close(self) -> None:
        """Kill the scouts still running, wait for every one, close the pipes."""
        for scout in self.scouts:
            if not scout.reaped:
                if not scout.done:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(scout.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(scout.pid, 0)
                scout.reaped = True
            os.close(scout.fd)
        self.scouts = []


def _shown(span: Span) -> str:
    low = repr(os.fsdecode(span.low)) if span.low else "the start"
    high = repr(os.fsdecode(span.high)) if span.high is not None else "the end"
    return f"the paths from {low} to {high}"


def _read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes from the pipe, or None if it closes first."""
    chunks: list[bytes] = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


# -- the scout ------------------------------------------------------------------


def _scout_main(
    job: ScoutJob, span: Span, write_fd: int, mask: Iterable[int]
) -> NoReturn:
    """A forked scout's whole life: walk ``span``, report, exit."""
    code = 1
    try:
        # A stop signal (Ctrl-C, a closed terminal, systemd's stop, which
        # signals every process of the unit) is the run's to handle: it
        # unwinds, then kills its scouts. A scout dying first would make the
        # run report a failed scan instead of the stop. (Blocked since the
        # fork; ignored before they are let through.)
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        # Garbage the run had not collected yet may hold descriptors that
        # the closing below frees for reuse: collected here, it would close
        # the scout's own.
        gc.disable()
        logging.disable(logging.CRITICAL)
        # Only the pipe stays open: the run's job lock, its datastore and its
        # log are its own (a lock held by a scout would outlive a killed run),
        # and cron's output pipe ends with the run, not with its scouts.
        null = os.open(os.devnull, os.O_RDWR)
        for std in (0, 1, 2):
            os.dup2(null, std)
        os.closerange(3, write_fd)
        os.closerange(write_fd + 1, _fd_limit())
        out = _Frames(write_fd)
        try:
            _scout(job, span, out)
            code = 0
        except SourceError as exc:
            out.send((_SOURCE, str(exc)))
        except BrokenPipeError:
            raise
        except Exception:
            out.send((_FAILED, traceback.format_exc()))
    except BaseException:  # the run sees the pipe close and says so
        pass
    finally:
        os._exit(code)


def _fd_limit() -> int:
    try:
        return max(int(os.sysconf("SC_OPEN_MAX")), 1 << 16)
    except (OSError, ValueError):
        return 1 << 16


def _scout(job: ScoutJob, span: Span, out: _Frames) -> None:
    reader = job.store.reader()
    reader.execute("BEGIN")
    rows = job.store.iter_stored(job.job_id, reader, span.low, span.high)
    runs = walk_tree(job.root, job.excluded, job.threads, span).runs()
    for entry, row in changed_pairs(out.counted(runs), rows):
        out.pair(None if entry is None else tuple(entry), row)
    out.flush()
    out.send((_DONE,))


class _Frames:
    """A scout's end of its pipe: counts and pairs, sent in frames."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.files = 0
        self.bytes = 0
        self.pairs: list[tuple[object, object]] = []
        self.sent = time.monotonic()
        self.any_pair = False

    def counted(self, runs: Iterable[list[EntryRow]]) -> Iterator[list[EntryRow]]:
        for run in runs:
            files, size = run_totals(run)
            self.files += files
            self.bytes += size
            if time.monotonic() - self.sent >= COUNT_EVERY:
                self.flush()
            yield run

    def pair(self, entry: object, row: StoredRow | None) -> None:
        self.pairs.append((entry, row))
        # The first change goes at once: the run starts reading it (and
        # loading what it will need to send it) while this scout walks on.
        if not self.any_pair or len(self.pairs) >= PAIRS_PER_FRAME:
            self.any_pair = True
            self.flush()

    def flush(self) -> None:
        self.send((_PAIRS, self.files, self.bytes, self.pairs))
        self.files = self.bytes = 0
        self.pairs = []
        self.sent = time.monotonic()

    def send(self, frame: tuple[Any, ...]) -> None:
        body = marshal.dumps(frame)
        data = memoryview(_HEADER.pack(len(body)) + body)
        while data:
            data = data[os.write(self.fd, data) :]
