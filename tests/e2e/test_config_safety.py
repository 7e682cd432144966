"""The config's smaller traps, through the ``globus-auto`` command.

Time settings written as 90s, 15m, 6h or 2d, and bounds on them; the
template's placeholder UUIDs; a malformed HEARTBEAT_URL never echoed with its
token; a config others could replace through its folder; a secret others can
read (a warning in ``check`` and in the run's log, nothing under cron); and
``reset`` asking on a terminal, refusing without one unless ``--yes``.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from emulator_fixtures import TestEmulator
from helpers_e2e import cli_env, src_data, state_dir_of, write_config, write_files
from terminal import run_on_terminal

from globus_auto.cli.group import cli


def invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def config_lines(result: Result) -> list[str]:
    """The lines of ``check`` about the config (its failures and warnings)."""
    return [line for line in result.stdout.splitlines() if " config: " in line]


# --- time settings -------------------------------------------------------------------


def test_time_settings_with_units_are_accepted(
    globus_env: TestEmulator, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "config.py",
        globus_env,
        MIN_AGE="5m",
        ALERT_REPEAT_HOURS="90m",
        TASK_STUCK_HOURS="2d",
        AUTH_KEEPALIVE_DAYS="36h",
    )
    write_files(src_data(globus_env), {"new.txt": b"x"})
    result = invoke(config, "run", "--dry-run")
    assert result.exit_code == 0, result.output
    # Modified just now: held back by the 5 minutes of MIN_AGE.
    assert "0 files would be sent" in result.stdout


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("MIN_AGE", 1e12, "MIN_AGE: 1e+12 seconds is more than 30d, the most"),
        ("ALERT_REPEAT_HOURS", 1e300, "ALERT_REPEAT_HOURS: 1e+300 hours is more"),
        ("MIN_AGE", "soon", "MIN_AGE: 'soon' is not a time; write a whole number"),
    ],
)
def test_a_time_beyond_reason_is_a_config_error(
    globus_env: TestEmulator, tmp_path: Path, name: str, value: object, said: str
) -> None:
    config = write_config(tmp_path / "config.py", globus_env, **{name: value})
    for args in (["run"], ["check"]):
        result = invoke(config, *args)
        assert result.exit_code == 2
        assert said in result.output
    run = invoke(config, "run")
    assert len(run.stderr.strip().splitlines()) == 1  # one line, no traceback


# --- placeholder UUIDs ---------------------------------------------------------------


def test_the_template_written_by_init_is_refused_until_filled_in(
    tmp_path: Path,
) -> None:
    config = tmp_path / "new" / "folders" / "config.py"
    umask = os.umask(0o002)  # as on Ubuntu: new folders would be 0775
    try:
        made = CliRunner().invoke(cli, ["--config", str(config), "init"])
    finally:
        os.umask(umask)
    assert made.exit_code == 0, made.output
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700
    assert config.parent.stat().st_mode & 0o777 == 0o700
    check = invoke(config, "check")
    assert check.exit_code == 2
    failed = [line for line in config_lines(check) if line.startswith("✘")]
    assert [line.split(": ")[2] for line in failed] == ["CLIENT_ID", "SRC_ID", "DST_ID"]
    assert all("is the template's placeholder, not a real UUID" in f for f in failed)


def test_a_placeholder_left_in_a_job_is_named(
    globus_env: TestEmulator, tmp_path: Path
) -> None:
    placeholder = "00000000-0000-0000-0000-000000000002"
    config = write_config(tmp_path / "config.py", globus_env, DST_ID=placeholder)
    result = invoke(config, "run")
    assert result.exit_code == 2
    assert f"DST_ID: {placeholder} is the template's placeholder" in result.stderr


# --- HEARTBEAT_URL ------------------------------------------------------------------


def test_a_malformed_heartbeat_url_is_not_echoed_with_its_token(
    globus_env: TestEmulator, tmp_path: Path
) -> None:
    token = "5b7e8c1a-2f44-4c2e-9d0b-7a1e3c5f9a2d"
    config = write_config(
        tmp_path / "config.py", globus_env, HEARTBEAT_URL=f"hc-ping.com/{token}"
    )
    for args in (["run"], ["check"]):
        result = invoke(config, *args)
        assert result.exit_code == 2
        assert "HEARTBEAT_URL: (malformed) is not an http:// or https:// URL" in (
            result.output
        )
        assert token not in result.output


# --- who could change or read the config ----------------------------------------------


def test_a_private_config_in_a_folder_everyone_may_write_is_refused(
    globus_env: TestEmulator, tmp_path: Path
) -> None:
    folder = tmp_path / "shared"
    config = write_config(folder / "config.py", globus_env)
    folder.chmod(0o777)
    check = invoke(config, "check")
    assert check.exit_code == 2
    assert f"the folder {folder} is writable by group or others" in check.stdout
    assert f"`chmod go-w {folder}`" in check.stdout
    assert invoke(config, "run").exit_code == 2
    folder.chmod(0o700)
    assert invoke(config, "run", "--dry-run").exit_code == 0


def test_a_readable_config_with_a_secret_is_warned_about_but_runs(
    globus_env: TestEmulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "config.py", globus_env)  # has CLIENT_SECRET
    config.chmod(0o644)
    check = invoke(config, "check")
    warned = [line for line in config_lines(check) if "readable by group" in line]
    assert warned == [
        f"! config: {config}: holds CLIENT_SECRET and is readable by group or "
        f"others; fix with `chmod go-r {config}` (and take the secret out: "
        "$GLOBUS_AUTO_CLIENT_SECRET can hold CLIENT_SECRET)"
    ]
    assert check.exit_code == 0, check.output
    # Under cron (no terminal) a good run prints nothing; its log says it.
    write_files(src_data(globus_env), {"a.txt": b"a"})
    run = invoke(config, "run")
    assert run.exit_code == 0 and run.output == ""
    log = (state_dir_of(config) / "globus-auto.log").read_text()
    assert f"WARNING globus_auto.engine.session: {config}: holds CLIENT_SECRET" in log


def test_a_readable_config_warns_on_a_terminal(
    globus_env: TestEmulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "config.py", globus_env)
    config.chmod(0o640)
    code, shown = run_on_terminal(config, ["run", "--dry-run"], cli_env(globus_env))
    assert code == 0, shown
    assert f"globus-auto: {config}: holds CLIENT_SECRET and is readable" in shown


# --- reset asks -------------------------------------------------------------------


def tracked(config: Path) -> int:
    with sqlite3.connect(state_dir_of(config) / "datastore") as db:
        return int(db.execute("SELECT count(*) FROM files").fetchone()[0])


@pytest.fixture
def sent_config(globus_env: TestEmulator, tmp_path: Path) -> Path:
    """A config whose job has sent two files."""
    config = write_config(tmp_path / "config.py", globus_env)
    write_files(src_data(globus_env), {"a.txt": b"a", "b.txt": b"b"})
    assert invoke(config, "run").exit_code == 0
    assert tracked(config) == 2
    return config


def test_reset_without_a_terminal_needs_yes(sent_config: Path) -> None:
    refused = invoke(sent_config, "reset")
    assert refused.exit_code == 2
    (line,) = refused.stderr.splitlines()
    assert line.endswith(
        ": reset asks before it forgets what was sent, and there is no terminal to "
        f"answer on; to reset anyway, run: globus-auto --config {sent_config} reset "
        "--yes"
    )
    assert tracked(sent_config) == 2
    done = invoke(sent_config, "reset", "--yes")
    assert done.exit_code == 0
    assert done.stdout == "default: forgot 2 files; the next run sends everything\n"
    assert tracked(sent_config) == 0


@pytest.mark.parametrize(
    ("typed", "left", "said"),
    [
        (b"n\n", 2, "Nothing was reset."),
        (b"\n", 2, "Nothing was reset."),  # the default is no
        (b"\x04", 2, "Nothing was reset."),  # end of input
        (b"y\n", 0, "default: forgot 2 files; the next run sends everything"),
    ],
)
def test_reset_asks_on_a_terminal(
    sent_config: Path, globus_env: TestEmulator, typed: bytes, left: int, said: str
) -> None:
    code, shown = run_on_terminal(
        sent_config, ["reset"], cli_env(globus_env), typed=typed
    )
    assert code == 0, shown
    assert "Forget what was sent for job default (2 tracked files)? The next run " in (
        shown
    )
    assert "[y/N]" in shown and said in shown
    assert tracked(sent_config) == left
