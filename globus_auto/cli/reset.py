"""``globus-auto reset``: forget what was sent, so the next run sends everything.

Asks first on a terminal (``--yes`` skips the question; without a terminal it
is required). Takes every named job's lock first, so a running run's
bookkeeping is never pulled from under it. The destination is never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING

import click

from globus_auto.cli.completion import job_option
from globus_auto.cli.context import CliState
from globus_auto.engine.session import open_store
from globus_auto.errors import EXIT_CODES_HELP, ConfirmationNeeded, GlobusAutoError
from globus_auto.text import counted

if TYPE_CHECKING:
    from globus_auto.datastore.store import Datastore
    from globus_auto.settings.model import Job, Settings

log = logging.getLogger("globus_auto")


def _lock_jobs(settings: Settings, names: Sequence[str], locks: ExitStack) -> None:
    """Take the lock of every job in ``names`` into ``locks``.

    Raises, having changed nothing, when a run holds one: deleting a job's
    rows under its running run would break that run's bookkeeping.
    """
    from globus_auto.files import ensure_private_dir
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


@click.command(
    "reset",
    epilog="Examples:\n\n  globus-auto reset --job raw\n\n"
    "  globus-auto reset --yes\n\n"
    "Without a terminal to ask on (a script, cron) reset needs --yes.\n\n"
    + EXIT_CODES_HELP,
)
@job_option()
@click.option(
    "--yes",
    "-y",
    is_flag=True,
    help="Do not ask first (needed when not on a terminal).",
)
@click.pass_obj
def reset_command(state: CliState, job_names: Sequence[str], yes: bool) -> None:
    """Forget what was sent, so the next run sends everything again.

    Asks first on a terminal; elsewhere it needs --yes. The destination is
    never touched; the next run's checksum sync skips the files that are
    already there. Deleting the datastore file does the same for every job.
    """
    settings = state.settings()
    names = list(dict.fromkeys(job_names)) or [job.name for job in settings.jobs]
    for name in names:
        settings.job(name)
    if not yes and not _confirmed(settings, names):
        click.echo("Nothing was reset.", err=True)
        return
    with ExitStack() as locks:
        _lock_jobs(settings, names, locks)
        with open_store(settings) as store:
            for name in names:
                dropped = store.forget_job(name)
                click.echo(
                    f"{name}: forgot {counted(dropped, 'file')}; the next run "
                    "sends everything"
                )


def _confirmed(settings: Settings, names: Sequence[str]) -> bool:
    """Whether the person at the terminal agrees to forget the jobs' files.

    Why no terminal means no reset (exit 2) rather than a reset: nobody can
    answer, and forgetting costs the next run a checksum pass over every file
    (hours on a large tree); a script that means it says --yes. End of input
    at the question is a "no".
    """
    from globus_auto.cli.login import is_interactive

    if not is_interactive():
        raise ConfirmationNeeded(
            "reset asks before it forgets what was sent, and there is no terminal "
            "to answer on; to reset anyway, run: globus-auto --config "
            f"{settings.config_path} reset --yes"
        )
    jobs = ", ".join(names)
    with open_store(settings) as store:
        tracked = sum(_tracked(store, settings.job(name)) for name in names)
    try:
        return click.confirm(
            f"Forget what was sent for {'job' if len(names) == 1 else 'jobs'} "
            f"{jobs} ({counted(tracked, 'tracked file')})? The next run sends "
            "everything again (files already there are skipped by checksum)",
            default=False,
            err=True,
        )
    except click.Abort:  # end of input (Ctrl-D)
        click.echo("", err=True)
        return False


def _tracked(store: Datastore, job: Job) -> int:
    """How many files the datastore tracks for ``job`` (0 for a new job)."""
    job_id = store.existing_job_id(job.identity)
    return 0 if job_id is None else store.count_files(job_id)
