"""Files that never settle: changed at every scan for a day, so never sent
(``MIN_AGE`` holds them back) or sent and outdated again by the next scan.

Why a day: a file written for a few hours (a long acquisition, a large copy)
settles by itself and is then sent; one still changing at every run a day
later is a live log or a stuck writer, and its destination copy is missing or
behind until a person acts. The datastore tells which files change at every
scan (:mod:`globus_auto.datastore.changing`); this module alerts them.
"""

from __future__ import annotations

from datetime import timedelta

from globus_auto.engine.report import JobReport, RunEnv
from globus_auto.errors import EXIT_UNEXPECTED
from globus_auto.problems import SUMMARIES, Kind, Problem, what_to_do
from globus_auto.settings.model import Job
from globus_auto.text import counted, printable_name, with_rest_counted

SETTLE_WITHIN = timedelta(days=1)
SHOWN = 20


def report_unsettled(job: Job, job_id: int, env: RunEnv, report: JobReport) -> None:
    """Alert the files of ``job`` that have changed at every scan for
    SETTLE_WITHIN or longer, naming them (once, as every alert: the policy
    repeats it at most every ALERT_REPEAT_HOURS); clear the alert when none
    is left. The run ends with exit 1 (files that cannot be sent)."""
    now = env.now()
    since = now - SETTLE_WITHIN
    count, size = env.store.count_changing_since(job_id, since)
    if count == 0:
        report.cleared.add(Kind.UNSETTLED)
        return
    shown = env.store.changing_files(job_id, since, SHOWN)
    lines = with_rest_counted(
        [
            f"{printable_name(path)}: changing since {when:%Y-%m-%d %H:%M} UTC"
            for path, when in shown
        ],
        count,
    )
    report.fail(
        Problem(
            job=job.name,
            kind=Kind.UNSETTLED,
            summary=SUMMARIES[Kind.UNSETTLED],
            what_happened=f"{counted(count, 'file')} in {job.src_local_dir} changed "
            "at every run for more than a day; the destination has no up-to-date "
            f"copy (the first: {lines[0]}):\n" + "\n".join(lines),
            what_to_do=what_to_do(Kind.UNSETTLED, env.settings, job),
            next_attempt="Every run looks at them again and sends each once it "
            "settles.",
            pending_files=count,
            pending_bytes=size,
        ),
        EXIT_UNEXPECTED,
    )
