"""``globus-auto upgrade --from DIR``: take over an installation of the original
LBNL script.

That script's folder holds its ``config.py`` (whose names globus-auto reads
unchanged), its login (``refresh_token``), its ``datastore`` (a ``shelve`` of
MD5 digests, or of transfer times in its later version) and its log. The
upgrade checks the config as every command does and copies it to the config
location (0600, never over another file), imports the login after one refresh
proves it works (:mod:`globus_auto.globus.legacy`), says that the datastore is
not reused, and prints the cron line that replaces the original script's
(built by :mod:`.cron`). It only reads the old folder. ``--dry-run`` says the
same and changes nothing: no file is written anywhere and the token is not
used, since a refresh may replace it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from globus_auto.cli.context import CliState
from globus_auto.cli.cron import crontab_line, schedule_for, shell_command
from globus_auto.errors import (
    EXIT_CODES_HELP,
    ConfigError,
    GlobusAutoError,
    GlobusUnavailable,
    LoginRequired,
)
from globus_auto.logs import CRON_LOG_NAME
from globus_auto.problems import login_command
from globus_auto.settings.model import default_config_path
from globus_auto.settings.source import (
    LEGACY_TOKEN_FILE,
    TOKENS_FILE,
    load_settings,
    resolve_config_path,
    upgrade_hint,
)

if TYPE_CHECKING:
    from globus_auto.globus.legacy import OldToken
    from globus_auto.settings.model import Settings

OLD_CONFIG = "config.py"
# What ``shelve.open("datastore")`` creates, depending on the dbm module found.
OLD_DATASTORE = (
    "datastore",
    "datastore.db",
    "datastore.dat",
    "datastore.dir",
    "datastore.bak",
    "datastore.pag",
)
DEFAULT_EVERY = "15m"
CRONTAB_TIMEOUT = 10.0
CRON_NICKNAMES = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly")
# A crontab line that already runs globus-auto, not the original script.
NEW_STYLE_RE = re.compile(r"-m globus_auto\b|\bglobus-auto\b")


@click.command(
    "upgrade",
    epilog="Example: globus-auto upgrade --from ~/globus_auto --dry-run\n\n"
    + EXIT_CODES_HELP,
)
@click.option(
    "--from",
    "source",
    required=True,
    metavar="DIR",
    help="The original script's folder (its config.py and refresh_token).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be done; change nothing.")
@click.option(
    "--every",
    metavar="INTERVAL",
    help="How often cron runs globus-auto: 5m, 15m, 1h ... (default: the "
    f"original script's schedule, else {DEFAULT_EVERY}).",
)
@click.pass_obj
def upgrade_command(
    state: CliState, source: str, dry_run: bool, every: str | None
) -> None:
    """Take over an installation of the original LBNL globus_auto script.

    Checks DIR/config.py and copies it to the config location (0600; never
    over another file), imports DIR/refresh_token into the token storage once
    one refresh proves it works, and prints the cron line that replaces the
    original script's. Every file in DIR is left as it is. Its datastore is not
    reused: the first run checksums everything, and Globus skips what the
    destination already has.
    """
    schedule = None if every is None else _schedule_for(every)
    folder = _old_folder(source)
    old_config = folder / OLD_CONFIG
    settings = load_settings(old_config)  # refuses a config others can write
    target = resolve_config_path(state.config_option, os.environ)
    click.echo(
        f"Taking over the original LBNL script in {folder}"
        + (" (dry run: nothing is written)" if dry_run else "")
    )
    for line in _config_lines(settings, folder):
        click.echo(line)
    in_place = target.exists() and target.samefile(old_config)
    click.echo(_take_config(old_config, target, folder, dry_run, in_place))
    if dry_run or in_place:
        settings = dataclasses.replace(settings, config_path=target)
    else:
        settings = load_settings(target)
    lines, failure = _login_step(settings, folder, dry_run)
    lines += _datastore_lines(settings, folder)
    lines += _cron_lines(settings, folder, schedule, every, dry_run)
    for line in lines:
        click.echo(line)
    if failure is not None:
        raise failure
    click.echo(_next_step(settings, dry_run))


def _next_step(settings: Settings, dry_run: bool) -> str:
    if dry_run:
        return (
            "Dry run: nothing was written and the refresh token was not used; "
            "run the same command without --dry-run to do it."
        )
    command = _command(settings)
    return (
        f"Next: {command} check, then {command} run --dry-run to see what the "
        "first run sends, then replace the cron line."
    )


def _schedule_for(every: str) -> str:
    try:
        return schedule_for(every)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--every") from None


def _old_folder(source: str) -> Path:
    """The original script's folder, absolute; ConfigError when it is not one."""
    folder = Path(source).expanduser().absolute()
    if not folder.is_dir():
        raise ConfigError(
            f"{folder}: not a folder; give --from the folder of the original LBNL "
            "script (the one holding its config.py and refresh_token)"
        )
    if not (folder / OLD_CONFIG).exists():
        raise ConfigError(
            f"{folder}: no {OLD_CONFIG} here; give --from the folder of the original "
            "LBNL script (the one holding its config.py and refresh_token), or "
            "start afresh with: globus-auto init"
        )
    return folder


