"""``globus-auto reset``: forget what was sent, so the next run sends everything.

Takes every named job's lock first, so a running run's bookkeeping is never
pulled from under it. The destination is never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING

import click

from globus_auto.cli.context import CliState
from globus_auto.engine.session import open_store
from globus_auto.errors import EXIT_CODES_HELP, GlobusAutoError
from globus_auto.text import counted

if TYPE_CHECKING:
    from globus_auto.settings.model import Settings

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
    "reset", epilog="Example: globus-auto reset --job raw\n\n" + EXIT_CODES_HELP
)
@click.option(
    "--job", "job_names", multiple=True, metavar="NAME", help="Only this job."
)
@click.pass_obj
def reset_command(state: CliState, job_names: Sequence[str]) -> None:
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
                    f"{name}: forgot {counted(dropped, 'file')}; the next run "
                    "sends everything"
                )
