"""``globus-auto status`` and ``run --dry-run`` against the emulator, in-process."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import helpers_e2e
from click.testing import CliRunner, Result
from emulator_fixtures import TestEmulator

from globus_auto.cli.group import cli


def write_config(tmp_path: Path, emulator: TestEmulator, **extra: Any) -> Path:
    """A 0600 config.py: one job from the source's /data to the destination's
    /backup, with the emulator's confidential client and STATE_DIR in tmp."""
    return helpers_e2e.write_config(tmp_path / "config.py", emulator, **extra)


def invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def status_json(config: Path, *args: str) -> dict[str, Any]:
    result = invoke(config, "status", "--json", *args)
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_status_before_any_run_is_offline_and_says_what_next(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    # No GLOBUS_SDK_SERVICE_URL_*: any network call would go to the real Globus
    # and fail here; status must not make one.
    config = write_config(tmp_path, emulator)
    result = invoke(config, "status")
    assert result.exit_code == 0, result.output
    assert "job default: never run" in result.stdout
    assert "run --dry-run --job default" in result.stdout
    assert f"config      {config}" in result.stdout
    assert f"datastore   {tmp_path / 'state' / 'datastore'}" in result.stdout
    assert "login       service account" in result.stdout
    assert not (tmp_path / "state" / "datastore").exists()
    assert emulator.stats()["requests"] == {}

    doc = status_json(config)
    assert doc["jobs"][0]["state"] == "never run"
    assert doc["jobs"][0]["last_run"] is None
    assert doc["token"]["kind"] == "service account"
    assert doc["log"] == str(tmp_path / "state" / "globus-auto.log")


def test_dry_run_lists_files_with_reasons_and_changes_nothing(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    config = write_config(tmp_path, globus_env)
    data = globus_env.src_root / "data"
    (data / "sub").mkdir()
    (data / "a.txt").write_bytes(b"a" * 10)
    (data / "sub" / "b.bin").write_bytes(b"b" * 1000)

    first = invoke(config, "run", "--dry-run")
    assert first.exit_code == 0, first.output
    lines = first.stdout.splitlines()
    assert lines[0].split() == ["new", "10", "a.txt"]
    assert lines[1].split() == ["new", "1,000", "sub/b.bin"]
    assert "default: 2 files would be sent (2 new, 0 changed)" in lines[2]
    assert "(1,010 bytes)" in lines[2]
    assert globus_env.stats()["tasks_submitted"] == 0
    assert not (globus_env.dst_root / "backup").exists()
    # Nothing recorded: a second dry run sees the same, status no run.
    assert invoke(config, "run", "--dry-run").stdout == first.stdout
    assert status_json(config)["jobs"][0]["state"] == "never run"

    delivered = invoke(config, "run", "--wait", "--timeout", "30")
    assert delivered.exit_code == 0, delivered.output
    (data / "a.txt").write_bytes(b"A" * 12)
    (data / "c.txt").write_bytes(b"c")
    changed = invoke(config, "run", "--dry-run")
    assert changed.stdout.splitlines()[:2] == [
        f"{'changed':8} {12:>14,}  a.txt",
        f"{'new':8} {1:>14,}  c.txt",
    ]
    assert "2 files would be sent (1 new, 1 changed)" in changed.stdout
    assert status_json(config)["jobs"][0]["waiting_files"] == 0


def test_dry_run_of_a_missing_source_says_what_to_do(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    config = write_config(tmp_path, globus_env, SRC_LOCAL_DIR=str(tmp_path / "gone"))
    result = invoke(config, "run", "--dry-run")
    assert result.exit_code == 1
    assert "does not exist" in result.stderr
    assert "to fix:" in result.stderr


def test_status_after_delivery(tmp_path: Path, globus_env: TestEmulator) -> None:
    config = write_config(tmp_path, globus_env)
    data = globus_env.src_root / "data"
    for i in range(3):
        (data / f"f{i}.txt").write_bytes(b"x" * (i + 1))
    assert invoke(config, "run", "--wait", "--timeout", "30").exit_code == 0

    result = invoke(config, "status")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "job default: ok" in text
    assert "tracked     3 files" in text
    assert "waiting     0 files (0 B) not yet delivered" in text
    assert "delivered 3 files" in text
    assert "(last success)" in text and "delivered   never" not in text

    job = status_json(config)["jobs"][0]
    assert job["tracked_files"] == 3
    assert job["waiting_files"] == 0
    assert job["tasks_in_flight"] == []
    assert job["last_run"]["outcome"].endswith("delivered 3 files")
    assert job["last_run"]["files_sent"] == 3
    assert job["last_delivery"] is not None
    assert job["alerts"] == []


def test_status_shows_a_task_in_flight_and_refresh_asks_globus(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    config = write_config(tmp_path, globus_env)
    data = globus_env.src_root / "data"
    (data / "big.bin").write_bytes(os.urandom(64 * 1024))
    globus_env.add_faults(bytes_per_second=1024)  # a minute: still in flight below
    submitted = invoke(config, "run")
    assert submitted.exit_code == 0, submitted.output

    offline = status_json(config)["jobs"][0]
    assert offline["state"] == "waiting"
    assert offline["waiting_files"] == 1
    assert offline["waiting_bytes"] == 64 * 1024
    (task,) = offline["tasks_in_flight"]
    assert task["source"] == "datastore"
    assert task["status"] == "SUBMITTED"
    assert task["files"] == 1

    before = globus_env.stats()["requests"]
    refreshed = status_json(config, "--refresh")["jobs"][0]["tasks_in_flight"][0]
    assert refreshed["source"] == "globus"
    assert refreshed["status"] == "ACTIVE"
    assert refreshed["progress"].startswith("ACTIVE: ")
    assert globus_env.stats()["requests"] != before

    text = invoke(config, "status", "--refresh").stdout
    assert f"in flight   task {task['task_id']}: ACTIVE: " in text
    assert "[Globus now]" in text
    globus_env.add_faults(bytes_per_second=0)


def test_status_shows_alerts_and_files_that_cannot_be_sent(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    # The folder scanned here exists, but the path on the collection does not.
    config = write_config(tmp_path, globus_env, SRC_DIR="/not-there")
    (globus_env.src_root / "data" / "ok.txt").write_bytes(b"ok")
    failed = invoke(config, "run")
    assert failed.exit_code == 4, failed.output

    result = invoke(config, "status")
    assert "job default: attention" in result.stdout
    assert "ALERT       a collection is not ready" in result.stdout
    assert "to fix: Check that collections" in result.stdout
    job = status_json(config)["jobs"][0]
    (alert,) = job["alerts"]
    assert alert["kind"] == "endpoint-not-ready"
    assert job["last_run"]["outcome"] == "failed"
    assert job["waiting_files"] == 1

    # A file the scan could not read is listed with its reason (as written by
    # the scan into the datastore).
    store = sqlite3.connect(tmp_path / "state" / "datastore")
    with store:
        store.execute(
            "UPDATE files SET problem = 'Permission denied' WHERE path = ?",
            (b"ok.txt",),
        )
    store.close()
    job = status_json(config)["jobs"][0]
    assert job["problem_files"] == {
        "count": 1,
        "files": [{"path": "ok.txt", "reason": "Permission denied"}],
    }
    assert "ok.txt: Permission denied" in invoke(config, "status").stdout


def test_status_of_an_unknown_job_says_which_exist(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    config = write_config(tmp_path, emulator)
    result = invoke(config, "status", "--job", "nope")
    assert result.exit_code == 2
    assert "no job named 'nope'; known jobs: default" in result.stderr


def test_status_of_a_user_login_without_tokens_says_log_in(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    config = write_config(
        tmp_path, emulator, CLIENT_ID=emulator.native_client_id, CLIENT_SECRET=None
    )
    doc = status_json(config)
    assert doc["token"]["kind"] == "none"
    assert doc["token"]["problem"].endswith(f"globus-auto --config {config} login")
    assert "LOGIN" in invoke(config, "status").stdout


def test_every_command_help_has_an_example_and_the_exit_codes() -> None:
    for command in ("status", "check", "cron", "run"):
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0
        assert "Example" in result.stdout, command
    for command in ("status", "check", "cron"):
        result = CliRunner().invoke(cli, [command, "--help"])
        assert "5  a transfer failed" in result.stdout


def test_status_shows_a_run_in_progress_and_a_skipped_run_is_not_the_last(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    from globus_auto.lock import job_lock

    config = write_config(tmp_path, globus_env)
    (globus_env.src_root / "data" / "a.txt").write_text("a")
    assert invoke(config, "run", "--wait", "--timeout", "30").exit_code == 0
    with job_lock(tmp_path / "state", "default"):  # a run in progress
        text = invoke(config, "status").stdout
        assert "running     since " in text and f"(process {os.getpid()})" in text
        job = status_json(config)["jobs"][0]
        assert job["running"]["pid"] == os.getpid()
        assert invoke(config, "run").exit_code == 0  # skipped: the lock is held
        job = status_json(config)["jobs"][0]
        assert job["last_run"]["outcome"].endswith("delivered 1 file")  # plural right
    assert status_json(config)["jobs"][0]["running"] is None


def test_a_run_with_nothing_to_send_never_imports_globus_sdk(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    """The README's promise: a run with nothing new makes no network call and
    does not import globus-sdk (python -X importtime lists every import)."""
    config = write_config(tmp_path, globus_env)
    (globus_env.src_root / "data" / "a.txt").write_text("a")
    assert invoke(config, "run", "--wait", "--timeout", "30").exit_code == 0
    imported = helpers_e2e.imported_by_run(config)  # the second run: nothing new
    assert not [module for module in imported if "globus_sdk" in module]
