"""``globus-auto completion bash|zsh|fish``: the scripts, and what they complete.

The bash script is sourced into a real bash and its completion function run as
bash runs it on Tab; it calls the ``globus-auto`` command back (click's own
protocol, click.shell_completion), which must offer the config's job names.
Likewise in a real fish (``complete -C``); the zsh script must load into
zsh's completion system. Each shell's test is skipped where it is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import helpers_e2e
import pytest
from click.testing import CliRunner
from emulator_fixtures import TestEmulator

from globus_auto.cli.completion import COMPLETE_VAR
from globus_auto.cli.group import LAZY_COMMANDS, cli

MARKERS = {
    "bash": "complete -o nosort -F _globus_auto_completion globus-auto",
    "zsh": "#compdef globus-auto",
    "fish": "complete --no-files --command globus-auto",
}


def two_job_config(tmp_path: Path, emulator: TestEmulator) -> Path:
    values = {
        "CLIENT_ID": emulator.confidential_client_id,
        "CLIENT_SECRET": emulator.confidential_client_secret,
        "STATE_DIR": str(tmp_path / "state"),
        "TRANSFERS": helpers_e2e.named_jobs(emulator, ("raw", "results")),
    }
    config = tmp_path / "config.py"
    config.write_text("".join(f"{k} = {v!r}\n" for k, v in values.items()))
    config.chmod(0o600)
    return config


@pytest.mark.parametrize("shell", sorted(MARKERS))
def test_the_script_of_each_shell_is_click_s(shell: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell])
    assert result.exit_code == 0, result.output
    assert MARKERS[shell] in result.stdout
    assert COMPLETE_VAR in result.stdout  # how the shell calls globus-auto back


def test_an_unknown_shell_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["completion", "tcsh"])
    assert result.exit_code == 2
    assert "bash" in result.stderr and "fish" in result.stderr


def complete(words: str, cword: int, env: dict[str, str]) -> list[str]:
    """What the command answers bash's completion call (``type,value`` lines)."""
    done = subprocess.run(
        [sys.executable, "-m", "globus_auto"],
        env={
            **env,
            COMPLETE_VAR: "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(cword),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stderr == ""  # nothing may reach the user's command line
    return [line for line in done.stdout.splitlines() if line]


def test_job_names_complete_for_job_of_every_command_that_has_it(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    config = two_job_config(tmp_path, emulator)
    env = dict(os.environ)
    for command in ("run", "status", "cron", "systemd", "reset"):
        words = f"globus-auto --config {config} {command} --job "
        assert complete(words, 5, env) == ["plain,raw", "plain,results"], command
    # The config after the command's name, and a started name.
    words = f"globus-auto status --config {config} --job res"
    assert complete(words, 5, env) == ["plain,results"]
    # From $GLOBUS_AUTO_CONFIG, as the commands find it.
    env["GLOBUS_AUTO_CONFIG"] = str(config)
    assert complete("globus-auto run --job r", 3, env) == [
        "plain,raw",
        "plain,results",
    ]


def test_a_broken_config_completes_nothing_silently(tmp_path: Path) -> None:
    config = tmp_path / "config.py"
    config.write_text("this is not python\n")
    config.chmod(0o600)
    words = f"globus-auto --config {config} run --job "
    assert complete(words, 5, dict(os.environ)) == []


def test_commands_complete_including_the_new_ones() -> None:
    found = complete("globus-auto ", 1, dict(os.environ))
    assert {f"plain,{name}" for name in LAZY_COMMANDS} <= set(found)
    assert "plain,systemd" in found and "plain,completion" in found


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_the_bash_script_completes_job_names_in_a_real_bash(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    config = two_job_config(tmp_path, emulator)
    script = tmp_path / "globus-auto.bash"
    result = CliRunner().invoke(cli, ["completion", "bash"])
    script.write_text(result.stdout)
    # The script calls `globus-auto` by name, as it is once installed.
    bin_dir = launcher_dir(tmp_path)
    driver = (
        f"source {script}\n"
        f"COMP_WORDS=(globus-auto --config {config} run --job r)\n"
        "COMP_CWORD=5\n"
        "_globus_auto_completion globus-auto\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", driver],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["raw", "results"]


def launcher_dir(tmp_path: Path) -> Path:
    """A folder with a `globus-auto` that runs this checkout, as installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    launcher = bin_dir / "globus-auto"
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} -m globus_auto "$@"\n')
    launcher.chmod(0o755)
    return bin_dir


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_the_fish_script_completes_job_names_in_a_real_fish(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    config = two_job_config(tmp_path, emulator)
    script = tmp_path / "globus-auto.fish"
    script.write_text(CliRunner().invoke(cli, ["completion", "fish"]).stdout)
    path = f"{launcher_dir(tmp_path)}:{os.environ['PATH']}"
    done = subprocess.run(
        [
            "fish",
            "--no-config",
            "-c",
            f"source {script}; complete -C "
            f"'globus-auto --config {config} status --job r'",
        ],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["raw", "results"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_the_zsh_script_loads_into_zsh_s_completion_system(tmp_path: Path) -> None:
    script = tmp_path / "_globus-auto"
    script.write_text(CliRunner().invoke(cli, ["completion", "zsh"]).stdout)
    driver = (
        f"autoload -Uz compinit && compinit -u -d {tmp_path}/zcompdump && "
        f"source {script} && (( $+functions[_globus_auto_completion] )) && "
        "print -r -- $_comps[globus-auto]"
    )
    done = subprocess.run(
        ["zsh", "-f", "-c", driver],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "_globus_auto_completion"
