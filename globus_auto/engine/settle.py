"""Settle a task: what Globus delivered, skipped or could not read, and what waits.

A task's files become delivered only when Globus reports the task SUCCEEDED,
and only those that are still the version the task was prepared with. What
Globus skipped (``skip_source_errors``) is never marked delivered: a file that
vanished is dropped by the next scan, one still there is sent again and, since
Globus could not read it, alerted. A task still ACTIVE whose error events say
a source file cannot be read would be retried by Globus until its deadline (a
day at first), holding its files: it is cancelled and its files sent again.
So is one whose events say a destination path has the other type (a folder
where a file goes, or the reverse) or is refused: the files it names are
blocked first (:mod:`.conflicts`), so that the others go in a task of their
own. An
INACTIVE task is suspended until somebody renews the credentials: alerted.
Imports the engine's report and plan, the datastore's records, the problems.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

from globus_auto.datastore.records import StoredFile, TaskRecord
from globus_auto.datastore.store import pending_or_nothing
from globus_auto.engine import plan as planning
from globus_auto.engine.conflicts import block_faulted
from globus_auto.engine.crash import crashpoint
from globus_auto.engine.report import JobReport, RunEnv
from globus_auto.errors import (
    EXIT_LOGIN_REQUIRED,
    EXIT_TRANSFER_FAILED,
    EXIT_UNEXPECTED,
)
from globus_auto.problems import SUMMARIES, Kind, Problem, what_to_do
from globus_auto.settings.model import Job
from globus_auto.text import counted, printable_name

if TYPE_CHECKING:
    from globus_auto.globus.gateway import SkippedFile, TaskState

log = logging.getLogger(__name__)

SKIPPED_SHOWN = 20
# ``tasks.globus_status`` of a task this tool asked Globus to cancel, which has
# not stopped yet (Globus answered CancelAccepted): its files stay carried
# until Globus reports it ended, and then it settles as cancelled.
CANCELLING = "CANCELLING"


def settle(
    job: Job, task: TaskRecord, state: TaskState, env: RunEnv, report: JobReport
) -> bool:
    """Bring ``task`` up to ``state``; True while it is still running."""
    if not state.finished:
        return _still_running(job, task, state, env, report)
    crashpoint("before-settle")
    skipped = _skipped(job, state, env, report)
    not_delivered = changed_since_scan(job, env.store.carried_stats(task.submission_id))
    not_delivered += skipped
    if state.status == "SUCCEEDED":
        env.store.settle_task(
            task, state.status, state.describe(), None, env.now(), not_delivered
        )
        report.delivered_files += max(0, task.files - len(skipped))
        report.cleared.update({Kind.TASK_FAILED, Kind.TASK_STUCK, Kind.TASK_INACTIVE})
        report.outcome = f"task {state.task_id} delivered {counted(task.files, 'file')}"
        log.info("%s: task %s SUCCEEDED", job.name, state.task_id)
        return False
    if state.faults:
        block_faulted(job, task, state, env)  # before its files are free again
    report.cleared.update({Kind.TASK_STUCK, Kind.TASK_INACTIVE})
    if task.globus_status == CANCELLING:  # our own cancel, logged when asked
        _settle_partly(job, task, state, env, report, not_delivered, "CANCELED")
        log.info("%s: task %s has stopped, cancelled", job.name, state.task_id)
        return False
    _settle_partly(job, task, state, env, report, not_delivered)
    files, size = env.store.pending_totals(task.job)
    report.fail(
        Problem(
            job=job.name,
            kind=Kind.TASK_FAILED,
            summary=SUMMARIES[Kind.TASK_FAILED],
            what_happened=f"Globus task {state.task_id} ended {state.describe()}.",
            what_to_do=what_to_do(Kind.TASK_FAILED, env.settings, job),
            next_attempt="The files it did not deliver are sent again by the next run.",
            pending_files=files,
            pending_bytes=size,
        ),
        EXIT_TRANSFER_FAILED,
    )
    log.warning("%s: task %s FAILED: %s", job.name, state.task_id, state.describe())
    return False


def _settle_partly(
    job: Job,
    task: TaskRecord,
    state: TaskState,
    env: RunEnv,
    report: JobReport,
    not_delivered: list[bytes],
    status: str | None = None,
) -> None:
    """Settle a task that did not succeed (``status``: how it ended, if not
    ``state``'s): what Globus lists as transferred is delivered, the rest
    waits for the next run."""
    delivered = [
        rel
        for rel in (
            planning.relative_path(job.src_dir, p)
            for p in env.gateway().successful_sources(state.task_id)
        )
        if rel is not None
    ]
    env.store.settle_task(
        task,
        status or state.status,
        state.describe(),
        delivered,
        env.now(),
        not_delivered,
    )
    report.delivered_files += len(delivered)


def _still_running(
    job: Job, task: TaskRecord, state: TaskState, env: RunEnv, report: JobReport
) -> bool:
    """A task not finished: note it; alert it suspended or stuck; True while it
    is to be waited for (False once cancelled for paths Globus would retry in
    vain: an unreadable source, a destination path of the other type; True
    while such a cancel is still under way)."""
    cancelling = task.globus_status == CANCELLING
    noted = CANCELLING if cancelling else state.status
    env.store.note_task_status(task.submission_id, noted, state.describe())
    if state.status == "INACTIVE":
        _report_inactive(job, state, env, report)
    else:
        report.cleared.add(Kind.TASK_INACTIVE)
        if state.faults and block_faulted(job, task, state, env):
            why = "the destination cannot take some of its files as it is"
            return not _cancel_retrying(job, task, state, env, report, why)
        if state.faults and _unreadable_sources(state, env):
            why = "Globus could not read some of its source files"
            return not _cancel_retrying(job, task, state, env, report, why)
    _check_stuck(job, task, state, env, report)
    return True


def _unreadable_sources(state: TaskState, env: RunEnv) -> bool:
    """True if the task's error events say a source file cannot be read.

    FILE_NOT_FOUND and AMBIGUOUS_PATH concern the source by nature;
    PERMISSION_DENIED does too when the task does not skip source errors (with
    ``skip_source_errors`` Globus would have skipped an unreadable source, so
    the fault is the destination's, which waiting may cure).
    """
    codes = set(env.gateway().source_read_errors(state.task_id))
    if not state.skip_source_errors and "PERMISSION_DENIED" in codes:
        return True
    return bool(codes & {"FILE_NOT_FOUND", "AMBIGUOUS_PATH"})


def _cancel_retrying(
    job: Job,
    task: TaskRecord,
    state: TaskState,
    env: RunEnv,
    report: JobReport,
    why: str,
) -> bool:
    """Cancel a task Globus would retry for a day (``why``: what it retries);
    True if it has stopped: its files not blocked are sent again (a vanished
    one is dropped by the next scan, as it should be). False while Globus is
    still stopping it: it stays open, noted :data:`CANCELLING`, and a later
    run settles it once Globus reports it ended. Why not free its files now:
    until then Globus may still copy them, and a second task must not carry
    the same file meanwhile."""
    crashpoint("before-settle")
    if not env.gateway().cancel(state.task_id):
        env.store.note_task_status(task.submission_id, CANCELLING, state.describe())
        report.outcome = (
            f"cancelling task {state.task_id}: {why}; its files wait until "
            "Globus has stopped it"
        )
        log.warning(
            "%s: task %s was retrying in vain (%s: %s); asked Globus to cancel "
            "it, its files wait until it has stopped",
            job.name,
            state.task_id,
            why,
            state.describe(),
        )
        return False
    not_delivered = changed_since_scan(job, env.store.carried_stats(task.submission_id))
    _settle_partly(job, task, state, env, report, not_delivered, "CANCELED")
    report.outcome = f"cancelled task {state.task_id}: {why}; the others are sent again"
    log.warning(
        "%s: task %s was retrying in vain (%s: %s); cancelled it, so that its "
        "other files are sent again",
        job.name,
        state.task_id,
        why,
        state.describe(),
    )
    return True


def _report_inactive(
    job: Job, state: TaskState, env: RunEnv, report: JobReport
) -> None:
    files, size = pending_or_nothing(env.store, job.identity)
    report.fail(
        Problem(
            job=job.name,
            kind=Kind.TASK_INACTIVE,
            summary=SUMMARIES[Kind.TASK_INACTIVE],
            what_happened=(
                f"Globus task {state.task_id} is INACTIVE: Globus suspended it "
                f"({state.describe()}) and it will not continue without "
                "intervention; Globus does this when the credentials a task runs "
                "with expire."
            ),
            what_to_do=what_to_do(Kind.TASK_INACTIVE, env.settings, job),
            next_attempt="Every run looks at the task again; once it runs again, "
            "the job carries on.",
            pending_files=files,
            pending_bytes=size,
        ),
        EXIT_LOGIN_REQUIRED,
    )


def _skipped(job: Job, state: TaskState, env: RunEnv, report: JobReport) -> list[bytes]:
    """The carried files Globus skipped (relative paths); alerts those that are
    still in the source, since Globus could not read them."""
    if not state.skipped_errors:
        report.cleared.add(Kind.SKIPPED)
        return []
    skipped = env.gateway().skipped_sources(state.task_id)
    root = os.fsencode(job.src_local_dir)
    paths, present = [], []
    for item in skipped:
        rel = planning.relative_path(job.src_dir, item.source_path)
        if rel is None:
            continue
        paths.append(rel)
        if os.path.lexists(os.path.join(root, rel)):
            present.append((rel, item))
    log.info(
        "%s: task %s skipped %d source files (%d no longer there)",
        job.name,
        state.task_id,
        len(paths),
        len(paths) - len(present),
    )
    if present:
        _report_skipped(job, state, env, report, present)
    else:
        report.cleared.add(Kind.SKIPPED)
    return paths


def _report_skipped(
    job: Job,
    state: TaskState,
    env: RunEnv,
    report: JobReport,
    present: list[tuple[bytes, SkippedFile]],
) -> None:
    lines = [
        f"{printable_name(rel)}: {item.error_code or 'skipped'}"
        for rel, item in present[:SKIPPED_SHOWN]
    ]
    if len(present) > SKIPPED_SHOWN:
        lines.append(f"... and {len(present) - SKIPPED_SHOWN} more")
    count = len(present)
    files, size = pending_or_nothing(env.store, job.identity)
    report.fail(
        Problem(
            job=job.name,
            kind=Kind.SKIPPED,
            summary=SUMMARIES[Kind.SKIPPED],
            what_happened=f"Globus task {state.task_id} skipped {count} "
            f"{'file' if count == 1 else 'files'} that are still in "
            f"{job.src_local_dir}, because it could not read them (the first: "
            f"{lines[0]}):\n" + "\n".join(lines),
            what_to_do=what_to_do(Kind.SKIPPED, env.settings, job),
            next_attempt="Every run sends them again; the rest is delivered.",
            pending_files=files,
            pending_bytes=size,
        ),
        EXIT_UNEXPECTED,
    )


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
            summary=SUMMARIES[Kind.TASK_STUCK],
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
