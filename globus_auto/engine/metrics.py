"""``METRICS_FILE``: a Prometheus textfile-collector file, rewritten after every run.

Per job: when it last ran and last succeeded, the last delivery, its exit code,
files and bytes waiting, files tracked and not sendable, tasks in flight, open
alerts by kind, and the last scan's duration and file count. node_exporter's
textfile collector serves the file; the README shows the setup.

What the datastore knows comes from :mod:`.standing`, the very gatherer
``status`` uses, so the two never disagree. What only a run knows (its exit
code, its scan, whether it succeeded) comes from this session's reports; for a
job this session did not run (``run --job``, a run skipped for the lock) it is
carried over from the file as it was, so one cron line per job keeps every job's
values. The file is written by the official ``prometheus-client``, imported only
when ``METRICS_FILE`` is set (a run without it pays nothing), atomically and
world-readable (0644, whatever cron's ``umask 077``): node_exporter runs as its
own user, and the file holds counts and job names, never a secret. Writing it
never fails the run: a problem is a warning in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from globus_auto.engine.standing import JobStanding, job_standing
from globus_auto.files import replace_file
from globus_auto.problems import Kind

if TYPE_CHECKING:
    from globus_auto.datastore.store import Datastore
    from globus_auto.engine.report import JobReport
    from globus_auto.settings.model import Settings

log = logging.getLogger(__name__)

PREFIX = "globus_auto_"
# Not "job": Prometheus gives every scraped series a `job` label of its own
# (the scrape job), and would rename ours to `exported_job`.
JOB_LABEL = "job_name"
FILE_MODE = 0o644

# What only a run knows: the name (less PREFIX) and its help.
RUN_FACTS = {
    "last_exit_code": "Exit code of the job's last run (0: fine; see the README).",
    "last_success_timestamp_seconds": "When the job's last run with exit code 0 "
    "ended (Unix time).",
    "scan_duration_seconds": "How long the job's last scan of its source took.",
    "scanned_files": "Files the job's last scan saw in its source.",
}
# What the datastore knows, as `status --json` shows it.
STANDING_HELP = {
    "last_run_timestamp_seconds": "When the job's last recorded run ended "
    "(Unix time; status: last_run.finished).",
    "last_delivery_timestamp_seconds": "When Globus last delivered files of the "
    "job (Unix time; status: last_delivery).",
    "tracked_files": "Files of the job's source the datastore tracks.",
    "waiting_files": "Files not yet delivered (status: waiting_files).",
    "waiting_bytes": "Bytes not yet delivered (status: waiting_bytes).",
    "tasks_in_flight": "Globus tasks of the job not yet finished.",
    "problem_files": "Files that cannot be read or sent (status: problem_files).",
    "blocked_files": "Files waiting for a path to be fixed at the destination "
    "(status: blocked_files).",
}
ALERTS_NAME = "open_alerts"
ALERTS_HELP = "Open alerts of the job by kind (1: open, 0: none)."


@dataclass(frozen=True)
class Sample:
    """One value of one metric (``name`` less PREFIX) for one job.

    ``job`` is the globus-auto job, written as the label JOB_LABEL."""

    name: str
    job: str
    value: float
    kind: str | None = None  # the alert kind, for open_alerts only


def write_metrics(
    settings: Settings,
    store: Datastore | None,
    reports: Sequence[JobReport],
    now: datetime,
) -> None:
    """Rewrite METRICS_FILE (when set) from ``store`` and this run's ``reports``.

    ``store`` None (the datastore could not be opened) writes the run's facts
    only. Jobs no longer in the config are left out. Never raises: a failure
    is logged as a warning, and the run's outcome stands.
    """
    path = settings.metrics_file
    if path is None:
        return
    try:
        known = {job.name for job in settings.jobs}
        carried = [s for s in read_run_facts(path) if s.job in known]
        samples = list(run_samples(reports, carried, now))
        if store is not None:
            for job in settings.jobs:
                samples += standing_samples(job.name, job_standing(store, job))
        replace_file(path, exposition(samples), FILE_MODE)
    except OSError as exc:
        log.warning(
            "METRICS_FILE: could not write %s: %s; check that its folder exists "
            "and this user may write there",
            path,
            exc,
        )
    except Exception as exc:  # e.g. a damaged datastore: the run has said so
        log.warning("METRICS_FILE: could not write %s: %s", path, exc, exc_info=True)


def run_samples(
    reports: Sequence[JobReport], carried: Sequence[Sample], now: datetime
) -> Iterator[Sample]:
    """The run facts: this run's for the jobs it ran, the file's for the others."""
    fresh: dict[tuple[str, str], float] = {}
    for report in reports:
        if report.skipped:  # the run holding the lock reports its own
            continue
        fresh[("last_exit_code", report.job)] = report.exit_code
        if report.exit_code == 0:
            fresh[("last_success_timestamp_seconds", report.job)] = now.timestamp()
        if report.scan is not None:
            fresh[("scanned_files", report.job)] = report.scan.files
            if report.scan_seconds is not None:
                fresh[("scan_duration_seconds", report.job)] = report.scan_seconds
    merged = {(s.name, s.job): s.value for s in carried if s.name in RUN_FACTS}
    merged.update(fresh)
    for (name, job), value in sorted(merged.items()):
        yield Sample(name, job, value)


def standing_samples(job: str, standing: JobStanding) -> list[Sample]:
    """The datastore's numbers for ``job``, as ``status --json`` shows them."""
    values: dict[str, float | None] = {
        "last_run_timestamp_seconds": None
        if standing.last_run is None
        else standing.last_run.finished.timestamp(),
        "last_delivery_timestamp_seconds": None
        if standing.last_delivery is None
        else standing.last_delivery.timestamp(),
        "tracked_files": standing.tracked_files,
        "waiting_files": standing.waiting_files,
        "waiting_bytes": standing.waiting_bytes,
        "tasks_in_flight": len(standing.tasks_in_flight),
        "problem_files": standing.problem_files,
        "blocked_files": standing.blocked_files,
    }
    samples = [Sample(n, job, v) for n, v in values.items() if v is not None]
    open_kinds = {record.kind for record in standing.alerts}
    samples += [
        Sample(ALERTS_NAME, job, float(kind in open_kinds), kind.value) for kind in Kind
    ]
    return samples


