"""``globus-auto cron``: print a crontab line that works in cron's bare environment.

Cron starts commands with ``/bin/sh``, a minimal ``PATH`` and none of the login
shell's variables. The line therefore names this very interpreter and the config
by absolute path, sets a ``PATH``, carries the globus-sdk variables that choose a
non-production Globus environment, and appends whatever the run prints (only
errors: a good run is silent) to a file in ``STATE_DIR``. It starts with
``umask 077`` so that file, like everything in ``STATE_DIR``, is private; each
run caps its size (``logs.cap_cron_log``). ``systemd`` (:mod:`.systemd`) runs
the same command with the same checks (:func:`checked_settings`).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from globus_auto.cli.completion import Decorated, job_option
from globus_auto.clock import parse_duration
from globus_auto.errors import EXIT_CODES_HELP
from globus_auto.logs import CRON_LOG_NAME

if TYPE_CHECKING:
    from globus_auto.settings.model import Settings

CRON_PATH = "/usr/local/bin:/usr/bin:/bin"
# globus-sdk reads these to talk to a non-production Globus; cron would drop them.
SDK_VARIABLE_RE = re.compile(
    r"GLOBUS_SDK_SERVICE_URL_[A-Z0-9_]+|GLOBUS_SDK_ENVIRONMENT"
)
# Variables that may hold secrets: never written into a crontab.
SECRET_VARIABLES = ("GLOBUS_AUTO_CLIENT_SECRET", "GLOBUS_AUTO_EMAIL_PASSWORD")


def every_option() -> Callable[[Decorated], Decorated]:
    """The ``--every INTERVAL`` option of ``cron`` and ``systemd``."""
    return click.option(
        "--every",
        default="15m",
        show_default=True,
        metavar="INTERVAL",
        help="How often to run: 5m, 15m, 30m, 1h, 6h, 1d ...",
    )


def schedule_for(every: str) -> str:
    """The five cron time fields for an interval such as ``5m``, ``1h`` or ``1d``.

    Raises ValueError with what to write instead when cron cannot express it
    evenly (cron steps restart every hour and every day).
    """
    minutes = interval_minutes(every)
    if minutes < 60:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    if minutes < 1440:
        hours = minutes // 60
        return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    return "0 0 * * *"


def interval_minutes(every: str) -> int:
    """The minutes of ``every`` (``5m``, ``1h``, ``1d``; a bare number is minutes)
    when it divides an hour, is whole hours dividing a day, or is one day.

    Why only those: cron steps and systemd's calendar steps both restart every
    hour and every day, so any other interval would not be even. Raises
    ValueError saying what to write instead.
    """
    try:  # the one reading of a duration, the config's time settings' too
        seconds = parse_duration(every, "m")
    except ValueError:
        seconds = -1
    if seconds < 0 or seconds % 60:
        raise ValueError(
            f"{every!r} is not an interval; write minutes, hours or days such as "
            "5m, 15m, 1h or 1d"
        )
    minutes = seconds // 60
    if minutes <= 0:
        raise ValueError("the interval must be at least 1m")
    if minutes < 60:
        if 60 % minutes:
            raise ValueError(
                f"cron cannot run every {minutes} minutes evenly; use one of "
                "1m, 2m, 3m, 4m, 5m, 6m, 10m, 12m, 15m, 20m or 30m"
            )
        return minutes
    if minutes % 60 == 0 and minutes < 1440 and 24 % (minutes // 60) == 0:
        return minutes
    if minutes == 1440:
        return minutes
    raise ValueError(
        f"cron cannot run every {every} evenly; use minutes that divide an hour "
        "(5m, 15m, 30m), hours that divide a day (1h, 2h, 6h, 12h) or 1d"
    )


def sdk_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """The globus-sdk environment variables set now, which cron would not have."""
    return {
        name: value
        for name, value in sorted(environ.items())
        if SDK_VARIABLE_RE.fullmatch(name) and value
    }


def shell_command(
    python: str,
    config: Path,
    log_file: Path,
    environ: Mapping[str, str],
    job_names: Sequence[str] = (),
) -> str:
    """The shell command of the crontab line (what cron hands to ``/bin/sh -c``).

    ``cd`` to STATE_DIR first: cron starts in HOME, and ``python -m`` imports
    from the current folder first, where the original LBNL script's folder is
    usually ``~/globus_auto``, a package (it has an ``__init__.py``) that would
    be imported instead of this one; STATE_DIR holds no Python. Then ``umask
    077``: the redirection creates ``log_file`` in STATE_DIR, whose files must
    be 0600 whatever the user's umask.
    """
    assignments = [f"PATH={CRON_PATH}"] + [
        f"{name}={shlex.quote(value)}" for name, value in sdk_variables(environ).items()
    ]
    argv = [python, "-m", "globus_auto", "--config", str(config), "run"]
    for name in job_names:
        argv += ["--job", name]
    command = " ".join([*assignments, *(shlex.quote(a) for a in argv)])
    state_dir = shlex.quote(str(log_file.parent))
    return (
        f"cd {state_dir} && umask 077; {command} >> {shlex.quote(str(log_file))} 2>&1"
    )


def crontab_line(schedule: str, command: str) -> str:
    """One crontab line. Cron turns an unescaped '%' into a newline, so escape it."""
    return f"{schedule} {command.replace('%', chr(92) + '%')}"


def secret_notes(environ: Mapping[str, str], scheduler: str, fix: str) -> list[str]:
    """Comment lines for the secret variables set in this shell, which
    ``scheduler`` will not have (they are never written into its files)."""
    return [
        f"# note: {name} is set in this shell but {scheduler} will not have it; "
        f"put the value in a file the config reads, or {fix}"
        for name in SECRET_VARIABLES
        if environ.get(name)
    ]


def checked_settings(
    ctx: click.Context, every: str, job_names: Sequence[str]
) -> tuple[Settings, int]:
    """The settings and the interval's minutes, after the checks ``cron`` and
    ``systemd`` share: a valid config, known job names, a usable interval; the
    state folder exists (the scheduled run starts in it).

    Raises click.BadParameter for an interval neither can run evenly.
    """
    from globus_auto.cli.context import CliState
    from globus_auto.files import ensure_private_dir

    try:
        minutes = interval_minutes(every)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--every") from None
    state = ctx.find_object(CliState)
    assert state is not None
    settings = state.settings()
    for name in job_names:
        settings.job(name)
    ensure_private_dir(settings.state_dir)
    return settings, minutes


@click.command(
    "cron",
    epilog="Example: (crontab -l; globus-auto cron --every 15m) | crontab -\n\n"
    + EXIT_CODES_HELP,
)
@every_option()
@job_option()
@click.pass_context
def cron_command(ctx: click.Context, every: str, job_names: Sequence[str]) -> None:
    """Print a crontab line that runs globus-auto on a schedule.

    The line uses absolute paths to this Python and to the config, so it works
    in cron's bare environment; what a run prints (only errors) is appended to
    cron.log in STATE_DIR, and the tool sends its own alert mails. Add it with
    `crontab -e`, or with the command in the example below.
    """
    # The redirection needs the state folder before the first run creates it.
    settings, _ = checked_settings(ctx, every, job_names)
    command = shell_command(
        sys.executable,
        settings.config_path.absolute(),
        settings.state_dir / CRON_LOG_NAME,
        os.environ,
        job_names,
    )
    click.echo(f"# globus-auto: every {every.strip()}; check first: globus-auto check")
    for note in secret_notes(os.environ, "cron", "set it in the crontab yourself"):
        click.echo(note)
    click.echo(crontab_line(schedule_for(every), command))
