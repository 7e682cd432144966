"""A big job scanned by scouts (engine/scouts.py), through the command.

Scouts start only for a datastore of 20,000 files or more; here
``GLOBUS_AUTO_TEST_SCOUTS`` asks for them on small trees. What a user would
notice: the same files arrive, a run with nothing changed still imports no
Globus library, and a run killed mid-scan leaves no scout holding the job's
lock, so the next run starts at once and delivers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import helpers_e2e
from emulator_fixtures import TestEmulator
from helpers_e2e import (
    cli_env,
    missing_or_different,
    run_cli,
    src_data,
    write_config,
    write_files,
)

from globus_auto.engine.scouts import SCOUTS_VARIABLE
from globus_auto.lock import holder


def scouts_env(emulator: TestEmulator, **extra: str) -> dict[str, str]:
    return cli_env(emulator, {SCOUTS_VARIABLE: "3", **extra})


def run(config: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    done = run_cli(["--config", str(config), "-vv", "run", *args], env)
    return done.returncode, done.stderr


def test_scouts_send_every_change_and_a_quiet_run_loads_no_globus(
    emulator: TestEmulator, tmp_path: Path
) -> None:
    src = src_data(emulator)
    files = {f"d{i % 7}/a{'.txt' if i % 3 else ''}{i}": b"%d" % i for i in range(300)}
    files.update({"a": b"a file beside a.txt", "a.txt": b"t", "z/last": b"z"})
    write_files(src, files)
    config = write_config(tmp_path / "config.py", emulator)
    env = scouts_env(emulator)
    code, err = run(config, env, "--wait", "--timeout", "60")
    assert code == 0, err  # a first run: no rows yet, so no scouts
    assert "scanning in" not in err

    (src / "d1" / "a.txt1").write_bytes(b"changed")
    (src / "d3" / "a3").unlink()
    (src / "d3" / "new").write_bytes(b"new")
    os.unlink(src / "a")
    (src / "a-1").mkdir()  # sorts between "a" and "a.txt"
    (src / "a-1" / "inside").write_bytes(b"new folder")
    code, err = run(config, env, "--wait", "--timeout", "60")
    assert code == 0, err
    assert "scanning in 3 processes" in err
    assert "(2 new, 1 changed, 2 gone, 3 read)" in err
    assert missing_or_different(src, helpers_e2e.dst_data(emulator)) == []

    modules = helpers_e2e.imported_by_run(config, env)
    assert "globus_auto.engine.scouts" in modules  # the scouts did scan
    assert "globus_sdk" not in modules
    (src / "d4" / "a18").unlink()  # a file gone: nothing to send either
    modules = helpers_e2e.imported_by_run(config, env)
    assert "globus_sdk" not in modules


def test_a_run_killed_while_scouts_scan_leaves_the_lock_free(
    emulator: TestEmulator, tmp_path: Path
) -> None:
    src = src_data(emulator)
    write_files(src, {f"many/{i:05d}": b"%d\n" % i for i in range(2500)})
    config = write_config(tmp_path / "config.py", emulator)
    state = tmp_path / "state"
    env = scouts_env(emulator)
    code, err = run(config, env, "--wait", "--timeout", "60")
    assert code == 0, err
    for i in range(2500):  # more than one batch of changes (2000 files)
        (src / "many" / f"{i:05d}").write_bytes(b"changed %d\n" % i)

    killed = run_cli(
        ["--config", str(config), "run"],
        scouts_env(emulator, GLOBUS_AUTO_TEST_CRASH_AT="during-scan"),
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # The scouts may still be walking, but none of them holds the job's lock.
    assert holder(state, "default") is None
    code, err = run(config, env, "--wait", "--timeout", "60")
    assert code == 0, err
    assert "skipped" not in err
    assert missing_or_different(src, helpers_e2e.dst_data(emulator)) == []
    # And the killed run's scouts ended once their pipe was gone.
    deadline = time.monotonic() + 30
    while running_with(config) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running_with(config) == []


def test_a_stop_signal_while_scouts_scan_ends_the_run_as_a_stop(
    emulator: TestEmulator, tmp_path: Path
) -> None:
    """systemd's stop signals every process of the unit: the scouts leave it
    to the run, which unwinds (exit 143, not a failed scan) and ends them."""
    src = src_data(emulator)
    write_files(src, {f"many/{i:05d}": b"%d\n" % i for i in range(2500)})
    config = write_config(tmp_path / "config.py", emulator)
    env = scouts_env(emulator)
    code, err = run(config, env, "--wait", "--timeout", "60")
    assert code == 0, err
    for i in range(2500):
        (src / "many" / f"{i:05d}").write_bytes(b"changed %d\n" % i)
    stopped = subprocess.run(
        helpers_e2e.cli_command(config, ["run"]),
        env=scouts_env(
            emulator,
            GLOBUS_AUTO_TEST_CRASH_AT="during-scan",
            GLOBUS_AUTO_TEST_CRASH_SIGNAL="TERM-GROUP",  # the run and its scouts
        ),
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,  # its own process group, not the tests'
    )
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert "stopped by SIGTERM" in stopped.stderr
    assert "scan of" not in stopped.stderr  # no scout reported as failed
    assert running_with(config) == []  # waited for, not left behind
    code, err = run(config, env, "--wait", "--timeout", "60")
    assert code == 0, err
    assert missing_or_different(src, helpers_e2e.dst_data(emulator)) == []


def running_with(config: Path) -> list[int]:
    """Processes whose command line names ``config`` (a run, or its scouts)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if os.fsencode(config) in cmdline.split(b"\0"):
            found.append(int(pid))
    return found
