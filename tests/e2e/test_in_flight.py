"""New data never waits behind a running transfer (issue 14), through the command.

The emulator throttles its copies (``bytes_per_second``) so a large file's task
stays in flight across several ``globus-auto run`` commands; like the real
service it works on 3 tasks of a user at once and queues the rest
(docs.globus.org/api/transfer/task_behavior, "Queuing"; GLOBUS.md "Tasks").
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import helpers_e2e
import pytest
from click.testing import CliRunner, Result
from emulator_fixtures import TestEmulator
from helpers_e2e import dst_data, missing_or_different, src_data

from globus_auto.cli.group import cli
from globus_auto.emulator import server
from globus_auto.engine import plan

BIG = 4 * 1024 * 1024
# 64 s for a big file: far longer than the runs below take, and the throttle is
# lifted at the end, so the test never waits for it.
THROTTLE = 64 * 1024


def invoke(config: Path, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["--config", str(config), *args])
    assert result.exit_code == 0, result.output
    return result


def tasks(emulator: TestEmulator) -> list[tuple[str, str, list[str]]]:
    """(task id, status, source file names) of every task, in submission order."""
    with emulator.state.lock:
        return [
            (t.task_id, t.status, [os.path.basename(i.source_path) for i in t.items])
            for t in emulator.transfer.tasks.values()
        ]


def status_of(emulator: TestEmulator, task_id: str) -> str:
    return next(status for tid, status, _ in tasks(emulator) if tid == task_id)


def replace(path: Path, content: bytes) -> None:
    """Write a new version by renaming over the old (a copy in progress keeps
    reading the old one, as it would on a real filesystem)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(content)
    tmp.rename(path)


