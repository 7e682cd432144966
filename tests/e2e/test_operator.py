"""The operator's day through the ``globus-auto`` command: every message says
what to do.

A state folder of another user, global options after the command's name, a
mistyped login code (on a real pseudo-terminal), a reader that stops reading,
the exit-code table and the example in every command's help, and counts
written as people write them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import login_site
import pytest
from click.testing import CliRunner, Result
from emulator_fixtures import TestEmulator
from helpers_e2e import NOBODY, cli_unusable_by, write_config
from login_site import Site, on_terminal

from globus_auto.cli.group import LAZY_COMMANDS, cli


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


# --- 1. a state folder owned by another user ---

SETPRIV = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def run_cli(
    args: list[str], env: dict[str, str], user: int
) -> subprocess.CompletedProcess[str]:
    """``python -m globus_auto ARGS`` as nobody, through ``setpriv`` (which
    also works where the interpreter is under root's home)."""
    assert user == NOBODY
    return subprocess.run(
        [*SETPRIV, sys.executable, "-m", "globus_auto", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def nobody_cannot_run(env: dict[str, str]) -> str | None:
    """Why nobody cannot run the CLI here (no setpriv, an unreadable venv)."""
    if shutil.which("setpriv") is None:
        return cli_unusable_by(NOBODY, env) or "no setpriv"
    probe = [*SETPRIV, sys.executable, "-c", "import globus_auto.main, globus_sdk"]
    done = subprocess.run(probe, env=env, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return None
    return f"nobody cannot run {sys.executable}: {done.stderr.strip()[-200:]}"


@pytest.fixture
def as_nobody(emulator: TestEmulator) -> Iterator[tuple[Path, dict[str, str]]]:
    """A folder in /tmp others can reach, with a config nobody owns; its state
    folder is made root's by the test. Root is needed to own files as another
    user; the CLI must be runnable by nobody."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to leave a state folder owned by another user")
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        base.chmod(0o755)
        env = {**os.environ, "HOME": str(base)}
        env["GLOBUS_SDK_SERVICE_URL_TRANSFER"] = emulator.url
        env["GLOBUS_SDK_SERVICE_URL_AUTH"] = emulator.url
        reason = nobody_cannot_run(env)
        if reason:
            pytest.skip(reason)
        source = base / "source"
        source.mkdir(mode=0o755)
        (source / "a.txt").write_text("a\n")
        config = write_config(
            base / "config" / "config.py", emulator, SRC_LOCAL_DIR=str(source)
        )
        for path in (config.parent, config, source, source / "a.txt"):
            os.chown(path, NOBODY, NOBODY)
        yield config, env
    finally:
        shutil.rmtree(base)


def sudo_run_leftovers(state: Path, owner: int = 0) -> None:
    """What one ``sudo globus-auto run`` leaves: a 0700 folder and its files,
    all the given owner's (root's by default)."""
    state.mkdir(mode=0o700, exist_ok=True)
    (state / "tokens.json").write_text("{}")
    (state / "globus-auto.log").write_text("")
    for path in (state, state / "tokens.json", state / "globus-auto.log"):
        os.chown(path, owner, owner)


@pytest.mark.parametrize("command", [["run"], ["run", "--dry-run"], ["status"]])
def test_a_root_owned_state_folder_is_one_line_with_the_fix(
    as_nobody: tuple[Path, dict[str, str]], command: list[str]
) -> None:
    config, env = as_nobody
    state = config.parent / "state"
    sudo_run_leftovers(state)
    done = run_cli(["--config", str(config), *command], env, user=NOBODY)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"globus-auto: error: the state folder {state} is owned by root, not "
        "nobody (after a run with sudo?); make the folder yours: sudo chown -R "
        f"nobody {state}"
    ]
    assert "unexpected" not in done.stderr and "Traceback" not in done.stderr


def test_a_root_owned_file_in_ones_own_state_folder_is_named(
    as_nobody: tuple[Path, dict[str, str]],
) -> None:
    config, env = as_nobody
    state = config.parent / "state"
    sudo_run_leftovers(state)
    os.chown(state, NOBODY, NOBODY)  # the folder is nobody's, its files root's
    done = run_cli(["--config", str(config), "status"], env, user=NOBODY)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"globus-auto: error: {state / 'globus-auto.log'} in the state folder is "
        "owned by root, not nobody (after a run with sudo?); make the folder yours: "
        f"sudo chown -R nobody {state}"
    ]


def test_a_service_users_state_folder_says_run_as_that_user(
    as_nobody: tuple[Path, dict[str, str]],
) -> None:
    config, env = as_nobody
    state = config.parent / "state"
    daemon = 1  # "daemon" on Debian and Red Hat alike
    sudo_run_leftovers(state, owner=daemon)
    done = run_cli(["--config", str(config), "run", "-v"], env, user=NOBODY)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert f"sudo chown -R nobody {state}" in done.stderr
    assert f"sudo -u daemon globus-auto --config {config} run" in done.stderr


def test_check_reports_the_state_folder_as_a_failed_check(
    as_nobody: tuple[Path, dict[str, str]],
) -> None:
    config, env = as_nobody
    state = config.parent / "state"
    sudo_run_leftovers(state)
    done = run_cli(["--config", str(config), "check"], env, user=NOBODY)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert (
        f"✘ state folder: the state folder {state} is owned by root, not nobody "
        "(after a run with sudo?)"
    ) in lines
    assert f"    → make the folder yours: sudo chown -R nobody {state}" in lines
    assert "- login: not checked without a usable state folder" in lines
    assert "unexpected" not in done.stdout


# --- 2. global options after the command's name ---


def test_global_options_are_accepted_after_the_command(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    config = write_config(tmp_path / "config.py", globus_env)
    (globus_env.src_root / "data").mkdir(exist_ok=True)
    (globus_env.src_root / "data" / "a.txt").write_bytes(b"a" * 10)
    before = invoke("--config", str(config), "-v", "run", "--dry-run")
    assert before.exit_code == 0, before.output
    assert "would be sent" in before.stdout
    for args in (
        ["run", "--dry-run", "-v", "--config", str(config)],
        ["run", "-v", f"--config={config}", "--dry-run"],
        ["--config", str(config), "run", "--verbose", "--dry-run"],
        ["-v", "run", "--dry-run", "--config", str(config)],
    ):
        after = invoke(*args)
        assert (after.exit_code, after.stdout) == (0, before.stdout), args


def test_the_example_of_the_groups_help_works(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    """``globus-auto --config ~/.config/globus_auto/config.py run -v``, with a
    HOME of its own."""
    home = tmp_path / "home"
    config = write_config(home / ".config" / "globus_auto" / "config.py", globus_env)
    help_text = invoke("--help").stdout
    example = help_text.rsplit("Example: ", 1)[1].strip()
    assert example == "globus-auto --config ~/.config/globus_auto/config.py run -v"
    args = [os.path.expanduser(a) for a in shlex.split(example)[1:]]
    args = [a.replace(os.path.expanduser("~"), str(home), 1) for a in args]
    assert args[1] == str(config)
    done = invoke(*args)
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("default: ")


def test_verbose_after_the_command_turns_on_the_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.py"
    quiet = invoke("status", "--config", str(missing))
    assert quiet.exit_code == 2
    assert str(missing) in quiet.stderr
    # and an option's value is never taken for a global option
    named = invoke("--config", str(missing), "status", "--job", "-v")
    assert named.exit_code == 2 and str(missing) in named.stderr


# --- 3. a mistyped login code ---


def test_a_mistyped_login_code_exits_3_with_one_line(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(login_site, "browse", lambda url: "not-the-code")
    status, shown, typed = on_terminal(site, "login")
    assert typed == 1
    assert status == 3, shown
    errors = [line for line in shown.splitlines() if "error" in line]
    assert errors == [
        "globus-auto: error: Globus did not accept the authorization code "
        "(mistyped, incomplete or already used); run globus-auto --config "
        f"{site.config} login again and paste the code the page shows"
    ], shown
    assert "AuthAPIError" not in shown and "unexpected" not in shown
    assert not site.tokens.exists()


def test_a_mistyped_code_at_the_login_offered_by_a_run(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(login_site, "browse", lambda url: "not-the-code")
    status, shown, _ = on_terminal(site, "run")
    assert status == 3, shown
    assert "Globus did not accept the authorization code" in shown
    assert "unexpected" not in shown


# --- 4. a reader that stops reading; help; counts ---


def test_a_reader_that_stops_reading_is_no_error(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    """``globus-auto status | head -0``: the pipe is closed before status writes."""
    config = write_config(tmp_path / "config.py", emulator)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "globus_auto", "--config", str(config), "status"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")


def test_status_through_head_shows_its_first_line(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    config = write_config(tmp_path / "config.py", emulator)
    python = shlex.quote(sys.executable)
    done = subprocess.run(
        f"set -o pipefail; {python} -m globus_auto --config {shlex.quote(str(config))}"
        " status | head -1",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "job default: never run\n"


COMMANDS = sorted(name for name in LAZY_COMMANDS if name != "emulator")


@pytest.mark.parametrize("name", COMMANDS)
def test_every_commands_help_ends_with_its_example_and_the_exit_codes(
    name: str,
) -> None:
    shown = invoke(name, "--help")
    assert shown.exit_code == 0, shown.output
    assert "Example" in shown.stdout
    assert "Exit codes:" in shown.stdout
    assert "  130  interrupted (Ctrl-C)" in shown.stdout
    assert shown.stdout.rstrip().splitlines()[-1].strip().startswith("130")


@pytest.mark.parametrize("name", COMMANDS)
def test_every_commands_example_is_a_valid_command_line(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each example's ``globus-auto ...`` parses: its options exist, its values
    fit (the command is not run), with the folders it names in place."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mydata").mkdir()
    text = invoke(name, "--help").stdout
    lines = [
        line.strip().removeprefix("Example: ").removeprefix("(crontab -l; ")
        for line in text.splitlines()
        if "globus-auto " in line and "Usage" not in line
    ]
    examples = [line for line in lines if line.startswith("globus-auto ")]
    assert examples, text
    for example in examples:
        words = shlex.split(example.split(" && ")[0].split(")")[0])[1:]
        with cli.make_context("globus-auto", list(words)) as ctx:
            sub_args = [*ctx._protected_args, *ctx.args]
            command = cli.get_command(ctx, sub_args[0])
            assert command is not None, example
            command.make_context(sub_args[0], sub_args[1:], parent=ctx).close()


def test_counts_are_singular_for_one_and_have_thousands_separators(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    config = write_config(tmp_path / "config.py", globus_env)
    (globus_env.src_root / "data").mkdir(exist_ok=True)
    (globus_env.src_root / "data" / "one.txt").write_bytes(b"x")
    dry = invoke("--config", str(config), "run", "--dry-run")
    assert "default: 1 file would be sent (1 new, 0 changed), 1 B (1 byte);" in (
        dry.stdout
    )
    assert invoke("--config", str(config), "run", "--wait").exit_code == 0
    status = invoke("--config", str(config), "status").stdout
    assert "  tracked     1 file\n" in status
    assert "  waiting     0 files (0 B) not yet delivered" in status
    reset = invoke("--config", str(config), "reset", "--yes")
    assert reset.stdout == "default: forgot 1 file; the next run sends everything\n"
