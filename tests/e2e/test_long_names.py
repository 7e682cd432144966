"""Names as long as the filesystem allows (255 bytes), end to end.

A file or folder name of NAME_MAX bytes (255 on Linux filesystems) is legal
everywhere: the tool must send it, and the emulator must copy it (it once
killed its task's worker, so the task stayed ACTIVE and no later task ran).
The destination path is longer than the source's (DST_DIR differs), but each
name in it is the same, so every name still fits.
"""

from __future__ import annotations

import os
from pathlib import Path

import helpers_e2e
from emulator_fixtures import TestEmulator

NAME_MAX = os.pathconf("/", "PC_NAME_MAX")
ASCII = "a" * (NAME_MAX - 4) + ".dat"
# 255 bytes of UTF-8: two-byte letters, one ASCII letter to make it odd.
WIDE = "é" * ((NAME_MAX - 1) // 2) + "x"
FOLDER = "d" * NAME_MAX


def run(config: Path, env: dict[str, str]) -> None:
    done = helpers_e2e.run_cli(
        ["--config", str(config), "run", "--wait", "--timeout", "60"], env
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def test_names_of_255_bytes_are_delivered_and_later_tasks_run(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    assert len(ASCII.encode()) == len(WIDE.encode()) == NAME_MAX == 255
    src = helpers_e2e.src_data(globus_env)
    files = {
        ASCII: b"ascii",
        WIDE: b"wide",
        f"{FOLDER}/{ASCII}": b"deep",
        f"{FOLDER}/{FOLDER}/{WIDE}": b"deeper",
    }
    helpers_e2e.write_files(src, files)
    config = helpers_e2e.write_config(
        tmp_path / "config.py", globus_env, DST_DIR="/a/longer/destination"
    )
    env = helpers_e2e.cli_env(globus_env)
    run(config, env)
    dst = globus_env.dst_root / "a" / "longer" / "destination"
    assert helpers_e2e.missing_or_different(src, dst) == []

    # The worker lives on: a later task, of a list of files this time, runs.
    changed = {ASCII: b"ascii, changed", "plain.txt": b"plain"}
    helpers_e2e.write_files(src, changed)
    run(config, env)
    assert helpers_e2e.missing_or_different(src, dst) == []
    assert globus_env.stats()["tasks"] == {"SUCCEEDED": 2}
    leftovers = [p for p in dst.rglob("*") if p.name.endswith(".globus-emulator-part")]
    assert leftovers == []
