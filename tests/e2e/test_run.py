"""The main job end to end: config.py → scan → datastore → Globus → destination.

Every test runs the real ``globus-auto`` command (click, in-process) against
the emulator, a real HTTP service that copies files between local folders.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import helpers_e2e
import pytest
from click.testing import CliRunner, Result
from emulator_fixtures import TestEmulator

from globus_auto.cli.group import cli
from globus_auto.emulator import Emulator

SRC_DIR = "/data"
DST_DIR = "/backup"


def write_config(
    path: Path, emu: TestEmulator, dst_dir: str = DST_DIR, **extra: Any
) -> Path:
    return helpers_e2e.write_config(path, emu, DST_DIR=dst_dir, **extra)


def run(config: Path, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["--config", str(config), *args])
    return result


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def put(root: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


@pytest.fixture
def setup(
    globus_env: TestEmulator, tmp_path: Path
) -> tuple[TestEmulator, Path, Path, Path]:
    src = globus_env.src_root / "data"
    dst = globus_env.dst_root / "backup"
    put(src, {"a.txt": b"alpha", "sub/b.bin": os.urandom(70_000), "sub/deep/c": b""})
    config = write_config(tmp_path / "config.py", globus_env)
    return globus_env, config, src, dst


def globus_requests(emu: Emulator) -> int:
    return sum(emu.stats()["requests"].values())


def test_first_run_delivers_the_whole_tree(setup: Any) -> None:
    emu, config, src, dst = setup
    result = run(config, "run", "--wait")
    assert result.exit_code == 0, result.output
    assert tree(dst) == tree(src)
    stats = emu.stats()
    assert stats["tasks_submitted"] == 1
    assert stats["tasks"].get("SUCCEEDED") == 1


def test_second_run_without_change_makes_no_request(setup: Any) -> None:
    emu, config, _, _ = setup
    assert run(config, "run", "--wait").exit_code == 0
    before = globus_requests(emu)
    result = run(config, "run")
    assert result.exit_code == 0, result.output
    assert globus_requests(emu) == before
    assert emu.stats()["tasks_submitted"] == 1


def test_changed_and_new_files_are_delivered_and_nothing_else(setup: Any) -> None:
    emu, config, src, dst = setup
    assert run(config, "run", "--wait").exit_code == 0
    put(src, {"a.txt": b"alpha, edited", "sub/new.dat": b"new"})
    result = run(config, "-v", "run", "--wait")
    assert result.exit_code == 0, result.output
    assert tree(dst) == tree(src)
    assert emu.stats()["tasks_submitted"] == 2
    assert "delivered 2 files" in result.output  # only the two, not the tree


def test_deleted_source_file_stays_at_destination(setup: Any) -> None:
    emu, config, src, dst = setup
    assert run(config, "run", "--wait").exit_code == 0
    (src / "a.txt").unlink()
    result = run(config, "run", "--wait")
    assert result.exit_code == 0, result.output
    assert (dst / "a.txt").read_bytes() == b"alpha"
    assert emu.stats()["tasks_submitted"] == 1  # a deletion sends nothing


def test_destination_extras_untouched_and_same_name_replaced(setup: Any) -> None:
    _, config, src, dst = setup
    put(dst, {"only-here.txt": b"keep me", "a.txt": b"stale copy"})
    result = run(config, "run", "--wait")
    assert result.exit_code == 0, result.output
    assert (dst / "only-here.txt").read_bytes() == b"keep me"
    assert (dst / "a.txt").read_bytes() == b"alpha"
    assert tree(src).items() <= tree(dst).items()


def test_failed_task_files_are_sent_again_by_the_next_run(setup: Any) -> None:
    emu, config, src, dst = setup
    emu.add_faults(fail_tasks=1)
    result = run(config, "run", "--wait")
    assert result.exit_code == 5, result.output
    assert "FAILED" in result.output
    result = run(config, "run", "--wait")
    assert result.exit_code == 0, result.output
    assert tree(dst) == tree(src)
    assert emu.stats()["tasks"].get("FAILED") == 1


def test_task_left_running_is_settled_by_the_next_run(setup: Any) -> None:
    emu, config, src, dst = setup
    assert run(config, "run").exit_code == 0  # submitted, not waited for
    emu.wait_idle(30)
    put(src, {"later.txt": b"later"})
    result = run(config, "run", "--wait")
    assert result.exit_code == 0, result.output
    assert tree(dst) == tree(src)
    assert emu.stats()["tasks_submitted"] == 2


def test_changing_dst_dir_sends_everything_to_the_new_place(
    setup: Any, tmp_path: Path
) -> None:
    emu, config, src, _ = setup
    assert run(config, "run", "--wait").exit_code == 0
    write_config(config, emu, dst_dir="/elsewhere")
    result = run(config, "run", "--wait")
    assert result.exit_code == 0, result.output
    assert tree(emu.dst_root / "elsewhere") == tree(src)


def test_empty_directory_alone_triggers_nothing(
    globus_env: TestEmulator, tmp_path: Path
) -> None:
    (globus_env.src_root / "data" / "empty").mkdir(parents=True)
    config = write_config(tmp_path / "config.py", globus_env)
    result = run(config, "run")
    assert result.exit_code == 0, result.output
    assert globus_requests(globus_env) == 0


def test_many_changes_go_as_one_recursive_item(
    globus_env: TestEmulator, tmp_path: Path
) -> None:
    src = globus_env.src_root / "data"
    put(src, {f"d{i % 3}/f{i}": str(i).encode() for i in range(30)})
    config = write_config(tmp_path / "config.py", globus_env, RECURSIVE_THRESHOLD=10)
    result = run(config, "run", "--wait")
    assert result.exit_code == 0, result.output
    assert tree(globus_env.dst_root / "backup") == tree(src)
    # A further small change goes as a list of files again.
    put(src, {"d0/f0": b"changed"})
    assert run(config, "run", "--wait").exit_code == 0
    assert (globus_env.dst_root / "backup/d0/f0").read_bytes() == b"changed"


def test_seed_style_config_runs_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The original script's config.py: SRC_DIR is the local and the Globus path."""
    src = tmp_path / "beamline" / "raw"
    put(src, {"scan_0001.h5": os.urandom(5000), "scan_0002.h5": os.urandom(5000)})
    src_id, dst_id, client = (str(uuid.uuid4()) for _ in range(3))
    secret = "s3cret-" + uuid.uuid4().hex
    dst_root = tmp_path / "dst-collection"
    dst_root.mkdir()
    # A Globus Connect Personal-like collection rooted at "/": paths are real.
    with Emulator(
        collections={src_id: Path("/"), dst_id: dst_root}, clients={client: secret}
    ) as emu:
        monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_TRANSFER", emu.url)
        monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_AUTH", emu.url)
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
        config = tmp_path / "config.py"
        config.write_text(
            "# globus_auto configuration\n"
            f"SRC_ID = '{src_id}'\n"
            f"SRC_DIR = '{src}'\n"
            f"DST_ID = '{dst_id}'\n"
            "DST_DIR = '/archive/raw'\n"
            f"CLIENT_ID = '{client}'\n"
            f"CLIENT_SECRET = '{secret}'\n"
            "CODE_PATH = '/global/homes/u/user/globus_auto'\n"
            "PYTHON_PATH = '/usr/bin/python3'\n"
            "EMAIL_SENDER = 'globus-auto@example.org'\n"
            "EMAIL_RECIPIENTS = ['data-team@example.org']\n"
            "EMAIL_HOST = 'localhost'\n"
        )
        config.chmod(0o600)
        result = run(config, "run", "--wait")
        assert result.exit_code == 0, result.output
        assert tree(dst_root / "archive/raw") == tree(src)
        assert (tmp_path / "xdg-state").exists()


