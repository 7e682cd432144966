"""One run of one job, start to end (DESIGN.md, "One run of one job").

1. take the job's lock; 2. follow the task in flight; 3. scan the source;
4. stop if nothing needs sending; 5. probe both collections; 6. submit one
checksum-verified, encrypted transfer; 7. optionally wait for it and settle it.

The Globus gateway is built lazily, on first need: a run with nothing to do
makes no network call and never imports globus-sdk.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING

from globus_auto import plan as planning
from globus_auto.alerts import Kind, Problem
from globus_auto.datastore import (
    PREPARING,
    Datastore,
    Observed,
    StoredFile,
    TaskRecord,
)
from globus_auto.errors import (
    EXIT_ENDPOINT_NOT_READY,
    EXIT_LOGIN_REQUIRED,
    EXIT_OK,
    EXIT_TRANSFER_FAILED,
    EXIT_UNEXPECTED,
    DatastoreError,
    EndpointNotReady,
    GlobusAutoError,
    GlobusUnavailable,
    LoginRequired,
    SourceError,
    TaskUnknown,
    TransferFailed,
)
from globus_auto.lock import Locked, job_lock
from globus_auto.scan import (
    SYMLINK_NOTE,
    Progress,
    Scanner,
    ScanSummary,
    check_source,
    exclude_matcher,
    walk,
)
from globus_auto.settings import Job, Settings

if TYPE_CHECKING:
    from globus_auto.globus import Gateway, TaskState

log = logging.getLogger(__name__)

CRASH_VARIABLE = "GLOBUS_AUTO_TEST_CRASH_AT"

# Test-only: called with each crash point's name. The in-process property test
# sets it to raise there, standing in for the SIGKILL a real process gets.
CRASH_HOOK: Callable[[str], None] | None = None


def crashpoint(name: str) -> None:
    """Test-only switch: die here, as a killed process would, when asked to.

    The crash-safety tests set ``GLOBUS_AUTO_TEST_CRASH_AT`` to a point's name;
    nothing else ever sets it.
    """
    if CRASH_HOOK is not None:
        CRASH_HOOK(name)
    if os.environ.get(CRASH_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class RunOptions:
    dry_run: bool = False
    wait: bool = False
    timeout: float = 3600.0


@dataclass
class RunEnv:
    """What a run needs from the outside world, passed in (not global)."""

    settings: Settings
    store: Datastore
    gateway_factory: Callable[[], Gateway]
    now: Callable[[], datetime]
    progress: Progress | None = None
    _gateway: Gateway | None = None

    def gateway(self) -> Gateway:
        if self._gateway is None:
            self._gateway = self.gateway_factory()
        return self._gateway


@dataclass(frozen=True)
class DryRunFile:
    path: bytes
    size: int
    reason: str  # "new" or "changed"


@dataclass
class JobReport:
    """The outcome of one job's run: what the command line prints and alerts use."""

    job: str
    outcome: str = "nothing to do"
    exit_code: int = EXIT_OK
    detail: str = ""
    files_sent: int = 0
    bytes_sent: int = 0
    delivered_files: int = 0
    task_id: str | None = None
    scan: ScanSummary | None = None
    problems: list[Problem] = field(default_factory=list)
    cleared: set[Kind] = field(default_factory=set)
    skipped: bool = False  # another run holds the lock: it reports the outcome
    would_send: list[DryRunFile] = field(default_factory=list)

    def fail(self, problem: Problem, exit_code: int) -> None:
        self.problems.append(problem)
        self.exit_code = max(self.exit_code, exit_code)


def run_job(job: Job, env: RunEnv, opts: RunOptions) -> JobReport:
    """Run one job under its lock; never raises for problems it can report."""
    report = JobReport(job.name)
    try:
        with job_lock(env.settings.state_dir, job.name):
            report.cleared.add(Kind.RUN_STUCK)  # whatever held it has ended
            _run_locked(job, env, opts, report)  # a dry run's store is a copy
    except Locked as held:
        _report_locked(job, env, report, held)
    except GlobusAutoError as exc:
        _report_error(job, env, report, exc)
    except sqlite3.DatabaseError as exc:  # a page damaged since the last quick_check
        env.store.check_integrity_at_next_open()
        damaged = DatastoreError(f"the datastore {env.store.path} is damaged: {exc}")
        _report_error(job, env, report, damaged)
    return report


