"""Task behaviour the real service has: faults and retries, deadlines,
skipped errors, per-user queueing, INACTIVE, unknown tasks, notifications.

Every call goes over HTTP through globus-sdk's TransferClient; the emulator's
limits are shrunk with its controls so that nothing waits for a real day.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import globus_sdk
import pytest
from emulator_fixtures import TestEmulator, managed
from emulator_helpers import (
    api_error,
    client_transfer,
    control,
    data_access,
    person_login,
    submit,
    task_when,
    transfer_of,
    wait_for,
    write,
)

ISO = "%Y-%m-%dT%H:%M:%S%z"


@pytest.fixture
def tc(globus_env: TestEmulator) -> Iterator[globus_sdk.TransferClient]:
    with managed(
        client_transfer(globus_env, data_access(globus_env.src_id, globus_env.dst_id))
    ) as client:
        yield client


def parse(moment: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(moment)


def events(tc: globus_sdk.TransferClient, task_id: str) -> list[dict[str, Any]]:
    return [dict(e) for e in tc.task_event_list(task_id, limit=100)]


def has_fault(doc: dict[str, Any]) -> bool:
    return bool(doc["faults"] >= 1)


# ------------------------------------------------------- missing source paths


def test_a_missing_source_keeps_the_task_active_and_the_rest_is_sent(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    """globus-cli issue 1056 and argonne-lcf/balsam issue 114: no failure, a
    fault, a pending subtask, a FILE_NOT_FOUND event; the deadline is the
    request time + 24 h."""
    emu = globus_env
    emu.set_limits(retry_seconds=3600)
    write(emu.src_root / "present", b"here")
    task_id = submit(
        tc, emu, [("/absent", "/absent", False), ("/present", "/p", False)]
    )
    task = task_when(
        tc, task_id, lambda d: d["faults"] >= 1 and d["files_transferred"] == 1
    )
    assert task["status"] == "ACTIVE"
    assert task["faults"] == 1
    assert task["subtasks_pending"] == 1
    assert task["nice_status"] == "FILE_NOT_FOUND"
    assert task["nice_status_short_description"] == "file not found"
    assert task["is_ok"] is False
    assert task["fatal_error"] is None and task["completion_time"] is None
    assert (emu.dst_root / "p").read_bytes() == b"here"
    assert not emu.wait_idle(0.2)
    deadline = parse(task["deadline"]) - parse(task["request_time"])
    assert deadline == datetime.timedelta(hours=24)
    (event,) = [e for e in events(tc, task_id) if e["is_error"]]
    assert set(event) == {
        "DATA_TYPE",
        "code",
        "description",
        "details",
        "is_error",
        "time",
    }
    assert event["DATA_TYPE"] == "event"
    assert (event["code"], event["description"]) == ("FILE_NOT_FOUND", "file not found")
    assert event["details"].startswith("550-GlobusError: v=1 c=PATH_NOT_FOUND")
    filtered = tc.task_event_list(task_id, query_params={"filter": "is_error:1"})
    assert [e["code"] for e in filtered] == ["FILE_NOT_FOUND"]


def test_a_missing_file_is_retried_and_sent_once_it_appears(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    emu.set_limits(retry_seconds=0.05)
    task_id = submit(tc, emu, [("/later", "/later", False)])
    task_when(tc, task_id, has_fault)
    time.sleep(0.25)  # several retries: still one fault, one event
    task = tc.get_task(task_id)
    assert (task["status"], task["faults"]) == ("ACTIVE", 1)
    assert [e["code"] for e in events(tc, task_id) if e["is_error"]] == [
        "FILE_NOT_FOUND"
    ]
    write(emu.src_root / "later", b"at last")
    task = task_when(tc, task_id, lambda d: d["status"] != "ACTIVE")
    assert task["status"] == "SUCCEEDED"
    assert task["faults"] == 1 and task["subtasks_pending"] == 0
    assert (emu.dst_root / "later").read_bytes() == b"at last"
    moved = list(tc.paginated.task_successful_transfers(task_id).items())
    assert [m["destination_path"] for m in moved] == ["/later"]
    assert [e["code"] for e in events(tc, task_id)] == ["SUCCEEDED", "FILE_NOT_FOUND"]
    errors = tc.task_event_list(task_id, query_params={"filter": "is_error:1"})
    assert [e["code"] for e in errors] == ["FILE_NOT_FOUND"]
    others = tc.task_event_list(task_id, query_params={"filter": "is_error:0"})
    assert [e["code"] for e in others] == ["SUCCEEDED"]
    bad = api_error(tc.task_event_list, task_id, query_params={"filter": "code:X"})
    assert bad.http_status == 400


def test_the_deadline_ends_a_retrying_task_failed_expired(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    emu.set_limits(task_deadline_seconds=1, retry_seconds=0.05)
    task_id = submit(tc, emu, [("/never", "/never", False)])
    task = task_when(tc, task_id, lambda d: d["status"] != "ACTIVE", timeout=5)
    assert task["status"] == "FAILED"
    assert task["fatal_error"] == {"code": "EXPIRED", "description": "deadline expired"}
    assert task["subtasks_expired"] == 1 and task["subtasks_pending"] == 0
    assert task["nice_status"] is None and task["completion_time"]
    assert events(tc, task_id)[0]["code"] == "EXPIRED"


def test_a_submitted_deadline_is_the_task_s(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    emu.set_limits(retry_seconds=0.05)  # the default deadline stays 24 h
    soon = datetime.datetime.now(datetime.timezone.utc).replace(
        microsecond=0
    ) + datetime.timedelta(seconds=1)
    # As a string: globus-sdk 4.0.0 (the floor) does not serialise a datetime.
    task_id = submit(tc, emu, [("/never", "/never", False)], deadline=str(soon))
    assert parse(tc.get_task(task_id)["deadline"]) == soon
    task = task_when(tc, task_id, lambda d: d["status"] != "ACTIVE", timeout=5)
    assert task["fatal_error"]["code"] == "EXPIRED"
    tdata = globus_sdk.TransferData(emu.src_id, emu.dst_id, deadline="tomorrow")
    tdata.add_item("/a", "/a")
    assert api_error(tc.submit_transfer, tdata).http_status == 400


def test_an_earlier_task_stuck_on_a_path_holds_back_a_later_one(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    """globus-cli issue 1056: such a task "blocks transfers of the same file"."""
    emu = globus_env
    emu.set_limits(retry_seconds=3600)
    stuck = submit(tc, emu, [("/gone", "/same", False)])
    task_when(tc, stuck, has_fault)
    write(emu.src_root / "other", b"other")
    later = submit(tc, emu, [("/other", "/same", False)])
    unrelated = submit(tc, emu, [("/other", "/elsewhere", False)])
    assert task_when(tc, unrelated, lambda d: d["status"] == "SUCCEEDED")
    doc = tc.get_task(later)
    assert (doc["status"], doc["nice_status"]) == ("ACTIVE", "Queued")
    tc.cancel_task(stuck)
    assert task_when(tc, later, lambda d: d["status"] == "SUCCEEDED")
    assert (emu.dst_root / "same").read_bytes() == b"other"


# ----------------------------------------------------------- skipped errors


def test_skip_source_errors_skips_missing_and_unreadable_sources(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient, tmp_path: Path
) -> None:
    """docs task_behavior "Skippable Errors"; the items are those of globus-cli's
    skipped_error_list.yaml. An unreadable source: a link out of the collection
    (the tests run as root, so permissions cannot make a file unreadable)."""
    emu = globus_env
    write(emu.src_root / "ok", b"fine")
    write(tmp_path / "outside" / "secret", b"no")
    (emu.src_root / "escape").symlink_to(tmp_path / "outside" / "secret")
    task_id = submit(
        tc,
        emu,
        [("/ok", "/ok", False), ("/absent", "/a", False), ("/escape", "/e", False)],
        skip_source_errors=True,
    )
    task = task_when(tc, task_id, lambda d: d["status"] != "ACTIVE")
    assert task["status"] == "SUCCEEDED"
    assert task["skip_source_errors"] is True
    assert task["subtasks_skipped_errors"] == 2
    assert task["files_skipped"] == 2 and task["files_transferred"] == 1
    assert task["faults"] == 0
    moved = list(tc.paginated.task_successful_transfers(task_id).items())
    assert [m["source_path"] for m in moved] == ["/ok"]
    skipped = sorted(
        (dict(s) for s in tc.paginated.task_skipped_errors(task_id).items()),
        key=lambda s: str(s["source_path"]),
    )
    assert [
        (s["source_path"], s["destination_path"], s["error_code"]) for s in skipped
    ] == [
        ("/absent", "/a", "FILE_NOT_FOUND"),
        ("/escape", "/e", "PERMISSION_DENIED"),
    ]
    for item in skipped:
        assert set(item) == {
            "DATA_TYPE",
            "checksum_algorithm",
            "destination_path",
            "error_code",
            "error_details",
            "error_time",
            "external_checksum",
            "is_delete_destination_extra",
            "is_directory",
            "is_symlink",
            "source_path",
        }
        assert item["DATA_TYPE"] == "skipped_error"
        assert item["checksum_algorithm"] is None and item["external_checksum"] is None
        assert item["is_delete_destination_extra"] is False
        assert item["is_directory"] is False and item["is_symlink"] is False
        assert parse(item["error_time"]).tzinfo is not None
    assert skipped[0]["error_details"].startswith(
        "550-GlobusError: v=1 c=PATH_NOT_FOUND"
    )
    assert "SKIPPED_ERRORS" in [e["code"] for e in events(tc, task_id)]
    assert not (emu.dst_root / "e").exists()


def test_skipped_errors_are_paged_by_marker(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    assert control(emu, "limits", {"skipped_errors_page": 2}).status_code == 200
    items = [(f"/missing-{n}", f"/m{n}", False) for n in range(5)]
    task_id = submit(tc, emu, items, skip_source_errors=True)
    task_when(tc, task_id, lambda d: d["status"] == "SUCCEEDED")
    first = tc.task_skipped_errors(task_id)
    assert len(first["DATA"]) == 2 and first["next_marker"]
    second = tc.task_skipped_errors(task_id, marker=first["next_marker"])
    assert len(second["DATA"]) == 2
    paths = [
        s["source_path"] for s in tc.paginated.task_skipped_errors(task_id).items()
    ]
    assert sorted(paths) == sorted(i[0] for i in items)


def test_a_skipped_error_skips_delete_destination_extra(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    """docs task_events: DELETE_DESTINATION_EXTRA_SKIPPED."""
    emu = globus_env
    write(emu.src_root / "d/keep", b"k")
    write(emu.dst_root / "d/extra", b"e")
    task_id = submit(
        tc,
        emu,
        [("/d", "/d", True), ("/absent", "/x", False)],
        skip_source_errors=True,
        delete_destination_extra=True,
    )
    task_when(tc, task_id, lambda d: d["status"] == "SUCCEEDED")
    assert (emu.dst_root / "d/extra").exists()
    assert "DELETE_DESTINATION_EXTRA_SKIPPED" in [
        e["code"] for e in events(tc, task_id)
    ]


# ------------------------------------------------------------------ queueing


def slow_files(emu: TestEmulator, sizes: list[int]) -> list[str]:
    names = []
    for n, size in enumerate(sizes):
        write(emu.src_root / f"f{n}", b"x" * size)
        names.append(f"/f{n}")
    return names


def working(tc: globus_sdk.TransferClient) -> dict[str, str]:
    """task id -> nice_status of the ACTIVE tasks, at one moment (one
    task_list answer is made under one lock)."""
    return {
        t["task_id"]: t["nice_status"]
        for t in tc.task_list(limit=100)
        if t["status"] == "ACTIVE"
    }


def test_three_tasks_per_user_work_at_once_the_rest_queue_in_order(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    """docs.globus.org/api/transfer/task_behavior "Queuing": 3 at a time per
    user, the others Queued, started in submission order as slots free."""
    emu = globus_env
    emu.add_faults(bytes_per_second=200_000)  # each task takes seconds
    names = slow_files(emu, [400_000] * 5)
    ids = [submit(tc, emu, [(name, name, False)]) for name in names]

    def statuses() -> list[str]:
        now = working(tc)
        return [now.get(i, "done") for i in ids]

    assert wait_for(lambda: statuses() == ["OK"] * 3 + ["Queued"] * 2)
    tc.cancel_task(ids[0])
    assert wait_for(lambda: statuses() == ["done"] + ["OK"] * 3 + ["Queued"])
    tc.cancel_task(ids[1])
    assert wait_for(lambda: statuses() == ["done"] * 2 + ["OK"] * 3)
    emu.add_faults(bytes_per_second=0)
    assert emu.wait_idle(10)
    assert [tc.get_task(i)["status"] for i in ids] == ["FAILED"] * 2 + ["SUCCEEDED"] * 3


def test_tasks_of_another_user_do_not_queue_behind(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    emu.add_faults(bytes_per_second=200_000)
    names = slow_files(emu, [800_000] * 3)  # seconds each
    busy = [submit(tc, emu, [(name, name, False)]) for name in names]
    write(emu.src_root / "mine", b"small")
    _, tokens = person_login(emu, data_access(emu.src_id, emu.dst_id))
    person = transfer_of(tokens)
    mine = submit(person, emu, [("/mine", "/mine", False)])
    assert task_when(person, mine, lambda d: d["status"] == "SUCCEEDED")
    assert all(tc.get_task(i)["status"] == "ACTIVE" for i in busy)
    queued = submit(tc, emu, [("/mine", "/again", False)])
    assert tc.get_task(queued)["nice_status"] == "Queued"
    emu.add_faults(bytes_per_second=0)
    assert emu.wait_idle(10)


# ------------------------------------------------------------------ INACTIVE


def test_inactive_pauses_a_task_and_active_resumes_it(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    """docs.globus.org/api/transfer/task: INACTIVE is suspended and "will not
    continue without intervention". A paused task frees its slot (docs
    task_behavior "Queuing": tasks stop working on "pausing")."""
    emu = globus_env
    emu.add_faults(bytes_per_second=300_000)
    names = slow_files(emu, [600_000] * 4)
    ids = [submit(tc, emu, [(name, name, False)]) for name in names]
    task_when(tc, ids[0], lambda d: d["bytes_transferred"] > 0)
    emu.set_task_status(ids[0], "INACTIVE")
    paused = task_when(tc, ids[0], lambda d: d["status"] == "INACTIVE")
    assert paused["nice_status"] == "CREDENTIALS_EXPIRED" and paused["is_ok"] is False
    assert paused["completion_time"] is None
    assert task_when(tc, ids[3], lambda d: d["nice_status"] == "OK")  # its slot
    moved = tc.get_task(ids[0])["bytes_transferred"]
    time.sleep(0.2)
    assert tc.get_task(ids[0])["bytes_transferred"] == moved
    assert emu.stats()["notification_mails"]["inactive"] == 1
    assert control(emu, f"tasks/{ids[0]}", {"status": "ACTIVE"}).status_code == 200
    assert tc.get_task(ids[0])["status"] == "ACTIVE"
    emu.add_faults(bytes_per_second=0)
    for task_id in ids:
        assert task_when(tc, task_id, lambda d: d["status"] == "SUCCEEDED")
    assert (emu.dst_root / "f0").stat().st_size == 600_000


def test_task_status_control_refuses_what_it_cannot_do(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    write(emu.src_root / "f", b"1")
    task_id = submit(tc, emu, [("/f", "/f", False)])
    task_when(tc, task_id, lambda d: d["status"] == "SUCCEEDED")
    assert control(emu, f"tasks/{task_id}", {"status": "INACTIVE"}).status_code == 400
    assert control(emu, f"tasks/{task_id}", {"status": "PAUSED"}).status_code == 400
    assert control(emu, f"tasks/{uuid.uuid4()}", {"status": "ACTIVE"}).status_code == (
        404
    )


# --------------------------------------------------------------- unknown tasks


def test_unknown_and_foreign_tasks_are_not_found(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    """terraref/computing-pipeline issue 425: 404 ClientError.NotFound, "No task
    found with id '<id>'" — for a task of another identity too."""
    emu = globus_env
    write(emu.src_root / "f", b"1")
    theirs = submit(tc, emu, [("/f", "/f", False)])
    _, tokens = person_login(emu, data_access(emu.src_id, emu.dst_id))
    person = transfer_of(tokens)
    for task_id in (str(uuid.uuid4()), theirs):
        for call in (
            person.get_task,
            person.task_event_list,
            person.task_successful_transfers,
            person.task_skipped_errors,
            person.cancel_task,
        ):
            err = api_error(call, task_id)
            assert (err.http_status, err.code) == (404, "ClientError.NotFound")
            assert err.message == f"No task found with id '{task_id}'"


