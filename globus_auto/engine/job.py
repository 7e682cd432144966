"""One run of one job, start to end (DESIGN.md, "One run of one job").

1. take the job's lock; 2. follow the tasks in flight; 3. scan the source;
4. stop if nothing needs sending that no task in flight carries, or if the job
has MAX_TASKS_IN_FLIGHT tasks in flight; 5. probe both collections; 6. submit
a checksum-verified, encrypted transfer of it; 7. optionally wait for the tasks
and settle them.

The Globus gateway is built lazily, on first need: a run with nothing to do
makes no network call and never imports globus-sdk. Nothing here prompts or
prints: problems become :class:`Problem` values in the :class:`JobReport`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from globus_auto.datastore.connection import disk_error, is_corruption
from globus_auto.datastore.records import Observed, TaskRecord
from globus_auto.datastore.store import pending_or_nothing
from globus_auto.engine import plan as planning
from globus_auto.engine.conflicts import (
    recheck_blocked,
    report_blocked,
    retrying_in_vain,
)
from globus_auto.engine.crash import crashpoint
from globus_auto.engine.preload import SENDING_MODULES, ModuleLoader
from globus_auto.engine.report import (
    DryRunFile,
    JobReport,
    RunEnv,
    RunOptions,
    note_backlog,
    scan_reporter,
)
from globus_auto.engine.scan import Scanner, ScanSummary, check_source
from globus_auto.engine.scouts import (
    NoScouts,
    ScoutError,
    ScoutJob,
    Scouts,
    scout_spans,
)
from globus_auto.engine.settle import settle
from globus_auto.engine.unsettled import report_unsettled
from globus_auto.engine.walk import SYMLINK_NOTE, Span, exclude_matcher
from globus_auto.engine.walk_parallel import walk_tree
from globus_auto.errors import (
    EXIT_UNEXPECTED,
    DatastoreError,
    EndpointNotReady,
    GlobusAutoError,
    SessionRequired,
)
from globus_auto.globus.sessions import remember_session_requirement
from globus_auto.lock import Locked, job_lock
from globus_auto.problems import (
    SUMMARIES,
    Kind,
    Problem,
    session_what_to_do,
    what_to_do,
)
from globus_auto.settings.model import GLOBUS_TASKS_PER_USER, Job
from globus_auto.text import counted, printable_name, with_rest_counted

if TYPE_CHECKING:
    from globus_auto.globus.gateway import Gateway

log = logging.getLogger(__name__)


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
        _report_error(job, env, report, _datastore_failure(env, exc))
    if not opts.dry_run and not report.skipped:
        note_backlog(report, env.store, job)  # for the summary line
    return report


def _datastore_failure(env: RunEnv, exc: sqlite3.DatabaseError) -> DatastoreError:
    """What a SQLite error in the middle of a job means: a full or failing
    disk (named by the state folder, also for a dry run's copy), a damaged
    page (checked at the next open), or a datastore busy or refused for a
    reason of its own; only damage is called damage."""
    disk = disk_error(exc, env.settings.state_dir)
    if disk is not None:
        return disk
    if is_corruption(exc):
        env.store.check_integrity_at_next_open()
        return DatastoreError(f"the datastore {env.store.path} is damaged: {exc}")
    return DatastoreError(
        f"the datastore {env.store.path} could not be used ({exc}); "
        "the next run tries again"
    )


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
    files, size = pending_or_nothing(env.store, job.identity)
    report.fail(
        Problem(
            job=job.name,
            kind=Kind.RUN_STUCK,
            summary=SUMMARIES[Kind.RUN_STUCK],
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
    kind, code = exc.kind, exc.exit_code
    report.outcome = "failed"
    report.detail = str(exc)
    files, size = pending_or_nothing(env.store, job.identity)
    fix = what_to_do(kind, env.settings, job)
    if isinstance(exc, SessionRequired):
        fix = session_what_to_do(env.settings)
        remember_session_requirement(env.settings, exc.collection, exc.parameters)
    report.fail(
        Problem(
            job=job.name,
            kind=kind,
            summary=SUMMARIES[kind],  # GlobusUnavailable: "Globus is busy or ..."
            what_happened=str(exc),
            what_to_do=fix,
            next_attempt="The next scheduled run will try again.",
            pending_files=files,
            pending_bytes=size,
        ),
        code,
    )


def _run_locked(job: Job, env: RunEnv, opts: RunOptions, report: JobReport) -> None:
    store = env.store
    job_id = store.job_id(job.identity, job.name, env.now())
    running: list[TaskRecord] = []
    if not opts.dry_run:
        for task in store.open_tasks(job_id):
            # Imported only to follow or submit a task: .tasks imports the
            # alert channels (smtplib, ssl, email), ~15 ms of every start.
            from globus_auto.engine import tasks

            still = tasks.follow_task(job, task, env, opts, report)
            running += [] if still is None else [still]
    scan_started = time.monotonic()  # a duration: the wall clock may jump
    report.scan = scan_job(job, job_id, env, will_send=not opts.dry_run)
    report.scan_seconds = time.monotonic() - scan_started
    report.cleared.update({Kind.SOURCE_PROBLEM, Kind.UNSENDABLE, Kind.DATASTORE})
    _report_unsendable(job, job_id, env, report)
    report_unsettled(job, job_id, env, report)
    if not opts.dry_run and store.count_blocked(job_id):
        recheck_blocked(job, job_id, env)  # lists the destination: a gateway
    report_blocked(job, job_id, env, report)
    crashpoint("after-scan")
    cutoff = _young_cutoff(job, env.now())
    if opts.dry_run:
        report.would_send = [
            DryRunFile(f.path, f.size, "new" if f.new else "changed")
            for f in store.pending_files(job_id, cutoff, free=True)
        ]
        report.outcome = (
            f"dry run: {counted(len(report.would_send), 'file')} would be sent"
        )
        return
    count, _ = store.pending_totals(job_id, cutoff, free=True)
    room = planning.room_for_tasks(
        in_flight=len(running),
        recursive_in_flight=any(task.recursive for task in running),
        job_limit=job.max_tasks_in_flight,
        config_in_flight=store.count_open_tasks(j.identity for j in env.settings.jobs),
    )
    if count == 0 or room == 0:
        _nothing_submitted(job, job_id, env, report, running, count)
        return
    probe(job, env.gateway())
    # Reaching Globus after a clean scan also shows an earlier unexpected
    # error (say, an unreadable token file) is gone.
    report.cleared.update({Kind.ENDPOINT_NOT_READY, Kind.LOGIN_REQUIRED})
    report.cleared.update({Kind.GLOBUS_UNAVAILABLE, Kind.CONFIG})
    report.cleared.add(Kind.UNEXPECTED)
    from globus_auto.engine import tasks  # see above

    new = tasks.submit_new(
        job, job_id, env, cutoff, report, room=room, in_flight=len(running)
    )
    if running:
        report.outcome += f" ({len(running) + len(new)} tasks in flight)"
    if opts.wait:
        for task in new:
            state = env.gateway().wait(
                task.task_id or "", opts.timeout, until=retrying_in_vain(env)
            )
            settle(job, task, state, env, report)


def _nothing_submitted(
    job: Job,
    job_id: int,
    env: RunEnv,
    report: JobReport,
    running: Sequence[TaskRecord],
    waiting: int,
) -> None:
    """Say why a run submits nothing: everything sent or in flight, or
    ``waiting`` files held back while the job has its limit of tasks in flight."""
    if env.store.pending_totals(job_id)[0] == 0:
        # Everything is delivered, so no failed or lost transfer is owed.
        report.cleared.add(Kind.TASK_FAILED)
    ids = ", ".join(task.task_id or "(being submitted)" for task in running)
    if waiting:
        if any(task.recursive for task in running):
            why = "a whole-directory task is in flight"
        elif len(running) >= job.max_tasks_in_flight:
            why = f"MAX_TASKS_IN_FLIGHT is {job.max_tasks_in_flight}"
        else:
            why = f"this config's jobs have {GLOBUS_TASKS_PER_USER} in flight"
        report.outcome = (
            f"{counted(waiting, 'file')} to send, held until a task ends: "
            f"{counted(len(running), 'task')} in flight ({why}): {ids}"
        )
    elif len(running) == 1:
        report.outcome = f"waiting for task {ids} to finish"
    elif running:
        report.outcome = f"waiting for {len(running)} tasks to finish: {ids}"
    elif report.outcome == "nothing to do" and report.delivered_files == 0:
        log.debug("%s: nothing to send", job.name)


UNSENDABLE_SHOWN = 20


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
    lines = with_rest_counted(
        [f"{printable_name(path)}: {why}" for path, why in shown], count
    )
    config = f"--config {env.settings.config_path}"
    report.fail(
        Problem(
            job=job.name,
            kind=Kind.UNSENDABLE,
            summary=SUMMARIES[Kind.UNSENDABLE],
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


def _young_cutoff(job: Job, now: datetime) -> int | None:
    """Files modified after this (ns since the epoch) are too young to send."""
    if job.min_age <= 0:
        return None
    return int((now.timestamp() - job.min_age) * 1e9)


def scan_job(
    job: Job, job_id: int, env: RunEnv, *, will_send: bool = True
) -> ScanSummary:
    """Scan the job's source against its rows, writing changes in batches.

    A big job is scanned by scouts (:mod:`.scouts`, one process per core);
    then, with ``will_send``, the modules sending needs are loaded in a thread
    from the first change on, while the scouts walk.
    """
    store = env.store
    root = os.fsencode(job.src_local_dir)
    check_source(
        root,
        lambda: store.count_files(job_id),  # counted only if empty
        f"globus-auto --config {env.settings.config_path} reset --job {job.name}",
    )
    scanned_at = env.now()

    def sink(observed: Sequence[Observed], gone: Sequence[bytes]) -> None:
        store.apply_scan_batch(job_id, observed, gone, scanned_at)
        crashpoint("during-scan")

    progress = scan_reporter(env, job.name, lambda: store.count_files(job_id))
    threads = env.settings.scan_threads
    excluded = exclude_matcher(job.exclude)
    with contextlib.closing(store.reader()) as reader:
        spans = scout_spans(store, job_id, threads, reader)
    summary = None
    if spans:
        each = max(1, threads // len(spans))
        scouting = ScoutJob(store, job_id, root, excluded, each)
        scanner = Scanner(root, sink, workers=threads, progress=progress)
        summary = _scan_by_scouts(scouting, spans, scanner, will_send)
    if summary is None:
        scanner = Scanner(root, sink, workers=threads, progress=progress)
        with contextlib.closing(store.reader()) as reader:
            reader.execute("BEGIN")  # one snapshot for the whole merge
            summary = scanner.run(
                walk_tree(root, excluded, threads), store.iter_stored(job_id, reader)
            )
            reader.execute("COMMIT")
    if progress is not None:
        progress.finished(summary)
    store.end_scan(job_id, scanned_at)  # what it saw unchanged stopped changing
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


def _scan_by_scouts(
    job: ScoutJob, spans: Sequence[Span], scanner: Scanner, will_send: bool
) -> ScanSummary | None:
    """The scan of ``spans`` by scouts, the changes they find acted on here;
    None if no scout could start or one failed, and the scan is then made in
    this process. Nothing is lost by that: what the scouts sent and was
    written by then are batches like any other, and the scan in one process
    finds whatever is left, from a snapshot taken after them."""
    loader = ModuleLoader(SENDING_MODULES)
    try:
        with Scouts(job) as scouts:
            try:
                scouts.start(spans)  # no other connection to the datastore is open
            except NoScouts as exc:
                log.info("scanning in one process: no scan process started (%s)", exc)
                return None
            if will_send:
                scanner.on_change = loader.start
            try:
                return scanner.consume(scouts.pairs(scanner.count))
            except ScoutError as exc:
                log.warning("%s; scanning in one process instead", exc)
                return None
    finally:
        loader.join()  # before this thread imports any of them itself


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
