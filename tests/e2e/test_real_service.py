"""Where the real Globus service differs from what a tool might assume, end to end.

Each test drives the ``globus-auto`` command (a subprocess, as cron runs it, or
on a pseudo-terminal for a login) against the emulator made to behave as the
real service does (../shared/GLOBUS.md): a missing source does not fail a task,
Globus mails every task's owner unless told not to, collections can require a
session, a task can be suspended (INACTIVE), an endpoint id is not a
collection.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from login_site import Site, login, on_terminal, run_cli

BIG = 400_000  # bytes; at THROTTLE a task takes a few seconds over it
THROTTLE = 150_000  # bytes per second


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def only_task(site: Site) -> str:
    with sqlite3.connect(site.state / "datastore") as db:
        rows = db.execute("SELECT task_id FROM tasks ORDER BY rowid").fetchall()
    return str(rows[-1][0])


def copying(site: Site, task_id: str) -> bool:
    doc = site.emulator.task_options(task_id)
    return doc["status"] == "ACTIVE" and site.emulator.stats()["bytes_copied"] > 0


def delivered_paths(site: Site) -> set[str]:
    with sqlite3.connect(site.state / "datastore") as db:
        rows = db.execute(
            "SELECT path FROM files WHERE delivered IS NOT NULL"
        ).fetchall()
    return {bytes(r[0]).decode() for r in rows}


def slow_first_task(site: Site) -> str:
    """Log in, then start a run whose task copies a big file first, slowly."""
    login(site)
    (site.src / "0-big.bin").write_bytes(os.urandom(BIG))
    (site.src / "z.txt").write_text("the last file of the task\n")
    site.emulator.add_faults(bytes_per_second=THROTTLE)
    assert run_cli(site, "run").returncode == 0
    task_id = only_task(site)
    eventually(lambda: copying(site, task_id))
    return task_id


def test_a_file_renamed_during_the_transfer_arrives_under_its_new_name(
    site: Site,
) -> None:
    task_id = slow_first_task(site)
    (site.src / "z.txt").rename(site.src / "y.txt")  # before Globus reads it
    assert site.emulator.wait_idle(30)
    options = site.emulator.task_options(task_id)
    assert options["status"] == "SUCCEEDED"  # skipped, not retried for a day

    site.emulator.add_faults(bytes_per_second=0)
    first = run_cli(site, "run", "--wait")  # settles, then sends the new name
    assert first.returncode == 0, first.stderr
    assert "z.txt" not in delivered_paths(site)
    assert (site.dst / "y.txt").read_text() == "the last file of the task\n"
    assert not (site.dst / "z.txt").exists()
    assert run_cli(site, "run").returncode == 0
    assert "y.txt" in delivered_paths(site)


def test_a_file_moved_away_and_back_during_the_transfer_is_sent_again(
    site: Site,
) -> None:
    """Globus skipped it; its stat is what the scan saw, so only the skipped
    list can tell it was not delivered: it must be sent again, not lost."""
    slow_first_task(site)
    (site.src / "z.txt").rename(site.src.parent / "z.away")
    assert site.emulator.wait_idle(30)
    (site.src.parent / "z.away").rename(site.src / "z.txt")

    site.emulator.add_faults(bytes_per_second=0)
    settle = run_cli(site, "run", "--wait")
    # Globus skipped a file that is there: it could not read it, so it is
    # alerted (exit 1) while the file is sent again.
    assert settle.returncode == 1, settle.stderr
    assert "could not read" in settle.stderr
    assert (site.dst / "z.txt").read_text() == "the last file of the task\n"
    assert run_cli(site, "run").returncode == 0
    assert "z.txt" in delivered_paths(site)


def test_tasks_ask_globus_for_no_mail_when_the_tool_alerts_someone(
    site: Site,
) -> None:
    login(site)
    assert run_cli(site, "run", "--wait").returncode == 0
    options = site.emulator.task_options(only_task(site))["options"]
    assert options["skip_source_errors"] is True
    assert (
        options["notify_on_succeeded"],
        options["notify_on_failed"],
        options["notify_on_inactive"],
    ) == (False, False, False)
    assert sum(site.emulator.stats()["notification_mails"].values()) == 0


def test_without_recipients_globus_tells_of_a_failed_task(site: Site) -> None:
    site.write_config(EMAIL_RECIPIENTS=[])
    login(site)
    site.emulator.add_faults(fail_tasks=1)
    assert run_cli(site, "run", "--wait").returncode == 5
    options = site.emulator.task_options(only_task(site))["options"]
    assert (options["notify_on_succeeded"], options["notify_on_failed"]) == (
        False,
        True,
    )
    assert site.emulator.stats()["notification_mails"]["failed"] == 1


def test_the_config_decides_globus_s_own_mails(site: Site) -> None:
    site.write_config(GLOBUS_NOTIFY_ON_SUCCEEDED=True)
    login(site)
    assert run_cli(site, "run", "--wait").returncode == 0
    assert site.emulator.stats()["notification_mails"]["succeeded"] == 1


def test_a_required_domain_stops_runs_until_a_login_meets_it(site: Site) -> None:
    login(site)
    site.emulator.add_identity("me@example.edu")
    site.emulator.set_collection(
        site.dst_id, session_required_single_domain=["example.edu"]
    )
    before = run_cli(site, "run")
    assert before.returncode == 3, before.stderr
    assert "example.edu" in before.stderr
    assert f"globus-auto --config {site.config} login" in before.stderr
    (mail,) = site.smtp.wait_for(1)
    assert "example.edu" in mail.get_content()
    assert not (site.dst / "a.txt").exists()
    again = run_cli(site, "run")
    assert again.returncode == 3
    time.sleep(0.3)
    assert len(site.smtp.messages) == 1  # one alert, not one a run

    status, shown, rounds = on_terminal(site, "login")
    assert status == 0, shown
    assert rounds >= 1 and "Logged in." in shown
    after = run_cli(site, "run", "--wait")
    assert after.returncode == 0, after.stderr
    assert (site.dst / "a.txt").read_text() == "first file\n"
    assert "resolved" in str(site.smtp.wait_for(2)[1]["Subject"])


def test_check_names_the_session_requirement_and_its_fix(site: Site) -> None:
    login(site)
    site.emulator.set_collection(site.src_id, session_required_mfa=True)
    result = run_cli(site, "check")
    assert result.returncode == 3, result.stdout
    assert "multi-factor authentication" in result.stdout
    assert f"globus-auto --config {site.config} login" in result.stdout


def test_an_inactive_task_is_one_login_alert_and_the_job_carries_on(
    site: Site,
) -> None:
    task_id = slow_first_task(site)
    site.emulator.set_task_status(task_id, "INACTIVE")
    first = run_cli(site, "run")
    assert first.returncode == 3, first.stderr
    assert task_id in first.stderr and "INACTIVE" in first.stderr
    (mail,) = site.smtp.wait_for(1)
    assert task_id in mail.get_content()
    assert run_cli(site, "run").returncode == 3
    time.sleep(0.3)
    assert len(site.smtp.messages) == 1

    site.emulator.add_faults(bytes_per_second=0)
    site.emulator.set_task_status(task_id, "ACTIVE")  # credentials renewed
    after = run_cli(site, "run", "--wait")
    assert after.returncode == 0, after.stderr
    assert (site.dst / "z.txt").exists()
    assert "resolved" in str(site.smtp.wait_for(2)[1]["Subject"])


def test_an_endpoint_id_in_the_config_is_refused_with_how_to_find_the_collection(
    site: Site, tmp_path: Path
) -> None:
    login(site)
    site.emulator.set_collection(site.dst_id, entity_type="GCSv5_endpoint")
    for command in ("check", "run"):
        result = run_cli(site, command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        shown = result.stdout + result.stderr
        assert "not a collection" in shown and "Collections" in shown
