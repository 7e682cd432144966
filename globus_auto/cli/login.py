"""``globus-auto login`` and ``logout``, and the login offered before a run.

The only place a run may ask a question: on a terminal, when a job cannot run
without a login, :func:`offer_login` asks before the jobs start. Below the
command line nothing prompts.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

import click

from globus_auto.cli.context import CliState
from globus_auto.engine.login_gate import login_problem
from globus_auto.errors import EXIT_CODES_HELP, LoginRequired
from globus_auto.globus.login import run_login, run_logout
from globus_auto.problems import login_command as login_again

if TYPE_CHECKING:
    from globus_auto.settings.model import Job, Settings

log = logging.getLogger(__name__)


@click.command("login", epilog="Example: globus-auto login\n\n" + EXIT_CODES_HELP)
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
    if not settings.client_secret and not is_interactive():
        raise LoginRequired(
            "globus-auto login needs a terminal to paste the code into; run it in an "
            f"interactive shell: {login_again(settings)}"
        )
    click.echo(run_login(settings, TerminalPrompt(browser and not no_browser)))


@click.command("logout", epilog="Example: globus-auto logout\n\n" + EXIT_CODES_HELP)
@click.pass_obj
def logout_command(state: CliState) -> None:
    """Revoke the stored Globus tokens and delete them."""
    click.echo(run_logout(state.settings()))


def offer_login(settings: Settings, jobs: Iterable[Job]) -> None:
    """On a terminal, when a job cannot run without a login, offer it now.

    Asked once per run, before the jobs: the run itself never asks again.
    End of input at the question is a "no".
    """
    if settings.client_secret or not is_interactive():
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
        click.echo(run_login(settings, TerminalPrompt()))  # a browser is opt-in


def is_interactive() -> bool:
    """True when a person can answer a prompt on this process's terminal."""
    return sys.stdin is not None and sys.stdin.isatty()


def terminal_prompt() -> TerminalPrompt | None:
    """The prompt for a login during a run: None without a terminal (cron)."""
    return TerminalPrompt() if is_interactive() else None


class TerminalPrompt:
    """A login's prompt on this terminal (:class:`globus.prompt.LoginPrompt`)."""

    def __init__(self, open_browser: bool = False) -> None:
        self.open_browser = open_browser

    def show_url(self, url: str) -> None:
        click.echo(
            f"\nOpen this address in a browser and log in to Globus:\n\n  {url}\n"
        )
        if self.open_browser and _open_browser(url):
            click.echo("(a browser window was opened for it)")

    def read_code(self) -> str:
        try:
            return input("Then paste the authorization code here: ")
        except EOFError:
            return ""

    def say(self, text: str) -> None:
        click.echo(f"globus-auto: {text}", err=True)


def _open_browser(url: str) -> bool:
    """Open ``url`` in a graphical browser if this session has one."""
    import webbrowser

    if os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_TTY"):
        return False
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False
    try:
        return bool(webbrowser.get().open(url))
    except webbrowser.Error:
        return False
