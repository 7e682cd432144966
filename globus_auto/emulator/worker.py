"""The task worker: schedules transfer tasks and really copies their files.

Scheduling follows docs.globus.org/api/transfer/task_behavior ("Queuing"):
Globus works on at most 3 transfer tasks per user at a time; the others wait
queued (ACTIVE, nice_status "Queued") and start in submission order "as other
tasks stop working due to completion, pausing, or backing off from an error".
So a task holds one of its owner's slots only while it works: a task backing
off after an error, an INACTIVE task and one whose endpoint is unreachable
hold none. Tasks of different owners never wait for each other.

Each working task runs in its own thread, one subtask (``tasks.Work``) at a
time. A failing path is a fault (``tasks.FileFault``): it is retried every
``Limits.retry_seconds`` until the deadline, or skipped with
``skip_source_errors``; the other paths go on. Each file is written to a
temporary name in its destination directory and renamed into place, so a
destination file is never half-written.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import logging
import os
import secrets
import threading
import time
from pathlib import Path

from globus_auto.emulator.documents import filtered_out
from globus_auto.emulator.state import (
    Collection,
    EmulatorState,
    PathRefused,
    iso_time,
    resolve_path,
    utcnow,
)
from globus_auto.emulator.tasks import (
    SKIPPABLE_CODES,
    FileFault,
    Task,
    TaskFatal,
    Work,
    file_not_found,
    permission_denied,
    type_conflict,
)

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
MAX_RUNNING_PER_USER = 3  # docs task_behavior "Queuing"
SCHEDULER_TICK = 0.2
PART_SUFFIX = ".globus-emulator-part"
NAME_MAX = 255  # bytes in one name: Linux's ext4, xfs, tmpfs and most others


def part_name(name: str) -> str:
    """The temporary name a file called ``name`` is written under, beside it.

    Why the short form: ``name`` may be as long as the filesystem allows
    (NAME_MAX, 255 bytes), and the temporary name must fit too; then it is
    made of a digest of the name instead (still unique per name and attempt).
    """
    token = secrets.token_hex(4)
    natural = f".{name}.{token}{PART_SUFFIX}"
    if len(os.fsencode(natural)) <= NAME_MAX:
        return natural
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:32]
    return f".{digest}.{token}{PART_SUFFIX}"


def endpoint_error(task: Task, work: Work, exc: OSError) -> FileFault:
    """An error of the filesystem on one path as a fault of that path, which
    the task retries until its deadline, as Globus retries what an endpoint
    answers (docs task_behavior "Errors"; the code and text for such errors
    are unverified: ENDPOINT_ERROR, in the shape of a GridFTP answer)."""
    why = exc.strerror or str(exc)
    details = (
        f"Error (transfer)\nEndpoint: {task.destination.display_name} "
        f"({task.destination.id})\nServer: 127.0.0.1:443\n"
        f"File: {work.destination_path}\nMessage: Fatal FTP response\n---\n"
        f"500 Command failed. : {why}\n"
    )
    return FileFault("ENDPOINT_ERROR", details, source_side=False)


class Interrupted(Exception):
    """The running task must stop now (cancel, expiry, INACTIVE, shutdown);
    the current subtask is put back to be done again."""


class Unreachable(Interrupted):
    """An endpoint went offline: the task backs off until it is back."""


class TaskWorker:
    """Tasks (shared with the Transfer routes), their scheduler and threads."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.tasks: dict[str, Task] = {}
        self.wakeup = threading.Condition(state.lock)
        self._stopping = threading.Event()
        self._scheduler: threading.Thread | None = None
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._scheduler = threading.Thread(
            target=self._schedule, name="globus-emulator-scheduler", daemon=True
        )
        self._scheduler.start()

    def stop(self) -> None:
        self._stopping.set()
        with self.state.lock:
            self.wakeup.notify_all()
            threads = list(self._threads)
        for thread in [self._scheduler, *threads]:
            if thread is not None:
                thread.join(timeout=5)

    def idle(self) -> bool:
        with self.state.lock:
            return all(t.status != "ACTIVE" for t in self.tasks.values())

    def submit(self, task: Task) -> None:
        """Add a new task (lock held): each item is one pending subtask."""
        task.todo.extend(
            Work("item", i.source_path, i.destination_path, i.recursive)
            for i in task.items
        )
        task.subtasks_total = len(task.items)
        self.tasks[task.task_id] = task
        self.wakeup.notify_all()

    # ------------------------------------------------------------- controls

    def cancel(self, task: Task, now: float) -> None:
        """Cancel (lock held): at once if not working, else at its next step;
        with ``Limits.cancel_seconds``, not before that long after the first
        cancel request (the task stays ACTIVE meanwhile, stopping)."""
        if task.cancel_at is None:
            task.cancel_at = now + self.state.limits.cancel_seconds
        if not task.running and task.cancel_at <= now:
            self.finish(task, "canceled")
        else:
            task.stop = "cancel"
        self.wakeup.notify_all()

    def set_status(self, task: Task, status: str, nice_status: str | None) -> None:
        """INACTIVE suspends a task (docs.globus.org/api/transfer/task: it
        "will not continue without intervention"); ACTIVE resumes it."""
        if status == task.status:
            return
        if status == "INACTIVE":
            task.status = "INACTIVE"
            task.inactive_status = nice_status or "CREDENTIALS_EXPIRED"
            if task.running and task.stop is None:
                task.stop = "pause"
            self._notify(task, "inactive")
        else:
            task.status = "ACTIVE"
            if task.stop == "pause":
                task.stop = None
        self.wakeup.notify_all()

    # ------------------------------------------------------------- scheduler

    def _schedule(self) -> None:
        """Start and expire tasks until stopped; a bug in one pass is logged
        and the next pass runs: every later task depends on this thread."""
        while not self._stopping.is_set():
            with self.state.lock:
                try:
                    now = time.time()
                    self._expire_overdue(now)
                    self._end_cancelled(now)
                    delay = self._start_ready(now)
                except Exception:
                    log.exception("emulator: the task scheduler failed; going on")
                    delay = SCHEDULER_TICK
                self.wakeup.wait(timeout=delay)

    def _expire_overdue(self, now: float) -> None:
        """A task past its deadline ends FAILED, expired (docs task_behavior
        "Deadlines"; docs task_events "EXPIRED")."""
        for task in list(self.tasks.values()):
            if task.done or task.deadline > now:
                continue
            if task.running:
                if task.stop != "cancel":  # a cancel asked first wins
                    task.stop = "expire"
            else:
                self.finish(task, "expired")

    def _end_cancelled(self, now: float) -> None:
        """A task being cancelled that has stopped working ends once its
        stopping time (``Limits.cancel_seconds``) has passed."""
        for task in list(self.tasks.values()):
            if task.done or task.running or not task.cancel_requested:
                continue
            if task.cancel_at is None or task.cancel_at <= now:
                self.finish(task, "canceled")

    def _start_ready(self, now: float) -> float:
        """Start what may start, in submission order; return how long the
        scheduler may sleep before something is due."""
        working = collections.Counter(
            t.owner_id for t in self.tasks.values() if t.running
        )
        due = SCHEDULER_TICK
        for task in list(self.tasks.values()):
            if task.status != "ACTIVE" or task.running or task.cancel_requested:
                continue
            if task.retry_at > now:
                due = min(due, task.retry_at - now)
                continue
            task.blocked_status = self._unreachable(task)
            if task.blocked_status or self._waits_for_earlier(task):
                continue
            if working[task.owner_id] >= MAX_RUNNING_PER_USER:
                continue
            working[task.owner_id] += 1
            self._launch(task)
        return max(0.005, due)

    def _unreachable(self, task: Task) -> str | None:
        """The nice_status of a task whose endpoint is offline, or None."""
        for collection in (task.source, task.destination):
            if not collection.connected and collection.is_personal:
                return "GC_NOT_CONNECTED"
            if not collection.connected:
                return "CONNECTION_FAILED"
        return None

    def _waits_for_earlier(self, task: Task) -> bool:
        """Whether an earlier task of the same owner keeps retrying a path this
        task writes: a task stuck on a missing file "blocks transfers of the
        same file" (globus-cli issue 1056). How Globus blocks them is not
        documented; we keep the later task queued (unverified)."""
        mine = [i.destination_path for i in task.items]
        for earlier in self.tasks.values():
            if earlier is task:
                return False
            if (
                earlier.done
                or earlier.owner_id != task.owner_id
                or earlier.destination.id != task.destination.id
            ):
                continue
            for path in earlier.faulted_destinations():
                if any(_overlap(path, other) for other in mine):
                    return True
        return False

    def _launch(self, task: Task) -> None:
        task.running = True
        if task.started_at is None:  # set here, in submission order
            task.started_at = time.time()
        thread = threading.Thread(
            target=self._run,
            args=(task,),
            name=f"globus-emulator-task-{task.task_id[:8]}",
            daemon=True,
        )
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    # ------------------------------------------------------------ a task run

    def _run(self, task: Task) -> None:
        """Work on ``task`` until it is done, backs off or is stopped."""
        try:
            self._work_through(task)
        except Interrupted:
            with self.state.lock:
                self._stopped(task)
        except TaskFatal as fatal:
            with self.state.lock:
                self._fail(task, fatal)
        except Exception:  # never leave a task ACTIVE forever on our own bug
            log.exception("emulator: task %s crashed", task.task_id)
            with self.state.lock:
                self._crashed(task)
        finally:
            with self.state.lock:
                task.running = False
                self.wakeup.notify_all()

    def _crashed(self, task: Task) -> None:
        """End ``task`` FAILED after a bug of ours (lock held), as the real
        service reports a task it cannot go on with; if even that fails, the
        task is marked FAILED by hand so that nothing waits for it forever."""
        try:
            self._fail(task, TaskFatal("ENDPOINT_ERROR", "Internal error"))
        except Exception:
            log.exception("emulator: could not fail task %s; forcing", task.task_id)
            task.status = "FAILED"
            task.todo.clear()
            task.pending.clear()
            task.completion_time = task.completion_time or iso_time(utcnow())
            self.wakeup.notify_all()

    def _stopped(self, task: Task) -> None:
        if task.stop == "cancel":
            if task.cancel_at is None or task.cancel_at <= time.time():
                self.finish(task, "canceled")
            # else: stopping; the scheduler ends it (_end_cancelled)
        elif task.stop == "expire":
            self.finish(task, "expired")
        elif task.stop == "pause":
            task.stop = None

    def _work_through(self, task: Task) -> None:
        with self.state.lock:
            task.todo.extend(task.pending)  # the retry of failed paths
            task.pending.clear()
            inject = not task.fault_injection_checked
            task.fault_injection_checked = True
        if inject and self.state.take_task_fault():
            raise TaskFatal("ENDPOINT_ERROR", "Injected failure (emulator fault)")
        skipped_before = task.subtasks_skipped_errors
        while True:
            with self.state.lock:
                self._checkpoint(task)
                if not task.todo:
                    break
                work = task.todo.popleft()
            self._attempt(task, work)
        with self.state.lock:
            if task.subtasks_skipped_errors > skipped_before:
                task.add_event(
                    "SKIPPED_ERRORS",
                    "skipped errors",
                    "Paths hitting skippable errors were skipped",
                    False,  # a lifecycle event in docs task_events; unverified
                )
            if task.pending:
                task.retry_at = time.time() + self.state.limits.retry_seconds
                return
        self._delete_extra(task)
        with self.state.lock:
            self.finish(task, "succeeded")

    def _attempt(self, task: Task, work: Work) -> None:
        """Do one subtask; a fault is recorded (lock taken), an interruption
        puts the subtask back first in line."""
        try:
            try:
                self._do(task, work)
            except OSError as exc:  # one nobody foresaw, e.g. a path over PATH_MAX
                raise endpoint_error(task, work, exc) from None
        except Interrupted:
            with self.state.lock:
                task.todo.appendleft(work)
            raise
        except FileFault as fault:
            with self.state.lock:
                skip = task.options["skip_source_errors"]
                if skip and fault.source_side and fault.code in SKIPPABLE_CODES:
                    task.record_skip(work, fault)
                else:
                    task.record_fault(work, fault)
            return
        with self.state.lock:
            task.subtasks_succeeded += 1

    def _checkpoint(self, task: Task) -> None:
        """Between subtasks (lock held): stop if asked, back off if offline."""
        if self._stopping.is_set() or task.stop:
            raise Interrupted
        task.blocked_status = self._unreachable(task)
        if task.blocked_status:
            raise Unreachable

    # ------------------------------------------------------------ endings

    def finish(self, task: Task, outcome: str) -> None:
        """Settle a task (lock held): ``succeeded``, ``canceled``, ``expired``
        or ``failed`` (its ``fatal_error`` set); any but the first ends FAILED."""
        left = task.remaining()
        if outcome == "canceled":
            task.fatal_error = {"code": "CANCELED", "description": "canceled"}
            task.subtasks_canceled += left
            task.add_event(
                "CANCELED", "canceled", "The task was canceled by the user", True
            )
        elif outcome == "expired":
            # fatal_error and subtasks_expired as in a real expired task
            # (CommanderPho/PhoGlobusHelpers compatibility_objects/Tasks.py:
            # {"code": "EXPIRED", "description": "deadline expired"}).
            task.fatal_error = {"code": "EXPIRED", "description": "deadline expired"}
            task.subtasks_expired += left
            task.add_event(
                "EXPIRED", "deadline expired", "The task deadline has passed", True
            )
        if task.fatal_error is None:
            task.status = "SUCCEEDED"
            task.add_event(
                "SUCCEEDED",
                "succeeded",
                {"files_succeeded": task.files_transferred},
                False,
            )
        else:
            task.status = "FAILED"
        task.todo.clear()
        task.pending.clear()
        task.stop = None
        task.completion_time = iso_time(utcnow())
        self._notify(task, "succeeded" if task.status == "SUCCEEDED" else "failed")
        self.wakeup.notify_all()

    def _fail(self, task: Task, fatal: TaskFatal) -> None:
        task.faults += 1
        task.subtasks_failed += max(1, task.remaining())
        task.add_event(
            fatal.code, fatal.code.lower().replace("_", " "), fatal.description, True
        )
        task.fatal_error = {"code": fatal.code, "description": fatal.description}
        self.finish(task, "failed")

    def _notify(self, task: Task, kind: str) -> None:
        """Count the mail Globus would send the owner: notify_on_succeeded on
        SUCCEEDED, notify_on_failed on FAILED (a cancel ends FAILED too: the
        TransferData docs speak of the status only), notify_on_inactive when
        it turns INACTIVE."""
        if task.options[f"notify_on_{kind}"]:
            self.state.stats.notification_mails[kind] += 1

    # ------------------------------------------------------------ subtasks

    def _do(self, task: Task, work: Work) -> None:
        if work.kind == "item":
            self._expand_item(task, work)
        elif work.kind == "listdir":
            src = self._local(task, task.source, work.source_path, source=True)
            self._walk(task, src, work.source_path, work.destination_path)
        elif work.kind == "mkdir":
            self._make_dir(task, work.destination_path)
        else:
            self._transfer_file(task, work)

    def _local(
        self, task: Task, collection: Collection, cpath: str, *, source: bool
    ) -> Path:
        try:
            return resolve_path(collection, cpath)
        except PathRefused as why:
            raise permission_denied(
                collection, cpath, f"Path not allowed: {why}", source_side=source
            ) from None

    def _add_works(self, task: Task, works: list[Work]) -> None:
        with self.state.lock:
            task.subtasks_total += len(works)
            task.files += sum(1 for w in works if w.kind == "file")
            task.directories += sum(1 for w in works if w.kind == "mkdir")
            task.todo.extend(works)

    def _expand_item(self, task: Task, work: Work) -> None:
        """A submitted item: stat its source, then plan its files."""
        src = self._local(task, task.source, work.source_path, source=True)
        self._local(task, task.destination, work.destination_path, source=False)
        if not src.exists():
            raise file_not_found(is_directory=work.recursive)
        if work.recursive != src.is_dir():
            kind = "a directory" if src.is_dir() else "not a directory"
            raise TaskFatal(
                "NOT_A_FILE" if src.is_dir() else "NOT_A_DIRECTORY",
                f"'{work.source_path}' is {kind} but recursive="
                f"{str(work.recursive).lower()}",
            )
        if not work.recursive:
            self._add_works(
                task, [Work("file", work.source_path, work.destination_path)]
            )
            return
        root = Work("mkdir", work.source_path, work.destination_path)
        self._walk(task, src, work.source_path, work.destination_path, root)

    def _walk(
        self, task: Task, src: Path, spath: str, dpath: str, root: Work | None = None
    ) -> None:
        """Plan a source directory's tree: its directories (``mkdir``, ``root``
        first) then its files. A subdirectory that cannot be listed becomes a
        ``listdir`` subtask of its own, which faults and is retried."""
        dirs: list[Work] = [root] if root else []
        files: list[Work] = []
        unlisted: list[Work] = []
        self._walk_into(task, src, spath, dpath, dirs, files, unlisted, top=True)
        self._add_works(task, [*dirs, *files, *unlisted])

    def _walk_into(
        self,
        task: Task,
        src: Path,
        spath: str,
        dpath: str,
        dirs: list[Work],
        files: list[Work],
        unlisted: list[Work],
        *,
        top: bool = False,
    ) -> None:
        try:
            entries = sorted(os.scandir(src), key=lambda e: e.name)
        except FileNotFoundError:
            if top:
                raise file_not_found(is_directory=True) from None
            unlisted.append(Work("listdir", spath, dpath, True))
            return
        except OSError as exc:
            if top:
                raise permission_denied(
                    task.source, spath, f"Cannot list: {exc.strerror}", source_side=True
                ) from None
            unlisted.append(Work("listdir", spath, dpath, True))
            return
        rules = task.options["filter_rules"]
        for entry in entries:
            kind = "dir" if entry.is_dir(follow_symlinks=False) else "file"
            if filtered_out(rules, entry.name, kind):
                continue  # an excluded directory is not descended
            s_child = f"{spath.rstrip('/')}/{entry.name}"
            d_child = f"{dpath.rstrip('/')}/{entry.name}"
            if entry.is_symlink():
                with self.state.lock:  # recursive_symlinks=ignore, as Globus does
                    task.symlinks += 1
                continue
            if entry.is_dir(follow_symlinks=False):
                dirs.append(Work("mkdir", s_child, d_child))
                self._walk_into(
                    task, Path(entry.path), s_child, d_child, dirs, files, unlisted
                )
            elif entry.is_file(follow_symlinks=False):
                files.append(Work("file", s_child, d_child))

    def _make_dir(self, task: Task, cpath: str) -> None:
        local = self._local(task, task.destination, cpath, source=False)
        try:
            local.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):  # a file there, or above
            raise type_conflict(task.destination, cpath, False) from None
        except OSError as exc:
            raise permission_denied(
                task.destination,
                cpath,
                f"Cannot create directory: {exc.strerror}",
                source_side=False,
            ) from None

    def _transfer_file(self, task: Task, work: Work) -> None:
        src = self._local(task, task.source, work.source_path, source=True)
        dst = self._local(task, task.destination, work.destination_path, source=False)
        try:
            src_stat = src.stat()
        except FileNotFoundError:
            raise file_not_found() from None
        except OSError as exc:
            raise permission_denied(
                task.source, work.source_path, str(exc.strerror), source_side=True
            ) from None
        if dst.is_dir():
            raise type_conflict(task.destination, work.destination_path, True)
        if self._in_sync(task, src, dst, src_stat):
            with self.state.lock:
                task.files_skipped += 1
            return
        self._copy(task, src, dst, src_stat, work)
        with self.state.lock:
            task.files_transferred += 1
            task.successful.append(
                {
                    "DATA_TYPE": "successful_transfer",
                    "source_path": work.source_path,
                    "destination_path": work.destination_path,
                }
            )

    def _in_sync(
        self, task: Task, src: Path, dst: Path, src_stat: os.stat_result
    ) -> bool:
        """The documented sync_level rules: True means the file is skipped."""
        level = task.options["sync_level"]
        if level is None:
            return False
        try:
            dst_stat = dst.stat()
        except OSError:
            return False
        if level == 0:
            return True
        if dst_stat.st_size != src_stat.st_size:
            return False
        if level == 1:
            return True
        if level == 2:
            return int(dst_stat.st_mtime) >= int(src_stat.st_mtime)
        return self._checksum(task, src) == self._checksum(task, dst)

    def _checksum(self, task: Task, path: Path) -> str:
        digest = hashlib.md5(usedforsecurity=False)
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
                    self._count_checksummed(task, len(chunk))
        except OSError as exc:
            raise permission_denied(
                task.source, path.name, f"Cannot read: {exc.strerror}", source_side=True
            ) from None
        return digest.hexdigest()

    def _count_checksummed(self, task: Task, size: int) -> None:
        with self.state.lock:
            task.bytes_checksummed += size
            self.state.stats.bytes_checksummed += size

    def _copy(
        self, task: Task, src: Path, dst: Path, src_stat: os.stat_result, work: Work
    ) -> None:
        """Copy to a temporary name beside ``dst``, verify, then rename.

        A checksum mismatch is a fault, retried like the others (unverified;
        the fault code VERIFY_CHECKSUM is Globus's name for the option)."""
        dpath = work.destination_path
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):  # a file above it
            raise type_conflict(task.destination, dpath, False) from None
        except OSError as exc:
            raise permission_denied(
                task.destination, dpath, str(exc.strerror), source_side=False
            ) from None
        self._local(task, task.destination, dpath, source=False)  # a new link?
        tmp = dst.parent / part_name(dst.name)
        try:
            source_md5 = self._stream(task, src, tmp)
            if task.options["verify_checksum"]:
                self._count_checksummed(task, src_stat.st_size)
                if self._checksum(task, tmp) != source_md5:
                    raise FileFault(
                        "VERIFY_CHECKSUM",
                        f"Checksum mismatch for '{dpath}'",
                        source_side=False,
                    )
            if task.options["preserve_timestamp"]:
                os.utime(tmp, ns=(src_stat.st_atime_ns, src_stat.st_mtime_ns))
            os.replace(tmp, dst)
        except OSError as exc:
            raise permission_denied(
                task.destination,
                dpath,
                f"Cannot write: {exc.strerror}",
                source_side=False,
            ) from None
        finally:  # best effort: the fault above, not this, is the news
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    def _stream(self, task: Task, src: Path, tmp: Path) -> str:
        """Copy bytes (throttled if asked), return the source's MD5."""
        digest = hashlib.md5(usedforsecurity=False)
        started = time.monotonic()
        sent = 0
        with src.open("rb") as reader, tmp.open("xb") as writer:
            while chunk := reader.read(CHUNK):
                if task.stop or self._stopping.is_set():
                    raise Interrupted
                writer.write(chunk)
                digest.update(chunk)
                sent += len(chunk)
                with self.state.lock:
                    task.bytes_transferred += len(chunk)
                    self.state.stats.bytes_copied += len(chunk)
                    rate = self.state.faults.bytes_per_second
                while (
                    rate > 0
                    and (ahead := sent / rate - (time.monotonic() - started)) > 0
                ):
                    if task.stop or self._stopping.is_set():
                        raise Interrupted
                    time.sleep(min(ahead, 0.05))
        return digest.hexdigest()

    def _delete_extra(self, task: Task) -> None:
        """delete_destination_extra: remove what the source does not have,
        unless paths were skipped: then Globus skips the delete and says so
        (docs task_events "DELETE_DESTINATION_EXTRA_SKIPPED")."""
        if not task.options["delete_destination_extra"]:
            return
        if task.subtasks_skipped_errors:
            with self.state.lock:
                task.add_event(
                    "DELETE_DESTINATION_EXTRA_SKIPPED",
                    "delete destination extra skipped",
                    "Skipped because of skippable source errors",
                    False,
                )
            return
        for item in task.items:
            if not item.recursive:
                continue
            try:
                src = resolve_path(task.source, item.source_path)
                dst = resolve_path(task.destination, item.destination_path)
            except PathRefused:
                continue
            _prune(src, dst)


def _overlap(a: str, b: str) -> bool:
    """Whether collection paths ``a`` and ``b`` are one, or one holds the other."""
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


def _prune(src: Path, dst: Path) -> None:
    for entry in list(os.scandir(dst)):
        counterpart = src / entry.name
        if entry.is_dir(follow_symlinks=False):
            if counterpart.is_dir() and not counterpart.is_symlink():
                _prune(counterpart, Path(entry.path))
                continue
            _remove_tree(Path(entry.path))
        elif PART_SUFFIX not in entry.name and not (
            counterpart.is_file() and not counterpart.is_symlink()
        ):
            os.unlink(entry.path)


def _remove_tree(path: Path) -> None:
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            _remove_tree(Path(entry.path))
        else:
            os.unlink(entry.path)
    path.rmdir()
