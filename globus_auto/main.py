"""The ``globus-auto`` command line (also ``python -m globus_auto``).

Commands are thin: they load the settings, open the datastore and call the
runner or a module that holds the logic. Errors reach one handler that prints
one line saying what to do and exits with the documented code.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from globus_auto import __version__
from globus_auto.errors import (
    EXIT_CODES_HELP,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    ConfigError,
    DatastoreError,
    GlobusAutoError,
)
from globus_auto.logs import FILE_ONLY

if TYPE_CHECKING:
    from globus_auto.alerts import Problem
    from globus_auto.datastore import Datastore
    from globus_auto.globus import Gateway
    from globus_auto.runner import JobReport
    from globus_auto.settings import Settings

log = logging.getLogger("globus_auto")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class CliState:
    config_option: str | None
    verbose: int

    def settings(self) -> Settings:
        from globus_auto.settings import load_settings, resolve_config_path

        path = resolve_config_path(self.config_option, os.environ)
        return load_settings(path)


# Commands living in their own modules, imported only when invoked (or listed
# by --help), so that `globus-auto run` never pays for the others.
LAZY_COMMANDS = {
    "status": "globus_auto.status:status_command",
    "check": "globus_auto.check:check_command",
    "cron": "globus_auto.cron:cron_command",
    "init": "globus_auto.init_config:init_command",
    "emulator": "globus_auto.emulator.cli:emulator_command",
}


class Command(click.Group):
    """The group: lazily loaded commands and one top-level handler for errors."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = target.split(":")
        module = importlib.import_module(module_name)
        command = getattr(module, attribute)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GlobusAutoError as exc:
            _fail(ctx, str(exc), exc.exit_code, exc)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            _fail(ctx, "interrupted; the next run carries on safely", 130, None)
        except Exception as exc:
            log.error("unexpected error", exc_info=True, extra=FILE_ONLY)
            _fail(
                ctx,
                f"unexpected error: {type(exc).__name__}: {exc} "
                "(run with -vv for the traceback; details are in the log)",
                EXIT_UNEXPECTED,
                exc,
            )


def _fail(
    ctx: click.Context, message: str, code: int, exc: BaseException | None
) -> None:
    state = ctx.find_object(CliState)
    if exc is not None and state is not None and state.verbose >= 2:
        traceback.print_exception(exc, file=sys.stderr)
    click.echo(f"globus-auto: error: {message}", err=True)
    ctx.exit(code)


@click.group(
    cls=Command,
    invoke_without_command=True,
    epilog=EXIT_CODES_HELP
    + "\n\nExample: globus-auto --config ~/.config/globus_auto/config.py run -v",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    "config_option",
    metavar="PATH",
    help="The config.py to use (else $GLOBUS_AUTO_CONFIG, else the user's config "
    "folder).",
)
@click.option("-v", "--verbose", count=True, help="-v: a line per job; -vv: details.")
@click.version_option(__version__, prog_name="globus-auto")
@click.pass_context
def cli(ctx: click.Context, config_option: str | None, verbose: int) -> None:
    """Keep a directory on one Globus collection a superset of another.

    Without a command, runs every job once (the same as `globus-auto run`).
    """
    from globus_auto.logs import setup_console

    ctx.obj = CliState(config_option, verbose)
    setup_console(verbose)
    if ctx.invoked_subcommand is None:
        ctx.invoke(run)


@contextmanager
def open_store(
    settings: Settings, deferred: list[Problem] | None = None
) -> Iterator[Datastore]:
    """The datastore; a corrupt one is moved aside, alerted, and started afresh.

    With ``deferred``, the alert's problems are appended there for the caller
    to report with the run's own, instead of being mailed at once.
    """
    from globus_auto.alerting import corrupt_problems, process_alerts
    from globus_auto.datastore import CorruptDatastore, move_aside, open_datastore

    try:
        store = open_datastore(settings.state_dir, utcnow())
    except CorruptDatastore as exc:
        aside = move_aside(exc.file, utcnow())
        log.error(
            "%s; moved it to %s and started afresh (a checksum sync follows, "
            "which is safe: the destination is a superset)",
            exc,
            aside,
        )
        store = open_datastore(settings.state_dir, utcnow())
        problems = corrupt_problems(settings, str(exc), aside)
        if deferred is None:
            process_alerts(settings, store, [], utcnow(), problems)
        else:
            deferred.extend(problems)
    try:
        yield store
    finally:
        store.close()