def _command(settings: Settings) -> str:
    """``globus-auto``, with ``--config`` unless the config is the default one."""
    if settings.config_path == default_config_path():
        return "globus-auto"
    return f"globus-auto --config {settings.config_path}"


# --- the config -------------------------------------------------------------------


def _config_lines(settings: Settings, folder: Path) -> list[str]:
    """What the old config describes, and its notes (an ignored name...)."""
    lines = [
        f"config: {folder / OLD_CONFIG} is valid: job {job.name} sends {job.src_dir} "
        f"on {job.src_id} to {job.dst_dir} on {job.dst_id}"
        for job in settings.jobs
    ]
    hint = upgrade_hint(settings)  # what this command answers
    lines += [f"config: note: {note}" for note in settings.notes if note != hint]
    return lines


def _take_config(
    old: Path, target: Path, folder: Path, dry_run: bool, in_place: bool
) -> str:
    """Copy ``old`` to ``target`` (0600), never over another file; says what
    was done. ConfigError, with nothing changed, when another file is there."""
    refused = ConfigError(
        f"{target} exists already and differs from {old}, so nothing was changed "
        f"(a config is never overwritten). Either keep using the old config where "
        f"it is: globus-auto --config {old} upgrade --from {folder}; or merge the "
        f"two into {target} (or move it away) and run this upgrade again"
    )
    if in_place:
        return f"config: {old} is used where it is (named by --config)"
    if os.path.lexists(target):
        if not _same_content(old, target):
            raise refused
        return f"config: {target} is already a copy of {old}; kept as it is"
    if dry_run:
        return f"config: would copy {old} to {target} (mode 0600)"
    data = old.read_bytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # created meanwhile
        raise refused from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(target, 0o600)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return f"config: copied {old} to {target} (mode 0600)"


def _same_content(old: Path, target: Path) -> bool:
    try:
        return target.is_file() and target.read_bytes() == old.read_bytes()
    except OSError:
        return False


# --- the login --------------------------------------------------------------------


def _login_step(
    settings: Settings, folder: Path, dry_run: bool
) -> tuple[list[str], GlobusAutoError | None]:
    """Import the old refresh token: the lines to show, and the error the
    upgrade ends with (None when the login is in place)."""
    from globus_auto.globus.legacy import read_token_file

    token_file = folder / LEGACY_TOKEN_FILE
    tokens = settings.state_dir / TOKENS_FILE
    if settings.client_secret:
        return [
            "login: CLIENT_SECRET is set: a service account needs no login, so "
            f"{token_file} is not imported"
        ], None
    if tokens.exists():
        return _kept_login(settings, token_file, tokens, dry_run)
    if not token_file.is_file():
        return [f"login: {token_file} not found: there is no login to import"], (
            LoginRequired(
                f"there is no {LEGACY_TOKEN_FILE} in {folder} to take over; log in "
                f"once on a terminal: {login_command(settings)}"
            )
        )
    try:
        old = read_token_file(token_file, settings)
    except LoginRequired as exc:
        return [f"login: {token_file} cannot be imported (see below)"], exc
    if dry_run:
        return [
            f"login: would import the refresh token in {token_file} into {tokens} "
            "once one refresh at Globus Auth proves it works (not tested in a dry "
            "run: a refresh may replace the token the original script still uses)"
        ], None
    return _import(settings, old, token_file, tokens)


