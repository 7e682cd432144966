"""Several tasks of a job in flight, on real SQLite: each settles its own files.

Also the upgrade of a version-1 datastore (one task per job, no task named on
a carried file) to version 2, in place and all at once.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from old_datastores import old_datastore, stored_schema_version

from globus_auto.datastore import schema
from globus_auto.datastore.opening import datastore_path, open_datastore
from globus_auto.datastore.records import Observed, PendingFile, TaskRecord
from globus_auto.datastore.store import Datastore
from globus_auto.engine.plan import json_length, room_for_tasks, within_document
from globus_auto.errors import ConfigError
from globus_auto.settings.source import load_settings

NOW = datetime(2026, 5, 1, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path: Path) -> Datastore:
    return open_datastore(tmp_path / "state", NOW)


def observe(store: Datastore, job: int, path: bytes, digest: bytes) -> None:
    store.apply_scan_batch(job, [Observed(path, 1, 1, 1, 1, digest)], [])


def free(store: Datastore, job: int) -> set[bytes]:
    return {f.path for f in store.pending_files(job, free=True)}


def pending(store: Datastore, job: int) -> set[bytes]:
    return {f.path for f in store.pending_files(job)}


def test_a_file_in_flight_is_never_in_a_second_task(store: Datastore) -> None:
    job = store.job_id("identity", "j", NOW)
    observe(store, job, b"big", b"v1")
    first = store.prepare_task(
        job, "s1", recursive=False, files=list(store.pending_files(job)), now=NOW
    )
    observe(store, job, b"big", b"v2")  # changed while its task is in flight
    observe(store, job, b"small", b"v1")
    assert free(store, job) == {b"small"}
    # Even when asked to, the store links no file another open task carries.
    second = store.prepare_task(
        job, "s2", recursive=False, files=list(store.pending_files(job)), now=NOW
    )
    assert (first.files, second.files) == (1, 1)
    assert [f.path for f in store.carried_files("s2")] == [b"small"]
    assert free(store, job) == set()


def test_a_file_deleted_and_recreated_in_flight_waits_for_its_task(
    store: Datastore,
) -> None:
    job = store.job_id("identity", "j", NOW)
    observe(store, job, b"a", b"v1")
    observe(store, job, b"b", b"b1")
    first = store.prepare_task(
        job, "s1", recursive=False, files=list(store.pending_files(job)), now=NOW
    )
    store.apply_scan_batch(job, [], [b"a"])  # rm a, while s1 carries it
    # A tombstone: not a file any count shows, still linked to s1.
    assert store.count_files(job) == 1
    assert [f.path for f in store.carried_files("s1")] == [b"a", b"b"]
    assert store.block_files(job, [(b"a", "a folder there")], NOW) == 0
    observe(store, job, b"a", b"v2")  # a recreated: Globus still holds s1's a
    assert store.count_files(job) == 2
    assert free(store, job) == set()  # not in a second task while s1 is open
    second = store.prepare_task(
        job, "s2", recursive=False, files=list(store.pending_files(job)), now=NOW
    )
    assert second.files == 0
    store.settle_task(first, "SUCCEEDED", "", None, NOW)
    assert free(store, job) == {b"a"}  # v2 was never carried: sent now


def test_a_tombstone_is_dropped_when_its_task_settles(store: Datastore) -> None:
    job = store.job_id("identity", "j", NOW)
    observe(store, job, b"a", b"v1")
    first = store.prepare_task(
        job, "s1", recursive=False, files=list(store.pending_files(job)), now=NOW
    )
    store.apply_scan_batch(job, [], [b"a"])
    store.apply_scan_batch(job, [], [b"a"])  # seen gone again: still one tombstone
    store.settle_task(first, "SUCCEEDED", "", None, NOW)  # never marked delivered
    assert store.carried_files("s1") == []
    assert list(store.iter_stored(job, store._conn)) == []
    assert (store.count_files(job), pending(store, job)) == (0, set())


def two_tasks(store: Datastore) -> tuple[int, TaskRecord, TaskRecord]:
    """A job and its two tasks in flight: s1 carrying a, then s2 carrying b
    (seen after s1 was prepared)."""
    job = store.job_id("identity", "j", NOW)
    observe(store, job, b"a", b"a1")
    first = store.prepare_task(
        job, "s1", recursive=False, files=list(store.pending_files(job)), now=NOW
    )
    observe(store, job, b"b", b"b1")
    second = store.prepare_task(
        job, "s2", recursive=False, files=list(store.pending_files(job, free=True)),
        now=NOW,
    )  # fmt: skip
    return job, first, second


def test_tasks_settle_out_of_order_each_its_own_files(store: Datastore) -> None:
    job, first, second = two_tasks(store)
    observe(store, job, b"a", b"a2")  # changed during the first task
    store.settle_task(second, "SUCCEEDED", "", None, NOW)
    assert pending(store, job) == {b"a"}  # b delivered; a still carried
    assert free(store, job) == set()  # a waits for its own task to settle
    store.settle_task(first, "SUCCEEDED", "", None, NOW)
    # Globus may have copied either version of a: neither is taken as delivered.
    assert free(store, job) == {b"a"}
    assert store.open_tasks(job) == []


def test_a_failed_task_leaves_the_other_tasks_files_alone(store: Datastore) -> None:
    job, first, _ = two_tasks(store)
    store.settle_task(first, "FAILED", "", [], NOW, uncertain=[b"b"])
    assert free(store, job) == {b"a"}  # sent again; b is still the second's
    assert [f.path for f in store.carried_files("s2")] == [b"b"]
    assert [t.submission_id for t in store.open_tasks(job)] == ["s2"]
    assert store.count_open_tasks(["identity", "another job"]) == 1


def test_room_for_tasks() -> None:
    def room(
        in_flight: int, limit: int = 2, config: int = 0, whole: bool = False
    ) -> int:
        return room_for_tasks(
            in_flight=in_flight,
            recursive_in_flight=whole,
            job_limit=limit,
            config_in_flight=max(config, in_flight),
        )

    assert [room(0), room(1), room(2)] == [2, 1, 0]
    assert room(1, whole=True) == 0  # nothing joins a whole-directory task
    assert room(1, limit=3, config=3) == 0  # the user's 3 are busy: extras wait
    assert room(0, limit=3, config=5) == 1  # a job's first task never waits
    assert room(1, limit=3, config=2) == 1


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.py"
    src, dst, client = (
        "11111111-1111-1111-1111-111111111111",
        "22222222-2222-2222-2222-222222222222",
        "33333333-3333-3333-3333-333333333333",
    )
    job = f"'src_id': '{src}', 'src_dir': '/s', 'dst_id': '{dst}'"
    path.write_text(
        f"CLIENT_ID = '{client}'\n{text}\nTRANSFERS = [\n"
        f"    {{'name': 'a', {job}, 'dst_dir': '/a'}},\n"
        f"    {{'name': 'b', {job}, 'dst_dir': '/b', 'max_tasks_in_flight': 1}},\n]\n"
    )
    path.chmod(0o600)
    return path


def test_max_tasks_in_flight_is_global_with_a_per_job_override(
    tmp_path: Path,
) -> None:
    jobs = load_settings(config(tmp_path, ""), {}).jobs
    assert [j.max_tasks_in_flight for j in jobs] == [2, 1]  # the default is 2
    jobs = load_settings(config(tmp_path, "MAX_TASKS_IN_FLIGHT = 3"), {}).jobs
    assert [j.max_tasks_in_flight for j in jobs] == [3, 1]
    for wrong in ("0", "4", "2.5", "'2'"):
        with pytest.raises(ConfigError) as caught:
            load_settings(config(tmp_path, f"MAX_TASKS_IN_FLIGHT = {wrong}"), {})
        (line,) = str(caught.value).splitlines()
        assert "MAX_TASKS_IN_FLIGHT" in line, line


V1_FILES = """CREATE TABLE files (
    job INTEGER NOT NULL, path BLOB NOT NULL, size INTEGER, mtime_ns INTEGER,
    ctime_ns INTEGER, inode INTEGER, digest BLOB, delivered BLOB, sending BLOB,
    problem TEXT, PRIMARY KEY (job, path)) WITHOUT ROWID"""


def write_version_1(path: Path) -> None:
    """A datastore as version 1 left it: job 1 with task s1 in flight carrying a."""
    with old_datastore(path, V1_FILES, 1, NOW) as conn:
        conn.executemany(
            "INSERT INTO files VALUES (1, ?, 1, 1, 1, 1, ?, NULL, ?, NULL)",
            [(b"a", b"a1", b"a1"), (b"b", b"b1", None)],
        )
        conn.execute(
            "INSERT INTO tasks (submission_id, job, task_id, state, recursive, files,"
            " bytes, created) VALUES ('s1', 1, 't1', 'submitted', 0, 1, 1, ?)",
            (NOW.isoformat(),),
        )


def test_a_version_1_datastore_is_upgraded_with_its_task_in_flight(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    write_version_1(datastore_path(state))
    store = open_datastore(state, NOW)
    (task,) = store.open_tasks(1)
    assert [f.path for f in store.carried_files("s1")] == [b"a"]
    assert free(store, 1) == {b"b"}
    store.settle_task(task, "SUCCEEDED", "", None, NOW)
    assert pending(store, 1) == {b"b"}
    store.close()
    assert stored_schema_version(datastore_path(state)) == (str(schema.SCHEMA_VERSION),)


def test_a_list_of_files_goes_in_documents_of_bounded_size() -> None:
    files = [PendingFile(f"f{i:03d}".encode(), 1, b"d") for i in range(300)]
    # Each item: 128 + len('"/src/f000"') + len('"/dst/f000"') = 150 bytes.
    chosen = within_document(iter(files), "/src", "/dst", max_bytes=150 * 10)
    assert [f.path for f in chosen] == [f"f{i:03d}".encode() for i in range(10)]
    assert len(within_document(files, "/src", "/dst", max_items=7)) == 7
    # A non-ASCII name counts as JSON writes it (\\u escapes), and one item
    # always fits.
    wide = [PendingFile("é".encode() * 100, 1, b"d")] * 2
    item = 128 + 2 * len('"/s/' + "\\u00e9" * 100 + '"')
    assert len(within_document(wide, "/s", "/d", max_bytes=2 * item)) == 2
    assert len(within_document(wide, "/s", "/d", max_bytes=2 * item - 1)) == 1
    assert len(within_document(wide, "/s", "/d", max_bytes=10)) == 1


@given(st.text())
def test_json_length_is_what_json_writes(text: str) -> None:
    assert json_length(text) == len(json.dumps(text))