def gateway_factory(settings: Settings, interactive: bool | None) -> Gateway:
    """Build the Transfer gateway (imports globus-sdk only now).

    ``interactive`` None means: whether stdin is a terminal. It is decided here,
    not by the caller, because ``globus_auto.auth`` imports globus-sdk and a run
    with nothing to send must not pay for that import.
    """
    from globus_auto import auth

    if interactive is None:
        interactive = auth.is_interactive()
    return auth.connect(settings, interactive)


@cli.command(epilog="Example: globus-auto run --job raw --wait --timeout 600")
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
def run(
    state: CliState,
    job_names: Sequence[str] = (),
    dry_run: bool = False,
    wait: bool = False,
    timeout: float = 3600.0,
) -> None:
    """Scan each job's source and send what was added or changed."""
    from globus_auto.runner import RunOptions

    settings = state.settings()
    jobs = [settings.job(n) for n in job_names] if job_names else list(settings.jobs)
    reports = execute(settings, jobs, RunOptions(dry_run, wait, timeout), state.verbose)
    code = max((r.exit_code for r in reports), default=0)
    for report in reports:
        _print_report(report, state.verbose, dry_run)
    if code:
        sys.exit(code)


def execute(
    settings: Settings,
    jobs: Sequence[Any],
    opts: Any,
    verbose: int = 0,
    interactive: bool | None = None,
    now: Callable[[], datetime] = utcnow,
) -> list[JobReport]:
    """Run ``jobs`` once, then alerts and heartbeat. The heart of ``run``.

    ``now`` is the clock the run and its alerts use (tests move it).
    """
    from globus_auto import auth
    from globus_auto.alerting import after_run, datastore_unusable, unexpected_problem
    from globus_auto.datastore import RunRecord, ensure_private_dir
    from globus_auto.logs import CRON_LOG_NAME, cap_cron_log, setup_file
    from globus_auto.progress import progress_printer
    from globus_auto.runner import JobReport, RunEnv, run_job

    ensure_private_dir(settings.state_dir)
    cap_cron_log(settings.state_dir / CRON_LOG_NAME)
    log_file = setup_file(settings.state_dir)
    for note in settings.notes:
        log.debug("%s", note)
    deferred: list[Problem] = []
    with ExitStack() as stack:
        try:
            store = stack.enter_context(open_store(settings, deferred))
            if opts.dry_run:  # its writes go to a copy: no write lock held
                store = stack.enter_context(store.private_copy(now()))
        except DatastoreError as exc:
            if opts.dry_run:
                raise
            log.error("%s", exc)
            return datastore_unusable(settings, jobs, exc, now())
        env = RunEnv(
            settings=settings,
            store=store,
            gateway_factory=lambda: gateway_factory(settings, interactive),
            now=now,
            progress=progress_printer() if sys.stderr.isatty() else None,
        )
        reports = []
        if not opts.dry_run:  # on a terminal, a missing login is offered first
            auth.offer_login(settings, jobs, interactive)
        for job in jobs:
            started = now()
            try:
                blocked = (
                    None if opts.dry_run else auth.blocked_report(settings, job, store)
                )
                report = blocked or run_job(job, env, opts)
            except Exception as exc:  # one job's bug must not stop the others
                log.error("%s: unexpected error", job.name, exc_info=True)
                report = JobReport(
                    job.name,
                    outcome="failed",
                    exit_code=EXIT_UNEXPECTED,
                    detail=f"{type(exc).__name__}: {exc}",
                )
                report.problems.append(unexpected_problem(job.name, exc, str(log_file)))
            reports.append(report)
            if not opts.dry_run:
                store.record_run(
                    RunRecord(
                        job.name,
                        started,
                        now(),
                        report.outcome,
                        report.detail,
                        report.files_sent,
                        report.bytes_sent,
                    )
                )
        if not opts.dry_run:
            auth.after_jobs(settings, reports, now(), store)  # keep-alive, auth
            after_run(settings, store, reports, now(), deferred)
    return reports


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
    from globus_auto.alerts import human_bytes

    for item in report.would_send:
        shown = item.path.decode("utf-8", "backslashreplace")
        click.echo(f"{item.reason:8} {item.size:>14,}  {shown}")
    total = sum(i.size for i in report.would_send)
    count = len(report.would_send)
    new = sum(i.reason == "new" for i in report.would_send)
    click.echo(
        f"{report.job}: {count} {'file' if count == 1 else 'files'} would be sent "
        f"({new} new, {count - new} changed), {human_bytes(total)} ({total:,} "
        "bytes); dry run: nothing was sent or recorded"
    )