def _report_locked(job: Job, env: RunEnv, report: JobReport, held: Locked) -> None:
    """Skip the job; a problem if the holder has had the lock too long.

    Why: a run hanging forever (say, on a dead NFS mount) keeps its lock, and
    every later run would skip quietly while nothing is sent.
    """
    report.outcome = "skipped: another run holds the lock"
    report.skipped = True
    limit = timedelta(hours=env.settings.task_stuck_hours)
    if env.now() - held.since <= limit:
        log.info("%s: another run holds the lock; skipping", job.name)
        report.cleared.add(Kind.RUN_STUCK)  # that is a later run than the stuck one
        return
    pid = "?" if held.pid is None else str(held.pid)
    report.outcome = "failed"
    report.detail = f"a run (process {pid}) has held the lock since {held.since}"
    files, size = _pending_safely(job, env)
    report.fail(
        Problem(
            job=job.name,
            kind=Kind.RUN_STUCK,
            summary=_SUMMARIES[Kind.RUN_STUCK],
            what_happened=f"Process {pid} has held the lock {held.path} since "
            f"{held.since:%Y-%m-%d %H:%M %Z}, longer than TASK_STUCK_HOURS "
            f"({env.settings.task_stuck_hours:g} hours). Every later run skips "
            "this job, so nothing new is sent.",
            what_to_do=f"Check process {pid}: ps -o pid,stat,etime,args -p {pid}. "
            f"State D usually means it hangs on a mount: check that "
            f"{job.src_local_dir} answers (ls, df). Ending it (kill {pid}) frees "
            "the lock and loses nothing.",
            next_attempt="Every run checks again; the job runs once the lock is free.",
            pending_files=files,
            pending_bytes=size,
        ),
        EXIT_UNEXPECTED,
    )


def _report_error(
    job: Job, env: RunEnv, report: JobReport, exc: GlobusAutoError
) -> None:
    kind, code = _classify(exc)
    report.outcome = "failed"
    report.detail = str(exc)
    files, size = _pending_safely(job, env)
    report.fail(
        Problem(
            job=job.name,
            kind=kind,
            summary=(
                "Globus could not be reached"
                if isinstance(exc, GlobusUnavailable)
                else _SUMMARIES[kind]
            ),
            what_happened=str(exc),
            what_to_do=_what_to_do(kind, env.settings, job),
            next_attempt="The next scheduled run will try again.",
            pending_files=files,
            pending_bytes=size,
        ),
        code,
    )


_SUMMARIES = {
    Kind.ENDPOINT_NOT_READY: "a collection is not ready",
    Kind.LOGIN_REQUIRED: "Globus login or consent required",
    Kind.TASK_FAILED: "a transfer failed",
    Kind.TASK_STUCK: "a transfer is not progressing",
    Kind.SOURCE_PROBLEM: "the source directory is not usable",
    Kind.UNSENDABLE: "some files cannot be sent",
    Kind.DATASTORE: "the datastore is not usable",
    Kind.RUN_STUCK: "a run has not finished",
    Kind.UNEXPECTED: "an unexpected error",
}


def _classify(exc: GlobusAutoError) -> tuple[Kind, int]:
    if isinstance(exc, LoginRequired):
        return Kind.LOGIN_REQUIRED, EXIT_LOGIN_REQUIRED
    if isinstance(exc, EndpointNotReady):
        return Kind.ENDPOINT_NOT_READY, EXIT_ENDPOINT_NOT_READY
    if isinstance(exc, TransferFailed):
        return Kind.TASK_FAILED, EXIT_TRANSFER_FAILED
    if isinstance(exc, SourceError):
        return Kind.SOURCE_PROBLEM, EXIT_UNEXPECTED
    if isinstance(exc, DatastoreError):
        return Kind.DATASTORE, EXIT_UNEXPECTED
    if isinstance(exc, GlobusUnavailable):
        return Kind.UNEXPECTED, EXIT_UNEXPECTED
    return Kind.UNEXPECTED, exc.exit_code


