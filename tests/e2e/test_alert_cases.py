"""Alert cases end to end (unmount beside unsendable files, a lost task, a held
lock, pending counts in every alert): config.py → run →
emulator → real SMTP server (the ``World`` of ``support/alert_world.py``)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from alert_world import FILES, PREFIX, World, assert_alert, tree
from helpers_e2e import alert_kinds, dump_table

from globus_auto.datastore import opening
from globus_auto.engine import crash as crashpoints
from globus_auto.engine import job as job_run
from globus_auto.errors import DatastoreError
from globus_auto.globus import gateway
from globus_auto.lock import job_lock, lock_path


def subjects(world: World) -> list[str]:
    return [str(m["Subject"]) for m in world.mails()]


# --- 1. unsendable files do not hide an unmount ------------------------------------


def test_unmount_is_mailed_while_unsendable_files_are_open(world: World) -> None:
    os.mkfifo(world.src / "pipe")
    assert world.run().exit_code == 1  # the rest is sent; the pipe cannot be
    assert subjects(world) == [PREFIX + "some files cannot be sent"]
    assert world.run().exit_code == 1  # still there: no second mail
    assert len(world.mails()) == 1

    for child in list(world.src.iterdir()):  # unmounted: an empty mount point
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
    assert world.run().exit_code == 1
    assert subjects(world) == [
        PREFIX + "some files cannot be sent",
        PREFIX + "the source directory is not usable",
    ]
    body = assert_alert(world.mails()[1], "the source directory is not usable")
    assert str(world.src) in body and "unmounted" in body
    assert world.run().exit_code == 1
    assert len(world.mails()) == 2

    world.put(FILES)  # remounted, without the pipe: both are resolved
    assert world.run().exit_code == 0
    assert sorted(subjects(world)[2:]) == [
        PREFIX + "resolved: some files cannot be sent",
        PREFIX + "resolved: the source directory is not usable",
    ]
    assert tree(world.dst) == tree(world.src)


def test_unsendable_alert_of_an_earlier_version_is_taken_over(world: World) -> None:
    os.mkfifo(world.src / "pipe")
    assert world.run().exit_code == 1
    datastore = world.state_dir / "datastore"
    with sqlite3.connect(datastore) as conn:  # as versions before its own kind kept it
        (record,) = conn.execute("SELECT record FROM alerts").fetchone()
        values = json.loads(record)
        values["problem"]["kind"] = "source-problem"
        conn.execute(
            "UPDATE alerts SET kind = 'source-problem', record = ?",
            (json.dumps(values),),
        )
    conn.close()
    assert world.run().exit_code == 1
    assert subjects(world) == [PREFIX + "some files cannot be sent"]
    assert alert_kinds(datastore) == {("default", "unsendable-files")}


# --- 2. a task Globus cannot show no longer wedges the job --------------------------


def test_task_globus_forgot_is_settled_lost_and_sent_again(world: World) -> None:
    report = world.run(wait=False)
    assert report.exit_code == 0 and report.task_id
    assert world.emu.wait_idle(20)
    with world.emu.state.lock:  # its records gone (expired, or another identity)
        del world.emu.transfer.tasks[report.task_id]
    shutil.rmtree(world.dst)  # so that delivery below is this run's doing

    report = world.run(wait=True)
    assert report.exit_code == 5, report.problems  # the lost task is reported
    assert tree(world.dst) == tree(world.src)
    (mail,) = world.mails()
    body = assert_alert(mail, "Globus no longer knows a transfer")
    # The real service answers 404 ClientError.NotFound for a task it does not
    # know (terraref/computing-pipeline issue 425).
    assert "404 ClientError.NotFound" in body and "sent again" in body
    states = dump_table(world.state_dir / "datastore", "tasks")
    assert sorted(row[9] for row in states) == ["LOST", "SUCCEEDED"]

    assert world.run(wait=True).exit_code == 0
    assert subjects(world)[1:] == [
        PREFIX + "resolved: Globus no longer knows a transfer"
    ]


# --- 3. a run that never ends is noticed --------------------------------------------


def test_lock_held_too_long_is_alerted_and_not_pinged_as_success(
    world: World, monitor: Any
) -> None:
    url, hits, _ = monitor
    world.extra["HEARTBEAT_URL"] = url  # World sets TASK_STUCK_HOURS = 6
    assert world.run(wait=False).exit_code == 0  # 2 files on their way
    assert hits == ["/ping/abc/start", "/ping/abc/0"]  # a healthchecks-style URL
    world.put({"later.txt": b"later"})
    path = lock_path(world.state_dir, "default")
    with job_lock(world.state_dir, "default"):  # a run in progress
        report = world.run()
        assert report.exit_code == 0 and "skipped" in report.outcome
        assert world.mails() == []
        assert ends(hits) == ["/ping/abc/0"]  # neither success nor failure yet

        hours_ago = time.time() - 7 * 3600  # the same run, 7 hours on
        os.utime(path, (hours_ago, hours_ago))
        for _ in range(2):
            assert world.run().exit_code == 1
        (mail,) = world.mails()
        body = assert_alert(mail, "a run has not finished", pending="2 files")
        assert f"Process {os.getpid()} " in body and str(world.src) in body
        assert f"kill {os.getpid()}" in body
        assert ends(hits)[1:] == ["/ping/abc/1"] * 2

    assert world.run().exit_code == 0  # the stuck run ended
    assert subjects(world)[1:] == [PREFIX + "resolved: a run has not finished"]
    assert tree(world.dst) == tree(world.src)
    assert hits[-1] == "/ping/abc/0"


def ends(hits: list[str]) -> list[str]:
    """The pings that end a run (not its /start)."""
    return [hit for hit in hits if not hit.endswith("/start")]


# --- 4. every alert says what is not delivered yet ----------------------------------


def test_unexpected_error_mail_carries_the_pending_counts(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("a bug after the scan")

    monkeypatch.setattr(job_run, "probe", broken)
    assert world.run().exit_code == 1
    (mail,) = world.mails()
    assert_alert(mail, "an unexpected error", pending="2 files (2.9 KiB)")


def test_unusable_datastore_mail_carries_the_pending_counts(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert world.run(wait=False).exit_code == 0  # 2 files on their way

    def refuse(*_args: object) -> None:  # readable, yet not usable for a run
        raise DatastoreError("cannot open the datastore: disk I/O error")

    monkeypatch.setattr(opening, "open_datastore", refuse)
    assert world.run().exit_code == 1
    (mail,) = world.mails()
    assert_alert(mail, "the datastore is not usable", pending="2 files (2.9 KiB)")


def test_reset_datastore_mail_carries_the_pending_counts(world: World) -> None:
    world.run(wait=False)
    assert world.emu.wait_idle(20)
    path = world.state_dir / "datastore"
    path.write_bytes(b"this is not SQLite" * 100)
    for side in ("-wal", "-shm"):
        Path(f"{path}{side}").unlink(missing_ok=True)
    assert world.run(wait=False).exit_code == 0  # sent again, not settled yet
    (mail,) = world.mails()
    body = assert_alert(mail, "the datastore was corrupt and was reset")
    assert "2 files (2.9 KiB) waiting" in body


# --- 5. a task Globus would retry for a day is not waited on ------------------------


def test_a_task_retrying_a_missing_source_is_cancelled_and_its_files_resent(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task without skip_source_errors (as one from an earlier version) whose
    source file vanished stays ACTIVE with a FILE_NOT_FOUND fault until its
    deadline (globus/globus-cli issue 1056): the next run cancels it, keeps
    what it delivered, and sends the rest again; nothing waits a day."""
    submitted = gateway.globus_sdk.TransferData

    def as_before(*args: Any, **kwargs: Any) -> Any:
        kwargs["skip_source_errors"] = False
        return submitted(*args, **kwargs)

    monkeypatch.setattr(gateway.globus_sdk, "TransferData", as_before)

    def vanish(point: str) -> None:
        if point == "before-submit":
            (world.src / "sub" / "b.bin").unlink()

    crashpoints.CRASH_HOOK = vanish
    try:
        first = world.run(wait=False)
    finally:
        crashpoints.CRASH_HOOK = None
    assert first.exit_code == 0 and first.task_id
    task = first.task_id

    def faulted() -> bool:
        doc = world.emu.task_options(task)
        return doc["status"] == "ACTIVE" and world.emu.stats()["bytes_copied"] > 0

    deadline = time.monotonic() + 20
    while not faulted():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # the missing file's fault is recorded after a.txt

    monkeypatch.setattr(gateway.globus_sdk, "TransferData", submitted)
    second = world.run(wait=False)
    assert second.exit_code == 0, second.problems
    assert "cancelled task" in second.outcome
    assert world.emu.task_options(task)["status"] == "FAILED"  # cancelled
    assert (world.dst / "a.txt").read_bytes() == FILES["a.txt"]
    states = dump_table(world.state_dir / "datastore", "tasks")
    assert [row[9] for row in states] == ["CANCELED"]
    assert world.mails() == []  # an expected race, not a failure to alert
