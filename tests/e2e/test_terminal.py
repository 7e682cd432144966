"""What a person at a terminal sees, through the ``globus-auto`` command on a
pseudo-terminal (Python's ``pty``): the progress line, its clearing, one
summary line per job, ``--wait``'s task progress, whom an alert went to; and
that without a terminal (cron) a good run prints nothing."""

from __future__ import annotations

import re
from pathlib import Path

from emulator_fixtures import TestEmulator
from helpers_e2e import (
    cli_env,
    mail_to,
    run_cli,
    src_data,
    write_config,
    write_files,
)
from smtp_fixtures import SmtpTestServer
from terminal import CLEAR_LINE, run_on_terminal


def test_a_terminal_run_shows_progress_clears_it_and_ends_with_a_summary(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    config = write_config(tmp_path / "config.py", emulator)
    env = cli_env(emulator)
    write_files(src_data(emulator), {"a.txt": b"aa", "sub/b.txt": b"bbb"})
    emulator.add_faults(bytes_per_second=2)  # the task lasts 2.5 s: polled ACTIVE

    code, shown = run_on_terminal(config, ["run", "--wait", "--timeout", "30"], env)
    assert code == 0, shown
    # The scan's line (a first run: no total known yet), then --wait's polls.
    assert re.search(r"default: scanned 2 files \(5 B\), read 2 \(5 B, ", shown)
    assert re.search(r"task [0-9a-f-]{36}: ACTIVE, [01] of 2 files, [0-5] B", shown)
    assert re.search(r"task [0-9a-f-]{36}: SUCCEEDED, 2 of 2 files, 5 B", shown)
    emulator.add_faults(bytes_per_second=0)
    # Cleared before the summary, which stands on a line of its own.
    before, _, after = shown.rpartition(CLEAR_LINE)
    assert "scanned" in before
    lines = after.splitlines()
    assert re.fullmatch(
        r"default: ok; submitted 2 files \(5 B\) in task [0-9a-f-]{36}; "
        r"delivered 2 files",
        lines[0],
    ), after
    assert lines[1:] == []

    # The next run knows the total from this one: "of 2" (an ETA needs a
    # scan longer than a second, shown by the unit tests).
    write_files(src_data(emulator), {"c.txt": b"c"})
    code, shown = run_on_terminal(config, ["run"], env)
    assert code == 0, shown
    assert "default: scanned 3 of 2 files" in shown
    summary = shown.rpartition(CLEAR_LINE)[2].strip()
    assert re.fullmatch(
        r"default: ok; submitted 1 file \(1 B\) in task [0-9a-f-]{36}", summary
    ), summary


def test_without_a_terminal_a_good_run_prints_nothing(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    config = write_config(tmp_path / "config.py", emulator)
    write_files(src_data(emulator), {"a.txt": b"a"})
    done = run_cli(["--config", str(config), "run", "--wait"], cli_env(emulator))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_a_terminal_run_that_mails_an_alert_says_to_whom(
    tmp_path: Path, emulator: TestEmulator, smtp_server: SmtpTestServer
) -> None:
    config = write_config(
        tmp_path / "config.py",
        emulator,
        **mail_to(smtp_server),
        SRC_DIR="/not-there",  # the collection does not list it: exit 4
    )
    write_files(src_data(emulator), {"a.txt": b"a"})
    env = cli_env(emulator)
    shown = ""
    for _ in range(3):  # a grace setting may hold back the first failures' mail
        code, shown = run_on_terminal(config, ["run"], env)
        assert code == 4, shown
        if "alert sent" in shown:
            break
    assert re.search(r"default: alert sent to ops@example.org via 127.0.0.1:\d+", shown)
    assert "default: failed (exit 4)" in shown
    assert smtp_server.wait_for(1)
