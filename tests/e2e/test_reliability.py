"""Nothing lost, nothing stuck, end to end: a config that would lose data is
refused before anything runs, and a file whose mtime lies in the future is
sent once, not never and not every run.

Every test runs the real ``globus-auto`` command against the emulator.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import helpers_e2e
import pytest
from click.testing import CliRunner, Result
from emulator_fixtures import TestEmulator

from globus_auto.cli.group import cli

HOUR = 3600


def invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def config_with(tmp_path: Path, emu: TestEmulator, **extra: Any) -> Path:
    return helpers_e2e.write_config(tmp_path / "config.py", emu, **extra)


@pytest.mark.parametrize("command", [["check"], ["run"], ["run", "--wait"]])
def test_two_jobs_writing_one_destination_are_refused(
    tmp_path: Path, globus_env: TestEmulator, command: list[str]
) -> None:
    (helpers_e2e.src_data(globus_env) / "results.csv").write_bytes(b"mine")
    other = {
        "name": "other",
        "src_id": globus_env.src_id,
        "src_dir": "/elsewhere",
        "dst_id": globus_env.dst_id.upper(),
        "dst_dir": "/backup/data/",
    }
    config = config_with(
        tmp_path, globus_env, DST_DIR="/backup/data", TRANSFERS=[other]
    )
    result = invoke(config, *command)
    assert result.exit_code == 2, result.output
    assert (
        "TRANSFERS[0].dst_dir: jobs 'default' and 'other' both write to /backup/data"
        in result.output
    )
    assert "give each job its own destination folder" in result.output
    assert "/backup/data/default and /backup/data/other" in result.output
    assert globus_env.stats()["tasks_submitted"] == 0
    assert not (globus_env.dst_root / "backup" / "data" / "results.csv").exists()


def test_destination_inside_its_own_source_is_refused(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    config = config_with(
        tmp_path,
        globus_env,
        DST_ID=globus_env.src_id,
        DST_DIR=helpers_e2e.SRC_DIR + "/copy",
    )
    for command in (["check"], ["run"]):
        result = invoke(config, *command)
        assert result.exit_code == 2, result.output
        assert "DST_DIR: job 'default': the destination" in result.output
        assert "is inside its source folder" in result.output
    assert globus_env.stats()["tasks_submitted"] == 0


def future_file(emu: TestEmulator, name: str, ahead: float) -> Path:
    """A file whose mtime is ``ahead`` seconds in the future, in whole seconds
    (as a writer with a fast clock on NFSv3 would leave it)."""
    path = helpers_e2e.src_data(emu) / name
    path.write_bytes(b"written by a clock that runs ahead")
    when = int(time.time() + ahead)
    os.utime(path, (when, when))
    return path


def test_future_mtime_is_sent_despite_min_age(
    tmp_path: Path, globus_env: TestEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    future_file(globus_env, "skewed.txt", HOUR)
    old = helpers_e2e.src_data(globus_env) / "old.txt"
    old.write_bytes(b"old")
    os.utime(old, (time.time() - HOUR, time.time() - HOUR))
    config = config_with(tmp_path, globus_env, MIN_AGE=60)
    # The scan must see the file unchanged for MIN_AGE by its ctime, which a
    # test cannot age; a dry run shows it is held back for now, not forever.
    dry = invoke(config, "run", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "old.txt" in dry.output and "skewed.txt" not in dry.output

    config = config_with(tmp_path, globus_env, MIN_AGE=0.5)
    time.sleep(1.0)
    result = invoke(config, "run", "--wait")
    assert result.exit_code == 0, result.output
    dst = helpers_e2e.dst_data(globus_env)
    assert (dst / "skewed.txt").read_bytes() == b"written by a clock that runs ahead"
    assert (dst / "old.txt").read_bytes() == b"old"
    logged = (tmp_path / "state" / "globus-auto.log").read_text()
    # Once per scan that reads it: the dry run's changes are not kept.
    assert logged.count("skewed.txt has a modification time") == 2


def test_future_mtime_is_not_sent_again_every_run(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    future_file(globus_env, "skewed.txt", HOUR)
    config = config_with(tmp_path, globus_env)
    first = invoke(config, "run", "--wait")
    assert first.exit_code == 0, first.output
    assert globus_env.stats()["tasks_submitted"] == 1
    for _ in range(2):
        again = invoke(config, "run", "--wait")
        assert again.exit_code == 0, again.output
    assert globus_env.stats()["tasks_submitted"] == 1
    logged = (tmp_path / "state" / "globus-auto.log").read_text()
    assert logged.count("skewed.txt has a modification time") == 1
