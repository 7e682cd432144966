"""Service limits (directory size, deadlines, retries, paging) and the
controls that shrink them, over HTTP and as Python twins."""

from __future__ import annotations

from typing import Any

import pytest
from emulator_fixtures import TestEmulator
from emulator_helpers import api_error, client_transfer, control, data_access, write

from globus_auto.emulator.state import Limits


def test_ls_of_a_folder_over_the_size_limit_is_refused(
    globus_env: TestEmulator,
) -> None:
    """globus-sdk operation_ls docstring: more than 100,000 entries answers 502
    ExternalError.DirListingFailed.SizeLimit; the limit is a control here."""
    emu = globus_env
    tc = client_transfer(emu, data_access(emu.src_id))
    for n in range(5):
        write(emu.src_root / "big" / f"f{n}", b"")
    assert control(emu, "limits", {"ls_size_limit": 5}).json()["ls_size_limit"] == 5
    assert len(tc.operation_ls(emu.src_id, path="/big")["DATA"]) == 5
    write(emu.src_root / "big" / "f5", b"")
    err = api_error(tc.operation_ls, emu.src_id, path="/big")
    assert (err.http_status, err.code) == (
        502,
        "ExternalError.DirListingFailed.SizeLimit",
    )
    assert err.message == "Directory limit of 5 reached"
    # the folder is there: a stat-like look at its parent still works
    assert [e["name"] for e in tc.operation_ls(emu.src_id, path="/")] == ["big"]


def test_limits_have_the_documented_defaults_and_both_twins(
    globus_env: TestEmulator,
) -> None:
    emu = globus_env
    defaults = control(emu, "limits").json()
    assert defaults == {
        "task_deadline_seconds": 24 * 3600,
        "retry_seconds": Limits().retry_seconds,
        "ls_size_limit": 100_000,
        "skipped_errors_page": 100,
        "cancel_seconds": 0.0,
    }
    assert emu.set_limits() == defaults
    changed = emu.set_limits(task_deadline_seconds=60, retry_seconds=0.5)
    assert changed["task_deadline_seconds"] == 60 and changed["retry_seconds"] == 0.5
    assert control(emu, "limits").json() == changed


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("limits", {"ls_size_limit": -1}),
        ("limits", {"retry_seconds": "soon"}),
        ("limits", {"skipped_errors_page": 0}),
        ("limits", {"bogus": 1}),
        ("tasks/{task}", {"nice_status": "X"}),
        ("tasks/{task}", {"status": 1}),
        ("identities", {}),
        ("identities", {"username": ["a@b"]}),
        ("auth", {"age_sessions": "old"}),
        ("collections/{src}", {"requires_consent": "yes"}),
    ],
)
def test_new_controls_refuse_bad_bodies(
    globus_env: TestEmulator, path: str, body: Any
) -> None:
    path = path.format(
        src=globus_env.src_id, task="0" * 8 + "-0000-0000-0000-" + "0" * 12
    )
    answer = control(globus_env, path, body)
    assert answer.status_code in (400, 404)
    assert answer.json()["code"]
