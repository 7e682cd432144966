"""``globus-auto login`` and ``logout``, and the login offered before a run.

The only place a run may ask a question: on a terminal, when a job cannot run
without a login, :func:`offer_login` asks before the jobs start. Below the
command line nothing prompts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import click

from globus_auto.cli.context import CliState
from globus_auto.engine.login_gate import login_problem
from globus_auto.globus.login import is_interactive, run_login, run_logout

if TYPE_CHECKING:
    from globus_auto.settings.model import Job, Settings

log = logging.getLogger(__name__)


@click.command("login", epilog="Example: globus-auto login")
@click.option(
    "--browser",
    is_flag=True,
    help="Also open the URL in a browser, if this session has one.",
)
# The default since --browser exists; still accepted so old scripts work.
@click.option("--no-browser", is_flag=True, hidden=True)
@click.pass_obj
def login_command(state: CliState, browser: bool, no_browser: bool) -> None:
    """Log in to Globus (once; the tokens are kept in STATE_DIR).

    Prints the address to open; the code it shows is pasted back here.
    """
    settings = state.settings()
    click.echo(run_login(settings, open_browser=browser and not no_browser))


@click.command("logout", epilog="Example: globus-auto logout")
@click.pass_obj
def logout_command(state: CliState) -> None:
    """Revoke the stored Globus tokens and delete them."""
    click.echo(run_logout(state.settings()))


def offer_login(
    settings: Settings, jobs: Iterable[Job], interactive: bool | None = None
) -> None:
    """On a terminal, when a job cannot run without a login, offer it now.

    Asked once per run, before the jobs: the run itself never asks again.
    End of input at the question is a "no".
    """
    if settings.client_secret or not (
        is_interactive() if interactive is None else interactive
    ):
        return
    reasons = [r for job in jobs if (r := login_problem(settings, job))]
    if not reasons:
        return
    click.echo(f"globus-auto: {reasons[0]}.", err=True)
    try:
        accepted = click.confirm("Log in to Globus now?", default=True, err=True)
    except click.Abort:  # end of input (Ctrl-D)
        click.echo("", err=True)
        return
    if accepted:
        click.echo(run_login(settings))  # the URL only: a browser is opt-in
