"""The task worker survives: names of NAME_MAX bytes, and bugs of its own.

A name as long as the filesystem allows must copy (its temporary name must
fit too), and an error nobody anticipated in one task must end that task
FAILED, as the real service reports a task it cannot go on with, while the
worker goes on running the next tasks.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from emulator_fixtures import TestEmulator
from emulator_helpers import client_transfer, data_access, submit, task_when, write

from globus_auto.emulator.worker import NAME_MAX, PART_SUFFIX, TaskWorker, part_name

LONGEST = "n" * NAME_MAX


@pytest.mark.parametrize("name", ["short.txt", LONGEST, "é" * 127 + "x"])
def test_the_temporary_name_fits_beside_any_name(name: str) -> None:
    tmp = part_name(name)
    assert len(os.fsencode(tmp)) <= NAME_MAX
    assert tmp.startswith(".") and tmp.endswith(PART_SUFFIX)
    assert part_name(name) != tmp  # a new one per attempt


def done(doc: dict[str, Any]) -> bool:
    return doc["status"] != "ACTIVE"


def test_a_file_named_with_255_bytes_is_copied(globus_env: TestEmulator) -> None:
    write(globus_env.src_root / "in" / LONGEST, b"long")
    tc = client_transfer(globus_env, data_access(globus_env.src_id, globus_env.dst_id))
    task = submit(tc, globus_env, [("/in", "/out", True)], verify_checksum=True)
    assert task_when(tc, task, done)["status"] == "SUCCEEDED"
    assert (globus_env.dst_root / "out" / LONGEST).read_bytes() == b"long"


def test_a_bug_in_one_task_fails_it_and_the_next_task_runs(
    globus_env: TestEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(globus_env.src_root / "bad.txt", b"bad")
    write(globus_env.src_root / "good.txt", b"good")
    real = TaskWorker._transfer_file

    def buggy(self: TaskWorker, task: Any, work: Any) -> None:
        if work.source_path.endswith("bad.txt"):
            raise RuntimeError("a bug of the emulator's own")
        real(self, task, work)

    monkeypatch.setattr(TaskWorker, "_transfer_file", buggy)
    tc = client_transfer(globus_env, data_access(globus_env.src_id, globus_env.dst_id))
    bad = submit(tc, globus_env, [("/bad.txt", "/bad.txt", False)])
    failed = task_when(tc, bad, done)
    assert (failed["status"], failed["fatal_error"]["code"]) == (
        "FAILED",
        "ENDPOINT_ERROR",
    )
    good = submit(tc, globus_env, [("/good.txt", "/bad.txt", False)])
    assert task_when(tc, good, done)["status"] == "SUCCEEDED"
    assert (globus_env.dst_root / "bad.txt").read_bytes() == b"good"


def test_a_bug_in_the_scheduler_does_not_stop_it(
    globus_env: TestEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = TaskWorker._expire_overdue
    calls = {"n": 0}

    def once_buggy(self: TaskWorker, now: float) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug in one pass")
        real(self, now)

    monkeypatch.setattr(TaskWorker, "_expire_overdue", once_buggy)
    write(globus_env.src_root / "f.txt", b"f")
    tc = client_transfer(globus_env, data_access(globus_env.src_id, globus_env.dst_id))
    task = submit(tc, globus_env, [("/f.txt", "/f.txt", False)])
    assert task_when(tc, task, done)["status"] == "SUCCEEDED"
    assert calls["n"] > 1


def test_a_path_the_filesystem_refuses_is_a_fault_retried_and_others_run(
    globus_env: TestEmulator,
) -> None:
    """Every name fits, the whole path does not (over PATH_MAX, 4096 bytes):
    a fault on that path, retried while the task stays ACTIVE, as Globus
    retries what an endpoint answers; a later task elsewhere still runs."""
    deep = "/".join(["d" * 250] * 15) + "/f.txt"  # about 3,800 bytes
    write(globus_env.src_root / "s" / deep, b"deep")
    write(globus_env.src_root / "ok.txt", b"ok")
    tc = client_transfer(globus_env, data_access(globus_env.src_id, globus_env.dst_id))
    too_long = submit(tc, globus_env, [(f"/s/{deep}", f"/{'D' * 400}/{deep}", False)])
    faulted = task_when(tc, too_long, lambda doc: doc["faults"] > 0)
    assert (faulted["status"], faulted["nice_status"]) == ("ACTIVE", "ENDPOINT_ERROR")
    (event,) = [e for e in tc.task_event_list(too_long) if e["is_error"]]
    assert "File name too long" in event["details"]
    other = submit(tc, globus_env, [("/ok.txt", "/ok.txt", False)])
    assert task_when(tc, other, done)["status"] == "SUCCEEDED"
    assert tc.get_task(too_long)["status"] == "ACTIVE"
