"""One bad item never blocks the rest (issue 15, item 5), through the command.

A file that became a folder in the source (or the reverse) while the
destination still has the other type: Globus cannot write it and retries it
(the emulator keeps such a task ACTIVE with an IS_A_DIRECTORY or
NOT_A_DIRECTORY fault, event codes of Globus's list: Globus developer-discuss,
2020-04-23), so the task never ends. The next run cancels that task, blocks
the items named (alerting the path and the fix), and the other files go in a
task of their own; once the user clears the path at the destination, the item
is delivered.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import helpers_e2e
import pytest
from click.testing import CliRunner, Result
from emulator_fixtures import TestEmulator
from helpers_e2e import dst_data, src_data
from smtp_fixtures import SmtpTestServer

from globus_auto.cli.group import cli

NEW = {f"new{i}.txt": f"new file {i}\n".encode() for i in range(1, 6)}


def invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def configure(
    tmp_path: Path, emu: TestEmulator, smtp: SmtpTestServer, **extra: Any
) -> Path:
    return helpers_e2e.write_config(
        tmp_path / "config.py",
        emu,
        **helpers_e2e.mail_to(smtp),
        ALERT_AFTER_FAILURES=1,
        **extra,
    )


def wait_for_fault(emu: TestEmulator, delivered: int) -> str:
    """The newest task's id, once it is ACTIVE with a fault and has copied
    ``delivered`` files (what it can)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with emu.state.lock:
            task = list(emu.transfer.tasks.values())[-1]
            if (
                task.status == "ACTIVE"
                and task.faults
                and (task.files_transferred >= delivered)
            ):
                return task.task_id
        time.sleep(0.05)
    raise AssertionError("the task never hit the conflict")


def status_json(config: Path) -> dict[str, Any]:
    result = invoke(config, "status", "--json")
    job: dict[str, Any] = json.loads(result.stdout)["jobs"][0]
    return job


@pytest.mark.parametrize("threshold", [0, 1000], ids=["whole-directory", "file-list"])
def test_a_file_that_became_a_folder_waits_while_the_rest_is_delivered(
    tmp_path: Path,
    globus_env: TestEmulator,
    smtp_server: SmtpTestServer,
    threshold: int,
) -> None:
    emu = globus_env
    config = configure(tmp_path, emu, smtp_server, RECURSIVE_THRESHOLD=threshold)
    src, dst = src_data(emu), dst_data(emu)
    (src / "results").write_bytes(b"old results\n")
    assert invoke(config, "run", "--wait", "--timeout", "30").exit_code == 0
    assert (dst / "results").read_bytes() == b"old results\n"

    (src / "results").unlink()
    (src / "results").mkdir()
    (src / "results" / "r1.csv").write_bytes(b"1,2\n")
    (src / "results" / "r2.csv").write_bytes(b"3,4\n")
    for name, content in NEW.items():
        (src / name).write_bytes(content)
    assert invoke(config, "run").exit_code == 0
    stuck = wait_for_fault(emu, delivered=len(NEW))

    # The next run cancels the task Globus would retry for a day, blocks the
    # two files and alerts their path; the five new files are delivered.
    second = invoke(config, "run")
    assert second.exit_code == 5, second.output
    assert emu.task_options(stuck)["status"] == "FAILED"  # cancelled
    for name, content in NEW.items():
        assert (dst / name).read_bytes() == content
    (mail,) = smtp_server.wait_for(1)
    body = mail.get_content()
    assert "some files are blocked at the destination" in str(mail["Subject"])
    assert "results/r1.csv" in body and "/backup/results" in body
    assert "move aside or remove each destination path" in body
    job = status_json(config)
    assert job["state"] == "attention"
    assert job["blocked_files"]["count"] == 2
    assert [f["path"] for f in job["blocked_files"]["files"]] == [
        "results/r1.csv",
        "results/r2.csv",
    ]
    assert job["blocked_files"]["files"][0]["reason"].startswith(
        "NOT_A_DIRECTORY at /backup/results"
    )
    text = invoke(config, "status").stdout
    assert "blocked     2 files wait for a path to be fixed" in text

    # Another new file goes in a task of its own, without the blocked two, and
    # arrives; no whole-directory task is tried while they are blocked.
    (src / "later.txt").write_bytes(b"later\n")
    third = invoke(config, "run", "--wait", "--timeout", "30")
    assert third.exit_code == 5, third.output
    assert (dst / "later.txt").read_bytes() == b"later\n"
    with emu.state.lock:
        last = list(emu.transfer.tasks.values())[-1]
        assert [i.source_path for i in last.items] == ["/data/later.txt"]
        assert last.status == "SUCCEEDED"
    assert len(smtp_server.messages) == 1  # the alert is not sent every run

    # The user moves the old file aside at the destination: the next run sees
    # the path free, delivers the folder and says the alert is resolved.
    (dst / "results").rename(dst.parent / "results.old")
    fourth = invoke(config, "run", "--wait", "--timeout", "30")
    assert fourth.exit_code == 0, fourth.output
    assert (dst / "results" / "r1.csv").read_bytes() == b"1,2\n"
    assert (dst / "results" / "r2.csv").read_bytes() == b"3,4\n"
    job = status_json(config)
    assert job["blocked_files"]["count"] == 0 and job["waiting_files"] == 0
    resolved = smtp_server.wait_for(2)[1]
    assert "resolved" in str(resolved["Subject"])