def exposition(samples: Sequence[Sample]) -> bytes:
    """The samples in Prometheus's text format, by ``prometheus-client`` itself."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector

    helps = {**RUN_FACTS, **STANDING_HELP, ALERTS_NAME: ALERTS_HELP}
    families: dict[str, GaugeMetricFamily] = {}
    for sample in samples:
        family = families.get(sample.name)
        if family is None:
            labels = [JOB_LABEL] if sample.kind is None else [JOB_LABEL, "kind"]
            family = GaugeMetricFamily(
                PREFIX + sample.name, helps[sample.name], labels=labels
            )
            families[sample.name] = family
        labels = [sample.job] if sample.kind is None else [sample.job, sample.kind]
        family.add_metric(labels, sample.value)

    class Collected(Collector):
        def collect(self) -> Iterator[GaugeMetricFamily]:
            yield from families.values()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collected())
    return generate_latest(registry)


def read_run_facts(path: Path) -> list[Sample]:
    """The run facts in the file as it is (none if it is missing or unreadable)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("METRICS_FILE: ignoring the unreadable %s: %s", path, exc)
        return []
    found = []
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name = sample.name.removeprefix(PREFIX)
                job = sample.labels.get(JOB_LABEL)
                if name in RUN_FACTS and job is not None:
                    found.append(Sample(name, job, sample.value))
    except ValueError as exc:  # not written by us, or damaged: start afresh
        log.warning("METRICS_FILE: ignoring what %s held: %s", path, exc)
        return []
    return found
