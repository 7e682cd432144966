"""A file that never stops changing (issue 15, item 9): a log rewritten before
every run, with MIN_AGE set, is never old enough to send. ``status`` used to
call the job "ok, 0 waiting"; now it shows it waiting (changing), through the
``globus-auto`` command. Once it has changed at every run for a day (the clock
moved on, as the alert tests move it: the session takes ``now``), one alert
names it, the next runs do not repeat it, and it resolves once it settles.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from alert_world import PREFIX, World, assert_alert
from emulator_fixtures import TestEmulator
from helpers_e2e import cli_env, run_cli, src_data, write_config
from smtp_fixtures import SmtpTestServer

SUMMARY = "a file never stops changing"


def cli(config: Path, emulator: TestEmulator, *args: str) -> str:
    done = run_cli(["--config", str(config), *args], cli_env(emulator))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_file_rewritten_before_every_run_shows_as_waiting_changing(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    config = write_config(tmp_path / "config.py", emulator, MIN_AGE="1h")
    log = src_data(emulator) / "live.log"
    for lines in (1, 2, 3):
        log.write_bytes(b"a line\n" * lines)
        cli(config, emulator, "run")
    shown = cli(config, emulator, "status")
    assert "job default: waiting" in shown, shown
    assert "1 file (21 B) not yet delivered (1 changing)" in shown, shown
    assert "  changing    1 file changed at every run lately" in shown, shown
    assert "              live.log (since " in shown, shown
    (job,) = json.loads(cli(config, emulator, "status", "--json"))["jobs"]
    assert job["waiting_files"] == 1
    assert job["changing_files"]["count"] == 1
    assert job["changing_files"]["files"][0]["path"] == "live.log"
    assert job["alerts"] == []  # changing for minutes, not a day

    cli(config, emulator, "run")  # not rewritten: it has settled
    shown = cli(config, emulator, "status")
    assert "changing" not in shown, shown
    assert "job default: waiting" in shown  # still too young to send


@pytest.fixture
def world(
    globus_env: TestEmulator, smtp_server: SmtpTestServer, tmp_path: Path
) -> Iterator[World]:
    w = World(globus_env, smtp_server, tmp_path / "config.py")
    w.extra["MIN_AGE"] = "1h"
    yield w


def test_a_file_changing_at_every_run_for_a_day_is_alerted_once(world: World) -> None:
    for lines in (1, 2, 3):
        world.put({"live.log": b"a line\n" * lines})
        assert world.run(wait=False).exit_code == 0
    assert world.mails() == []

    world.clock.advance(hours=25)
    for lines in (4, 5):
        world.put({"live.log": b"a line\n" * lines})
        report = world.run(wait=False)
        assert report.exit_code == 1, report.problems
    (mail,) = world.mails()
    body = assert_alert(mail, SUMMARY, pending="1 file (28 B) waiting to be sent")
    assert "1 file in " in body and "changed at every run for more than a day" in body
    assert "live.log: changing since " in body
    assert "EXCLUDE of job default" in body
    assert "has not changed for MIN_AGE (3600 s)" in body

    report = world.run(wait=False)  # not rewritten: settled
    assert report.exit_code == 0, report.problems
    assert [m["Subject"] for m in world.mails()] == [
        PREFIX + SUMMARY,
        PREFIX + "resolved: " + SUMMARY,
    ]
