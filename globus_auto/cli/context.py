"""What every command gets from the group: the ``--config`` and ``-v`` options.

Imported by the command modules; imports nothing of the command line itself,
so the lazily loaded commands never import the group. Also the wording of a
state folder that belongs to another user, which every command may meet.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from globus_auto.errors import StateFolderError

if TYPE_CHECKING:
    from globus_auto.settings.model import Settings

log = logging.getLogger("globus_auto")


@dataclass
class CliState:
    config_option: str | None
    verbose: int

    def settings(self, check_state_dir: bool = True) -> Settings:
        """The settings of the config in use.

        Raises StateFolderError when the state folder (or a file in it) belongs
        to another user, before any command trips over it.
        """
        from globus_auto.settings.source import load_settings, resolve_config_path

        path = resolve_config_path(self.config_option, os.environ)
        settings = load_settings(path)
        if check_state_dir:
            problem = state_folder_problem(settings)
            if problem:
                raise StateFolderError(problem)
        return settings


def state_folder_problem(settings: Settings) -> str | None:
    """What to do when the state folder is a file, or it or a file in it is
    another user's; None when it is usable (or does not exist yet)."""
    from globus_auto.files import not_owned

    blocked = _file_in_the_way(settings.state_dir)
    if blocked is not None:
        what = (
            "the state folder"
            if blocked == settings.state_dir
            else f"the state folder {settings.state_dir} cannot be made:"
        )
        return (
            f"{what} {blocked} is a file, not a folder; move it away "
            f"(mv {blocked} {blocked}.old) or set STATE_DIR in "
            f"{settings.config_path} to a folder"
        )
    found = not_owned(settings.state_dir)
    if found is None:
        return None
    path, owner = found
    what = (
        f"the state folder {path}"
        if path == settings.state_dir
        else f"{path} in the state folder"
    )
    return _not_yours(what, owner, settings.state_dir, settings.config_path)


def _file_in_the_way(folder: Path) -> Path | None:
    """The first existing one of ``folder`` and its parents when it is not a
    folder (a file, a dangling link), else None.

    Why: creating the state folder there fails with a bare FileExistsError or
    NotADirectoryError, which says neither which path nor what to do.
    """
    for path in (folder, *folder.parents):
        if path.is_dir():
            return None
        if path.exists() or path.is_symlink():
            return path
    return None


def permission_problem(exc: PermissionError, config_option: str | None) -> str:
    """One line for a file this user may not read or write: whose it is, and
    the ``chown`` (or the ``sudo -u``) that fixes it."""
    name = os.fsdecode(exc.filename) if exc.filename is not None else "a file"
    path = Path(name)
    owned = next((p for p in (path, *path.parents) if p.exists()), None)
    if owned is None or exc.filename is None:
        return f"permission denied: {name}; run globus-auto as the user who owns it"
    folder = owned if owned.is_dir() else owned.parent
    config = Path(config_option) if config_option else None
    what = (
        f"permission denied: {owned}"
        if owned == path
        else (f"permission denied: {name} cannot be created: {owned}")
    )
    return _not_yours(what, owned.lstat().st_uid, folder, config)


def _not_yours(what: str, owner: int, folder: Path, config: Path | None) -> str:
    from globus_auto.files import owner_name

    me, them = owner_name(os.geteuid()), owner_name(owner)
    if owner == os.geteuid():
        return (
            f"{what} is yours but not readable and writable by you; make it so: "
            f"chmod -R u+rwX {folder}"
        )
    why = " (after a run with sudo?)" if owner == 0 else ""
    text = (
        f"{what} is owned by {them}, not {me}{why}; make the folder yours: "
        f"sudo chown -R {me} {folder}"
    )
    if owner != 0:
        options = f" --config {config}" if config else ""
        text += f", or run as {them}: sudo -u {them} globus-auto{options} {_command()}"
    return text


def _command() -> str:
    """The name of the command being run (``run``, ``status``, ...)."""
    ctx = click.get_current_context(silent=True)
    return ctx.info_name if ctx is not None and ctx.info_name else "run"