def _what_to_do(kind: Kind, settings: Settings, job: Job) -> str:
    config = f"--config {settings.config_path}"
    status = f"globus-auto {config} status --job {job.name}"
    if kind is Kind.LOGIN_REQUIRED:
        if settings.client_secret:
            return (
                "Check that the service account's client id and secret are valid and "
                f"that it has access to both collections, then run: {status}"
            )
        return f"Log in again on a terminal: globus-auto {config} login"
    if kind is Kind.ENDPOINT_NOT_READY:
        return (
            f"Check that collections {job.src_id} and {job.dst_id} are online and "
            f"that the paths exist, then run: globus-auto {config} check"
        )
    if kind is Kind.SOURCE_PROBLEM:
        return f"Check that {job.src_local_dir} is mounted and readable, then: {status}"
    if kind is Kind.TASK_FAILED:
        return f"See the task at https://app.globus.org/activity and run: {status}"
    return f"Run {status} and read the log in {settings.state_dir}"


def _pending_safely(job: Job, env: RunEnv) -> tuple[int, int]:
    try:
        job_id = env.store.existing_job_id(job.identity)
        return (0, 0) if job_id is None else env.store.pending_totals(job_id)
    except Exception:  # the datastore itself may be the problem
        return 0, 0


def _run_locked(job: Job, env: RunEnv, opts: RunOptions, report: JobReport) -> None:
    store = env.store
    job_id = store.job_id(job.identity, job.name, env.now())
    in_flight = False
    if not opts.dry_run:
        for task in store.open_tasks(job_id):
            in_flight = _follow_task(job, task, env, opts, report) or in_flight
    report.scan = scan_job(job, job_id, env)
    report.cleared.update({Kind.SOURCE_PROBLEM, Kind.UNSENDABLE, Kind.DATASTORE})
    _report_unsendable(job, job_id, env, report)
    crashpoint("after-scan")
    if in_flight:
        report.outcome = f"waiting for task {report.task_id} to finish"
        return
    cutoff = _young_cutoff(job, env.now())
    if opts.dry_run:
        report.would_send = [
            DryRunFile(f.path, f.size, "new" if f.new else "changed")
            for f in store.pending_files(job_id, cutoff)
        ]
        report.outcome = f"dry run: {len(report.would_send)} files would be sent"
        return
    count, _ = store.pending_totals(job_id, cutoff)
    if count == 0:
        if cutoff is None or store.pending_totals(job_id)[0] == 0:
            # Everything is delivered, so no failed or lost transfer is owed.
            report.cleared.add(Kind.TASK_FAILED)
        if report.outcome == "nothing to do" and report.delivered_files == 0:
            log.debug("%s: nothing to send", job.name)
        return
    gateway = env.gateway()
    probe(job, gateway)
    # Reaching Globus after a clean scan also shows an earlier unexpected
    # error (say, an unreadable token file) is gone.
    report.cleared.update({Kind.ENDPOINT_NOT_READY, Kind.LOGIN_REQUIRED})
    report.cleared.add(Kind.UNEXPECTED)
    task = submit(job, job_id, env, gateway, cutoff, report)
    if opts.wait:
        state = gateway.wait(task.task_id or "", opts.timeout)
        _settle(job, task, state, env, report)


