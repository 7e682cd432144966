"""``globus-auto systemd``: a service and a timer that run as the cron line does.

The same checks as ``cron`` (a valid config, known jobs, an interval that runs
evenly) and the same run: this very interpreter and the config by absolute
path, started in STATE_DIR with ``UMask=0077``, a plain ``PATH`` and the
globus-sdk variables that choose a non-production Globus. On top of cron: the
timer is ``Persistent=`` (a run missed while the machine was off or asleep
happens at the next boot), the service runs at ``Nice=10`` with idle I/O, and
systemd never starts it while the previous run is still active. What a run
prints (only errors) goes to the journal. ``--install`` writes both units into
the user's systemd folder and says how to enable them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from globus_auto.cli.completion import job_option
from globus_auto.cli.cron import (
    CRON_PATH,
    checked_settings,
    every_option,
    sdk_variables,
    secret_notes,
)
from globus_auto.errors import EXIT_CODES_HELP

UNIT_PREFIX = "globus-auto"
# Characters that need no quoting in a unit file's command line.
_PLAIN = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+=.,/:@")


@dataclass(frozen=True)
class Units:
    """A service and its timer: the base name and each file's text."""

    name: str
    service: str
    timer: str

    def files(self) -> dict[str, str]:
        """File name -> content, service first."""
        return {f"{self.name}.service": self.service, f"{self.name}.timer": self.timer}


def on_calendar(minutes: int) -> str:
    """systemd's ``OnCalendar=`` for an interval ``cron.interval_minutes`` allows."""
    if minutes < 60:
        return f"*-*-* *:00/{minutes}:00"
    if minutes < 1440:
        return f"*-*-* 00/{minutes // 60}:00:00"
    return "*-*-* 00:00:00"


def quoted(word: str, command: bool = True) -> str:
    """``word`` as one argument of a unit file's command line (``command``) or
    as one ``Environment=`` assignment.

    systemd expands ``%`` specifiers in both, so ``%`` is doubled, and ``$``
    variables in command lines only, so there ``$`` is doubled too; anything
    beyond plain characters goes in double quotes, with ``\\`` and ``"``
    escaped (systemd.service(5), "Command lines"; systemd.exec(5),
    "Environment="; systemd.unit(5), "Specifiers").
    """
    text = word.replace("%", "%%")
    if command:
        text = text.replace("$", "$$")
    if text and set(text) <= _PLAIN:
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def unit_name(job_names: Sequence[str]) -> str:
    """``globus-auto``, or ``globus-auto-<jobs>`` for a unit of some jobs only."""
    if not job_names:
        return UNIT_PREFIX
    safe = (
        "".join(c if c.isalnum() or c in "_." else "-" for c in name)
        for name in job_names
    )
    return "-".join([UNIT_PREFIX, *safe])


def build_units(
    python: str,
    config: Path,
    state_dir: Path,
    environ: Mapping[str, str],
    every: str,
    minutes: int,
    job_names: Sequence[str] = (),
) -> Units:
    """The two unit files of a run every ``minutes`` (``every`` as written)."""
    argv = [python, "-m", "globus_auto", "--config", str(config), "run"]
    for name in job_names:
        argv += ["--job", name]
    environment = {"PATH": CRON_PATH, **sdk_variables(environ)}
    only = f" (jobs: {', '.join(job_names)})" if job_names else ""
    service = [
        "[Unit]",
        f"Description=globus-auto: send new and changed files with Globus{only}",
        "",
        "[Service]",
        "Type=oneshot",
        # Not HOME: `python -m` imports from the current folder first, where
        # the original LBNL script's folder `globus_auto` would be taken for
        # this package; STATE_DIR holds no Python (as the cron line does).
        f"WorkingDirectory={str(state_dir).replace('%', '%%')}",
        "UMask=0077",
        *(f"Environment={quoted(f'{k}={v}', False)}" for k, v in environment.items()),
        f"ExecStart={' '.join(quoted(a) for a in argv)}",
        "Nice=10",
        "IOSchedulingClass=idle",
        "# Secrets from a 0600 file instead of the config (optional):",
        "# EnvironmentFile=%h/.config/globus_auto/secrets.env",
        "",
    ]
    timer = [
        "[Unit]",
        f"Description=Run {UNIT_PREFIX}{only} every {every.strip()}",
        "",
        "[Timer]",
        f"OnCalendar={on_calendar(minutes)}",
        "Persistent=true",
        "RandomizedDelaySec=30",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ]
    return Units(unit_name(job_names), "\n".join(service), "\n".join(timer))


def user_unit_dir(environ: Mapping[str, str]) -> Path:
    """The user's systemd folder: ``$XDG_CONFIG_HOME/systemd/user``, by default
    ``~/.config/systemd/user`` (systemd.unit(5), "Unit File Load Path")."""
    base = environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "systemd" / "user"


def install(units: Units, folder: Path) -> list[str]:
    """Write the unit files into ``folder``; a line for each saying what it did."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, text in units.files().items():
        path = folder / name
        before = path.read_text(encoding="utf-8") if path.is_file() else None
        if before == text:
            lines.append(f"unchanged {path}")
            continue
        path.write_text(text, encoding="utf-8")
        lines.append(f"{'replaced' if before is not None else 'wrote'} {path}")
    return lines


def next_steps(units: Units) -> list[str]:
    """What to type after ``--install``."""
    return [
        "Next: systemctl --user daemon-reload && "
        f"systemctl --user enable --now {units.name}.timer",
        '  loginctl enable-linger "$USER"   # keep running while you are logged out',
        f"  systemctl --user list-timers {units.name}.timer; "
        f"journalctl --user -u {units.name}   # what the runs printed (errors only)",
    ]


@click.command(
    "systemd",
    epilog="Example: globus-auto systemd --every 15m --install\n\n" + EXIT_CODES_HELP,
)
@every_option()
@job_option()
@click.option(
    "--install",
    "install_units",
    is_flag=True,
    help="Write the units into the user's systemd folder instead of printing them.",
)
@click.pass_context
def systemd_command(
    ctx: click.Context, every: str, job_names: Sequence[str], install_units: bool
) -> None:
    """Print a systemd service and timer that run globus-auto on a schedule.

    They run what the cron line runs (this Python and the config by absolute
    path, in STATE_DIR), at low CPU and idle I/O priority; a run missed while
    the machine was off happens at the next boot (Persistent=true). With
    --install they go to ~/.config/systemd/user (user units: enable them with
    the commands it prints).
    """
    settings, minutes = checked_settings(ctx, every, job_names)
    units = build_units(
        sys.executable,
        settings.config_path.absolute(),
        settings.state_dir.absolute(),
        os.environ,
        every,
        minutes,
        job_names,
    )
    notes = secret_notes(os.environ, "systemd", "name it in EnvironmentFile=")
    if install_units:
        for line in [*notes, *install(units, user_unit_dir(os.environ))]:
            click.echo(line)
        for line in next_steps(units):
            click.echo(line)
        return
    click.echo(f"# globus-auto: every {every.strip()}; check first: globus-auto check")
    for note in notes:
        click.echo(note)
    for name, text in units.files().items():
        click.echo(f"# ---- {name} (in {user_unit_dir(os.environ)})")
        click.echo(text)
