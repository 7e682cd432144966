"""The terminal's status line and summary line, as plain functions and values:
what they say (files, bytes, rate, the time left), that the line is cleared
before anything else is written, and the plurals of the summary."""

from __future__ import annotations

import io
import logging

import pytest

from globus_auto.cli.progress import (
    CLEAR_LINE,
    ClearingPrompt,
    StatusLine,
    eta_text,
    scan_line,
    task_line,
)
from globus_auto.cli.run import summary_line
from globus_auto.engine.report import JobReport, ScanProgress, TaskProgress
from globus_auto.engine.scan import ScanSummary
from globus_auto.logs import setup_console

MIB = 1 << 20


def scanned(files: int, expected: int, done: bool = False) -> ScanProgress:
    summary = ScanSummary(
        files=files, total_bytes=files * MIB, hashed_files=files // 2,
        hashed_bytes=files // 2 * MIB,
    )  # fmt: skip
    return ScanProgress("raw", summary, expected, done=done)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0:00"), (7.4, "0:07"), (754, "12:34"), (3723, "1:02:03"), (-5, "0:00")],
)
def test_eta_reads_as_a_clock(seconds: float, shown: str) -> None:
    assert eta_text(seconds) == shown


def test_a_scan_with_a_known_total_shows_of_how_many_and_the_time_left() -> None:
    # A quarter done in 10 s: three quarters left take 30 s more.
    line = scan_line(scanned(250, 1000), elapsed=10.0)
    assert line == (
        "raw: scanned 250 of 1,000 files (250.0 MiB), read 125 (125.0 MiB, "
        "12.5 MiB/s), about 0:30 left"
    )


@pytest.mark.parametrize(
    ("event", "elapsed"),
    [
        (scanned(250, 0), 10.0),  # a first run: no total known
        (scanned(1200, 1000), 10.0),  # more files than last time
        (scanned(250, 1000), 0.5),  # too early to tell
        (scanned(1000, 1000, done=True), 10.0),  # the last event
    ],
)
def test_no_time_left_without_a_total_to_measure_it_by(
    event: ScanProgress, elapsed: float
) -> None:
    line = scan_line(event, elapsed)
    assert "left" not in line
    assert line.startswith(f"raw: scanned {event.summary.files:,}")
    assert (" of " in line) is bool(event.expected_files)


def test_a_task_shows_its_files_and_bytes() -> None:
    event = TaskProgress("abc", "ACTIVE", 10, 3, 3 * MIB)
    assert task_line(event, elapsed=2.0) == (
        "task abc: ACTIVE, 3 of 10 files, 3.0 MiB (1.5 MiB/s)"
    )


def test_the_line_is_rewritten_in_place_and_cleared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    ticks = iter([0.0, 10.0])
    stream = io.StringIO()
    line = StatusLine(stream, clock=lambda: next(ticks))
    line(scanned(0, 1000))
    line(scanned(250, 1000))
    line.clear()
    line.clear()  # nothing shown: nothing written
    written = stream.getvalue()
    assert written.count(CLEAR_LINE) == 3
    assert written.endswith("about 0:30 left" + CLEAR_LINE)
    assert "\n" not in written


def test_a_line_longer_than_the_terminal_is_cut_to_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A wrapped line could not be rewritten: "\r" goes back one row only.
    monkeypatch.setenv("COLUMNS", "40")
    stream = io.StringIO()
    StatusLine(stream)(scanned(250, 1000))
    assert len(stream.getvalue()) == len(CLEAR_LINE) + 39


def test_a_log_message_clears_the_line_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_console(0)  # not a terminal here: errors reach the console
    log = logging.getLogger("globus_auto.test")
    stream = io.StringIO()
    line = StatusLine(stream)
    detach = line.attach_to_logs()
    try:
        line(scanned(1, 0))
        log.error("an error")
        assert stream.getvalue().endswith(CLEAR_LINE)
        assert not line.shown
        assert "globus-auto: an error" in capsys.readouterr().err
        detach()
        line(scanned(2, 0))
        log.error("after detaching")
        assert line.shown  # no longer cleared by the log
    finally:
        detach()
        for handler in list(logging.getLogger("globus_auto").handlers):
            if getattr(handler, "_globus_auto_console", False):
                logging.getLogger("globus_auto").removeHandler(handler)


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        ({}, "raw: ok; nothing to send"),
        (
            {"files_sent": 1, "bytes_sent": 5, "task_id": "t1"},
            "raw: ok; submitted 1 file (5 B) in task t1",
        ),
        (
            {"delivered_files": 50_000, "waiting_files": 1, "waiting_bytes": 2048},
            "raw: ok; delivered 50,000 files; 1 file (2.0 KiB) waiting",
        ),
        (
            {"files_sent": 2, "bytes_sent": 2, "task_id": "t2", "in_flight_files": 5},
            "raw: ok; submitted 2 files (2 B) in task t2; 3 files in flight in "
            "earlier tasks",
        ),
        (
            {"exit_code": 6, "waiting_files": 3, "waiting_bytes": 3},
            "raw: failed (exit 6); 3 files (3 B) waiting",
        ),
        (
            {"skipped": True, "outcome": "skipped: another run holds the lock"},
            "raw: skipped: another run holds the lock",
        ),
    ],
)
def test_the_summary_line_says_what_was_sent_delivered_and_waits(
    values: dict[str, object], shown: str
) -> None:
    report = JobReport("raw")
    for name, value in values.items():
        setattr(report, name, value)
    assert summary_line(report) == shown


class RecordingPrompt:
    """A login prompt that records what it was asked, and what the terminal
    held at that moment."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream
        self.seen: list[str] = []

    def show_url(self, url: str) -> None:
        self.seen.append(self.stream.getvalue())

    def read_code(self) -> str:
        self.seen.append(self.stream.getvalue())
        return "code"

    def say(self, text: str) -> None:
        self.seen.append(self.stream.getvalue())


def test_a_login_prompt_during_the_run_speaks_on_a_clean_line() -> None:
    stream = io.StringIO()
    line = StatusLine(stream)
    inner = RecordingPrompt(stream)
    prompt = ClearingPrompt(inner, line)
    for ask in (lambda: prompt.say("one more step"), lambda: prompt.show_url("u")):
        line(scanned(1, 0))
        ask()
    line(scanned(1, 0))
    assert prompt.read_code() == "code"
    assert all(seen.endswith(CLEAR_LINE) for seen in inner.seen)
    assert len(inner.seen) == 3