def wait_for(path: Path, content: bytes, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes() == content:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not arrive")


def status_json(config: Path) -> dict[str, Any]:
    job: dict[str, Any] = json.loads(invoke(config, "status", "--json").stdout)["jobs"][
        0
    ]
    return job


def test_new_files_go_in_a_second_task_while_a_large_one_runs(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    emu = globus_env
    config = helpers_e2e.write_config(tmp_path / "config.py", emu, EXCLUDE=["*.tmp"])
    src, dst = src_data(emu), dst_data(emu)
    emu.add_faults(bytes_per_second=THROTTLE)
    (src / "big1.bin").write_bytes(os.urandom(BIG))
    invoke(config, "run")
    ((big_task, _, carried),) = tasks(emu)
    assert carried == ["big1.bin"]

    # A small file created meanwhile goes in a second task and arrives while
    # the large file's task still runs.
    (src / "small.txt").write_bytes(b"new data\n")
    invoke(config, "run")
    (_, (small_task, _, carried)) = tasks(emu)
    assert carried == ["small.txt"]
    wait_for(dst / "small.txt", b"new data\n")
    assert status_of(emu, big_task) == "ACTIVE", "the big task ended too soon"
    assert not (dst / "big1.bin").exists()

    # The big file changes during its own task: the next run puts only the new
    # big2 in a task, not big1, which its task still carries.
    replace(src / "big1.bin", b"version two\n")
    (src / "big2.bin").write_bytes(os.urandom(BIG))
    invoke(config, "run")
    assert [names for _, _, names in tasks(emu)][2:] == [["big2.bin"]]

    # Two tasks in flight, the limit (MAX_TASKS_IN_FLIGHT, default 2): three
    # runs submit no third one, and say why.
    (src / "later.txt").write_bytes(b"later\n")
    for _ in range(3):
        invoke(config, "run")
    assert len(tasks(emu)) == 3
    job = status_json(config)
    assert [t["status"] for t in job["tasks_in_flight"]] == ["ACTIVE", "ACTIVE"]
    outcome = job["last_run"]["outcome"]
    assert "1 file to send, held until a task ends: 2 tasks in flight" in outcome
    assert "(MAX_TASKS_IN_FLIGHT is 2)" in outcome
    text = invoke(config, "status").stdout
    assert text.count("  in flight   task ") == 2
    assert text.count("              carries 1 file (") == 2
    assert "2 tasks in flight, at most 2 at once (MAX_TASKS_IN_FLIGHT)" in text
    assert status_of(emu, big_task) == "ACTIVE", "the big task ended too soon"

    # Once they end, big1's new version and later.txt go in one more task.
    emu.add_faults(bytes_per_second=0)
    assert emu.wait_idle(60)
    invoke(config, "run", "--wait", "--timeout", "60")
    assert [sorted(names) for _, _, names in tasks(emu)][3:] == [
        ["big1.bin", "later.txt"]
    ]
    assert missing_or_different(src, dst) == []
    assert status_of(emu, small_task) == "SUCCEEDED"
    job = status_json(config)
    assert (job["state"], job["waiting_files"], job["tasks_in_flight"]) == (
        "ok",
        0,
        [],
    )


def test_one_task_in_flight_when_the_limit_is_one(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    emu = globus_env
    config = helpers_e2e.write_config(
        tmp_path / "config.py", emu, MAX_TASKS_IN_FLIGHT=1
    )
    src = src_data(emu)
    emu.add_faults(bytes_per_second=THROTTLE)
    (src / "big.bin").write_bytes(os.urandom(BIG))
    invoke(config, "run")
    (src / "small.txt").write_bytes(b"small\n")
    invoke(config, "run")
    assert len(tasks(emu)) == 1  # as before issue 14: the small file waits
    emu.add_faults(bytes_per_second=0)
    assert emu.wait_idle(60)
    invoke(config, "run", "--wait", "--timeout", "60")
    assert missing_or_different(src, dst_data(emu)) == []


def test_more_than_three_tasks_in_flight_is_refused(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    config = helpers_e2e.write_config(
        tmp_path / "config.py", globus_env, MAX_TASKS_IN_FLIGHT=4
    )
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 2, result.output
    assert "MAX_TASKS_IN_FLIGHT" in result.output
    assert "at most 3 tasks of a user at once" in result.output


def send_120_long_names(tmp_path: Path, globus_env: TestEmulator) -> Path:
    """Write 120 files with long names (about 200 bytes an item: 24 KiB in one
    list) and run four times, sending them in lists of files (the threshold
    of a whole-folder task is far above 120); returns the source folder."""
    src = src_data(globus_env)
    for i in range(120):
        (src / f"file-with-a-long-name-{i:04d}.txt").write_bytes(b"%d\n" % i)
    config = helpers_e2e.write_config(
        tmp_path / "config.py", globus_env, RECURSIVE_THRESHOLD=10_000
    )
    for _ in range(4):
        invoke(config, "run", "--wait", "--timeout", "60")
    return src


def test_a_refused_list_is_split_not_sent_again_unchanged(
    tmp_path: Path, globus_env: TestEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15, item 7, in small: the emulator refuses a body over 16 KiB (its
    real limit is 8 MiB), the tool's own bound is set above that, so its first
    list is refused; the next goes at half the size, and everything arrives."""
    monkeypatch.setattr(server, "MAX_BODY_BYTES", 16 * 1024)
    monkeypatch.setattr(plan, "MAX_DOCUMENT_BYTES", 1024 * 1024)
    monkeypatch.setattr(plan, "SPLIT_REFUSED_ABOVE", 10)
    src = send_120_long_names(tmp_path, globus_env)
    assert missing_or_different(src, dst_data(globus_env)) == []
    sizes = [len(names) for _, _, names in tasks(globus_env)]
    assert sizes[0] == 60 and sum(sizes) == 120, sizes  # 120 refused, then halves
    rows = helpers_e2e.dump_table(tmp_path / "state" / "datastore", "tasks")
    assert sorted(row[9] for row in rows).count("REFUSED") >= 1


def test_a_list_stays_within_the_tools_own_bound(
    tmp_path: Path, globus_env: TestEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "MAX_BODY_BYTES", 16 * 1024)
    monkeypatch.setattr(plan, "MAX_DOCUMENT_BYTES", 8 * 1024)
    src = send_120_long_names(tmp_path, globus_env)
    assert missing_or_different(src, dst_data(globus_env)) == []
    rows = helpers_e2e.dump_table(tmp_path / "state" / "datastore", "tasks")
    assert {row[9] for row in rows} == {"SUCCEEDED"}  # never refused
    assert len(rows) > 2  # several documents (two tasks in flight a run)
