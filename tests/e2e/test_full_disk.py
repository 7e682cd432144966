"""A full disk under the state folder, end to end, on a real (small) tmpfs.

The state folder lives on a tmpfs of a few MiB that the test fills with a
filler file; every run is the real ``globus-auto`` command against the
emulator, mailing a real SMTP server and pinging a loopback heartbeat monitor.
A full disk must be reported as such (exit 1, one line, one mail, the
heartbeat's /fail every run), never as corruption: nothing is moved aside,
nothing committed is lost, and once space returns the run carries on where it
stopped, without a second task for files already in flight.

Needs root (``mount -t tmpfs``); skipped cleanly otherwise.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import helpers_e2e
from disk_fixtures import fill
from emulator_fixtures import TestEmulator
from smtp_fixtures import SmtpTestServer

from globus_auto.datastore.opening import DATASTORE_NAME
from globus_auto.engine import crash as crashpoints
from globus_auto.engine.diskfull import MARK_NAME
from globus_auto.engine.report import RunOptions
from globus_auto.engine.session import run_session
from globus_auto.problems import Kind
from globus_auto.settings.source import load_settings

FULL_WORDS = "the disk holding the state folder"
SUBJECT = "[globus-auto] default: the disk holding the state folder is full or failing"


def fail_pings(hits: list[str]) -> int:
    """The pings that said a run failed (healthchecks' /<exit code> or /fail)."""
    ends = [hit.rsplit("/", 1)[-1] for hit in hits]
    return sum(end == "fail" or (end.isdigit() and end != "0") for end in ends)


def subjects(smtp: SmtpTestServer) -> list[str]:
    return [" ".join(str(m["Subject"]).split()) for m in smtp.messages]


def run(
    config: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return helpers_e2e.run_cli(["--config", str(config), "run", *args], env)


def test_full_disk_is_not_corruption_and_loses_nothing(
    small_disk: Path,
    tmp_path: Path,
    globus_env: TestEmulator,
    smtp_server: SmtpTestServer,
    monitor: tuple[str, list[str], Any],
) -> None:
    url, hits, _ = monitor
    state = small_disk / "state"
    config = helpers_e2e.write_config(
        tmp_path / "config.py",
        globus_env,
        STATE_DIR=str(state),
        **helpers_e2e.mail_to(smtp_server),
        HEARTBEAT_URL=url,
    )
    env = helpers_e2e.cli_env(globus_env)
    src = helpers_e2e.src_data(globus_env)
    first = {f"first/{n}.dat": os.urandom(40_000) for n in range(3)}
    helpers_e2e.write_files(src, first)

    # A task in flight (slowed down, then suspended), then the disk fills up.
    globus_env.add_faults(bytes_per_second=1_000)
    started = run(config, env)
    assert started.returncode == 0, started.stderr
    (in_flight,) = globus_env.transfer.tasks
    globus_env.set_task_status(in_flight, "INACTIVE")
    globus_env.add_faults(bytes_per_second=0)
    filler = fill(small_disk)

    # Runs that start on the full disk: one line, exit 1, one mail in all.
    for _ in range(2):
        full = run(config, env)
        assert full.returncode == 1, full.stderr
        assert FULL_WORDS in full.stderr and "is full" in full.stderr
        assert "or corrupt" not in full.stderr and "unexpected" not in full.stderr
        assert "Traceback" not in full.stderr
    assert subjects(smtp_server) == [SUBJECT]
    assert fail_pings(hits) == 2
    assert sorted(p.name for p in state.iterdir() if "corrupt" in p.name) == []

    # Room for the start of a run, not for its scan of many new files.
    filler.unlink()
    globus_env.set_task_status(in_flight, "ACTIVE")
    second = {f"second/{'n' * 200}{n:04}.dat": b"%d" % n for n in range(600)}
    helpers_e2e.write_files(src, second)
    filler = fill(small_disk, leave=128 * 1024)
    dry = run(config, env, "--dry-run")
    assert dry.returncode == 1, dry.stderr
    assert f"{FULL_WORDS} {state} is full" in dry.stderr, dry.stderr
    assert [p for p in state.iterdir() if p.name.startswith("dry-run-")] == []
    later = run(config, env)
    assert later.returncode == 1, later.stderr
    assert FULL_WORDS in later.stderr, later.stderr
    assert "database or disk is full" in later.stderr  # SQLite's, past the open
    assert "Traceback" not in later.stderr and "or corrupt" not in later.stderr
    assert subjects(smtp_server) == [SUBJECT]  # still full: not mailed again
    assert fail_pings(hits) == 3

    # Space returns: everything is delivered, the first files by their task.
    filler.unlink()
    done = run(config, env, "--wait", "--timeout", "60")
    assert done.returncode == 0, done.stderr
    dst = helpers_e2e.dst_data(globus_env)
    assert helpers_e2e.missing_or_different(src, dst) == []
    carried_first = [
        task
        for task in globus_env.transfer.tasks.values()
        if any(item.source_path.startswith("/data/first") for item in task.items)
    ]
    assert len(carried_first) == 1, "a second task for files in flight"
    assert set(globus_env.stats()["tasks"]) == {"SUCCEEDED"}
    assert not [p for p in state.iterdir() if "corrupt" in p.name]
    assert (state / DATASTORE_NAME).stat().st_size > 0
    assert (state / MARK_NAME).stat().st_mtime == 0  # the next full disk mails anew
    assert "has room again" in (state / "globus-auto.log").read_text()


def test_a_task_failed_before_the_disk_filled_is_still_mailed(
    small_disk: Path,
    tmp_path: Path,
    globus_env: TestEmulator,
    smtp_server: SmtpTestServer,
) -> None:
    """Job a settles its FAILED task, then the disk fills while job b runs:
    the mail carries a's failed task as well as the full disk. No later run
    reports that task again (it is settled), so held back it would be lost."""
    source = helpers_e2e.src_data(globus_env)
    for name in ("a", "b"):
        helpers_e2e.write_files(source, {f"{name}/f.dat": b"data of " + name.encode()})
    config = helpers_e2e.write_jobs_config(
        tmp_path / "config.py",
        globus_env,
        ("a", "b"),
        STATE_DIR=str(small_disk / "state"),
        **helpers_e2e.mail_to(smtp_server),
    )
    globus_env.add_faults(fail_tasks=1)  # a's task, the first submitted
    settings = load_settings(config)
    run_session(settings, settings.jobs, RunOptions(wait=False))
    assert globus_env.wait_idle(20)
    assert subjects(smtp_server) == []

    scans: list[str] = []

    def fill_during_b(point: str) -> None:
        if point == "after-scan":
            scans.append(point)
            if len(scans) == 2:  # b's scan: a has settled its task by now
                fill(small_disk)

    crashpoints.CRASH_HOOK = fill_during_b
    try:
        (a, b) = run_session(settings, settings.jobs, RunOptions(wait=False))
    finally:
        crashpoints.CRASH_HOOK = None
    assert Kind.TASK_FAILED in {p.kind for p in a.problems}, a.problems
    assert Kind.STATE_DISK in {p.kind for p in b.problems}, b.problems
    assert sorted(subjects(smtp_server)) == [
        "[globus-auto] a: a transfer failed",
        "[globus-auto] b: the disk holding the state folder is full or failing",
    ]
