"""``globus-auto cron``: the schedule, the line, and the line run as cron would."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import helpers_e2e
import pytest
from click.testing import CliRunner
from emulator_fixtures import TestEmulator

from globus_auto.cli.cron import crontab_line, schedule_for, shell_command
from globus_auto.cli.group import cli

REPO = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, emulator: TestEmulator, **extra: Any) -> Path:
    """A 0600 config.py: one job from the source's /data to the destination's
    /backup, with the emulator's confidential client and STATE_DIR in tmp."""
    return helpers_e2e.write_config(tmp_path / "config.py", emulator, **extra)


@pytest.mark.parametrize(
    ("every", "schedule"),
    [
        ("1m", "* * * * *"),
        ("5m", "*/5 * * * *"),
        ("15", "*/15 * * * *"),
        ("30m", "*/30 * * * *"),
        ("60m", "0 * * * *"),
        ("1h", "0 * * * *"),
        ("6H", "0 */6 * * *"),
        ("1d", "0 0 * * *"),
        ("24h", "0 0 * * *"),
    ],
)
def test_schedule(every: str, schedule: str) -> None:
    assert schedule_for(every) == schedule


@pytest.mark.parametrize("every", ["7m", "5h", "2d", "0m", "soon", "-5m", "90m"])
def test_schedule_refuses_what_cron_cannot_do_evenly(every: str) -> None:
    with pytest.raises(ValueError, match=r"\d+m|interval|at least"):
        schedule_for(every)