def _lock_jobs(settings: Settings, names: Sequence[str], locks: ExitStack) -> None:
    """Take the lock of every job in ``names`` into ``locks``.

    Raises, having changed nothing, when a run holds one: deleting a job's
    rows under its running run would break that run's bookkeeping.
    """
    from globus_auto.datastore import ensure_private_dir
    from globus_auto.lock import Locked, job_lock, lock_path

    ensure_private_dir(settings.state_dir)
    busy = []
    for name in names:
        try:
            locks.enter_context(job_lock(settings.state_dir, name))
        except Locked:
            pid = lock_path(settings.state_dir, name).read_text().strip()
            busy.append(f"{name} (pid {pid})" if pid else name)
    if busy:
        raise GlobusAutoError(
            f"another globus-auto is running job {', '.join(busy)} now, so nothing "
            "was reset; wait for it to finish (globus-auto --config "
            f"{settings.config_path} status shows it), then run the reset again"
        )


@cli.command(epilog="Example: globus-auto reset --job raw")
@click.option(
    "--job", "job_names", multiple=True, metavar="NAME", help="Only this job."
)
@click.pass_obj
def reset(state: CliState, job_names: Sequence[str]) -> None:
    """Forget what was sent, so the next run sends everything again.

    The destination is never touched; the next run's checksum sync skips the
    files that are already there. Deleting the datastore file does the same for
    every job.
    """
    settings = state.settings()
    names = list(dict.fromkeys(job_names)) or [job.name for job in settings.jobs]
    for name in names:
        settings.job(name)
    with ExitStack() as locks:
        _lock_jobs(settings, names, locks)
        with open_store(settings) as store:
            for name in names:
                dropped = store.forget_job(name)
                click.echo(
                    f"{name}: forgot {dropped} files; the next run sends everything"
                )


@cli.command(epilog="Example: globus-auto demo --src ./mydata")
@click.option(
    "--src",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A folder whose copy is the source (yours is only read; else sample data).",
)
@click.option(
    "--dst",
    type=click.Path(file_okay=False, path_type=Path),
    help="A folder to use as the destination collection (else a temporary one).",
)
def demo(src: Path | None, dst: Path | None) -> None:
    """Watch the real code path work against a local Globus service.

    Needs no Globus account and touches neither your config nor your state.
    """
    from globus_auto.demo import run_demo

    run_demo(src, dst, click.echo)


@cli.command(epilog="Example: globus-auto login")
@click.option(
    "--browser",
    is_flag=True,
    help="Also open the URL in a browser, if this session has one.",
)
# The default since --browser exists; still accepted so old scripts work.
@click.option("--no-browser", is_flag=True, hidden=True)
@click.pass_obj
def login(state: CliState, browser: bool, no_browser: bool) -> None:
    """Log in to Globus (once; the tokens are kept in STATE_DIR).

    Prints the address to open; the code it shows is pasted back here.
    """
    from globus_auto.auth import run_login

    settings = state.settings()
    click.echo(run_login(settings, open_browser=browser and not no_browser))


@cli.command(epilog="Example: globus-auto logout")
@click.pass_obj
def logout(state: CliState) -> None:
    """Revoke the stored Globus tokens and delete them."""
    from globus_auto.auth import run_logout

    click.echo(run_logout(state.settings()))


__all__ = ["EXIT_USAGE", "ConfigError", "cli"]