def test_missing_config_is_one_clear_line(tmp_path: Path) -> None:
    result = run(tmp_path / "nope.py", "run")
    assert result.exit_code == 2
    assert "config" in result.output and "init" in result.output
    assert "Traceback" not in result.output


def test_unparsable_config_names_the_line(tmp_path: Path) -> None:
    config = tmp_path / "config.py"
    config.write_text("SRC_ID = 'x'\nDST_ID = (\n")
    config.chmod(0o600)
    result = run(config, "run")
    assert result.exit_code == 2
    assert "line" in result.output
    assert "Traceback" not in result.output


def test_missing_src_dir_fails_cleanly_and_keeps_state(setup: Any) -> None:
    _, config, src, _ = setup
    assert run(config, "run", "--wait").exit_code == 0
    state = config.parent / "state" / "datastore"
    before = dump(state)
    src.rename(src.with_name("moved-away"))
    result = run(config, "run")
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert "Traceback" not in result.output
    assert dump(state) == before


def test_invalid_utf8_name_is_reported_and_the_rest_delivered(setup: Any) -> None:
    _, config, src, dst = setup
    with open(os.fsencode(src) + b"/bad-\xff-name", "wb") as handle:
        handle.write(b"x")
    result = run(config, "run", "--wait")
    # The rest is delivered, and the run says, in one line, what it could not do.
    assert result.exit_code == 1, result.output
    assert (dst / "a.txt").read_bytes() == b"alpha"
    assert not any(b"bad-" in name for name in os.listdir(os.fsencode(dst)))
    lines = [line for line in result.output.splitlines() if "cannot be sent" in line]
    assert len(lines) == 1 and "bad-\\xff-name" in lines[0]
    assert "not valid UTF-8" in lines[0]
    assert "Traceback" not in result.output
    # Nothing else pending: the next run has nothing new to send but still says so.
    again = run(config, "run")
    assert again.exit_code == 1 and "cannot be sent" in again.output