def _import(
    settings: Settings, old: OldToken, token_file: Path, tokens: Path
) -> tuple[list[str], GlobusAutoError | None]:
    """Import ``old``, then look at the collections with it."""
    from globus_auto.globus.legacy import import_refresh_token

    try:
        rotated = import_refresh_token(settings, old, token_file)
    except GlobusAutoError as exc:
        return [f"login: {token_file} was not imported (see below)"], exc
    lines = [
        f"login: the refresh token in {token_file} works (one refresh at Globus "
        f"Auth); imported into {tokens}"
    ]
    if rotated:
        lines.append(
            "login: Globus replaced the refresh token as it was used: the original "
            f"script's copy in {token_file} may no longer work, so its cron line "
            "must go (below)"
        )
    more, failure = _look_at_collections(settings, ())
    return lines + more, failure


def _kept_login(
    settings: Settings, token_file: Path, tokens: Path, dry_run: bool
) -> tuple[list[str], GlobusAutoError | None]:
    """A globus-auto login is stored already: keep it, never overwrite it."""
    from globus_auto.globus.consents import (
        job_collections,
        known_collections,
        stored_data_access,
    )

    lines = [
        f"login: a globus-auto login is stored already in {tokens}; it is kept, "
        f"and {token_file} is not imported (to import it instead, move that file "
        "away and run this upgrade again)"
    ]
    known = known_collections(settings)
    if dry_run or all(c in known for c in job_collections(settings.jobs)):
        return lines, None
    more, failure = _look_at_collections(settings, stored_data_access(settings))
    return lines + more, failure


def _look_at_collections(
    settings: Settings, granted: Sequence[str]
) -> tuple[list[str], GlobusAutoError | None]:
    """Look at the config's collections with the stored login, so that runs
    know them; a collection needing a consent that is not in ``granted`` ends
    the upgrade with a login to do."""
    from globus_auto.globus.legacy import look_with_stored_login

    try:
        needs, said = look_with_stored_login(settings, granted)
    except LoginRequired as exc:
        return ["login: the collections could not be looked at (see below)"], (
            LoginRequired(f"{exc}: {login_command(settings)}")
        )
    except GlobusUnavailable as exc:
        why = str(exc).removesuffix("; the next run will try again")
        return ["login: the collections could not be looked at (see below)"], (
            GlobusUnavailable(
                f"{why}; the login is stored, but runs need the collections "
                "looked at: run this upgrade again to finish"
            )
        )
    lines = [f"login: note: Globus said about {s}" for s in said]
    if not needs:
        return lines, None
    named = (
        f"collection {needs[0]} needs a data_access consent (a GCSv5 mapped collection)"
        if len(needs) == 1
        else f"collections {', '.join(needs)} need a data_access consent (GCSv5 "
        "mapped collections)"
    )
    return lines, LoginRequired(
        f"{named}, which the original script's login never asked for; "
        "the rest of the upgrade is done (above). Log in once on a terminal to "
        f"grant it: {login_command(settings)}"
    )


# --- the datastore ----------------------------------------------------------------


def _datastore_lines(settings: Settings, folder: Path) -> list[str]:
    found = [str(folder / name) for name in OLD_DATASTORE if (folder / name).exists()]
    named = f" ({', '.join(found)})" if found else ""
    sources = ", ".join(str(job.src_local_dir) for job in settings.jobs)
    return [
        f"datastore: the original script's datastore{named} is not reused (it holds "
        "what the script saw, MD5 digests or transfer times, not what Globus "
        "delivered): the first run reads every file in "
        f"{sources} once, and its transfer is a checksum sync, so Globus skips "
        "what is already at the destination",
        f"files: nothing in {folder} was changed"
        + (
            ""
            if settings.config_path.parent == folder
            else "; it is no longer needed once the new cron line runs well"
        ),
    ]


