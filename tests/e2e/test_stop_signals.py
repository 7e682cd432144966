"""Stop signals and a state folder that is a file, through the real command.

SIGTERM (systemd stopping the unit, ``kill``) must end a run as Ctrl-C does:
logged, exit 128 + 15, nothing left behind (a dry run's copy of the
datastore), and the next run carries on. A signal sent by the process to
itself at a named point (``GLOBUS_AUTO_TEST_CRASH_SIGNAL``) makes the moment
exact; one test also sends it from outside, while the run waits for its task.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import helpers_e2e
import pytest
from emulator_fixtures import TestEmulator

from globus_auto.datastore.opening import DRY_RUN_PREFIX
from globus_auto.logs import LOG_NAME

FILES = {"a.txt": b"alpha", "sub/b.bin": b"b" * 5000}
STOPPED = "stopped by SIGTERM; the next run carries on safely"


def setup(tmp_path: Path, emu: TestEmulator) -> tuple[Path, Path]:
    helpers_e2e.write_files(helpers_e2e.src_data(emu), FILES)
    config = helpers_e2e.write_config(tmp_path / "config.py", emu)
    return config, helpers_e2e.state_dir_of(config)


def run(
    config: Path, emu: TestEmulator, *args: str, at: str = "", sig: str = "TERM"
) -> tuple[int, str]:
    extra = {"GLOBUS_AUTO_TEST_CRASH_AT": at, "GLOBUS_AUTO_TEST_CRASH_SIGNAL": sig}
    done = helpers_e2e.run_cli(
        ["--config", str(config), "run", *args],
        helpers_e2e.cli_env(emu, extra if at else None),
    )
    return done.returncode, done.stderr


def copies(state: Path) -> list[str]:
    return sorted(p.name for p in state.iterdir() if p.name.startswith(DRY_RUN_PREFIX))


def test_a_sigtermed_dry_run_leaves_no_copy_and_says_why(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    config, state = setup(tmp_path, globus_env)
    code, err = run(config, globus_env, "--dry-run", at="after-scan")
    assert code == 128 + signal.SIGTERM, err
    assert err.strip() == f"globus-auto: error: {STOPPED}"
    assert copies(state) == []
    assert STOPPED in (state / LOG_NAME).read_text()


def test_a_killed_dry_runs_copy_is_removed_by_the_next(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    config, state = setup(tmp_path, globus_env)
    code, _ = run(config, globus_env, "--dry-run", at="after-scan", sig="KILL")
    assert code == -signal.SIGKILL
    assert len(copies(state)) == 1  # SIGKILL runs no cleanup
    (state / "dry-run-oldstyle").mkdir()  # from before copies held their pid
    code, err = run(config, globus_env, "--dry-run")
    assert code == 0, err
    assert copies(state) == ["dry-run-oldstyle"]  # not a day old yet


def test_a_sigtermed_run_is_logged_and_the_next_delivers(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    config, state = setup(tmp_path, globus_env)
    code, err = run(config, globus_env, "--wait", at="during-scan")
    assert code == 128 + signal.SIGTERM, err
    assert STOPPED in err
    code, err = run(config, globus_env, "--wait")
    assert code == 0, err
    src, dst = helpers_e2e.src_data(globus_env), helpers_e2e.dst_data(globus_env)
    assert helpers_e2e.missing_or_different(src, dst) == []
    assert STOPPED in (state / LOG_NAME).read_text()


def test_sigterm_from_outside_while_waiting(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    config, state = setup(tmp_path, globus_env)
    globus_env.add_faults(bytes_per_second=500)  # the task takes a while
    process = helpers_e2e.start_cli(
        ["--config", str(config), "run", "--wait", "--timeout", "60"],
        helpers_e2e.cli_env(globus_env),
    )
    deadline = time.monotonic() + 30
    while not globus_env.transfer.tasks and time.monotonic() < deadline:
        time.sleep(0.05)
    assert globus_env.transfer.tasks, "no task was submitted"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert err.strip() == f"globus-auto: error: {STOPPED}"
    assert STOPPED in (state / LOG_NAME).read_text()
    globus_env.add_faults(bytes_per_second=0)


@pytest.mark.parametrize("under", ["", "sub"])
@pytest.mark.parametrize("command", [["run"], ["run", "--dry-run"], ["status"]])
def test_a_state_folder_that_is_a_file_is_one_line_and_exit_2(
    tmp_path: Path, globus_env: TestEmulator, command: list[str], under: str
) -> None:
    blocker = tmp_path / "state-file"
    blocker.write_text("not a folder")
    state = blocker / under if under else blocker
    config = helpers_e2e.write_config(
        tmp_path / "config.py", globus_env, STATE_DIR=str(state)
    )
    done = helpers_e2e.run_cli(
        ["--config", str(config), *command], helpers_e2e.cli_env(globus_env)
    )
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert f"{blocker} is a file, not a folder" in line
    assert f"mv {blocker} {blocker}.old" in line and "STATE_DIR" in line
    assert "unexpected" not in line
    assert blocker.read_text() == "not a folder"


def test_sighup_stops_a_run_unless_nohup_ignores_it(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    config, _ = setup(tmp_path, globus_env)
    code, err = run(config, globus_env, "--dry-run", at="after-scan", sig="HUP")
    assert code == 128 + signal.SIGHUP, err
    assert "stopped by SIGHUP" in err
    nohup = shutil.which("nohup")
    if nohup is None:
        pytest.skip("no nohup here")
    env = helpers_e2e.cli_env(
        globus_env,
        {
            "GLOBUS_AUTO_TEST_CRASH_AT": "after-scan",
            "GLOBUS_AUTO_TEST_CRASH_SIGNAL": "HUP",
        },
    )
    done = subprocess.run(
        [nohup, *helpers_e2e.cli_command(config, ["run", "--dry-run"])],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr  # ignored, as nohup asked
    assert "would be sent" in done.stdout
