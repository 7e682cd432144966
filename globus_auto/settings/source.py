"""Find the user's ``config.py``, refuse one others could change, execute it.

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
from globus_auto.settings.model import CONFIG_ENV, Settings, default_config_path
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
    if hint is None:
        return settings
    return dataclasses.replace(settings, notes=(*settings.notes, hint))


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
    if problems:
        raise ConfigError("\n".join(problems))


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
