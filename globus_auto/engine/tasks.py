"""The tasks of a job: submit one, follow one in flight (settling: :mod:`.settle`).

The state model's two phases live here: a task is recorded (with its
submission id and the files it carries) before the submit call, and its files
become delivered only when Globus reports it SUCCEEDED. A run that dies
between the two resubmits with the same id, so Globus never sees a second
task.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from itertools import islice
from typing import TYPE_CHECKING

from globus_auto.datastore.records import PREPARING, PendingFile, TaskRecord
from globus_auto.engine import plan as planning
from globus_auto.engine.crash import crashpoint
from globus_auto.engine.report import JobReport, RunEnv, RunOptions
from globus_auto.engine.settle import settle
from globus_auto.engine.walk import SYMLINK_NOTE
from globus_auto.errors import (
    EXIT_TRANSFER_FAILED,
    TaskUnknown,
    TransferFailed,
)
from globus_auto.problems import Kind, Problem
from globus_auto.settings.model import Job, Settings

if TYPE_CHECKING:
    from globus_auto.globus.gateway import Gateway

log = logging.getLogger(__name__)


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
        plan = _directory_plan(job, env.settings, count, size)
        task = store.prepare_task(
            job_id, submission_id, recursive=True, files=None, now=env.now()
        )
    else:
        files = list(
            islice(store.pending_files(job_id, cutoff), planning.MAX_ITEMS_PER_TASK)
        )
        plan = _file_plan(job, env.settings, files)
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


def _mails(job: Job, settings: Settings) -> planning.GlobusMails:
    return planning.globus_mails(
        settings.globus_mails, bool(settings.recipients_for(job.name))
    )


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
            plan = _directory_plan(job, env.settings, task.files, task.bytes)
        else:
            plan = _file_plan(job, env.settings, env.store.carried_files(task.job))
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
    return settle(job, task, state, env, report)


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
