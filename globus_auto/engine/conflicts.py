"""Files blocked at the destination: a folder where the file goes, a file
where a folder above it must be (the source turned a file into a folder, or
the reverse, and the destination still has the old one), or a path the
destination refuses (permission denied, a name it does not take).

Why block them: Globus keeps retrying such a path (or fails the task) and the
task never ends; sent again with the others, one such file would hold every
later task. So the file is blocked (``files.blocked``, its reason starting
with Globus's code): no task carries it, the other files go in tasks of their
own, recursion is ruled out, and the user hears which path to fix and how. A
blocked file of the other type is free again once the destination no longer
has the other type there (looked at every run, a few at a time, those changed
in the source first); a refused one, after RETRY_REFUSED or once it changed
in the source (it may have been fixed: only a transfer can tell). Why not
free any file that changed: a change in the source does not change the
destination, and a file appended to every few minutes would be sent, and its
task cancelled, at every run.
Imports the datastore's records, the plan, the problems.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

from globus_auto.datastore.records import TaskRecord
from globus_auto.engine import plan as planning
from globus_auto.engine.report import JobReport, RunEnv
from globus_auto.errors import EXIT_TRANSFER_FAILED
from globus_auto.problems import SUMMARIES, Kind, Problem, what_to_do
from globus_auto.settings.model import Job
from globus_auto.text import counted, printable_name, with_rest_counted

if TYPE_CHECKING:
    from globus_auto.globus.gateway import PathFault, TaskState

log = logging.getLogger(__name__)

RECHECKED_PER_RUN = 20  # destination listings a run spends on blocked files
LOOKED_AT_PER_RUN = 10 * RECHECKED_PER_RUN  # rows read to find those
RETRY_REFUSED = timedelta(hours=1)
BLOCKED_SHOWN = 20


def path_faults(state: TaskState, env: RunEnv) -> list[PathFault]:
    """The task's error events that name a destination path no retry cures.

    PERMISSION_DENIED counts only when the task skips source errors: without
    that, it may be the source's (then :mod:`.settle` resends the files).
    """
    faults = env.gateway().path_faults(state.task_id)
    if state.skip_source_errors:
        return faults
    return [f for f in faults if f.code != "PERMISSION_DENIED"]


def retrying_in_vain(env: RunEnv) -> Callable[[TaskState], bool]:
    """For ``--wait``: whether a task polled retries a destination path that
    no waiting cures (the run then cancels it)."""

    def check(state: TaskState) -> bool:
        return bool(state.faults) and bool(path_faults(state, env))

    return check


def block_faulted(job: Job, task: TaskRecord, state: TaskState, env: RunEnv) -> bool:
    """Block the job's files that the task's error events say the destination
    cannot take as it is; True if any such event names a path of the job
    (the task retries it in vain, whether or not it still carries a file
    there: one changed since may be in no task, or in a later one)."""
    targets = fault_targets(job.dst_dir, path_faults(state, env))
    if not targets:
        return False
    blocked = env.store.block_files(task.job, targets.items(), env.now())
    for path, why in targets.items():
        log.warning("%s: %s is blocked: %s", job.name, printable_name(path), why)
    log.info("%s: %d files blocked at the destination", job.name, blocked)
    return True


def fault_targets(
    destination_dir: str, faults: Iterable[PathFault]
) -> dict[bytes, str]:
    """The job's relative paths the faults name (under ``destination_dir``),
    each with why; the files there or below it (for a file in the way of a
    folder, the folder Globus could not make) are what is blocked.

    Why not the files beside it too: an event cannot say whether it names the
    folder that could not be made or a file whose folder could not be, and
    each file that fails has an event of its own.
    """
    targets: dict[bytes, str] = {}
    for fault in faults:
        rel = planning.relative_path(destination_dir, fault.path)
        if rel is not None:
            targets.setdefault(rel, why_blocked(fault))
    return targets


def why_blocked(fault: PathFault) -> str:
    """The reason kept and shown: Globus's code first (:func:`_code`), the
    path it named, what it means."""
    if fault.code in planning.FOLDER_IN_THE_WAY:
        meaning = "the destination has a folder where this file goes"
    elif fault.code in planning.FILE_IN_THE_WAY:
        meaning = "the destination has a file where a folder of this path must be"
    else:
        meaning = "the destination refuses to write it"
    return f"{fault.code} at {fault.path}: {meaning}"


def _code(reason: str) -> str:
    return reason.split(" ", 1)[0]


def recheck_blocked(job: Job, job_id: int, env: RunEnv) -> int:
    """Free the blocked files that may now go; returns how many were freed.

    Of the other type: those whose destination path no longer is (at most
    RECHECKED_PER_RUN listed, those changed in the source first, then the
    longest blocked; those still blocked go to the back of the line).
    Refused: those blocked RETRY_REFUSED ago, or changed since.
    """
    rows = env.store.blocked_files(job_id, LOOKED_AT_PER_RUN)
    typed = [(p, why) for p, why in rows if _code(why) in planning.TYPE_CONFLICTS]
    retry_from = env.now() - RETRY_REFUSED
    freed = [
        p
        for p, why in env.store.blocked_files(job_id, LOOKED_AT_PER_RUN, retry_from)
        if _code(why) not in planning.TYPE_CONFLICTS
    ]
    still = []
    for path, why in typed[:RECHECKED_PER_RUN]:
        target = planning.collection_path(job.dst_dir, path)
        if env.gateway().type_conflict_at(job.dst_id, target, job.dst_dir):
            still.append((path, why))
        else:
            freed.append(path)
    for path in freed:
        log.info("%s: %s is no longer blocked", job.name, printable_name(path))
    env.store.unblock_files(job_id, freed)
    env.store.block_files(job_id, still, env.now())
    return len(freed)


def report_blocked(job: Job, job_id: int, env: RunEnv, report: JobReport) -> None:
    """Alert the blocked files, naming each path and the fix; clear the alert
    when none is left."""
    count = env.store.count_blocked(job_id)
    if count == 0:
        report.cleared.add(Kind.BLOCKED)
        return
    if report.outcome == "nothing to do":  # a later submit says more
        report.outcome = f"{counted(count, 'file')} blocked at the destination"
    shown = sorted(env.store.blocked_files(job_id, BLOCKED_SHOWN))
    lines = with_rest_counted(
        [f"{printable_name(path)}: {why}" for path, why in shown], count
    )
    report.fail(
        Problem(
            job=job.name,
            kind=Kind.BLOCKED,
            summary=SUMMARIES[Kind.BLOCKED],
            what_happened=f"{counted(count, 'file')} in {job.src_local_dir} cannot "
            f"be delivered to {job.dst_dir}: the destination has a folder where the "
            "file goes or a file where a folder must be (the source turned a file "
            "into a folder, or the reverse), or refuses the path. They wait; the "
            f"other files are delivered. The first: {lines[0]}\n" + "\n".join(lines),
            what_to_do=what_to_do(Kind.BLOCKED, env.settings, job),
            next_attempt="Every run looks at the destination again and sends a file "
            "once its path is free (one refused is tried again after an hour), or "
            "once it changes in the source.",
            pending_files=count,
        ),
        EXIT_TRANSFER_FAILED,
    )