def test_bad_every_is_a_usage_error_saying_what_to_write(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    config = write_config(tmp_path, emulator)
    result = CliRunner().invoke(cli, ["--config", str(config), "cron", "--every", "7m"])
    assert result.exit_code == 2
    assert "10m, 12m, 15m" in result.stderr


def test_crontab_example_matches_the_output_for_a_sample_path() -> None:
    command = shell_command(
        "/opt/globus-auto/venv/bin/python",
        Path("/home/me/.config/globus_auto/config.py"),
        Path("/home/me/.local/state/globus_auto/cron.log"),
        {},
    )
    line = crontab_line(schedule_for("15m"), command)
    example = (REPO / "crontab.example").read_text().splitlines()
    assert line in example


def test_percent_is_escaped_for_cron() -> None:
    line = crontab_line("* * * * *", "x --config /a%b/config.py")
    assert line == "* * * * * x --config /a\\%b/config.py"


def test_cron_output_names_this_python_the_config_and_the_log(
    tmp_path: Path, emulator: TestEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, emulator)
    monkeypatch.setenv("GLOBUS_SDK_ENVIRONMENT", "sandbox")
    monkeypatch.setenv("GLOBUS_AUTO_CLIENT_SECRET", "not-in-the-crontab")
    result = CliRunner().invoke(
        cli, ["--config", str(config), "cron", "--every", "5m", "--job", "default"]
    )
    assert result.exit_code == 0, result.output
    *comments, line = result.stdout.splitlines()
    assert all(c.startswith("#") for c in comments)
    assert any("GLOBUS_AUTO_CLIENT_SECRET" in c for c in comments)
    assert "not-in-the-crontab" not in result.stdout
    assert line.startswith(
        f"*/5 * * * * cd {shlex.quote(str(tmp_path / 'state'))} && umask 077; "
        "PATH=/usr/local/bin:/usr/bin:/bin "
    )
    assert " GLOBUS_SDK_ENVIRONMENT=sandbox " in line
    assert f" {sys.executable} -m globus_auto --config {config} run --job default" in (
        line
    )
    assert line.endswith(f" >> {tmp_path / 'state' / 'cron.log'} 2>&1")
    assert (tmp_path / "state").is_dir()  # the redirection needs it at once


def test_the_line_works_under_cron_s_bare_environment(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    # Paths with a space and a quote prove the quoting holds.
    base = tmp_path / "my data's"
    base.mkdir()
    config = write_config(base, globus_env)
    (globus_env.src_root / "data" / "a.txt").write_bytes(b"hello")
    result = CliRunner().invoke(cli, ["--config", str(config), "cron"])
    assert result.exit_code == 0, result.output
    line = result.stdout.splitlines()[-1]
    fields = line.split(" ", 5)
    assert fields[:5] == ["*/15", "*", "*", "*", "*"]
    assert "GLOBUS_SDK_SERVICE_URL_TRANSFER=" in fields[5]
    home = tmp_path / "home"
    home.mkdir()
    for _ in range(2):  # the first run submits, the second settles
        subprocess.run(
            ["env", "-i", f"HOME={home}", "PATH=/usr/bin:/bin", "sh", "-c", fields[5]],
            check=True,
            timeout=60,
            cwd="/",
            preexec_fn=lambda: os.umask(0o022),  # the usual user's umask
        )
        assert globus_env.wait_idle(30)
    assert (globus_env.dst_root / "backup" / "a.txt").read_bytes() == b"hello"
    cron_log = base / "state" / "cron.log"
    assert cron_log.read_text() == ""  # a good run prints nothing
    assert cron_log.stat().st_mode & 0o777 == 0o600  # whatever the umask was
    assert "SUCCEEDED" in (base / "state" / "globus-auto.log").read_text()

    # A failing run leaves its message, which says what to do, in cron.log.
    globus_env.set_collection(globus_env.dst_id, connected=False)
    (globus_env.src_root / "data" / "b.txt").write_bytes(b"more")
    failed = subprocess.run(
        ["env", "-i", f"HOME={home}", "PATH=/usr/bin:/bin", "sh", "-c", fields[5]],
        timeout=60,
        cwd="/",
    )
    assert failed.returncode != 0
    assert "globus-auto" in cron_log.read_text()
    assert shlex.split(fields[5])  # still a valid shell command


def test_each_run_caps_cron_log_in_place_at_a_line_start(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    config = write_config(tmp_path, globus_env)
    cron_log = tmp_path / "state" / "cron.log"
    cron_log.parent.mkdir(mode=0o700)
    lines = [f"globus-auto: error: old message {i:07d}\n" for i in range(40_000)]
    cron_log.write_text("".join(lines))  # about 1.6 MB
    cron_log.chmod(0o644)  # as an older line left it
    inode = cron_log.stat().st_ino
    result = CliRunner().invoke(cli, ["--config", str(config), "run"])
    assert result.exit_code == 0, result.output
    kept = cron_log.read_text()
    assert 200 * 1024 < len(kept) <= 256 * 1024
    assert kept.startswith("globus-auto: error: old message ")  # whole lines
    assert kept.endswith(lines[-1])
    assert cron_log.stat().st_ino == inode  # in place: cron's `>>` still writes here
    assert cron_log.stat().st_mode & 0o777 == 0o600
    # Under the limit it is left alone.
    cron_log.write_text("one line\n")
    assert CliRunner().invoke(cli, ["--config", str(config), "run"]).exit_code == 0
    assert cron_log.read_text() == "one line\n"


def test_the_line_creates_cron_log_private_whatever_the_umask(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    config = write_config(tmp_path, emulator)
    result = CliRunner().invoke(cli, ["--config", str(config), "cron"])
    command = result.stdout.splitlines()[-1].split(" ", 5)[5]
    # A config others may write: the run stops before it touches STATE_DIR,
    # so only the line itself decides the mode of the cron.log it creates.
    config.chmod(0o666)
    failed = subprocess.run(
        ["env", "-i", "PATH=/usr/bin:/bin", "sh", "-c", command],
        timeout=60,
        cwd="/",
        preexec_fn=lambda: os.umask(0o022),
    )
    assert failed.returncode == 2
    cron_log = tmp_path / "state" / "cron.log"
    assert "writable by group or others" in cron_log.read_text()
    assert cron_log.stat().st_mode & 0o777 == 0o600
