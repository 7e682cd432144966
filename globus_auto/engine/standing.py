"""Where one job stands, as the datastore knows it: what ``status`` shows and
the metrics file exports.

Why one gatherer: ``status --json`` and the Prometheus file must never tell two
stories, so both read these values through :func:`job_standing` and nothing
else. Reads only (no network, no writes). Imports the datastore and the alert
records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from globus_auto.alerts.store import open_alerts

if TYPE_CHECKING:
    from globus_auto.alerts.policy import AlertRecord
    from globus_auto.alerts.store import AlertStore
    from globus_auto.datastore.records import RunRecord, TaskRecord
    from globus_auto.datastore.store import Datastore
    from globus_auto.settings.model import Job


@dataclass(frozen=True)
class JobStanding:
    """One job's numbers; ``job_id`` None means the job never ran."""

    job_id: int | None = None
    tracked_files: int = 0
    waiting_files: int = 0
    waiting_bytes: int = 0
    tasks_in_flight: tuple[TaskRecord, ...] = ()
    last_run: RunRecord | None = None
    last_delivery: datetime | None = None
    alerts: tuple[AlertRecord, ...] = ()
    problem_files: int = 0
    blocked_files: int = 0  # held out of every task (engine/conflicts.py)
    changing_files: int = 0  # changed at every scan lately (engine/unsettled.py)


def job_standing(store: Datastore | None, job: Job) -> JobStanding:
    """What ``store`` (None: no datastore yet) says of ``job`` now."""
    if store is None:
        return JobStanding()
    job_id = store.existing_job_id(job.identity)
    runs = store.last_runs(job.name, 1)
    standing = JobStanding(
        last_run=runs[0] if runs else None, alerts=unresolved_alerts(store, job.name)
    )
    if job_id is None:
        return standing
    waiting_files, waiting_bytes = store.pending_totals(job_id)
    # A file that changed while it was read has no digest, so it is not
    # pending; it is waiting all the same.
    changing, unread = store.count_changing(job_id)
    return JobStanding(
        job_id=job_id,
        tracked_files=store.count_files(job_id),
        waiting_files=waiting_files + unread,
        waiting_bytes=waiting_bytes,
        tasks_in_flight=tuple(store.open_tasks(job_id)),
        last_run=standing.last_run,
        last_delivery=store.last_delivery(job_id),
        alerts=standing.alerts,
        problem_files=store.count_problems(job_id),
        blocked_files=store.count_blocked(job_id),
        changing_files=changing,
    )


def unresolved_alerts(store: AlertStore, job: str) -> tuple[AlertRecord, ...]:
    """The job's open alerts, less those found fixed (only their "resolved"
    notice is still to go out)."""
    return tuple(r for r in open_alerts(store, job) if r.resolved_at is None)
