"""A run's progress on a terminal: one status line, rewritten in place.

The engine sends :class:`ScanProgress` and :class:`TaskProgress` events (see
:mod:`globus_auto.engine.report`); :class:`StatusLine` shows each as one line
on stderr: files, bytes and rate, and for a scan whose total is known from
earlier runs, the time left. The line is cleared before anything else is
written (a log message, the run's summary), so nothing is glued to it. Only
used when stderr is a terminal; under cron there is no status line at all.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from globus_auto.engine.report import ProgressEvent, ScanProgress, TaskProgress
from globus_auto.text import human_bytes

if TYPE_CHECKING:
    from globus_auto.globus.prompt import LoginPrompt

# Carriage return, then erase to the end of the line (ANSI "EL").
CLEAR_LINE = "\r\x1b[K"
# An ETA needs this much of the scan behind it to mean anything.
ETA_AFTER_SECONDS = 1.0


def eta_text(seconds: float) -> str:
    """``0:07``, ``12:34``, ``1:02:03``: the time left, as a clock shows it."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def scan_line(event: ScanProgress, elapsed: float) -> str:
    """What a scan's status line says, ``elapsed`` seconds after it began.

    Files and bytes seen, files read (hashed) and the read rate; with a total
    known from earlier runs, "of N" and the time left at the rate so far.
    """
    s = event.summary
    total = event.expected_files
    of = f" of {total:,}" if total else ""
    rate = human_bytes(int(s.hashed_bytes / elapsed)) if elapsed > 0 else "0 B"
    line = (
        f"{event.job}: scanned {s.files:,}{of} files ({human_bytes(s.total_bytes)}), "
        f"read {s.hashed_files:,} ({human_bytes(s.hashed_bytes)}, {rate}/s)"
    )
    if not event.done and 0 < s.files < total and elapsed >= ETA_AFTER_SECONDS:
        left = (total - s.files) * elapsed / s.files
        line += f", about {eta_text(left)} left"
    return line


def task_line(event: TaskProgress, elapsed: float) -> str:
    """What ``--wait``'s status line says of a task, ``elapsed`` seconds after
    its first poll: its status, files and bytes transferred, and the rate."""
    rate = int(event.bytes_transferred / elapsed) if elapsed > 0 else 0
    return (
        f"task {event.task_id}: {event.status}, "
        f"{event.files_transferred:,} of {event.files:,} files, "
        f"{human_bytes(event.bytes_transferred)} ({human_bytes(rate)}/s)"
    )


class StatusLine:
    """The run's status line on ``stream`` (a terminal).

    Call it with each progress event; :meth:`clear` erases the line (the run
    calls it before printing its summary). While attached
    (:meth:`attach_to_logs`), a log message on the console first clears the
    line, and the next event writes it afresh.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stderr
        self.clock = clock
        self.shown = False
        self.started: dict[str, float] = {}  # when each scan or task was first seen

    def __call__(self, event: ProgressEvent) -> None:
        if isinstance(event, ScanProgress):
            line = scan_line(event, self._elapsed(f"scan {event.job}"))
        else:
            line = task_line(event, self._elapsed(f"task {event.task_id}"))
        width = shutil.get_terminal_size().columns - 1
        # Longer than the terminal, the line would wrap and "\r" would
        # rewrite only its last row.
        self.stream.write(CLEAR_LINE + line[: max(width, 20)])
        self.stream.flush()
        self.shown = True

    def _elapsed(self, key: str) -> float:
        """Seconds since the scan or task ``key`` was first shown."""
        now = self.clock()
        return now - self.started.setdefault(key, now)

    def clear(self) -> None:
        """Erase the line if one is shown."""
        if self.shown:
            self.stream.write(CLEAR_LINE)
            self.stream.flush()
            self.shown = False

    def attach_to_logs(self) -> Callable[[], None]:
        """Clear the line before each console log message; returns the detach."""
        handlers = [
            h
            for h in logging.getLogger("globus_auto").handlers
            if getattr(h, "_globus_auto_console", False)
        ]

        def clear_first(record: logging.LogRecord) -> bool:
            # Filters run only for records the handler is about to emit.
            self.clear()
            return True

        for handler in handlers:
            handler.addFilter(clear_first)

        def detach() -> None:
            for handler in handlers:
                handler.removeFilter(clear_first)

        return detach


class ClearingPrompt:
    """A login's prompt (:class:`globus_auto.globus.prompt.LoginPrompt`) that
    clears the status line before it speaks: a login a run needs comes after
    its scan, whose line would otherwise be glued to the first words."""

    def __init__(self, prompt: LoginPrompt, line: StatusLine) -> None:
        self.prompt = prompt
        self.line = line

    def show_url(self, url: str) -> None:
        self.line.clear()
        self.prompt.show_url(url)

    def read_code(self) -> str:
        self.line.clear()
        return self.prompt.read_code()

    def say(self, text: str) -> None:
        self.line.clear()
        self.prompt.say(text)