def test_dry_run_lists_and_changes_nothing(setup: Any) -> None:
    emu, config, _, dst = setup
    result = run(config, "run", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "new" in result.output and "a.txt" in result.output
    assert "3 files" in result.output
    assert globus_requests(emu) == 0
    assert not dst.exists()
    again = run(config, "run", "--dry-run")
    assert "3 files" in again.output


def dump(path: Path) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return [
            conn.execute("SELECT * FROM files ORDER BY job, path").fetchall(),
            conn.execute("SELECT * FROM tasks ORDER BY submission_id").fetchall(),
        ]
    finally:
        conn.close()


def test_symlinks_are_skipped_quietly_and_recursion_still_used(
    globus_env: TestEmulator, tmp_path: Path
) -> None:
    src = globus_env.src_root / "data"
    put(src, {f"f{i}": str(i).encode() for i in range(5)})
    (src / "latest").symlink_to("f4")
    config = write_config(tmp_path / "config.py", globus_env, RECURSIVE_THRESHOLD=2)
    result = run(config, "run", "--wait")
    assert result.exit_code == 0, result.output
    dst = globus_env.dst_root / "backup"
    assert tree(dst) == {f"f{i}": str(i).encode() for i in range(5)}
    assert not (dst / "latest").exists()
    (task,) = globus_env.transfer.tasks.values()
    assert task.items[0].recursive  # a symlink does not rule out recursion
    conn = sqlite3.connect(config.parent / "state" / "datastore")
    assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (0,)
    conn.close()


def test_init_writes_a_private_template_that_names_what_to_fill_in(
    tmp_path: Path,
) -> None:
    config = tmp_path / "conf" / "config.py"
    result = run(config, "init")
    assert result.exit_code == 0, result.output
    assert config.stat().st_mode & 0o777 == 0o600
    assert "SRC_ID" in config.read_text()
    again = run(config, "init")  # never overwrites
    assert again.exit_code == 2 and "exists already" in again.output
    # The untouched template is refused, naming each placeholder to fill in.
    loaded = run(config, "run")
    assert loaded.exit_code == 2, loaded.output
    for name in ("CLIENT_ID", "SRC_ID", "DST_ID"):
        assert f"{name}: 00000000-0000-0000-0000-0000000000" in loaded.output
    assert "is the template's placeholder" in loaded.output
    assert "Traceback" not in loaded.output