UNSENDABLE_SHOWN = 20
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _report_unsendable(job: Job, job_id: int, env: RunEnv, report: JobReport) -> None:
    """Report files the scan cannot send; the rest of the run goes on.

    Why: otherwise they would be a silent gap at the destination, so the run
    ends non-zero (1) and alerts (once per ALERT_REPEAT_HOURS). Their names are
    shown with control characters escaped, so a name cannot shape the mail.
    Their own kind: an open alert about them must not hide a later unmount.
    """
    count = env.store.count_problems(job_id, besides=SYMLINK_NOTE)
    if count == 0:
        return
    shown = [
        (path, why)
        for path, why in env.store.problems(job_id, limit=UNSENDABLE_SHOWN * 5)
        if why != SYMLINK_NOTE
    ][:UNSENDABLE_SHOWN]
    lines = [f"{printable_name(path)}: {why}" for path, why in shown]
    if count > len(shown):
        lines.append(f"... and {count - len(shown)} more")
    config = f"--config {env.settings.config_path}"
    report.fail(
        Problem(
            job=job.name,
            kind=Kind.UNSENDABLE,
            summary=_SUMMARIES[Kind.UNSENDABLE],
            what_happened=f"{count} {'file' if count == 1 else 'files'} in "
            f"{job.src_local_dir} cannot be sent "
            f"as they are (the first: {lines[0]}):\n" + "\n".join(lines),
            what_to_do="Rename them or fix their permissions; list them with: "
            f"globus-auto {config} status --job {job.name}",
            next_attempt="Every run looks at them again and sends them once it can.",
            pending_files=count,
        ),
        EXIT_UNEXPECTED,
    )


def printable_name(path: bytes) -> str:
    """A file name for people: undecodable bytes and control characters escaped."""
    text = path.decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def _young_cutoff(job: Job, now: datetime) -> int | None:
    """Files modified after this (ns since the epoch) are too young to send."""
    if job.min_age <= 0:
        return None
    return int((now.timestamp() - job.min_age) * 1e9)


def scan_job(job: Job, job_id: int, env: RunEnv) -> ScanSummary:
    """Scan the job's source against its rows, writing changes in batches."""
    store = env.store
    root = os.fsencode(job.src_local_dir)
    check_source(
        root,
        lambda: store.count_files(job_id),  # counted only if empty
        f"globus-auto --config {env.settings.config_path} reset --job {job.name}",
    )
    reader = store.reader()
    try:
        with reader:
            reader.execute("BEGIN")

            def sink(observed: Sequence[Observed], gone: Sequence[bytes]) -> None:
                store.apply_scan_batch(job_id, observed, gone)
                crashpoint("during-scan")

            scanner = Scanner(root, sink, progress=env.progress)
            summary = scanner.run(
                walk(root, exclude_matcher(job.exclude)),
                store.iter_stored(job_id, reader),
            )
            reader.execute("COMMIT")
    finally:
        reader.close()
    log.info(
        "%s: scanned %d files (%d new, %d changed, %d gone, %d read)",
        job.name,
        summary.files,
        summary.new,
        summary.changed,
        summary.gone,
        summary.hashed_files,
    )
    return summary


def probe(job: Job, gateway: Gateway) -> None:
    """Both collections ready, the source path there, the destination created."""
    gateway.check_collection(job.src_id, "source")
    gateway.check_collection(job.dst_id, "destination")
    if not gateway.list_dir(job.src_id, job.src_dir, "source"):
        raise EndpointNotReady(
            f"{job.src_dir} does not exist on the source collection {job.src_id}; "
            "check SRC_DIR (and src_local_dir if the local path differs)"
        )
    gateway.make_dirs(job.dst_id, job.dst_dir)


def submit(
    job: Job,
    job_id: int,
    env: RunEnv,
    gateway: Gateway,
    cutoff: int | None,
    report: JobReport,
) -> TaskRecord:
    """Record, then submit, one transfer of what needs sending."""
    store = env.store
    count, size = store.pending_totals(job_id, cutoff)
    young = store.pending_totals(job_id)[0] - count
    mode = planning.choose_mode(
        count,
        job.recursive_threshold,
        planning.may_recurse(
            job.exclude, young, store.count_problems(job_id, besides=SYMLINK_NOTE)
        ),
    )
    submission_id = gateway.new_submission_id()
    crashpoint("after-submission-id")
    if mode == "directory":
        plan = _directory_plan(job, count, size)
        task = store.prepare_task(
            job_id, submission_id, recursive=True, files=None, now=env.now()
        )
    else:
        files = list(
            islice(store.pending_files(job_id, cutoff), planning.MAX_ITEMS_PER_TASK)
        )
        plan = _file_plan(job, files)
        task = store.prepare_task(
            job_id, submission_id, recursive=False, files=files, now=env.now()
        )
    crashpoint("before-submit")
    return _submit_recorded(job, task, plan, env, gateway, report)


