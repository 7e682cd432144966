"""A task the tool cancels frees its files only once Globus reports it ended.

The Transfer API answers a cancel with ``Canceled`` (done), ``TaskComplete``
(it had ended) or ``CancelAccepted`` (accepted, still stopping: poll it;
docs.globus.org/api/transfer/task, "Cancel task by id"). While it stops,
Globus may still copy its files, so none of them may go in a second task.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alert_world import World, world_of_files
from emulator_fixtures import TestEmulator
from helpers_e2e import dump_table
from smtp_fixtures import SmtpTestServer

from globus_auto.engine import crash as crashpoints
from globus_auto.globus import gateway


@pytest.fixture
def world(
    globus_env: TestEmulator, smtp_server: SmtpTestServer, tmp_path: Path
) -> Iterator[World]:
    yield world_of_files(globus_env, smtp_server, tmp_path)
    globus_env.set_limits(cancel_seconds=0)


def _faulted_task(world: World, monkeypatch: pytest.MonkeyPatch) -> str:
    """A task retrying a vanished source (submitted without skip_source_errors,
    as by an earlier version: globus/globus-cli issue 1056), once it faulted."""
    submitted = gateway.globus_sdk.TransferData

    def as_before(*args: Any, **kwargs: Any) -> Any:
        kwargs["skip_source_errors"] = False
        return submitted(*args, **kwargs)

    def vanish(point: str) -> None:
        if point == "before-submit":
            (world.src / "sub" / "b.bin").unlink()

    monkeypatch.setattr(gateway.globus_sdk, "TransferData", as_before)
    crashpoints.CRASH_HOOK = vanish
    try:
        first = world.run(wait=False)
    finally:
        crashpoints.CRASH_HOOK = None
        monkeypatch.setattr(gateway.globus_sdk, "TransferData", submitted)
    assert first.exit_code == 0 and first.task_id
    _until(lambda: world.emu.task_options(str(first.task_id))["status"] == "ACTIVE")
    _until(lambda: world.emu.stats()["bytes_copied"] > 0)
    time.sleep(0.5)  # the missing file's fault is recorded after a.txt
    return first.task_id


def _until(check: Any, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_cancel_still_stopping_keeps_the_task_and_its_files(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = _faulted_task(world, monkeypatch)
    world.emu.set_limits(cancel_seconds=2)  # Globus takes a while to stop it
    (world.src / "a.txt").write_bytes(b"alpha, changed")  # carried, now pending

    second = world.run(wait=False)
    assert second.exit_code == 0, second.problems
    assert world.emu.task_options(task)["status"] == "ACTIVE"  # still stopping
    states = dump_table(world.state_dir / "datastore", "tasks")
    assert [row[9] for row in states] == ["CANCELLING"]
    # Not freed: a.txt goes in no second task while Globus may still copy it.
    assert world.emu.stats()["tasks_submitted"] == 1

    _until(lambda: world.emu.task_options(task)["status"] == "FAILED")
    third = world.run(wait=True)
    assert third.exit_code == 0, third.problems
    states = dump_table(world.state_dir / "datastore", "tasks")
    assert sorted(row[9] for row in states) == ["CANCELED", "SUCCEEDED"]
    assert (world.dst / "a.txt").read_bytes() == b"alpha, changed"
    assert world.mails() == []  # our own cancel is no failure to alert
