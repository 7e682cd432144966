"""``globus-auto init``: write the commented config template, private (0600).

The template is ``config.example.py``, shipped inside the package so that an
installed globus-auto has it too.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import click

from globus_auto.errors import EXIT_CODES_HELP, ConfigError


def example_config() -> str:
    """The text of ``config.example.py``."""
    return (resources.files("globus_auto") / "config.example.py").read_text("utf-8")


def write_example_config(path: Path) -> None:
    """Create ``path`` from the template; never overwrite an existing file."""
    # Folders made here are 0700, as the XDG base directory spec asks: a
    # config in a folder others may write is refused (settings.source).
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(
            f"{path} exists already; edit it, or move it away to start again"
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(example_config())


@click.command(
    epilog="Example: globus-auto init && $EDITOR ~/.config/globus_auto/config.py\n\n"
    + EXIT_CODES_HELP
)
@click.pass_context
def init_command(ctx: click.Context) -> None:
    """Write a commented config.py to fill in (at --config PATH, or the default).

    The file is created 0600 and never overwrites an existing one.
    """
    from globus_auto.settings.source import resolve_config_path

    path = resolve_config_path(ctx.obj.config_option, os.environ)
    write_example_config(path)
    click.echo(f"Wrote {path}. Fill in SRC_ID, SRC_DIR, DST_ID, DST_DIR and CLIENT_ID,")
    click.echo("then run: globus-auto check")
