"""``globus-auto systemd``: the units, checked by systemd's own ``verify``.

``systemd-analyze verify`` loads the unit files as systemd would (syntax,
known settings, the ExecStart= binary by absolute path); it is skipped where
systemd is not installed.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import helpers_e2e
import pytest
from click.testing import CliRunner, Result
from emulator_fixtures import TestEmulator

from globus_auto.cli.group import cli
from globus_auto.cli.systemd import build_units, on_calendar, quoted

ANALYZE = shutil.which("systemd-analyze")


def invoke(config: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], env=env)


def verify(folder: Path, *names: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, "verify", *(str(folder / n) for n in names)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("minutes", "calendar"),
    [
        (1, "*-*-* *:00/1:00"),
        (15, "*-*-* *:00/15:00"),
        (60, "*-*-* 00/1:00:00"),
        (360, "*-*-* 00/6:00:00"),
        (1440, "*-*-* 00:00:00"),
    ],
)
def test_on_calendar(minutes: int, calendar: str) -> None:
    assert on_calendar(minutes) == calendar
    if ANALYZE is not None:  # systemd reads it as meant
        shown = subprocess.run(
            [ANALYZE, "calendar", calendar], capture_output=True, text=True
        )
        assert shown.returncode == 0, shown.stderr


def test_words_are_quoted_for_systemd() -> None:
    assert quoted("/usr/bin/python") == "/usr/bin/python"
    assert quoted("/a b/it's") == '"/a b/it\'s"'
    assert quoted('/a"b\\c') == '"/a\\"b\\\\c"'
    assert quoted("/50%/$HOME") == '"/50%%/$$HOME"'
    assert quoted("X=$1 %h", command=False) == '"X=$1 %%h"'


def test_the_units_run_what_the_cron_line_runs(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    config = helpers_e2e.write_config(tmp_path / "config.py", emulator)
    result = invoke(
        config,
        "systemd",
        "--every",
        "30m",
        "--job",
        "default",
        env={"GLOBUS_SDK_ENVIRONMENT": "sandbox", "GLOBUS_AUTO_CLIENT_SECRET": "s3"},
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    state = tmp_path / "state"
    assert f"WorkingDirectory={state}\n" in out
    assert (
        f"ExecStart={sys.executable} -m globus_auto --config {config} run --job default"
        in out
    )
    assert "Environment=PATH=/usr/local/bin:/usr/bin:/bin\n" in out
    assert "Environment=GLOBUS_SDK_ENVIRONMENT=sandbox\n" in out
    assert "UMask=0077" in out and "Nice=10" in out
    assert "IOSchedulingClass=idle" in out
    assert "OnCalendar=*-*-* *:00/30:00" in out and "Persistent=true" in out
    assert "globus-auto-default.service" in out and "globus-auto-default.timer" in out
    assert "GLOBUS_AUTO_CLIENT_SECRET is set" in out and "s3" not in out
    assert state.is_dir()  # WorkingDirectory= must exist before the first run


def test_the_same_checks_as_cron(tmp_path: Path, emulator: TestEmulator) -> None:
    config = helpers_e2e.write_config(tmp_path / "config.py", emulator)
    bad_every = invoke(config, "systemd", "--every", "7m")
    assert bad_every.exit_code == 2
    assert "10m, 12m, 15m" in bad_every.stderr
    no_job = invoke(config, "systemd", "--job", "nope")
    assert no_job.exit_code == 2
    assert "no job named 'nope'" in no_job.stderr


def test_install_writes_the_user_units_and_says_how_to_enable_them(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    config = helpers_e2e.write_config(tmp_path / "config.py", emulator)
    xdg = tmp_path / "xdg"
    env = {"XDG_CONFIG_HOME": str(xdg)}
    result = invoke(config, "systemd", "--install", env=env)
    assert result.exit_code == 0, result.output
    folder = xdg / "systemd" / "user"
    assert sorted(p.name for p in folder.iterdir()) == [
        "globus-auto.service",
        "globus-auto.timer",
    ]
    assert f"wrote {folder / 'globus-auto.timer'}" in result.stdout
    assert "systemctl --user enable --now globus-auto.timer" in result.stdout
    assert "OnCalendar=*-*-* *:00/15:00" in (folder / "globus-auto.timer").read_text()

    again = invoke(config, "systemd", "--install", env=env)
    assert f"unchanged {folder / 'globus-auto.service'}" in again.stdout
    hourly = invoke(config, "systemd", "--install", "--every", "1h", env=env)
    assert f"replaced {folder / 'globus-auto.timer'}" in hourly.stdout
    assert "OnCalendar=*-*-* 00/1:00:00" in (folder / "globus-auto.timer").read_text()


@pytest.mark.skipif(ANALYZE is None, reason="systemd is not installed here")
def test_systemd_analyze_verify_accepts_the_units(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    # A path with a space, a quote and a percent sign proves the quoting holds.
    base = tmp_path / "my data's 100%"
    config = helpers_e2e.write_config(base / "config.py", emulator)
    xdg = tmp_path / "xdg"
    result = invoke(config, "systemd", "--install", env={"XDG_CONFIG_HOME": str(xdg)})
    assert result.exit_code == 0, result.output
    folder = xdg / "systemd" / "user"
    checked = verify(folder, "globus-auto.service", "globus-auto.timer")
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr == ""  # not even a warning
    service = (folder / "globus-auto.service").read_text()
    exec_start = next(
        line for line in service.splitlines() if line.startswith("ExecStart=")
    )
    argv = shlex.split(exec_start.removeprefix("ExecStart=").replace("%%", "%"))
    assert argv[0] == sys.executable and Path(argv[0]).is_absolute()
    assert argv[argv.index("--config") + 1] == str(config)
    assert Path(argv[argv.index("--config") + 1]).is_absolute()


@pytest.mark.skipif(ANALYZE is None, reason="systemd is not installed here")
def test_verify_fails_on_units_that_are_wrong(tmp_path: Path) -> None:
    """The check above can fail: a missing interpreter is an error, a
    misspelled setting a warning."""
    units = build_units("/nonexistent/python", Path("/c.py"), Path("/"), {}, "15m", 15)
    (tmp_path / "a.service").write_text(units.service)
    assert verify(tmp_path, "a.service").returncode != 0
    (tmp_path / "b.service").write_text(
        units.service.replace(sys.executable, "/bin/true").replace("Nice=", "Nic=")
    )
    assert "Unknown key" in verify(tmp_path, "b.service").stderr
