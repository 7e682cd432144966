"""What one run of one job tells its caller: the options it ran with, its
report, and the progress events a terminal shows while it runs.

Plain values. The command line prints a :class:`JobReport`; the alerts read its
problems and the kinds it verified to be fine. Progress goes out as
:class:`ScanProgress` and :class:`TaskProgress` events to one callback (the
terminal's status line; None under cron, and then nothing is even counted).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from globus_auto.datastore.store import Datastore
from globus_auto.engine.scan import ScanSummary
from globus_auto.errors import (
    EXIT_OK,
)
from globus_auto.problems import Kind, Problem
from globus_auto.settings.model import Settings

if TYPE_CHECKING:
    from globus_auto.globus.gateway import Gateway, TaskState
    from globus_auto.settings.model import Job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanProgress:
    """How far one job's scan has come.

    ``expected_files``: the files the datastore tracked before this scan, the
    likely total (0 on a first run: unknown); ``done`` on the last event.
    """

    job: str
    summary: ScanSummary
    expected_files: int
    done: bool = False


@dataclass(frozen=True)
class TaskProgress:
    """A task ``--wait`` is waiting for, as Globus last described it."""

    task_id: str
    status: str
    files: int
    files_transferred: int
    bytes_transferred: int


ProgressEvent = ScanProgress | TaskProgress
RunProgress = Callable[[ProgressEvent], None]


class ScanReporter:
    """The scanner's progress callback for one job: each summary it passes
    becomes a :class:`ScanProgress` event; :meth:`finished` sends the last."""

    def __init__(self, sink: RunProgress, job: str, expected_files: int) -> None:
        self.sink = sink
        self.job = job
        self.expected_files = expected_files

    def __call__(self, summary: ScanSummary) -> None:
        self.sink(ScanProgress(self.job, summary, self.expected_files))

    def finished(self, summary: ScanSummary) -> None:
        self.sink(ScanProgress(self.job, summary, self.expected_files, done=True))


def scan_reporter(
    env: RunEnv, job: str, expected_files: Callable[[], int]
) -> ScanReporter | None:
    """The progress callback for ``job``'s scan, or None without a terminal
    (``expected_files`` is then not even counted)."""
    if env.progress is None:
        return None
    return ScanReporter(env.progress, job, expected_files())


def task_reporter(sink: RunProgress) -> Callable[[TaskState], None]:
    """A gateway's poll callback: each state it polls becomes a TaskProgress."""

    def report(state: TaskState) -> None:
        sink(
            TaskProgress(
                state.task_id,
                state.status,
                state.files,
                state.files_transferred,
                state.bytes_transferred,
            )
        )

    return report


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
    progress: RunProgress | None = None
    _gateway: Gateway | None = None

    def gateway(self) -> Gateway:
        """The gateway, built on first use; its polls go to ``progress``."""
        if self._gateway is None:
            self._gateway = self.gateway_factory()
            if self.progress is not None:
                self._gateway.on_poll = task_reporter(self.progress)
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
    scan_seconds: float | None = None  # how long the scan took (the metrics)
    problems: list[Problem] = field(default_factory=list)
    cleared: set[Kind] = field(default_factory=set)
    skipped: bool = False  # another run holds the lock: it reports the outcome
    would_send: list[DryRunFile] = field(default_factory=list)
    # After the run, for its summary line: files carried by tasks still in
    # flight, and files not delivered that no task carries (too young, or
    # held back while tasks are in flight or the job failed).
    in_flight_files: int = 0
    waiting_files: int = 0
    waiting_bytes: int = 0
    alerted: list[str] = field(default_factory=list)  # where alerts went

    def fail(self, problem: Problem, exit_code: int) -> None:
        self.problems.append(problem)
        self.exit_code = max(self.exit_code, exit_code)


def note_backlog(report: JobReport, store: Datastore, job: Job) -> None:
    """Fill ``report``'s in-flight and waiting counts; never raises.

    Why never raising: the counts only feed the summary line, and the
    datastore may itself be the problem the run reports.
    """
    try:
        job_id = store.existing_job_id(job.identity)
        if job_id is None:
            return
        in_flight = sum(t.files for t in store.open_tasks(job_id))
        waiting, size = store.pending_totals(job_id, free=True)
        waiting += store.count_changing(job_id)[1]  # changed while read: no digest
    except Exception as exc:
        log.debug("could not count the files waiting: %s", exc)
        return
    report.in_flight_files = in_flight
    report.waiting_files, report.waiting_bytes = waiting, size
