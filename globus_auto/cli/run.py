"""``globus-auto run``: scan each job's source and send what changed.

Reads the options, offers a login on a terminal when one is missing, runs the
session (:mod:`globus_auto.engine.session`) and prints its reports: nothing on
success under cron, one line per problem and its fix on failure, the files a
dry run would send.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from globus_auto.cli.context import CliState
from globus_auto.cli.login import offer_login, terminal_prompt
from globus_auto.cli.progress import progress_printer
from globus_auto.engine.report import RunOptions
from globus_auto.engine.session import run_session
from globus_auto.errors import EXIT_CODES_HELP
from globus_auto.settings.source import upgrade_hint
from globus_auto.text import counted, human_bytes

if TYPE_CHECKING:
    from globus_auto.engine.report import JobReport

log = logging.getLogger("globus_auto")


@click.command(
    "run",
    epilog="Example: globus-auto run --job raw --wait --timeout 600\n\n"
    + EXIT_CODES_HELP,
)
@click.option(
    "--job", "job_names", multiple=True, metavar="NAME", help="Only this job."
)
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
    reports = run_session(
        settings,
        jobs,
        RunOptions(dry_run, wait, timeout),
        prompt=None if dry_run else terminal_prompt(),
        progress=progress_printer() if sys.stderr.isatty() else None,
    )
    code = max((r.exit_code for r in reports), default=0)
    for report in reports:
        _print_report(report, state.verbose, dry_run)
    if code:
        sys.exit(code)


def _print_report(report: JobReport, verbose: int, dry_run: bool) -> None:
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
    elif verbose:
        click.echo(f"{report.job}: {report.outcome}")


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