# --- the cron line ----------------------------------------------------------------


def _cron_lines(
    settings: Settings,
    folder: Path,
    schedule: str | None,
    every: str | None,
    dry_run: bool,
) -> list[str]:
    """The new crontab line, and the original script's lines to remove."""
    crontab, why = read_crontab()
    old = [] if crontab is None else old_cron_lines(crontab, folder)
    kept = _old_schedule(old) if schedule is None else None
    if schedule is None:
        schedule = kept or schedule_for(DEFAULT_EVERY)
    how = (
        "on the original script's schedule"
        if kept
        else f"every {(every or DEFAULT_EVERY).strip()}"
    )
    if not dry_run:  # the line appends to a file there before any run made it
        from globus_auto.files import ensure_private_dir

        ensure_private_dir(settings.state_dir)
    command = shell_command(
        sys.executable,
        settings.config_path.absolute(),
        settings.state_dir / CRON_LOG_NAME,
        os.environ,
    )  # it starts in the state folder (see cli/cron.py shell_command)
    new = crontab_line(schedule, command)
    return [*_cron_advice(old, crontab, why, folder, how), new, *_not_installed()]


def _cron_advice(
    old: list[str], crontab: list[str] | None, why: str, folder: Path, how: str
) -> list[str]:
    """What to do with the crontab: the original script's lines to remove."""
    if old:
        lines = [
            "cron: remove the original script's line from your crontab (crontab -e):"
        ]
        lines += [f"  {line}" for line in old]
        lines.append(f"cron: and add this one ({how}):")
    elif crontab is not None:
        lines = [
            f"cron: your crontab names neither {folder} nor main.py; add this line "
            f"({how}) with crontab -e:"
        ]
    else:
        lines = [
            f"cron: replace the original script's cron line with this one ({how}), "
            "with crontab -e"
            + (f" (your crontab could not be read: {why})" if why else "")
            + ":"
        ]
    return lines


def read_crontab() -> tuple[list[str] | None, str]:
    """The lines of this user's crontab, or None and why not ("" when there is
    no crontab command at all)."""
    try:
        done = subprocess.run(
            ["crontab", "-l"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CRONTAB_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        return None, ""
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"crontab -l: {type(exc).__name__}"
    if done.returncode:
        said = done.stderr.strip().splitlines()
        return None, f"crontab -l: {said[0] if said else f'exit {done.returncode}'}"
    return done.stdout.splitlines(), ""


def old_cron_lines(crontab: Sequence[str], folder: Path) -> list[str]:
    """The crontab lines that look like the original script's: they name its
    folder or a ``main.py``, and do not run globus-auto already."""
    names = {str(folder), os.path.realpath(folder), "main.py"}
    return [
        line.strip()
        for line in crontab
        if line.strip()
        and not line.lstrip().startswith("#")
        and not NEW_STYLE_RE.search(line)
        and any(name in line for name in names)
    ]


def _old_schedule(lines: Sequence[str]) -> str | None:
    """The schedule of the original script's lines, when they share one."""
    schedules = set()
    for line in lines:
        fields = line.split()
        if fields and fields[0] in CRON_NICKNAMES:
            schedules.add(fields[0])
        elif len(fields) > 5 and not fields[0].startswith("@"):
            schedules.add(" ".join(fields[:5]))
    return schedules.pop() if len(schedules) == 1 else None


def _not_installed() -> list[str]:
    """A note when cron's ``python -m globus_auto`` would not find the package
    (run from a checkout that was never installed)."""
    from importlib import metadata

    try:
        metadata.distribution("globus-auto")
    except metadata.PackageNotFoundError:
        checkout = Path(__file__).resolve().parents[2]
        return [
            f"cron: note: globus-auto is not installed for {sys.executable}, and "
            "cron's `python -m globus_auto` needs it: "
            f"{sys.executable} -m pip install {checkout}"
        ]
    return []
