"""``globus-auto run``: scan each job's source and send what changed.

Reads the options, offers a login on a terminal when one is missing, runs the
session (:mod:`globus_auto.engine.session`) and prints its reports: nothing on
success under cron, one line per problem and its fix on failure, the files a
dry run would send. On a terminal a status line shows the progress while the
run lasts (:mod:`.progress`), and each job ends with one summary line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from globus_auto.cli.completion import job_option
from globus_auto.cli.context import CliState
from globus_auto.cli.login import offer_login, terminal_prompt
from globus_auto.cli.progress import ClearingPrompt, StatusLine
from globus_auto.engine.report import RunOptions
from globus_auto.engine.session import run_session
from globus_auto.errors import EXIT_CODES_HELP
from globus_auto.settings.source import upgrade_hint
from globus_auto.text import counted, human_bytes

if TYPE_CHECKING:
    from globus_auto.engine.report import JobReport
    from globus_auto.settings.model import Job, Settings

log = logging.getLogger("globus_auto")


@click.command(
    "run",
    epilog="Example: globus-auto run --job raw --wait --timeout 600\n\n"
    + EXIT_CODES_HELP,
)
@job_option()
@click.option(
    "--dry-run", is_flag=True, help="List what would be sent; change nothing."
)
@click.option(
    "--wait", is_flag=True, help="Wait for the submitted tasks and settle them."
)
@click.option(
    "--timeout",
    type=float,
    default=3600.0,
    show_default=True,
    help="Seconds --wait waits at most.",
)
@click.pass_obj
def run_command(
    state: CliState,
    job_names: Sequence[str] = (),
    dry_run: bool = False,
    wait: bool = False,
    timeout: float = 3600.0,
) -> None:
    """Scan each job's source and send what was added or changed."""
    settings = state.settings()
    hint = upgrade_hint(settings)
    if hint:  # before a login is offered: the old login can be taken over
        click.echo(f"globus-auto: note: {hint}", err=True)
    jobs = [settings.job(n) for n in job_names] if job_names else list(settings.jobs)
    if not dry_run:  # on a terminal, a missing login is offered first
        offer_login(settings, jobs)
    terminal = sys.stderr.isatty()
    opts = RunOptions(dry_run, wait, timeout)
    if terminal:
        reports = _run_on_terminal(settings, jobs, opts)
    else:  # cron: no status line
        prompt = None if dry_run else terminal_prompt()
        reports = run_session(settings, jobs, opts, prompt=prompt)
    code = max((r.exit_code for r in reports), default=0)
    for report in reports:
        _print_report(report, dry_run, summary=terminal or state.verbose > 0)
        if dry_run and not report.exit_code:
            _warn_unmatched_excludes(settings.job(report.job))
    if code:
        sys.exit(code)


def _run_on_terminal(
    settings: Settings, jobs: Sequence[Job], opts: RunOptions
) -> list[JobReport]:
    """The session with a status line on stderr, cleared when it ends (and
    before any log message or login prompt)."""
    line = StatusLine()
    prompt = None if opts.dry_run else terminal_prompt()
    detach = line.attach_to_logs()
    try:
        return run_session(
            settings,
            jobs,
            opts,
            prompt=None if prompt is None else ClearingPrompt(prompt, line),
            progress=line,
        )
    finally:
        line.clear()
        detach()


def _print_report(report: JobReport, dry_run: bool, *, summary: bool) -> None:
    """A job's problems (each with its fix), then with ``summary`` (on a
    terminal, or with -v) its summary line and whom its alerts went to."""
    if dry_run and not report.exit_code:
        _print_dry_run(report)
        return
    if report.exit_code:
        for problem in report.problems:
            # One line each; a problem's details (a list of files) go to the
            # mail and the log.
            happened = problem.what_happened.splitlines()[0]
            click.echo(f"globus-auto: {report.job}: {happened}", err=True)
            click.echo(
                f"globus-auto: {report.job}: to fix: {problem.what_to_do}", err=True
            )
    if not summary:
        return
    click.echo(summary_line(report))
    for where in report.alerted:  # "to a@b via host:25", "through the command x"
        click.echo(f"{report.job}: alert sent {where}")


def summary_line(report: JobReport) -> str:
    """One line for a job's run: ok or failed, then what it submitted and
    delivered, what it still has in flight from earlier runs, and what waits."""
    if report.skipped:
        return f"{report.job}: {report.outcome}"
    parts = ["ok" if not report.exit_code else f"failed (exit {report.exit_code})"]
    if report.files_sent:
        task = f" in task {report.task_id}" if report.task_id else ""
        parts.append(
            f"submitted {counted(report.files_sent, 'file')} "
            f"({human_bytes(report.bytes_sent)}){task}"
        )
    if report.delivered_files:
        parts.append(f"delivered {counted(report.delivered_files, 'file')}")
    earlier = report.in_flight_files - report.files_sent
    if earlier > 0:
        parts.append(f"{counted(earlier, 'file')} in flight in earlier tasks")
    if report.waiting_files:
        parts.append(
            f"{counted(report.waiting_files, 'file')} "
            f"({human_bytes(report.waiting_bytes)}) waiting"
        )
    if len(parts) == 1 and not report.exit_code:
        parts.append("nothing to send")
    return f"{report.job}: " + "; ".join(parts)


def _warn_unmatched_excludes(job: Job) -> None:
    """After a dry run, a warning for each EXCLUDE pattern that matched nothing."""
    if not job.exclude:
        return
    from globus_auto.engine.exclude import unmatched_patterns, unmatched_warnings

    for line in unmatched_warnings(job, unmatched_patterns(job)):
        click.echo(f"globus-auto: {job.name}: warning: {line}", err=True)


def _print_dry_run(report: JobReport) -> None:
    """Each file that would be sent and why, then the job's totals."""
    for item in report.would_send:
        shown = item.path.decode("utf-8", "backslashreplace")
        click.echo(f"{item.reason:8} {item.size:>14,}  {shown}")
    total = sum(i.size for i in report.would_send)
    count = len(report.would_send)
    new = sum(i.reason == "new" for i in report.would_send)
    click.echo(
        f"{report.job}: {counted(count, 'file')} would be sent "
        f"({new:,} new, {count - new:,} changed), {human_bytes(total)} "
        f"({counted(total, 'byte')}); dry run: nothing was sent or recorded"
    )