def test_a_folder_that_became_a_file_waits_until_the_folder_is_moved(
    tmp_path: Path, globus_env: TestEmulator, smtp_server: SmtpTestServer
) -> None:
    emu = globus_env
    config = configure(tmp_path, emu, smtp_server)
    src, dst = src_data(emu), dst_data(emu)
    (src / "logs").mkdir()
    (src / "logs" / "day1.log").write_bytes(b"day one\n")
    assert invoke(config, "run", "--wait", "--timeout", "30").exit_code == 0

    shutil.rmtree(src / "logs")
    (src / "logs").write_bytes(b"one log file now\n")
    (src / "other.txt").write_bytes(b"other\n")
    assert invoke(config, "run").exit_code == 0
    wait_for_fault(emu, delivered=1)
    assert invoke(config, "run").exit_code == 5
    assert (dst / "other.txt").read_bytes() == b"other\n"
    (blocked,) = status_json(config)["blocked_files"]["files"]
    assert blocked["path"] == "logs"
    assert blocked["reason"] == (
        "IS_A_DIRECTORY at /backup/logs: the destination has a folder where this "
        "file goes"
    )
    body = smtp_server.wait_for(1)[0].get_content()
    assert "logs: IS_A_DIRECTORY at /backup/logs: the destination has a folder" in body

    # While the folder is there, runs keep the file blocked and send no task.
    tasks_before = len(emu.transfer.tasks)
    assert invoke(config, "run").exit_code == 5
    assert len(emu.transfer.tasks) == tasks_before

    shutil.rmtree(dst / "logs")
    assert invoke(config, "run", "--wait", "--timeout", "30").exit_code == 0
    assert (dst / "logs").read_bytes() == b"one log file now\n"


def test_a_blocked_file_renamed_in_the_source_is_delivered(
    tmp_path: Path, globus_env: TestEmulator, smtp_server: SmtpTestServer
) -> None:
    """Renaming the item in the source is the other fix: under its new name
    it is a new file, which nothing blocks; the folder at the destination is
    left alone (the destination is never pruned)."""
    emu = globus_env
    config = configure(tmp_path, emu, smtp_server)
    src, dst = src_data(emu), dst_data(emu)
    (dst / "report").mkdir(parents=True)
    (dst / "report" / "keep.txt").write_bytes(b"someone's folder\n")
    (src / "report").write_bytes(b"a report\n")
    assert invoke(config, "run").exit_code == 0
    wait_for_fault(emu, delivered=0)
    assert invoke(config, "run").exit_code == 5
    assert status_json(config)["blocked_files"]["count"] == 1

    (src / "report").rename(src / "report.txt")
    assert invoke(config, "run", "--wait", "--timeout", "30").exit_code == 0
    assert (dst / "report.txt").read_bytes() == b"a report\n"
    assert (dst / "report" / "keep.txt").read_bytes() == b"someone's folder\n"
    assert status_json(config)["blocked_files"]["count"] == 0
