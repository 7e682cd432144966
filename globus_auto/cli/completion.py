"""``globus-auto completion bash|zsh|fish``: the shell's completion script.

The script is click's own (``click.shell_completion``): the shell calls
``globus-auto`` back with ``_GLOBUS_AUTO_COMPLETE`` set, and click answers with
the commands and options that fit. ``--job`` of every command completes the
job names of the config in use (``--config`` on the line, else the usual
places); a config that cannot be read completes nothing and says nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

from globus_auto.errors import EXIT_CODES_HELP

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

PROG_NAME = "globus-auto"
# click's name for it: "_{PROG_NAME}_COMPLETE", upper case, "-" as "_".
COMPLETE_VAR = "_GLOBUS_AUTO_COMPLETE"
SHELLS = ("bash", "zsh", "fish")
JOB_OPTION = "--job"
Decorated = TypeVar("Decorated", bound=Callable[..., object])

# How each shell loads the script, for the help.
LOADING = {
    "bash": 'eval "$(globus-auto completion bash)"   (in ~/.bashrc)',
    "zsh": 'eval "$(globus-auto completion zsh)"    (in ~/.zshrc, after compinit)',
    "fish": "globus-auto completion fish > ~/.config/fish/completions/globus-auto.fish",
}


def complete_job_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The config's job names that begin with ``incomplete``.

    Why silent on every error: completion runs on each Tab press, and a message
    here would be typed into the user's command line.
    """
    from click.shell_completion import CompletionItem

    from globus_auto.settings.source import load_settings, resolve_config_path

    config = ctx.find_root().params.get("config_option")
    try:
        settings = load_settings(resolve_config_path(config, os.environ))
    except Exception:  # a broken or missing config: nothing to offer
        return []
    return [
        CompletionItem(job.name)
        for job in settings.jobs
        if job.name.startswith(incomplete)
    ]


def job_option() -> Callable[[Decorated], Decorated]:
    """The ``--job NAME`` option (repeatable) of every command that runs or
    shows jobs, completing the config's job names on Tab.

    Why one definition: every command's ``--job`` means the same, so it is
    spelled, helped and completed the same everywhere (this module is small
    and imports nothing more until a Tab is pressed).
    """
    return click.option(
        JOB_OPTION,
        "job_names",
        multiple=True,
        metavar="NAME",
        help="Only this job.",
        shell_complete=complete_job_names,
    )


def completion_script(root: click.Command, shell: str) -> str:
    """The completion script of ``shell`` for the command group ``root``."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None, shell  # click ships bash, zsh and fish
    return cls(root, {}, PROG_NAME, COMPLETE_VAR).source()


@click.command(
    "completion",
    epilog="Example: globus-auto completion bash\n\nTo load it in every new shell:\n\n"
    + "\b\n"  # click: keep these lines as they are
    + "\n".join(f"  {shell + ':':6}{LOADING[shell]}" for shell in SHELLS)
    + "\n\n"
    + EXIT_CODES_HELP,
)
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion_command(ctx: click.Context, shell: str) -> None:
    """Print the completion script of SHELL (bash, zsh or fish).

    Commands, options and the job names of --job complete on Tab. Load it
    from the shell's startup file, or save it where the shell looks for
    completions, as shown below.
    """
    click.echo(completion_script(ctx.find_root().command, shell), nl=False)
