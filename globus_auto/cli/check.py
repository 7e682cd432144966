"""``globus-auto check``: is everything in place for unattended runs?

Checks, in order: the config, the state folder, the Globus login, and for every
job the source folder on this machine, the source collection and path, and the
destination collection and path (created when missing, which also proves it is
writable); with ``--test-notify`` (or ``--test-mail``) a test message goes out
over every alert channel. Each check is one line of a checklist saying what to
do when it failed; the exit code is that of the first failure.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import click

from globus_auto.errors import (
    EXIT_CODES_HELP,
    EXIT_ENDPOINT_NOT_READY,
    EXIT_OK,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    ConfigError,
    GlobusAutoError,
    GlobusUnavailable,
    SessionRequired,
    UnknownCollection,
)
from globus_auto.text import counted

if TYPE_CHECKING:
    from globus_auto.cli.context import CliState
    from globus_auto.globus.gateway import Gateway
    from globus_auto.settings.model import Job, Settings

OK, FAIL, WARN, SKIP = "ok", "fail", "warn", "skip"
MARKS = {
    True: {OK: "✔", FAIL: "✘", WARN: "!", SKIP: "-"},
    False: {OK: "[ok]", FAIL: "[FAIL]", WARN: "[warn]", SKIP: "[skip]"},
}


@dataclass(frozen=True)
class Check:
    """One line of the checklist."""

    name: str
    status: str  # ok, fail, warn or skip
    detail: str
    fix: str = ""
    exit_code: int = EXIT_OK


def _failed(name: str, exc: BaseException, fix: str) -> Check:
    code = exc.exit_code if isinstance(exc, GlobusAutoError) else EXIT_UNEXPECTED
    return Check(name, FAIL, str(exc), fix, code or EXIT_UNEXPECTED)


# What to do when Globus cannot be reached: it is this machine's network (or
# Globus), never the config or the login.
NETWORK_FIX = (
    "check this machine's connection to Globus (network, DNS, a proxy in "
    "$HTTPS_PROXY, a firewall) and https://status.globus.org, then check again"
)


def _collection_failed(
    name: str, exc: GlobusAutoError, fix: str, settings: Settings
) -> Check:
    """A collection check that failed; a session policy is a login problem,
    remembered so that ``globus-auto login`` asks Globus for exactly it."""
    from globus_auto.globus.sessions import remember_session_requirement
    from globus_auto.problems import session_what_to_do

    if isinstance(exc, GlobusUnavailable):
        fix = NETWORK_FIX
    elif isinstance(exc, UnknownCollection):
        fix = f"fix it in {settings.config_path}, then check again"
    if isinstance(exc, SessionRequired):
        remember_session_requirement(settings, exc.collection, exc.parameters)
        fix = session_what_to_do(settings)
    return _failed(name, exc, fix)


# --- the checks ------------------------------------------------------------------


def check_config(state: CliState) -> tuple[Settings | None, list[Check]]:
    """Load the config; every problem in it becomes one failed line."""
    try:
        settings = state.settings(check_state_dir=False)  # its own check below
    except ConfigError as exc:
        return None, [
            Check(
                "config",
                FAIL,
                line,
                "do what the line says, then check again",
                EXIT_USAGE,
            )
            for line in str(exc).splitlines()
        ]
    names = ", ".join(job.name for job in settings.jobs)
    checks = [Check("config", OK, f"{settings.config_path}: jobs {names}")]
    checks += [Check("config", WARN, note) for note in settings.notes]
    checks += [Check("config", WARN, warning) for warning in settings.warnings]
    return settings, checks


def check_state_dir(settings: Settings) -> Check:
    """The state folder is this user's, exists (0700) and a file can be
    written in it."""
    from globus_auto.cli.context import state_folder_problem
    from globus_auto.files import ensure_private_dir

    problem = state_folder_problem(settings)
    if problem:
        detail, _, fix = problem.partition("; ")
        return Check("state folder", FAIL, detail, fix, EXIT_USAGE)
    try:
        ensure_private_dir(settings.state_dir)
        with tempfile.TemporaryFile(dir=settings.state_dir):
            pass
    except OSError as exc:
        return Check(
            "state folder",
            FAIL,
            f"{settings.state_dir}: {exc.strerror or exc}",
            "make it writable by this user, or set STATE_DIR in the config",
            EXIT_USAGE,
        )
    return Check("state folder", OK, f"{settings.state_dir} is writable")


def check_login(settings: Settings) -> tuple[Gateway | None, Check]:
    """Build the Transfer client and make one authenticated call with it."""
    from globus_auto.globus.login import connect

    service = bool(settings.client_secret)
    kind = "service account" if service else "user login"
    fix = (
        "check CLIENT_ID and CLIENT_SECRET (or $GLOBUS_AUTO_CLIENT_SECRET) against "
        "app.globus.org/settings/developers"
        if service
        else f"run on a terminal: globus-auto --config {settings.config_path} login"
    )
    try:
        if service:  # the secret itself, even while stored tokens are valid
            from globus_auto.globus.app import verify_client_secret

            verify_client_secret(settings)
        gateway = connect(settings, prompt=None)
        from globus_auto.globus.errors import globus_errors

        with globus_errors("checking the login with Globus Transfer"):
            gateway.client.task_list(limit=1)
    except GlobusUnavailable as exc:  # the network, not the login
        return None, _failed("login", exc, NETWORK_FIX)
    except GlobusAutoError as exc:
        return None, _failed("login", exc, fix)
    secret = "Globus Auth accepts CLIENT_SECRET, " if service else ""
    return gateway, Check("login", OK, f"{kind}: {secret}Globus Transfer accepts it")


def check_source_folder(job: Job) -> Check:
    """The folder scanned on this machine exists, is a folder and is readable."""
    from globus_auto.engine.scan import check_source

    name = f"{job.name}: source folder"
    try:
        check_source(os.fsencode(job.src_local_dir), 0)
    except GlobusAutoError as exc:
        return _failed(name, exc, "fix SRC_DIR / src_local_dir or mount the folder")
    return Check(name, OK, f"{job.src_local_dir} is readable")


def check_excludes(job: Job) -> list[Check]:
    """A warning for each EXCLUDE pattern that matches nothing in the source
    folder (a typo, or a config written for the old, non-gitignore rules)."""
    if not job.exclude:
        return []
    from globus_auto.engine.exclude import unmatched_patterns, unmatched_warnings

    name = f"{job.name}: exclude"
    found = unmatched_patterns(job)
    if not found.patterns:
        return [Check(name, OK, f"every pattern of {job.exclude!r} matches")]
    lines = [line.partition("; ") for line in unmatched_warnings(job, found)]
    return [Check(name, WARN, what, fix) for what, _, fix in lines]


def check_source_collection(job: Job, gateway: Gateway, settings: Settings) -> Check:
    """The source collection answers and lists the source path."""
    name = f"{job.name}: source collection"
    fix = (
        f"check SRC_ID ({job.src_id}) and SRC_DIR, and that the collection is "
        "online at app.globus.org"
    )
    try:
        doc = gateway.check_collection(job.src_id, "source")
        found = gateway.list_dir(job.src_id, job.src_dir, "source")
    except GlobusAutoError as exc:
        return _collection_failed(name, exc, fix, settings)
    if not found:
        return Check(
            name,
            FAIL,
            f"{job.src_dir} does not exist on {_label(doc, job.src_id)}",
            "fix SRC_DIR: it is the path as the collection shows it (see "
            "src_local_dir for the folder on this machine)",
            EXIT_ENDPOINT_NOT_READY,
        )
    return Check(name, OK, f"{job.src_dir} is listed on {_label(doc, job.src_id)}")


def check_destination(job: Job, gateway: Gateway, settings: Settings) -> Check:
    """The destination collection answers and the path is there (created if not)."""
    name = f"{job.name}: destination"
    fix = (
        f"check DST_ID ({job.dst_id}) and DST_DIR, that the collection is online "
        "and that you may write there"
    )
    try:
        doc = gateway.check_collection(job.dst_id, "destination")
        existed = gateway.list_dir(job.dst_id, job.dst_dir, "destination")
        if not existed:
            gateway.make_dirs(job.dst_id, job.dst_dir)
    except GlobusAutoError as exc:
        return _collection_failed(name, exc, fix, settings)
    label = _label(doc, job.dst_id)
    if existed:
        return Check(
            name,
            OK,
            f"{job.dst_dir} is listed on {label} (writing is proven by the first "
            "transfer)",
        )
    return Check(name, OK, f"created {job.dst_dir} on {label}, so it is writable")


def _label(doc: dict[str, object], collection: str) -> str:
    shown = doc.get("display_name")
    return f"{shown} ({collection})" if shown else collection


def check_notify(settings: Settings, send: bool) -> list[Check]:
    """Where alerts go, one line per channel (mail, each NOTIFY_URLS entry,
    ON_ALERT_COMMAND); with ``send``, a test message really goes out on each."""
    from globus_auto.alerts.channel_check import check_channels

    checks = []
    for found in check_channels(settings, send):
        if found.nobody:
            status, code = (FAIL, EXIT_USAGE) if send else (WARN, EXIT_OK)
        elif found.ok is None:
            status, code = SKIP, EXIT_OK
        else:
            status, code = (OK, EXIT_OK) if found.ok else (FAIL, EXIT_UNEXPECTED)
        checks.append(Check(found.name, status, found.detail, found.fix, code))
    return checks


def run_checks(
    state: CliState, test_mail: bool, report: Callable[[Check], None]
) -> list[Check]:
    """Every check in order, each passed to ``report`` as soon as it is known."""
    done: list[Check] = []

    def add(check: Check) -> None:
        done.append(check)
        report(check)

    settings, config_checks = check_config(state)
    for check in config_checks:
        add(check)
    if settings is None:
        return done
    state_dir = check_state_dir(settings)
    add(state_dir)
    gateway: Gateway | None = None
    if state_dir.status == FAIL:  # the login's tokens are kept there
        add(Check("login", SKIP, "not checked without a usable state folder"))
    else:
        gateway, login = check_login(settings)
        add(login)
    for job in settings.jobs:
        source = check_source_folder(job)
        add(source)
        for check in check_excludes(job) if source.status == OK else []:
            add(check)
        if gateway is None:
            add(Check(f"{job.name}: collections", SKIP, "not checked without a login"))
            continue
        add(check_source_collection(job, gateway, settings))
        add(check_destination(job, gateway, settings))
    for check in check_notify(settings, test_mail):
        add(check)
    return done


def exit_code(checks: Sequence[Check]) -> int:
    """The code of the first failure (config before login before collections)."""
    for check in checks:
        if check.status == FAIL:
            return check.exit_code or EXIT_UNEXPECTED
    return EXIT_OK


# --- the command -------------------------------------------------------------------


def _unicode_ok() -> bool:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✔✘".encode(encoding)
    except (LookupError, UnicodeEncodeError):
        return False
    return True


def format_check(check: Check, unicode: bool) -> list[str]:
    mark = MARKS[unicode][check.status]
    lines = [f"{mark} {check.name}: {check.detail}"]
    if check.fix and check.status != OK:
        lines.append(f"    → {check.fix}" if unicode else f"    -> {check.fix}")
    return lines


@click.command(
    "check",
    epilog="Examples:\n\n  globus-auto check\n\n"
    "  globus-auto --config ~/raw.py check --test-notify\n\n"
    "The exit code is that of the first failed check.\n\n" + EXIT_CODES_HELP,
)
@click.option(
    "--test-notify",
    "--test-mail",
    "test_mail",
    is_flag=True,
    help="Also send a test message over every alert channel (mail, NOTIFY_URLS, "
    "ON_ALERT_COMMAND); --test-mail is the old name.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def check_command(ctx: click.Context, test_mail: bool, as_json: bool) -> None:
    """Check the config, the login, every job's collections and the mail.

    Creates a missing destination directory (as a run would), but sends no
    data. Run it after every change to the config.
    """
    from globus_auto.cli.context import CliState

    state = ctx.find_object(CliState)
    assert state is not None
    unicode = _unicode_ok()

    def show(check: Check) -> None:
        if not as_json:
            for line in format_check(check, unicode):
                click.echo(line)

    checks = run_checks(state, test_mail, show)
    code = exit_code(checks)
    if as_json:
        doc = {
            "ok": code == EXIT_OK,
            "exit_code": code,
            "checks": [asdict(c) for c in checks],
        }
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    elif code == EXIT_OK:
        click.echo(
            "All checks passed. Next: globus-auto run --dry-run, then globus-auto cron"
        )
    else:
        failed = sum(c.status == FAIL for c in checks)
        click.echo(
            f"{counted(failed, 'check')} failed; fix what the marked lines say and run "
            "globus-auto check again"
        )
    ctx.exit(code)


__all__ = ["Check", "check_command", "run_checks"]
