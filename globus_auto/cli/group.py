"""The ``globus-auto`` command group: every command lazy, one error handler.

Each command lives in its own module of this folder and is imported only when
it is invoked (or listed by ``--help``), so ``globus-auto run`` never pays for
the others. Errors reach one handler that prints one line saying what to do
and exits with the documented code; ``-vv`` adds the traceback. This module
imports the command modules only lazily, and they never import it.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import os
import re
import sys
import traceback
from typing import Any

import click

from globus_auto import __version__
from globus_auto.cli.context import CliState
from globus_auto.errors import (
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    GlobusAutoError,
)
from globus_auto.logs import FILE_ONLY

log = logging.getLogger("globus_auto")

# Every command: the module and the attribute that holds it.
LAZY_COMMANDS = {
    "run": "globus_auto.cli.run:run_command",
    "reset": "globus_auto.cli.reset:reset_command",
    "login": "globus_auto.cli.login:login_command",
    "logout": "globus_auto.cli.login:logout_command",
    "status": "globus_auto.cli.status:status_command",
    "check": "globus_auto.cli.check:check_command",
    "cron": "globus_auto.cli.cron:cron_command",
    "systemd": "globus_auto.cli.systemd:systemd_command",
    "completion": "globus_auto.cli.completion:completion_command",
    "init": "globus_auto.cli.init:init_command",
    "demo": "globus_auto.cli.demo:demo_command",
    "upgrade": "globus_auto.cli.upgrade:upgrade_command",
    "emulator": "globus_auto.emulator.cli:emulator_command",
}

# The group's options that are also accepted after the command's name.
CONFIG_OPTION = "--config"
VERBOSE_RE = re.compile(r"-v+|--verbose")


class Command(click.Group):
    """The group: lazily loaded commands and one top-level handler for errors."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(LAZY_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        module = importlib.import_module(module_name)
        command = getattr(module, attribute)
        assert isinstance(command, click.Command)
        return command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self._global_options_first(ctx, args))

    def _global_options_first(self, ctx: click.Context, args: list[str]) -> list[str]:
        """``args`` with ``--config PATH`` and ``-v`` found after the command's
        name moved before it, so ``run -v --config X`` is ``--config X run -v``
        (as globus-cli, restic and rclone accept them).

        Only the named command is loaded, to know which of its options take a
        value (that value is never taken for a global option); nothing after
        ``--`` moves, nor an option of the same name the command has itself.
        """
        at = _command_index(args)
        if at is None:
            return args
        command = self.get_command(ctx, args[at])
        if command is None or isinstance(command, click.Group):
            return args
        own, takes_value = _option_names(command)
        moved: list[str] = []
        kept: list[str] = []
        rest = iter(args[at + 1 :])
        for arg in rest:
            if arg == "--":
                kept += [arg, *rest]
            elif arg in own or arg.split("=", 1)[0] in own:
                kept.append(arg)
                if arg in takes_value:
                    kept += list(itertools.islice(rest, 1))
            elif arg == CONFIG_OPTION:
                moved += [arg, *itertools.islice(rest, 1)]
            elif arg.startswith(CONFIG_OPTION + "=") or VERBOSE_RE.fullmatch(arg):
                moved.append(arg)
            else:
                kept.append(arg)
        return [*args[:at], *moved, args[at], *kept]

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GlobusAutoError as exc:
            _fail(ctx, str(exc), exc.exit_code, exc)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt as stop:  # Ctrl-C, or a SIGTERM (engine.crash)
            _fail(
                ctx,
                f"{stop or 'interrupted'}; the next run carries on safely",
                getattr(stop, "exit_code", EXIT_INTERRUPTED),
                None,
            )
        except BrokenPipeError:
            _reader_went_away()
            ctx.exit(EXIT_OK)
        except PermissionError as exc:
            from globus_auto.cli.context import permission_problem

            log.error("permission denied", exc_info=True, extra=FILE_ONLY)
            state = ctx.find_object(CliState)
            config = state.config_option if state is not None else None
            _fail(ctx, permission_problem(exc, config), EXIT_USAGE, exc)
        except Exception as exc:
            mapped = _globus_error(exc)
            if mapped is not None:  # e.g. the network failing during a login
                log.error("%s", mapped, exc_info=True, extra=FILE_ONLY)
                _fail(ctx, str(mapped), mapped.exit_code, exc)
            log.error("unexpected error", exc_info=True, extra=FILE_ONLY)
            _fail(
                ctx,
                f"unexpected error: {type(exc).__name__}: {exc} "
                "(run with -vv for the traceback; details are in the log)",
                EXIT_UNEXPECTED,
                exc,
            )


def _command_index(args: list[str]) -> int | None:
    """Where the command's name is in the group's ``args``, or None."""
    skip = False
    for index, arg in enumerate(args):
        if skip:
            skip = False
        elif arg == CONFIG_OPTION:
            skip = True  # its value, which may be any word
        elif arg == "--":
            return None
        elif not arg.startswith("-"):
            return index
    return None


def _option_names(command: click.Command) -> tuple[set[str], set[str]]:
    """The option names ``command`` has, and those of them that take a value."""
    own: set[str] = set()
    takes_value: set[str] = set()
    for param in command.params:
        if not isinstance(param, click.Option):
            continue
        names = {*param.opts, *param.secondary_opts}
        own |= names
        if not param.is_flag and not param.count:
            takes_value |= names
    return own, takes_value


def _reader_went_away() -> None:
    """The reader of our output left (``globus-auto status | head -1``).

    Why quiet and 0: the reader chose to stop reading, nothing went wrong here,
    and a failing code would fail ``set -o pipefail`` scripts. Output still
    buffered would raise again at exit: stdout now goes to /dev/null.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (e.g. in tests)
        pass


def _globus_error(exc: Exception) -> GlobusAutoError | None:
    """A globus-sdk error no command translated, in our terms (its wording
    and exit code: Globus unreachable is 6, not a bug); None for any other.

    globus-sdk is looked for, not imported: when it was never imported, the
    error cannot be one of its own.
    """
    sdk = sys.modules.get("globus_sdk")
    if sdk is None or not isinstance(exc, sdk.GlobusError):
        return None
    from globus_auto.globus.errors import translate

    return translate(exc, "talking to Globus")


def _fail(
    ctx: click.Context, message: str, code: int, exc: BaseException | None
) -> None:
    state = ctx.find_object(CliState)
    if exc is not None and state is not None and state.verbose >= 2:
        traceback.print_exception(exc, file=sys.stderr)
    click.echo(f"globus-auto: error: {message}", err=True)
    ctx.exit(code)


@click.group(
    cls=Command,
    invoke_without_command=True,
    epilog=EXIT_CODES_HELP
    + "\n\nExample: globus-auto --config ~/.config/globus_auto/config.py run -v",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    "config_option",
    metavar="PATH",
    help="The config.py to use (else $GLOBUS_AUTO_CONFIG, else the user's config "
    "folder).",
)
@click.option("-v", "--verbose", count=True, help="-v: a line per job; -vv: details.")
@click.version_option(__version__, prog_name="globus-auto")
@click.pass_context
def cli(ctx: click.Context, config_option: str | None, verbose: int) -> None:
    """Keep a directory on one Globus collection a superset of another.

    Without a command, runs every job once (the same as `globus-auto run`).
    """
    from globus_auto.logs import setup_console

    ctx.obj = CliState(config_option, verbose)
    setup_console(verbose)
    if ctx.invoked_subcommand is None:
        run = ctx.command.get_command(ctx, "run")  # type: ignore[attr-defined]
        assert run is not None
        ctx.invoke(run)