def _submit_recorded(
    job: Job,
    task: TaskRecord,
    plan: planning.TransferPlan,
    env: RunEnv,
    gateway: Gateway,
    report: JobReport,
) -> TaskRecord:
    try:
        task_id = gateway.submit(plan, task.submission_id)
    except TransferFailed as exc:
        # Refused outright: retrying the same document would be refused again.
        env.store.settle_task(task, "REFUSED", str(exc), [], env.now())
        raise
    crashpoint("after-submit")
    env.store.mark_submitted(task.submission_id, task_id, env.now())
    report.task_id = task_id
    report.files_sent += plan.count
    report.bytes_sent += plan.bytes
    report.outcome = f"submitted task {task_id}: {plan.count} files"
    log.info(
        "%s: submitted task %s (%d files, %d bytes%s)",
        job.name,
        task_id,
        plan.count,
        plan.bytes,
        ", whole directory" if plan.recursive else "",
    )
    return replace(task, task_id=task_id, state="submitted")


def _file_plan(job: Job, files: list[planning.PendingFile]) -> planning.TransferPlan:
    return planning.file_plan(
        job_name=job.name,
        source_id=job.src_id,
        source_dir=job.src_dir,
        destination_id=job.dst_id,
        destination_dir=job.dst_dir,
        files=files,
    )


def _directory_plan(job: Job, count: int, size: int) -> planning.TransferPlan:
    return planning.directory_plan(
        job_name=job.name,
        source_id=job.src_id,
        source_dir=job.src_dir,
        destination_id=job.dst_id,
        destination_dir=job.dst_dir,
        count=count,
        size=size,
        exclude=job.exclude,
    )


def _follow_task(
    job: Job, task: TaskRecord, env: RunEnv, opts: RunOptions, report: JobReport
) -> bool:
    """Bring an earlier task up to date (waiting for it with ``--wait``).

    Returns True while it is still running.
    """
    gateway = env.gateway()
    if task.state == PREPARING:
        # The run that recorded it died around the submit call: submitting the
        # same document under the same id either starts it or, if Globus has it
        # already, returns the existing task (code Duplicate). Never twice.
        if task.recursive:
            plan = _directory_plan(job, task.files, task.bytes)
        else:
            plan = _file_plan(job, env.store.carried_files(task.job))
        task = _submit_recorded(job, task, plan, env, gateway, report)
    try:
        if opts.wait:
            state = gateway.wait(task.task_id or "", opts.timeout)
        else:
            state = gateway.task(task.task_id or "")
    except TaskUnknown as exc:
        _settle_lost(job, task, exc, env, report)
        return False
    report.task_id = task.task_id
    return _settle(job, task, state, env, report)


def _settle_lost(
    job: Job, task: TaskRecord, error: TaskUnknown, env: RunEnv, report: JobReport
) -> None:
    """Settle a task Globus cannot show as LOST, with nothing delivered.

    Why: whether it ran cannot be known, and asking again every run would hold
    the job forever. Its files stay pending, so this run sends them again (the
    checksum sync skips what did arrive); the user hears of it once.
    """
    env.store.settle_task(task, "LOST", str(error), [], env.now())
    files, size = env.store.pending_totals(task.job)
    config = f"--config {env.settings.config_path}"
    report.fail(
        Problem(
            job=job.name,
            kind=Kind.TASK_FAILED,
            summary="Globus no longer knows a transfer",
            what_happened=f"{error}. Whether its {task.files} files arrived cannot "
            "be known, so they are sent again.",
            what_to_do="Nothing, if the login changed or the task is months old. "
            "Otherwise check that the login is the identity that submitted it: "
            f"globus-auto {config} status --job {job.name}",
            next_attempt="This run sends its files again.",
            pending_files=files,
            pending_bytes=size,
        ),
        EXIT_TRANSFER_FAILED,
    )
    log.warning("%s: task %s settled as LOST: %s", job.name, task.task_id, error)


