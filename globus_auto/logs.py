"""Logging: quiet under cron, chatty on request, always a rotating log file.

Not on a terminal and without ``-v``, only errors reach stderr, so cron mails
nothing on a good run. ``-v`` prints one line per job and outcome, ``-vv``
details and tracebacks. The log file in ``STATE_DIR`` keeps INFO and up, with
tracebacks. ``cron.log``, which the crontab line appends to, is capped by
:func:`cap_cron_log`.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import stat
import sys
from pathlib import Path
from typing import Any

LOG_NAME = "globus-auto.log"
LOG_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 3
CRON_LOG_NAME = "cron.log"
CRON_LOG_LIMIT = 1024 * 1024
CRON_LOG_KEEP = 256 * 1024
# ``extra`` for a record that only the log file should show: the command line
# says the same thing its own way (e.g. the top-level handler's one line).
FILE_ONLY = {"file_only": True}


def log_path(state_dir: Path) -> Path:
    return state_dir / LOG_NAME


def console_level(verbose: int, interactive: bool) -> int:
    if verbose >= 2:
        return logging.DEBUG
    if verbose == 1:
        return logging.INFO
    return logging.WARNING if interactive else logging.ERROR


class ConsoleFormatter(logging.Formatter):
    """``globus-auto: message``; the traceback only when ``tracebacks``.

    Why: a user under cron should read one line that says what to do; the
    traceback is in the log file, and ``-vv`` shows it.
    """

    def __init__(self, tracebacks: bool) -> None:
        super().__init__("globus-auto: %(message)s")
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        if self.tracebacks:
            return super().format(record)
        # The file handler formats the same record: hide, then restore.
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


def _not_file_only(record: logging.LogRecord) -> bool:
    return not getattr(record, "file_only", False)


def setup_console(verbose: int) -> None:
    """Log to stderr at the level ``-v`` asks for (tracebacks only with ``-vv``)."""
    root = logging.getLogger("globus_auto")
    root.setLevel(logging.DEBUG)
    for handler in list(root.handlers):
        if getattr(handler, "_globus_auto_console", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(console_level(verbose, sys.stderr.isatty()))
    handler.setFormatter(ConsoleFormatter(tracebacks=verbose >= 2))
    handler.addFilter(_not_file_only)
    handler._globus_auto_console = True  # type: ignore[attr-defined]
    root.addHandler(handler)


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose every file, new or rotated, is 0600.

    A log file the disk refuses (full, failing) is said once, in one line on
    stderr, and the run goes on without it; logging's default would print a
    traceback for every line, which cron mails.
    """

    write_failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)
            return
        if not self.write_failed:
            self.write_failed = True
            sys.stderr.write(
                f"globus-auto: cannot write the log file {self.baseFilename} "
                f"({error.strerror or error}); this run goes on without it: "
                "check that its disk has free space\n"
            )

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
            # Its last lines may not fit on a full disk; that was said once.
            with contextlib.suppress(OSError):
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


def cap_cron_log(
    path: Path, limit: int = CRON_LOG_LIMIT, keep: int = CRON_LOG_KEEP
) -> None:
    """Keep ``path`` under ``limit`` bytes: past it, only its last ``keep`` bytes.

    Cut at a line start, rewritten in place and made 0600 if it is not: the
    running crontab line has the file open for appending (``>>``), and a
    replaced file would swallow this run's own output.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # absent (not run from cron), or not ours to touch
        return
    with os.fdopen(fd, "r+b") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            return
        if st.st_mode & 0o077:
            os.fchmod(handle.fileno(), 0o600)
        if st.st_size <= limit:
            return
        handle.seek(st.st_size - keep)
        tail = handle.read()
        start = tail.find(b"\n") + 1  # 0 when no newline: keep it all
        handle.seek(0)
        handle.write(tail[start:])
        handle.truncate()
