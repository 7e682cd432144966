"""Find the user's ``config.py``, refuse one others could change, execute it.

Others could change it when the file, or a folder above it, is writable by
group or others (:func:`check_config_file`); a secret in it that others can
read gets a warning (:func:`secret_warnings`).

The config file is Python, as in the LBNL ``globus_auto`` script: its names
(``SRC_ID``, ``SRC_DIR``, ``DST_ID``, ``DST_DIR``, ``CLIENT_ID``, ``EMAIL_*``)
still describe one job named ``default``. :func:`load_settings` is the one entry
point: check the file, execute it in a fresh namespace, validate the namespace.
A config still in the original script's folder, next to its ``refresh_token``,
while globus-auto has no login, gets a note naming ``globus-auto upgrade``
(:func:`upgrade_hint`; the command line shows it). Imports :mod:`.model` and
:mod:`.validate`.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from globus_auto.errors import ConfigError
from globus_auto.settings.model import (
    CLIENT_SECRET_ENV,
    CONFIG_ENV,
    Settings,
    default_config_path,
)
from globus_auto.settings.validate import _Validator

# The original LBNL script's login file, next to its config.py.
LEGACY_TOKEN_FILE = "refresh_token"
# globus_auto.globus.tokens.TOKENS_FILE (the settings may not import the
# globus layer; tests/unit/test_old_installation.py checks that the two agree).
TOKENS_FILE = "tokens.json"


def resolve_config_path(cli_value: str | None, environ: Mapping[str, str]) -> Path:
    """``--config`` if given, else ``$GLOBUS_AUTO_CONFIG``, else the default."""
    value = cli_value or environ.get(CONFIG_ENV)
    if not value:
        return default_config_path()
    return Path(value).expanduser().absolute()


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Check, execute and validate the config file at ``path``.

    ``environ`` (default ``os.environ``) may provide the client secret. Raises
    one ConfigError listing every problem found.
    """
    env = os.environ if environ is None else environ
    check_config_file(path)
    namespace = execute_config(path)
    settings = _Validator(path, namespace, env).settings()
    hint = upgrade_hint(settings)
    notes = settings.notes if hint is None else (*settings.notes, hint)
    warnings = secret_warnings(settings, namespace)
    return dataclasses.replace(settings, notes=notes, warnings=tuple(warnings))


def secret_warnings(settings: Settings, namespace: Mapping[str, Any]) -> list[str]:
    """One line, with the ``chmod`` that fixes it, for each secret that other
    users can read: a config holding CLIENT_SECRET or NOTIFY_URLS (their tokens)
    readable by group or others, and an EMAIL_PASSWORD_FILE likewise.

    Why a warning, not a refusal: the config still works, and refusing would
    stop the runs; but the secret should be treated as known to others.
    """
    found = []
    held = [name for name in ("CLIENT_SECRET", "NOTIFY_URLS") if namespace.get(name)]
    path = settings.config_path
    if held and _readable_by_others(path):
        out = (
            f" (and take the secret out: ${CLIENT_SECRET_ENV} can hold CLIENT_SECRET)"
            if "CLIENT_SECRET" in held
            else ""
        )
        found.append(
            f"{path}: holds {' and '.join(held)} and is readable by group or others; "
            f"fix with `chmod go-r {shlex.quote(str(path))}`{out}"
        )
    password = settings.smtp.password_file
    if password is not None and _readable_by_others(password):
        found.append(
            f"{password}: the SMTP password file (EMAIL_PASSWORD_FILE) is readable "
            f"by group or others; fix with `chmod go-r {shlex.quote(str(password))}`"
        )
    return found


def _readable_by_others(path: Path) -> bool:
    """Whether group or others may read ``path`` (False if it cannot be stat'ed)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRGRP | stat.S_IROTH))


def upgrade_hint(settings: Settings) -> str | None:
    """One line naming ``globus-auto upgrade`` when the config is still in the
    original script's folder, next to its ``refresh_token``, and globus-auto
    has no login yet (no ``tokens.json`` in the state folder); else None.

    A service account (``CLIENT_SECRET``) never has a login file: no hint.
    """
    folder = settings.config_path.absolute().parent
    if settings.client_secret or not (folder / LEGACY_TOKEN_FILE).is_file():
        return None
    if (settings.state_dir / TOKENS_FILE).exists():
        return None
    return (
        f"{folder} looks like the original LBNL script's folder (its "
        f"{LEGACY_TOKEN_FILE} is there) and globus-auto has no login yet; take it "
        f"over, login included, with: globus-auto upgrade --from "
        f"{shlex.quote(str(folder))}"
    )


def check_config_file(path: Path) -> None:
    """Refuse a missing config, or one others could have changed.

    Why: the file is executed as code, like a shell rc file.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found; create it with "
            f"`globus-auto --config {path} init` and edit it, "
            f"or point to one with --config PATH or ${CONFIG_ENV}"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{path}: config path is not a regular file")
    problems = []
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problems.append(
            f"{path}: config file is writable by group or others and it is executed "
            f"as code; fix with `chmod go-w {path}`"
        )
    geteuid = getattr(os, "geteuid", None)
    # Root may own it: root can change any file anyway (OpenSSH accepts this too).
    if geteuid is not None and st.st_uid not in (geteuid(), 0):
        problems.append(
            f"{path}: config file is owned by uid {st.st_uid}, not by you "
            f"(uid {geteuid()}), and it is executed as code; fix with "
            f"`chown $(id -u) {path}` or use your own copy"
        )
    problems += folder_problems(path)
    if problems:
        raise ConfigError("\n".join(problems))


def folder_problems(path: Path) -> list[str]:
    """The folders above the config that others could change it through.

    Why: whoever may write to a folder may rename the config in it and put
    their own there, which is then executed as code, exactly as when the file
    itself is writable by others. Every folder up to ``/`` counts (as for
    OpenSSH's files); one with the sticky bit (``/tmp``) lets nobody rename
    another user's file, so it is fine.
    """
    found = []
    # Both the folders of the name given and of the file a link points to.
    for folder in dict.fromkeys([*path.absolute().parents, *path.resolve().parents]):
        try:
            mode = folder.stat().st_mode
        except OSError:
            continue
        if mode & (stat.S_IWGRP | stat.S_IWOTH) and not mode & stat.S_ISVTX:
            quoted = shlex.quote(str(folder))
            found.append(
                f"{path}: the folder {folder} is writable by group or others, so "
                "they could replace the config, which is executed as code; fix "
                f"with `chmod go-w {quoted}` or keep the config in a private folder"
            )
    return found


def execute_config(path: Path) -> dict[str, Any]:
    """Run the config file in a fresh namespace and return that namespace."""
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    filename = str(path)
    namespace: dict[str, Any] = {"__file__": filename, "__name__": "__config__"}
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as exc:
        raise ConfigError(
            f"{path}, line {exc.lineno}: syntax error: {exc.msg}"
        ) from None
    except ValueError as exc:  # e.g. source containing NUL bytes
        raise ConfigError(f"{path}: cannot compile config file: {exc}") from None
    try:
        exec(code, namespace)
    except (Exception, SystemExit) as exc:
        line = _line_in_file(exc, filename)
        where = f"{path}, line {line}" if line else f"{path}"
        raise ConfigError(
            f"{where}: the config file raised {type(exc).__name__}: {exc}"
        ) from None
    return namespace


def _line_in_file(exc: BaseException, filename: str) -> int | None:
    """The deepest traceback line that belongs to ``filename``."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
