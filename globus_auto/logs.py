"""Logging: quiet under cron, chatty on request, always a rotating log file.

Not on a terminal and without ``-v``, only errors reach stderr, so cron mails
nothing on a good run. ``-v`` prints one line per job and outcome, ``-vv``
details and tracebacks. The log file in ``STATE_DIR`` keeps INFO and up.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path
from typing import Any

LOG_NAME = "globus-auto.log"
LOG_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 3


def log_path(state_dir: Path) -> Path:
    return state_dir / LOG_NAME


def console_level(verbose: int, interactive: bool) -> int:
    if verbose >= 2:
        return logging.DEBUG
    if verbose == 1:
        return logging.INFO
    return logging.WARNING if interactive else logging.ERROR


def setup_console(verbose: int) -> None:
    """Log to stderr at the level ``-v`` asks for."""
    root = logging.getLogger("globus_auto")
    root.setLevel(logging.DEBUG)
    for handler in list(root.handlers):
        if getattr(handler, "_globus_auto_console", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(console_level(verbose, sys.stderr.isatty()))
    handler.setFormatter(logging.Formatter("globus-auto: %(message)s"))
    handler._globus_auto_console = True  # type: ignore[attr-defined]
    root.addHandler(handler)


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose every file, new or rotated, is 0600."""

    def _open(self) -> Any:
        old = os.umask(0o077)
        try:
            return super()._open()
        finally:
            os.umask(old)


def setup_file(state_dir: Path) -> Path:
    """Add the size-capped rotating log in ``state_dir``; returns its path."""
    path = log_path(state_dir)
    root = logging.getLogger("globus_auto")
    for handler in list(root.handlers):
        if getattr(handler, "_globus_auto_file", False):
            root.removeHandler(handler)
            handler.close()
    handler = PrivateRotatingFileHandler(
        path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    handler.setLevel(logging.INFO)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    )
    handler._globus_auto_file = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    return path