# --------------------------------------------------------------- notifications


def test_notify_flags_default_to_true_and_mails_are_counted(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    """globus-sdk TransferData docs; brockpalen/archivetar issue 26."""
    emu = globus_env
    write(emu.src_root / "f", b"1")
    quiet = submit(
        tc,
        emu,
        [("/f", "/q", False)],
        notify_on_succeeded=False,
        notify_on_failed=False,
        notify_on_inactive=False,
    )
    loud = submit(tc, emu, [("/f", "/l", False)])
    for task_id in (quiet, loud):
        task_when(tc, task_id, lambda d: d["status"] == "SUCCEEDED")
    emu.add_faults(fail_tasks=1)
    failed = submit(tc, emu, [("/f", "/x", False)])
    task_when(tc, failed, lambda d: d["status"] == "FAILED")
    assert emu.stats()["notification_mails"] == {
        "succeeded": 1,
        "failed": 1,
        "inactive": 0,
    }
    options = control(emu, f"tasks/{loud}").json()["options"]
    assert (
        options["notify_on_succeeded"],
        options["notify_on_failed"],
        options["notify_on_inactive"],
    ) == (True, True, True)
    assert emu.task_options(quiet)["options"]["notify_on_succeeded"] is False
    # the real task document has no notify_on_* fields; skip_source_errors it has
    doc = tc.get_task(loud)
    assert "notify_on_succeeded" not in doc.data
    assert doc["skip_source_errors"] is False
