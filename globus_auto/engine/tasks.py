"""The tasks of a job: submit new ones, follow those in flight (settling:
:mod:`.settle`).

The state model's two phases live here: a task is recorded (with its
submission id and the files it carries) before the submit call, and its files
become delivered only when Globus reports it SUCCEEDED. A run that dies
between the two resubmits with the same id, so Globus never sees a second
task. Several tasks of a job may be in flight (up to MAX_TASKS_IN_FLIGHT);
each carries only files no other open task carries, so two versions of one
file never race, and each settles its own files, in whatever order they end.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from globus_auto.alerts.channels import registry as channel_registry
from globus_auto.datastore.records import PREPARING, PendingFile, TaskRecord
from globus_auto.engine import plan as planning
from globus_auto.engine.conflicts import retrying_in_vain
from globus_auto.engine.crash import crashpoint
from globus_auto.engine.report import JobReport, RunEnv, RunOptions
from globus_auto.engine.settle import settle
from globus_auto.engine.walk import SYMLINK_NOTE
from globus_auto.errors import (
    EXIT_TRANSFER_FAILED,
    DocumentTooLarge,
    TaskUnknown,
    TransferFailed,
)
from globus_auto.problems import Kind, Problem
from globus_auto.settings.model import Job, Settings
from globus_auto.text import counted

if TYPE_CHECKING:
    from globus_auto.globus.gateway import Gateway

log = logging.getLogger(__name__)


def submit_new(
    job: Job,
    job_id: int,
    env: RunEnv,
    cutoff: int | None,
    report: JobReport,
    *,
    room: int,
    in_flight: int,
) -> list[TaskRecord]:
    """Record, then submit, up to ``room`` new tasks of what needs sending and
    no task in flight carries (``in_flight``: the job's tasks still running).

    Usually one task takes it all; a backlog of more files than one document
    holds goes in several. A recursive task carries everything, so it is only
    chosen when it is the job's only task, and nothing follows it.
    """
    gateway = env.gateway()
    submitted: list[TaskRecord] = []
    while (
        len(submitted) < room and env.store.pending_totals(job_id, cutoff, free=True)[0]
    ):
        alone = in_flight == 0 and not submitted
        task = submit(job, job_id, env, gateway, cutoff, report, alone=alone)
        submitted.append(task)
        if task.recursive:
            break
    return submitted


def submit(
    job: Job,
    job_id: int,
    env: RunEnv,
    gateway: Gateway,
    cutoff: int | None,
    report: JobReport,
    *,
    alone: bool = True,
    max_items: int | None = None,
) -> TaskRecord:
    """Record, then submit, one transfer of what needs sending and no open
    task carries; the whole directory only when ``alone`` (no other task of
    the job in flight) and many files changed, else a list of at most
    ``max_items`` files (None: MAX_ITEMS_PER_TASK) in a document of bounded size.

    Why split a list refused for its size (:class:`DocumentTooLarge`):
    resubmitting it unchanged would be refused every run and nothing would
    ever be delivered; its first half goes at once, under a new submission id
    (the refused one is settled REFUSED). Any other refusal (a collection's
    502 ExternalError, say) is no reason to split: it is raised, and the next
    run sends the same files again."""
    recursive = alone and _recursion_fits(job, job_id, env, cutoff)
    submission_id = gateway.new_submission_id()
    crashpoint("after-submission-id")
    task, plan = _prepare(job, job_id, env, submission_id, cutoff, recursive, max_items)
    crashpoint("before-submit")
    try:
        return _submit_recorded(job, task, plan, env, gateway, report)
    except DocumentTooLarge as exc:
        if task.recursive or task.files <= planning.SPLIT_REFUSED_ABOVE:
            raise
        half = task.files // 2
        log.warning(
            "%s: Globus refused a list of %d files (%s); sending the first %d now",
            job.name,
            task.files,
            exc,
            half,
        )
    return submit(
        job, job_id, env, gateway, cutoff, report, alone=False, max_items=half
    )


def _recursion_fits(job: Job, job_id: int, env: RunEnv, cutoff: int | None) -> bool:
    """Whether one recursive task should carry it all: many files to send,
    none held back (too young, unsendable, blocked at the destination) and
    exclusions filter rules express."""
    store = env.store
    count, _ = store.pending_totals(job_id, cutoff, free=True)
    young = store.pending_totals(job_id, free=True)[0] - count
    problems = store.count_problems(job_id, besides=SYMLINK_NOTE)
    problems += store.count_blocked(job_id)
    allowed = planning.may_recurse(job.exclude, young, problems)
    return planning.choose_mode(count, job.recursive_threshold, allowed) == "directory"


def _prepare(
    job: Job,
    job_id: int,
    env: RunEnv,
    submission_id: str,
    cutoff: int | None,
    recursive: bool,
    max_items: int | None,
) -> tuple[TaskRecord, planning.TransferPlan]:
    """Record the task (the files it carries) and build its document from
    what the datastore links to it, as a resubmission after a crash does."""
    store = env.store
    if recursive:
        task = store.prepare_task(
            job_id, submission_id, recursive=True, files=None, now=env.now()
        )
        return task, _directory_plan(job, env.settings, task.files, task.bytes)
    files = planning.within_document(
        store.pending_files(job_id, cutoff, free=True),
        job.src_dir,
        job.dst_dir,
        max_items=max_items,
    )
    task = store.prepare_task(
        job_id, submission_id, recursive=False, files=files, now=env.now()
    )
    return task, _file_plan(job, env.settings, store.carried_files(submission_id))


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
    report.outcome = f"submitted task {task_id}: {counted(plan.count, 'file')}"
    log.info(
        "%s: submitted task %s (%d files, %d bytes%s)",
        job.name,
        task_id,
        plan.count,
        plan.bytes,
        ", whole directory" if plan.recursive else "",
    )
    return replace(task, task_id=task_id, state="submitted")


def _mails(job: Job, settings: Settings) -> planning.GlobusMails:
    # Why: any channel of ours (mail, NOTIFY_URLS, ON_ALERT_COMMAND) tells
    # somebody of a failed task; only without one is Globus's own mail needed.
    alerted = bool(channel_registry.channels_for(settings, job.name))
    return planning.globus_mails(settings.globus_mails, alerted)


def _file_plan(
    job: Job, settings: Settings, files: list[PendingFile]
) -> planning.TransferPlan:
    return planning.file_plan(
        job_name=job.name,
        source_id=job.src_id,
        source_dir=job.src_dir,
        destination_id=job.dst_id,
        destination_dir=job.dst_dir,
        files=files,
        mails=_mails(job, settings),
    )


def _directory_plan(
    job: Job, settings: Settings, count: int, size: int
) -> planning.TransferPlan:
    return planning.directory_plan(
        job_name=job.name,
        source_id=job.src_id,
        source_dir=job.src_dir,
        destination_id=job.dst_id,
        destination_dir=job.dst_dir,
        count=count,
        size=size,
        exclude=job.exclude,
        mails=_mails(job, settings),
    )


def follow_task(
    job: Job, task: TaskRecord, env: RunEnv, opts: RunOptions, report: JobReport
) -> TaskRecord | None:
    """Bring an earlier task up to date (waiting for it with ``--wait``).

    Returns the task (with its task id) while it is still running, else None.
    """
    gateway = env.gateway()
    if task.state == PREPARING:
        # The run that recorded it died around the submit call: submitting the
        # same document under the same id either starts it or, if Globus has it
        # already, returns the existing task (code Duplicate). Never twice.
        if task.recursive:
            plan = _directory_plan(job, env.settings, task.files, task.bytes)
        else:
            plan = _file_plan(
                job, env.settings, env.store.carried_files(task.submission_id)
            )
        task = _submit_recorded(job, task, plan, env, gateway, report)
    try:
        if opts.wait:
            state = gateway.wait(
                task.task_id or "", opts.timeout, until=retrying_in_vain(env)
            )
        else:
            state = gateway.task(task.task_id or "")
    except TaskUnknown as exc:
        _settle_lost(job, task, exc, env, report)
        return None
    report.task_id = task.task_id
    return task if settle(job, task, state, env, report) else None


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
            what_happened=f"{error}. Whether its {counted(task.files, 'file')} "
            "arrived cannot be known, so they are sent again.",
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
