"""The datastore on real SQLite: two-phase delivery, reopening, privacy, corruption."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from globus_auto.datastore.opening import CorruptDatastore, move_aside, open_datastore
from globus_auto.datastore.records import Observed
from globus_auto.datastore.store import Datastore

NOW = datetime(2026, 5, 1, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path: Path) -> Datastore:
    return open_datastore(tmp_path / "state", NOW)


def observe(store: Datastore, job: int, path: bytes, digest: bytes) -> None:
    store.apply_scan_batch(job, [Observed(path, 1, 1, 1, 1, digest)], [])


def pending(store: Datastore, job: int) -> set[bytes]:
    return {f.path for f in store.pending_files(job)}


def test_digest_becomes_delivered_only_when_the_task_succeeds(store: Datastore) -> None:
    job = store.job_id("identity", "j", NOW)
    observe(store, job, b"a", b"v1")
    observe(store, job, b"b", b"v1")
    files = list(store.pending_files(job))
    task = store.prepare_task(job, "sub-1", recursive=False, files=files, now=NOW)
    assert pending(store, job) == {b"a", b"b"}  # submitted is not delivered
    observe(store, job, b"a", b"v2")  # changed while in flight
    store.settle_task(task, "SUCCEEDED", "", None, NOW)
    assert pending(store, job) == {b"a"}  # v1 delivered, v2 still to send


def test_failed_task_settles_only_what_globus_transferred(store: Datastore) -> None:
    job = store.job_id("identity", "j", NOW)
    for name in (b"a", b"b", b"c"):
        observe(store, job, name, b"v1")
    task = store.prepare_task(
        job, "sub-1", recursive=False, files=list(store.pending_files(job)), now=NOW
    )
    store.settle_task(task, "FAILED", "", [b"b"], NOW)
    assert pending(store, job) == {b"a", b"c"}
    assert store.open_tasks(job) == []


def test_prepared_task_survives_reopening(tmp_path: Path) -> None:
    store = open_datastore(tmp_path / "s", NOW)
    job = store.job_id("identity", "j", NOW)
    observe(store, job, b"a", b"v1")
    store.prepare_task(
        job, "sub-9", recursive=False, files=list(store.pending_files(job)), now=NOW
    )
    store.close()
    again = open_datastore(tmp_path / "s", NOW)
    (task,) = again.open_tasks(job)
    assert (task.submission_id, task.state, task.task_id) == (
        "sub-9",
        "preparing",
        None,
    )
    assert [f.path for f in again.carried_files("sub-9")] == [b"a"]


def test_files_are_private(tmp_path: Path) -> None:
    open_datastore(tmp_path / "state", NOW).close()
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "state" / "datastore").stat().st_mode & 0o777 == 0o600


def test_garbage_is_corrupt_and_moved_aside_not_deleted(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "datastore").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CorruptDatastore) as caught:
        open_datastore(state, NOW)
    aside = move_aside(caught.value.file, NOW)
    assert aside.read_bytes().startswith(b"this is not sqlite")
    open_datastore(state, NOW).close()  # a fresh one opens
