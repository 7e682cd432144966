"""Files blocked at the destination, on real SQLite (issue 15, item 5).

A blocked file is in no task (not even a whole-directory one), still counts
as waiting, is looked at first once its stat changes, and a version-2
datastore gains the columns on upgrade. The pure mapping of Globus's type-conflict
events to the files a task carries is tested here too.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from old_datastores import old_datastore, stored_schema_version

from globus_auto.datastore import schema
from globus_auto.datastore.opening import datastore_path, open_datastore
from globus_auto.datastore.records import Observed
from globus_auto.datastore.store import Datastore
from globus_auto.engine.conflicts import fault_targets, recheck_blocked
from globus_auto.engine.report import RunEnv
from globus_auto.globus.gateway import Gateway, PathFault, TaskState, event_path
from globus_auto.settings.source import load_settings

NOW = datetime(2026, 5, 1, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path: Path) -> Datastore:
    return open_datastore(tmp_path / "state", NOW)


def observe(store: Datastore, job: int, path: bytes, size: int = 1) -> None:
    """A scan saw ``path``: its content (digest) is a function of its size."""
    digest = b"%d:" % size + path
    store.apply_scan_batch(job, [Observed(path, size, 1, 1, 1, digest)], [])


def free(store: Datastore, job: int) -> set[bytes]:
    return {f.path for f in store.pending_files(job, free=True)}


def test_a_blocked_file_waits_in_no_task_and_is_looked_at_first_once_changed(
    store: Datastore,
) -> None:
    job = store.job_id("identity", "j", NOW)
    for path in (b"a", b"b", b"c"):
        observe(store, job, path)
    store.block_files(job, [(b"a", "a folder is there")], NOW)
    assert free(store, job) == {b"b", b"c"}
    assert store.pending_totals(job) == (3, 3)  # still waiting: not delivered
    assert store.count_blocked(job) == 1
    assert store.blocked_files(job) == [(b"a", "a folder is there")]
    task = store.prepare_task(job, "s1", recursive=True, files=None, now=NOW)
    assert task.files == 2
    assert [f.path for f in store.carried_files("s1")] == [b"b", b"c"]
    observe(store, job, b"a")  # seen again with the same stat: as it was
    assert store.blocked_files(job, since=NOW - timedelta(hours=1)) == []
    observe(store, job, b"a", size=2)  # changed: still blocked, looked at first
    assert store.count_blocked(job) == 1 and b"a" not in free(store, job)
    assert store.blocked_files(job, since=NOW - timedelta(hours=1)) == [
        (b"a", "a folder is there")
    ]


def test_unblocking_frees_the_file(store: Datastore) -> None:
    job = store.job_id("identity", "j", NOW)
    observe(store, job, b"a")
    store.block_files(job, [(b"a", "why")], NOW)
    store.unblock_files(job, [b"a"])
    assert free(store, job) == {b"a"} and store.blocked_files(job) == []


V2_FILES = """CREATE TABLE files (
    job INTEGER NOT NULL, path BLOB NOT NULL, size INTEGER, mtime_ns INTEGER,
    ctime_ns INTEGER, inode INTEGER, digest BLOB, delivered BLOB, sending BLOB,
    problem TEXT, task TEXT, PRIMARY KEY (job, path)) WITHOUT ROWID"""


def test_a_version_2_datastore_gains_the_blocked_columns(tmp_path: Path) -> None:
    state = tmp_path / "state"
    path = datastore_path(state)
    with old_datastore(path, V2_FILES, 2, NOW) as conn:
        conn.execute(
            "INSERT INTO files VALUES (1, ?, 1, 1, 1, 1, ?, NULL, NULL, NULL, NULL)",
            (b"a", b"d"),
        )
    store = open_datastore(state, NOW)
    assert store.count_blocked(1) == 0
    assert free(store, 1) == {b"a"}
    store.close()
    assert stored_schema_version(path) == (str(schema.SCHEMA_VERSION),)


def test_a_fault_names_a_path_of_the_job_and_why() -> None:
    faults = [
        PathFault("IS_A_DIRECTORY", "/backup/a"),
        PathFault("NOT_A_DIRECTORY", "/backup/d/e"),
        PathFault("NOT_A_DIRECTORY", "/elsewhere/d/f"),  # not under DST_DIR
        PathFault("PERMISSION_DENIED", "/backup/n"),
        PathFault("IS_A_DIRECTORY", "/backup/a"),  # retried: one event each time
    ]
    reasons = fault_targets("/backup", faults)
    assert sorted(reasons) == [b"a", b"d/e", b"n"]
    assert reasons[b"a"] == (
        "IS_A_DIRECTORY at /backup/a: the destination has a folder where this file goes"
    )
    assert reasons[b"d/e"] == (
        "NOT_A_DIRECTORY at /backup/d/e: the destination has a file where a folder "
        "of this path must be"
    )
    assert "refuses to write it" in reasons[b"n"]


def test_blocking_a_path_blocks_the_files_there_and_below_not_yet_delivered(
    store: Datastore,
) -> None:
    job = store.job_id("identity", "j", NOW)
    for path in (b"d/e", b"d/e/b", b"d/e/c/x", b"d/e0", b"d/f", b"d/e.txt", b"old"):
        observe(store, job, path)
    task = store.prepare_task(job, "s1", recursive=True, files=None, now=NOW)
    store.settle_task(task, "SUCCEEDED", "", None, NOW)  # all delivered
    for path in (b"d/e/b", b"d/e/c/x", b"d/e0", b"d/f", b"d/e.txt"):
        observe(store, job, path, size=2)  # changed: to send again
    blocked = store.block_files(job, [(b"d/e", "why"), (b"old", "why")], NOW)
    assert blocked == 2  # d/e and old are delivered: nothing to hold back
    assert sorted(p for p, _ in store.blocked_files(job)) == [b"d/e/b", b"d/e/c/x"]
    assert free(store, job) == {b"d/e0", b"d/f", b"d/e.txt"}


class ListedGateway(Gateway):
    """A gateway that says which destination paths still have the other type."""

    def __init__(self, conflicts: set[str]) -> None:
        super().__init__(client=None)  # type: ignore[arg-type]
        self.conflicts = conflicts
        self.asked: list[str] = []

    def type_conflict_at(self, collection_id: str, path: str, top: str) -> bool:
        self.asked.append(path)
        return path in self.conflicts


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.py"
    path.write_text(
        "CLIENT_ID = '33333333-3333-3333-3333-333333333333'\n"
        "SRC_ID = '11111111-1111-1111-1111-111111111111'\nSRC_DIR = '/s'\n"
        "DST_ID = '22222222-2222-2222-2222-222222222222'\nDST_DIR = '/backup'\n"
        f"STATE_DIR = '{tmp_path / 'state'}'\n"
    )
    path.chmod(0o600)
    return path


def test_a_recheck_frees_a_path_now_free_and_a_refused_one_an_hour_on(
    tmp_path: Path, store: Datastore
) -> None:
    settings = load_settings(write_config(tmp_path), {})
    job = store.job_id("identity", "j", NOW)
    for path in (b"free", b"still", b"refused-long-ago", b"refused-just-now"):
        observe(store, job, path)
    earlier = NOW - timedelta(hours=2)
    store.block_files(
        job,
        [
            (b"free", "IS_A_DIRECTORY at /backup/free: ..."),
            (b"still", "NOT_A_DIRECTORY at /backup/still: ..."),
            (b"refused-long-ago", "PERMISSION_DENIED at /backup/refused-long-ago: ..."),
        ],
        earlier,
    )
    store.block_files(job, [(b"refused-just-now", "INVALID_PATH_NAME at x: ...")], NOW)
    gateway = ListedGateway({"/backup/still"})
    env = RunEnv(settings, store, lambda: gateway, lambda: NOW)
    assert recheck_blocked(settings.jobs[0], job, env) == 2
    assert free(store, job) == {b"free", b"refused-long-ago"}
    assert sorted(gateway.asked) == ["/backup/free", "/backup/still"]
    # Still blocked, "still" goes to the back of the line.
    assert [p for p, _ in store.blocked_files(job)] == [
        b"refused-just-now",
        b"still",
    ]


def test_the_path_of_an_event_is_its_file_line() -> None:
    # The event document of docs.globus.org/api/transfer/task_events.
    details = (
        "Error (transfer)\nServer: ballen#uc-laptop (Globus Connect)\n"
        "File: /~/Downloads/plus-plan-exposure.png\n"
        "Command: STOR ~/Downloads/plus-plan-exposure.png\n"
        "Message: Fatal FTP response\n---\n500 Command failed. : Path not allowed.\n"
    )
    assert event_path(details) == "/~/Downloads/plus-plan-exposure.png"
    assert event_path("no path here") is None


class PolledGateway(Gateway):
    """A gateway whose task states come from a list (no Globus needed)."""

    def __init__(self, states: list[TaskState]) -> None:
        super().__init__(client=None)  # type: ignore[arg-type]
        self.states = states
        self.polls = 0

    def task(self, task_id: str) -> TaskState:
        self.polls += 1
        return self.states.pop(0)


def state(faults: int, status: str = "ACTIVE") -> TaskState:
    return TaskState("t", status, None, None, 2, 1, 0, 10, faults, None)


def test_waiting_stops_when_a_task_retries_in_vain() -> None:
    """``--wait`` does not wait a task out that retries a type conflict: the
    run cancels it at once (``until``); without ``until`` it waits on."""
    slept: list[float] = []
    states = [state(0), state(1), state(1), state(0, "SUCCEEDED")]
    gateway = PolledGateway(list(states))
    got = gateway.wait(
        "t", 600, clock=lambda: 0.0, sleep=slept.append, until=lambda s: s.faults > 0
    )
    assert (got.faults, gateway.polls, len(slept)) == (1, 2, 1)
    gateway = PolledGateway(list(states))
    got = gateway.wait("t", 600, clock=lambda: 0.0, sleep=slept.append)
    assert got.status == "SUCCEEDED" and gateway.polls == 4
