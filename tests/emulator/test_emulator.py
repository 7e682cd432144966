"""The emulator's Transfer API: documents, sync levels, errors, controls.

Every call goes over HTTP, through globus-sdk's own clients where one exists
and through plain ``requests`` for the test controls and malformed requests.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import globus_sdk
import globus_sdk.gare
import pytest
import requests
from emulator_fixtures import TestEmulator, managed

from globus_auto.emulator import Emulator


def _fixture_registry() -> Any:
    """``globus_sdk.testing.get_response_set``, even without ``responses``.

    The fixture documents are plain data, but ``globus_sdk.testing`` imports the
    ``responses`` mocking library, which this project does not install; a
    placeholder module stands in for it during that import only.
    """
    try:
        import responses  # noqa: F401
    except ImportError:
        sys.modules["responses"] = types.ModuleType("responses")
        try:
            from globus_sdk.testing import get_response_set
        finally:
            del sys.modules["responses"]
    else:
        from globus_sdk.testing import get_response_set
    return get_response_set


get_response_set = _fixture_registry()

TRANSFER_SCOPE = "urn:globus:auth:scope:transfer.api.globus.org:all"


def fixture_json(set_id: str, case: str = "default") -> Any:
    return get_response_set(set_id).lookup(case).json  # type: ignore[union-attr]


def assert_same_shape(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """Every key of the SDK fixture is present with the same JSON type."""
    missing = set(theirs) - set(ours)
    assert not missing, f"missing keys: {sorted(missing)}"
    for key, value in theirs.items():
        if value is None or ours[key] is None:
            continue
        assert type(ours[key]) is type(value), (key, ours[key], value)


def data_access(*collection_ids: str) -> str:
    deps = " ".join(
        f"*https://auth.globus.org/scopes/{cid}/data_access" for cid in collection_ids
    )
    return f"{TRANSFER_SCOPE}[{deps}]"


def client_tokens(emu: TestEmulator, scope: str) -> globus_sdk.OAuthTokenResponse:
    auth = globus_sdk.ConfidentialAppAuthClient(
        emu.confidential_client_id, emu.confidential_client_secret
    )
    return auth.oauth2_client_credentials_tokens(requested_scopes=scope)


def transfer_client(
    emu: TestEmulator, scope: str | None = None
) -> globus_sdk.TransferClient:
    tokens = client_tokens(emu, scope or data_access(emu.src_id, emu.dst_id))
    token = tokens.by_resource_server["transfer.api.globus.org"]["access_token"]
    return globus_sdk.TransferClient(
        authorizer=globus_sdk.AccessTokenAuthorizer(token),
        retry_config=globus_sdk.transport.RetryConfig(max_retries=0),
    )


@pytest.fixture
def tc(globus_env: TestEmulator) -> Iterator[globus_sdk.TransferClient]:
    with managed(transfer_client(globus_env)) as client:
        yield client


@pytest.fixture
def bearer(globus_env: TestEmulator) -> dict[str, str]:
    tokens = client_tokens(globus_env, TRANSFER_SCOPE)
    token = tokens.by_resource_server["transfer.api.globus.org"]["access_token"]
    return {"Authorization": f"Bearer {token}"}


def run(
    tc: globus_sdk.TransferClient,
    emu: TestEmulator,
    items: list[tuple[str, str, bool]],
    **options: Any,
) -> dict[str, Any]:
    """Submit a transfer, wait for it, return the final task document."""
    tdata = globus_sdk.TransferData(emu.src_id, emu.dst_id, **options)
    for source, destination, recursive in items:
        tdata.add_item(source, destination, recursive=recursive)
    task_id = tc.submit_transfer(tdata)["task_id"]
    assert emu.wait_idle(10)
    return dict(tc.get_task(task_id).data)


def write(path: Path, content: bytes, mtime: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


# ---------------------------------------------------------------- documents


def test_documents_have_the_shape_of_the_sdk_fixtures(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    write(emu.src_root / "f.txt", b"1234")
    endpoint = tc.get_endpoint(emu.src_id).data
    assert_same_shape(endpoint, fixture_json("transfer.get_endpoint"))
    assert endpoint["entity_type"] == "GCSv5_mapped_collection"
    assert endpoint["display_name"] == "Emulated source"
    assert endpoint["high_assurance"] is False
    assert_same_shape(
        tc.get_submission_id().data, fixture_json("transfer.get_submission_id")
    )
    listing = tc.operation_ls(emu.src_id, path="/")
    assert_same_shape(listing["DATA"][0], fixture_json("transfer.operation_stat"))
    mkdir = tc.operation_mkdir(emu.dst_id, "/made").data
    assert_same_shape(mkdir, fixture_json("transfer.operation_mkdir"))
    tdata = globus_sdk.TransferData(emu.src_id, emu.dst_id)
    tdata.add_item("/f.txt", "/made/f.txt")
    submitted = tc.submit_transfer(tdata).data
    assert_same_shape(submitted, fixture_json("transfer.submit_transfer"))
    assert submitted["resource"] == "/v0.10/transfer"
    emu.wait_idle(10)
    task_fixture = fixture_json("transfer.task_list")
    tasks = tc.task_list().data
    assert_same_shape(tasks, task_fixture)
    assert_same_shape(tasks["DATA"][0], task_fixture["DATA"][0])
    task = tc.get_task(submitted["task_id"]).data
    assert_same_shape(task, task_fixture["DATA"][0])
    assert task["DATA_TYPE"] == "task"
    moved = tc.task_successful_transfers(submitted["task_id"]).data
    assert_same_shape(
        moved, fixture_json("transfer.endpoint_manager_task_successful_transfers")
    )
    assert_same_shape(
        moved["DATA"][0],
        fixture_json("transfer.endpoint_manager_task_successful_transfers")["DATA"][0],
    )


def test_auth_documents_have_the_shape_of_the_sdk_fixtures(
    globus_env: TestEmulator,
) -> None:
    emu = globus_env
    only_transfer = client_tokens(emu, TRANSFER_SCOPE).data
    assert_same_shape(
        only_transfer, fixture_json("auth.oauth2_client_credentials_tokens")
    )
    assert only_transfer["scope"] == TRANSFER_SCOPE
    assert only_transfer["expires_in"] == 172800
    assert only_transfer["resource_server"] == "transfer.api.globus.org"
    tokens = client_tokens(emu, f"openid {TRANSFER_SCOPE}")
    transfer = tokens.by_resource_server["transfer.api.globus.org"]
    assert_same_shape(
        dict(tokens.data),
        fixture_json("auth.oauth2_client_credentials_tokens", "openid"),
    )
    auth = globus_sdk.ConfidentialAppAuthClient(
        emu.confidential_client_id, emu.confidential_client_secret
    )
    info = auth.oauth2_token_introspect(transfer["access_token"]).data
    assert_same_shape(info, fixture_json("auth.oauth2_token_introspect"))
    assert info["active"] is True
    decoded = tokens.decode_id_token()
    assert decoded["sub"] == emu.confidential_client_id
    assert decoded["aud"] == emu.confidential_client_id


# -------------------------------------------------------------- sync levels


def test_sync_level_none_always_copies(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    write(emu.src_root / "a", b"new")
    write(emu.dst_root / "a", b"new")
    task = run(tc, emu, [("/a", "/a", False)])
    assert (task["files_transferred"], task["files_skipped"]) == (1, 0)


def test_sync_level_exists_skips_any_existing_file(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    write(emu.src_root / "d/a", b"source")
    write(emu.src_root / "d/b", b"source")
    write(emu.dst_root / "d/a", b"other content entirely")
    task = run(tc, emu, [("/d", "/d", True)], sync_level="exists")
    assert (task["files_transferred"], task["files_skipped"]) == (1, 1)
    assert (emu.dst_root / "d/a").read_bytes() == b"other content entirely"
    assert (emu.dst_root / "d/b").read_bytes() == b"source"


def test_sync_level_size_compares_sizes(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    write(emu.src_root / "same", b"AAAA")
    write(emu.dst_root / "same", b"BBBB")
    write(emu.src_root / "diff", b"AAAA")
    write(emu.dst_root / "diff", b"BB")
    task = run(
        tc,
        emu,
        [("/same", "/same", False), ("/diff", "/diff", False)],
        sync_level="size",
    )
    assert (task["files_transferred"], task["files_skipped"]) == (1, 1)
    assert (emu.dst_root / "same").read_bytes() == b"BBBB"
    assert (emu.dst_root / "diff").read_bytes() == b"AAAA"


def test_sync_level_mtime_copies_when_destination_is_older(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    now = time.time()
    write(emu.src_root / "older_dst", b"AAAA", mtime=now)
    write(emu.dst_root / "older_dst", b"BBBB", mtime=now - 100)
    write(emu.src_root / "newer_dst", b"AAAA", mtime=now - 100)
    write(emu.dst_root / "newer_dst", b"BBBB", mtime=now)
    task = run(
        tc,
        emu,
        [("/older_dst", "/older_dst", False), ("/newer_dst", "/newer_dst", False)],
        sync_level="mtime",
    )
    assert (task["files_transferred"], task["files_skipped"]) == (1, 1)
    assert (emu.dst_root / "older_dst").read_bytes() == b"AAAA"
    assert (emu.dst_root / "newer_dst").read_bytes() == b"BBBB"


def test_sync_level_checksum_compares_content(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    write(emu.src_root / "same", b"x" * 1000)
    write(emu.dst_root / "same", b"x" * 1000)
    write(emu.src_root / "changed", b"y" * 1000)
    write(emu.dst_root / "changed", b"z" * 1000)
    task = run(
        tc,
        emu,
        [("/same", "/same", False), ("/changed", "/changed", False)],
        sync_level="checksum",
        verify_checksum=False,
    )
    assert (task["files_transferred"], task["files_skipped"]) == (1, 1)
    assert task["bytes_checksummed"] == 4000  # both sides of both files
    assert (emu.dst_root / "changed").read_bytes() == b"y" * 1000
    assert emu.stats()["bytes_checksummed"] == 4000


def test_verify_checksum_preserve_timestamp_and_no_temp_files(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    write(emu.src_root / "t/f", b"q" * 5000, mtime=1_600_000_000)
    task = run(
        tc, emu, [("/t", "/t", True)], verify_checksum=True, preserve_timestamp=True
    )
    assert task["status"] == "SUCCEEDED"
    assert task["bytes_transferred"] == 5000
    assert task["bytes_checksummed"] == 10000
    assert task["verify_checksum"] is True and task["preserve_timestamp"] is True
    assert int((emu.dst_root / "t/f").stat().st_mtime) == 1_600_000_000
    assert os.listdir(emu.dst_root / "t") == ["f"]


def test_delete_destination_extra_prunes_the_destination(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    write(emu.src_root / "s/keep", b"k")
    write(emu.dst_root / "s/keep", b"k")
    write(emu.dst_root / "s/extra", b"e")
    write(emu.dst_root / "s/olddir/x", b"e")
    task = run(
        tc,
        emu,
        [("/s", "/s", True)],
        sync_level="checksum",
        delete_destination_extra=True,
    )
    assert task["delete_destination_extra"] is True
    assert sorted(os.listdir(emu.dst_root / "s")) == ["keep"]


def test_resubmitting_a_submission_id_returns_the_same_task(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    write(emu.src_root / "once", b"12345")
    tdata = globus_sdk.TransferData(emu.src_id, emu.dst_id)
    tdata.add_item("/once", "/once")
    submission_id = tc.get_submission_id()["value"]
    tdata["submission_id"] = submission_id
    first = tc.submit_transfer(tdata)
    emu.wait_idle(10)
    second = tc.submit_transfer(tdata)
    assert first["code"] == "Accepted" and second["code"] == "Duplicate"
    assert first["task_id"] == second["task_id"]
    assert second["submission_id"] == submission_id
    emu.wait_idle(10)
    stats = emu.stats()
    assert stats["tasks_submitted"] == 1
    assert stats["duplicate_submissions"] == 1
    assert stats["bytes_copied"] == 5
    assert stats["tasks"] == {"SUCCEEDED": 1}


def test_successful_transfers_are_paged_by_marker(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    for n in range(130):
        write(emu.src_root / f"many/{n:03d}", b"")
    task = run(tc, emu, [("/many", "/many", True)])
    first_page = tc.task_successful_transfers(task["task_id"])
    assert len(first_page["DATA"]) == 100 and first_page["next_marker"] == 100
    paths = [
        m["source_path"]
        for m in tc.paginated.task_successful_transfers(task["task_id"]).items()
    ]
    assert len(paths) == 130 and len(set(paths)) == 130
    assert task["subtasks_total"] == 130 + 1 + 1
    assert task["subtasks_succeeded"] == task["subtasks_total"]
    assert task["subtasks_pending"] == 0


def test_ls_pages_and_hides(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    for name in ("a", "b", "c", ".h"):
        write(emu.src_root / "l" / name, b"")
    listing = tc.operation_ls(emu.src_id, path="/l", limit=2, offset=1)
    assert [e["name"] for e in listing] == ["a", "b"]
    assert listing["total"] == 4 and listing["has_next_page"] is True
    hidden = tc.operation_ls(emu.src_id, path="/l", show_hidden=False)
    assert [e["name"] for e in hidden] == ["a", "b", "c"]
    home = tc.operation_ls(emu.src_id)
    assert [e["name"] for e in home] == ["l"] and home["path"] == "/"


# ------------------------------------------------------------------ errors


def api_error(call: Any, *args: Any, **kwargs: Any) -> globus_sdk.TransferAPIError:
    with pytest.raises(globus_sdk.TransferAPIError) as caught:
        call(*args, **kwargs)
    return caught.value


def test_unknown_collection_missing_path_and_not_a_directory(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    unknown = str(uuid.uuid4())
    err = api_error(tc.get_endpoint, unknown)
    assert (err.http_status, err.code) == (404, "EndpointNotFound")
    assert (
        err.request_id and err.raw_json and err.raw_json["resource"].endswith(unknown)
    )
    err = api_error(tc.operation_ls, unknown, path="/")
    assert (err.http_status, err.code) == (404, "EndpointNotFound")
    err = api_error(tc.operation_ls, emu.src_id, path="/nope")
    assert (err.http_status, err.code) == (404, "ClientError.NotFound")
    write(emu.src_root / "file", b"")
    err = api_error(tc.operation_ls, emu.src_id, path="/file")
    assert (err.http_status, err.code) == (
        502,
        "ExternalError.DirListingFailed.NotDirectory",
    )
    err = api_error(tc.operation_mkdir, emu.dst_id, "/")
    assert err.code == "ExternalError.MkdirFailed.Exists"


def test_no_transfer_items_and_bad_labels(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    tdata = globus_sdk.TransferData(emu.src_id, emu.dst_id)
    err = api_error(tc.submit_transfer, tdata)
    assert (err.http_status, err.code) == (
        400,
        "ClientError.BadRequest.NoTransferItems",
    )
    assert err.message == "A transfer requires at least one item"
    for label in ("x" * 129, "two\nlines"):
        tdata = globus_sdk.TransferData(emu.src_id, emu.dst_id, label=label)
        tdata.add_item("/a", "/a")
        assert api_error(tc.submit_transfer, tdata).http_status == 400
    tdata = globus_sdk.TransferData(emu.src_id, emu.dst_id, label="x" * 128)
    tdata.add_item("/a", "/a")
    assert tc.submit_transfer(tdata)["code"] == "Accepted"


def test_missing_unknown_expired_revoked_or_foreign_tokens_get_401(
    globus_env: TestEmulator,
) -> None:
    """Every refused token answers 401 ``ClientError.AuthenticationFailed``
    (GLOBUS.md; globus-cli exception_handling hooks key on that code)."""
    emu = globus_env
    url = f"{emu.url}v0.10/endpoint/{emu.src_id}"

    def refused(headers: dict[str, str]) -> None:
        answer = requests.get(url, headers=headers, timeout=5)
        assert answer.status_code == 401
        assert answer.json()["code"] == "ClientError.AuthenticationFailed"

    refused({})
    refused({"Authorization": "Bearer not-a-token-we-issued"})
    tokens = client_tokens(emu, "openid")
    refused(
        {
            "Authorization": "Bearer "
            + tokens.by_resource_server["auth.globus.org"]["access_token"]
        }
    )
    expired = transfer_client(emu, TRANSFER_SCOPE)
    emu.expire_access_tokens()
    err = api_error(expired.get_endpoint, emu.src_id)
    assert (err.http_status, err.code) == (401, "ClientError.AuthenticationFailed")
    revoked = transfer_client(emu, TRANSFER_SCOPE)
    revoked.get_endpoint(emu.src_id)
    emu.revoke_all_tokens()
    err = api_error(revoked.get_endpoint, emu.src_id)
    assert (err.http_status, err.code) == (401, "ClientError.AuthenticationFailed")


def test_consent_required_until_the_data_access_scope_is_granted(
    globus_env: TestEmulator,
) -> None:
    """Both collections are GCSv5 mapped, not high assurance: they need the
    data_access consent without being told to (GLOBUS.md)."""
    emu = globus_env
    plain = transfer_client(emu, TRANSFER_SCOPE)
    err = api_error(plain.operation_ls, emu.src_id, path="/")
    assert (err.http_status, err.code) == (403, "ConsentRequired")
    expected = data_access(emu.src_id)
    assert err.raw_json and err.raw_json["required_scopes"] == [expected]
    gare = globus_sdk.gare.to_gare(err)
    assert gare is not None
    assert gare.authorization_parameters.required_scopes == [expected]
    tdata = globus_sdk.TransferData(emu.src_id, emu.dst_id)
    tdata.add_item("/a", "/a")
    assert api_error(plain.submit_transfer, tdata).code == "ConsentRequired"
    granted = transfer_client(emu, data_access(emu.src_id))
    assert granted.operation_ls(emu.src_id, path="/")["DATA"] == []
    assert api_error(granted.operation_ls, emu.dst_id, path="/").code == (
        "ConsentRequired"
    )
    answer = requests.post(
        f"{emu.url}_emulator/collections/{emu.dst_id}",
        json={"requires_consent": False},
        timeout=5,
    )
    assert answer.status_code == 200
    assert (
        api_error(granted.operation_ls, emu.dst_id, path="/nope").code
        == "ClientError.NotFound"
    )


def test_personal_collection_offline(tmp_path: Path) -> None:
    gcp, other = str(uuid.uuid4()), str(uuid.uuid4())
    (tmp_path / "g").mkdir()
    (tmp_path / "o").mkdir()
    write(tmp_path / "o/f", b"abc")
    secret = "s"
    client = str(uuid.uuid4())
    emu = Emulator(
        collections={gcp: tmp_path / "g", other: tmp_path / "o"},
        clients={client: secret},
        collection_options={gcp: {"entity_type": "GCP_mapped_collection"}},
    )
    with emu:
        auth = globus_sdk.ConfidentialAppAuthClient(client, secret)
        auth.base_url = emu.url
        # the GCSv5 mapped collection needs data_access; the GCP one has none
        tokens = auth.oauth2_client_credentials_tokens(
            requested_scopes=data_access(other)
        )
        token = tokens.by_resource_server["transfer.api.globus.org"]["access_token"]
        tc = globus_sdk.TransferClient(
            authorizer=globus_sdk.AccessTokenAuthorizer(token),
            retry_config=globus_sdk.transport.RetryConfig(max_retries=0),
        )
        tc.base_url = emu.url
        doc = tc.get_endpoint(gcp)
        assert doc["is_globus_connect"] is True and doc["gcp_connected"] is True
        emu.set_collection(gcp, connected=False)
        assert tc.get_endpoint(gcp)["gcp_connected"] is False
        err = api_error(tc.operation_ls, gcp, path="/")
        assert (err.http_status, err.code) == (
            502,
            "ExternalError.DirListingFailed.GCDisconnected",
        )
        tdata = globus_sdk.TransferData(other, gcp)
        tdata.add_item("/f", "/f")
        task_id = tc.submit_transfer(tdata)["task_id"]
        time.sleep(0.3)
        task = tc.get_task(task_id)
        assert task["status"] == "ACTIVE" and task["nice_status"] == "GC_NOT_CONNECTED"
        emu.set_collection(gcp, connected=True)
        assert emu.wait_idle(10)
        assert tc.get_task(task_id)["status"] == "SUCCEEDED"
        assert (tmp_path / "g/f").read_bytes() == b"abc"


# -------------------------------------------------------------- path escape


@pytest.mark.parametrize("path", ["/../", "/a/../../etc", "relative/path", "/~/../x"])
def test_paths_with_dot_dot_or_relative_are_refused(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient, path: str
) -> None:
    emu = globus_env
    err = api_error(tc.operation_ls, emu.src_id, path=path)
    assert err.http_status == 403
    assert err.code == "EndpointPermissionDenied"
    tdata = globus_sdk.TransferData(emu.src_id, emu.dst_id)
    tdata.add_item(path, "/x")
    assert api_error(tc.submit_transfer, tdata).http_status == 400
    tdata = globus_sdk.TransferData(emu.src_id, emu.dst_id)
    tdata.add_item("/x", path)
    assert api_error(tc.submit_transfer, tdata).http_status == 400


def test_symlinks_out_of_the_root_are_refused(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient, tmp_path: Path
) -> None:
    emu = globus_env
    outside = tmp_path / "outside"
    write(outside / "secret", b"do not copy")
    (emu.src_root / "escape").symlink_to(outside)
    (emu.dst_root / "escape").symlink_to(outside)
    err = api_error(tc.operation_ls, emu.src_id, path="/escape")
    assert (err.http_status, err.code) == (403, "EndpointPermissionDenied")
    listing = tc.operation_ls(emu.src_id, path="/")
    assert [(e["name"], e["type"]) for e in listing] == [("escape", "invalid_symlink")]
    # A path out of the collection is PERMISSION_DENIED: a fault the task
    # retries (it stays ACTIVE, as tasks hitting errors do), never a copy.
    for source, destination in (("/escape/secret", "/stolen"), ("/ok", "/escape/p")):
        write(emu.src_root / "ok", b"fine")
        tdata = globus_sdk.TransferData(emu.src_id, emu.dst_id)
        tdata.add_item(source, destination)
        task_id = tc.submit_transfer(tdata)["task_id"]
        deadline = time.monotonic() + 10
        while tc.get_task(task_id)["faults"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        task = tc.get_task(task_id)
        assert task["status"] == "ACTIVE", task
        assert task["nice_status"] == "PERMISSION_DENIED"
        (event,) = [e for e in tc.task_event_list(task_id) if e["is_error"]]
        assert "Path not allowed" in event["details"]
        tc.cancel_task(task_id)
    assert not (outside / "p").exists()
    assert not (emu.dst_root / "stolen").exists()
    (emu.src_root / "ok").unlink()
    # a recursive copy ignores symlinks inside the tree, as Globus does by default
    (emu.src_root / "tree").mkdir()
    (emu.src_root / "tree/link").symlink_to(outside / "secret")
    task = run(tc, emu, [("/tree", "/tree", True)])
    assert task["status"] == "SUCCEEDED" and task["symlinks"] == 1
    assert os.listdir(emu.dst_root / "tree") == []


# ---------------------------------------------------------------- controls


def control(emu: TestEmulator, path: str, body: Any) -> requests.Response:
    return requests.post(f"{emu.url}_emulator/{path}", json=body, timeout=5)


def test_fail_tasks_control(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    write(emu.src_root / "f", b"data")
    assert control(emu, "faults", {"fail_tasks": 1}).status_code == 200
    failed = run(tc, emu, [("/f", "/f", False)])
    assert failed["status"] == "FAILED" and failed["fatal_error"]["code"]
    assert failed["faults"] >= 1
    assert not (emu.dst_root / "f").exists()
    ok = run(tc, emu, [("/f", "/f", False)])
    assert ok["status"] == "SUCCEEDED"
    assert emu.stats()["tasks"] == {"FAILED": 1, "SUCCEEDED": 1}


def test_http_status_control(globus_env: TestEmulator, bearer: dict[str, str]) -> None:
    emu = globus_env
    body = {"http_status": 503, "path_prefix": "/v0.10/submission_id", "count": 2}
    assert control(emu, "faults", body).status_code == 200
    url = f"{emu.url}v0.10/submission_id"
    statuses = [
        requests.get(url, headers=bearer, timeout=5).status_code for _ in range(3)
    ]
    assert statuses == [503, 503, 200]
    other = requests.get(
        f"{emu.url}v0.10/endpoint/{emu.src_id}", headers=bearer, timeout=5
    )
    assert other.status_code == 200


def test_sdk_retries_an_injected_503(globus_env: TestEmulator) -> None:
    emu = globus_env
    tokens = client_tokens(emu, TRANSFER_SCOPE)
    token = tokens.by_resource_server["transfer.api.globus.org"]["access_token"]
    tc = globus_sdk.TransferClient(authorizer=globus_sdk.AccessTokenAuthorizer(token))
    emu.add_faults(http_status=503, path_prefix="/v0.10/endpoint", count=1)
    assert tc.get_endpoint(emu.src_id)["id"] == emu.src_id
    assert emu.stats()["requests"]["GET /v0.10/endpoint/{id}"] == 2


def test_throttle_makes_active_observable_and_cancel_stops_it(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    write(emu.src_root / "big", b"b" * 400_000)
    assert control(emu, "faults", {"bytes_per_second": 200_000}).status_code == 200
    tdata = globus_sdk.TransferData(emu.src_id, emu.dst_id)
    tdata.add_item("/big", "/big")
    task_id = tc.submit_transfer(tdata)["task_id"]
    time.sleep(0.3)
    active = tc.get_task(task_id)
    assert active["status"] == "ACTIVE" and active["subtasks_pending"] >= 1
    assert active["bytes_transferred"] > 0
    cancel = tc.cancel_task(task_id).data
    try:
        recorded = fixture_json("transfer.cancel_task")
    except ValueError:  # not recorded in this globus-sdk release (4.0.0 has none)
        recorded = None
    if recorded is not None:
        assert_same_shape(cancel, recorded)
    assert cancel["code"] == "Canceled"
    task = tc.get_task(task_id)
    assert task["status"] == "FAILED" and task["fatal_error"]["code"] == "CANCELED"
    assert tc.cancel_task(task_id)["code"] == "TaskComplete"
    assert not (emu.dst_root / "big").exists()
    assert os.listdir(emu.dst_root) == []
    control(emu, "faults", {"bytes_per_second": 0})
    assert run(tc, emu, [("/big", "/big", False)])["status"] == "SUCCEEDED"


def test_a_cancel_still_stopping_answers_cancel_accepted(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    """docs.globus.org/api/transfer/task, "Cancel task by id": CancelAccepted
    while the task is still stopping (here: Limits.cancel_seconds); it stays
    ACTIVE, copies nothing more, and ends FAILED, cancelled."""
    emu = globus_env
    write(emu.src_root / "big", b"b" * 400_000)
    assert control(emu, "faults", {"bytes_per_second": 200_000}).status_code == 200
    assert control(emu, "limits", {"cancel_seconds": 0.6}).status_code == 200
    tdata = globus_sdk.TransferData(emu.src_id, emu.dst_id)
    tdata.add_item("/big", "/big")
    task_id = tc.submit_transfer(tdata)["task_id"]
    time.sleep(0.3)  # mid-copy
    assert tc.cancel_task(task_id)["code"] == "CancelAccepted"
    assert tc.get_task(task_id)["status"] == "ACTIVE"
    assert tc.cancel_task(task_id)["code"] == "CancelAccepted"  # asked again
    deadline = time.monotonic() + 10
    while tc.get_task(task_id)["status"] == "ACTIVE":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    task = tc.get_task(task_id)
    assert task["status"] == "FAILED" and task["fatal_error"]["code"] == "CANCELED"
    assert tc.cancel_task(task_id)["code"] == "TaskComplete"
    assert not (emu.dst_root / "big").exists()
    control(emu, "limits", {"cancel_seconds": 0})
    control(emu, "faults", {"bytes_per_second": 0})


def test_stats_over_http_match_the_python_api(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    tc.get_endpoint(emu.src_id)
    stats = requests.get(f"{emu.url}_emulator/stats", timeout=5).json()
    assert stats == emu.stats()
    assert set(stats) >= {
        "tasks_submitted",
        "duplicate_submissions",
        "tasks",
        "bytes_copied",
        "bytes_checksummed",
        "requests",
    }
    assert stats["requests"] == {
        "POST /v2/oauth2/token": 1,
        "GET /v0.10/endpoint/{id}": 1,
    }


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("faults", {"bogus": 1}),
        ("faults", {"fail_tasks": "two"}),
        ("faults", {"http_status": 200}),
        ("collections/{src}", {"connected": "no"}),
        ("collections/{unknown}", {"connected": False}),
        ("auth", {"revoke_everything": True}),
        ("faults", [1, 2]),
    ],
)
def test_controls_refuse_bad_bodies(
    globus_env: TestEmulator, path: str, body: Any
) -> None:
    path = path.format(src=globus_env.src_id, unknown=uuid.uuid4())
    answer = control(globus_env, path, body)
    assert answer.status_code in (400, 404)
    assert answer.json()["code"]


# ------------------------------------------------------------ bad requests


def test_malformed_json_and_unknown_fields_get_globus_400(
    globus_env: TestEmulator, bearer: dict[str, str]
) -> None:
    emu = globus_env
    url = f"{emu.url}v0.10/transfer"
    headers = {**bearer, "Content-Type": "application/json"}
    good_item = {
        "DATA_TYPE": "transfer_item",
        "source_path": "/a",
        "destination_path": "/a",
    }
    doc = {
        "DATA_TYPE": "transfer",
        "submission_id": str(uuid.uuid4()),
        "source_endpoint": emu.src_id,
        "destination_endpoint": emu.dst_id,
        "DATA": [good_item],
    }
    bodies = [
        b"{not json",
        b"\xff\xfe",
        b"[1, 2]",
        requests.models.complexjson.dumps({**doc, "surprise": 1}).encode(),
        requests.models.complexjson.dumps(
            {**doc, "DATA": [{**good_item, "x": 1}]}
        ).encode(),
        requests.models.complexjson.dumps({**doc, "sync_level": 7}).encode(),
        requests.models.complexjson.dumps({**doc, "verify_checksum": "yes"}).encode(),
        requests.models.complexjson.dumps({**doc, "submission_id": "nope"}).encode(),
    ]
    for body in bodies:
        answer = requests.post(url, data=body, headers=headers, timeout=5)
        assert answer.status_code == 400, body
        doc_back = answer.json()
        assert doc_back["code"].startswith("ClientError.BadRequest")
        assert doc_back["request_id"] and doc_back["resource"] == "/v0.10/transfer"
    assert emu.stats()["tasks_submitted"] == 0


def test_huge_bodies_are_refused_without_reading_them(globus_env: TestEmulator) -> None:
    emu = globus_env
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v0.10/transfer HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"too large" in body


def test_unknown_routes_and_methods_get_json_errors(globus_env: TestEmulator) -> None:
    emu = globus_env
    answer = requests.get(f"{emu.url}v0.10/nothing/here", timeout=5)
    assert answer.status_code == 404 and answer.json()["code"] == "ClientError.NotFound"
    answer = requests.delete(f"{emu.url}v0.10/transfer", timeout=5)
    assert answer.status_code == 405 and answer.json()["request_id"]
    answer = requests.post(f"{emu.url}v2/oauth2/token", data=b"\xff", timeout=5)
    assert answer.status_code in (400, 401) and "error" in answer.json()