def _settle(
    job: Job, task: TaskRecord, state: TaskState, env: RunEnv, report: JobReport
) -> bool:
    """Settle a finished task's files; True if it is still running."""
    store = env.store
    now = env.now()
    if not state.finished:
        store.note_task_status(task.submission_id, state.status, state.describe())
        _check_stuck(job, task, state, env, report)
        return True
    crashpoint("before-settle")
    uncertain = changed_since_scan(job, store.carried_stats(task.job))
    if state.status == "SUCCEEDED":
        store.settle_task(task, state.status, state.describe(), None, now, uncertain)
        report.delivered_files += task.files
        report.cleared.update({Kind.TASK_FAILED, Kind.TASK_STUCK})
        report.outcome = f"task {state.task_id} delivered {task.files} files"
        log.info("%s: task %s SUCCEEDED", job.name, state.task_id)
        return False
    delivered = [
        rel
        for rel in (
            planning.relative_path(job.src_dir, p)
            for p in env.gateway().successful_sources(state.task_id)
        )
        if rel is not None
    ]
    store.settle_task(task, state.status, state.describe(), delivered, now, uncertain)
    report.delivered_files += len(delivered)
    report.cleared.add(Kind.TASK_STUCK)
    files, size = store.pending_totals(task.job)
    report.fail(
        Problem(
            job=job.name,
            kind=Kind.TASK_FAILED,
            summary=_SUMMARIES[Kind.TASK_FAILED],
            what_happened=f"Globus task {state.task_id} ended {state.describe()}.",
            what_to_do=_what_to_do(Kind.TASK_FAILED, env.settings, job),
            next_attempt="The files it did not deliver are sent again by the next run.",
            pending_files=files,
            pending_bytes=size,
        ),
        EXIT_TRANSFER_FAILED,
    )
    log.warning("%s: task %s FAILED: %s", job.name, state.task_id, state.describe())
    return False


def changed_since_scan(job: Job, rows: Iterable[StoredFile]) -> list[bytes]:
    """Carried files whose stat is no longer what the last scan recorded.

    Globus copies a file as it is when it reads it, which may be a version the
    scan never hashed; such a file must not be marked delivered.
    """
    root = os.fsencode(job.src_local_dir)
    changed = []
    for row in rows:
        try:
            st = os.lstat(os.path.join(root, row.path))
        except OSError:
            changed.append(row.path)
            continue
        seen = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        if seen != (row.size, row.mtime_ns, row.ctime_ns, row.inode):
            changed.append(row.path)
    return changed


def _check_stuck(
    job: Job, task: TaskRecord, state: TaskState, env: RunEnv, report: JobReport
) -> None:
    started = task.submitted or task.created
    limit = timedelta(hours=env.settings.task_stuck_hours)
    if env.now() - started <= limit:
        report.cleared.add(Kind.TASK_STUCK)
        return
    files, size = env.store.pending_totals(task.job)
    report.fail(
        Problem(
            job=job.name,
            kind=Kind.TASK_STUCK,
            summary=_SUMMARIES[Kind.TASK_STUCK],
            what_happened=(
                f"Globus task {state.task_id} has been {state.status} since "
                f"{started:%Y-%m-%d %H:%M %Z}: {state.describe()}."
            ),
            what_to_do=(
                "Look at the task at https://app.globus.org/activity; it may be "
                "waiting for an endpoint or a credential. Cancel it there to have "
                "the next run submit a new one."
            ),
            next_attempt="The next run checks the task again.",
            pending_files=files,
            pending_bytes=size,
        ),
        EXIT_TRANSFER_FAILED,
    )
