"""Contract tier: the Globus adapter against answers the real service gave.

Every case drives :class:`globus_auto.globus.gateway.Gateway` (and with it the
error mapping) twice, with one assertion for both:

- ``recorded``: the answer as the real Transfer service gives it, served by
  ``responses``: globus-sdk's own recorded fixtures (``globus_sdk.testing``,
  imported, never copied) or, where globus-sdk has none, the few fields that
  matter from a body recorded elsewhere, each naming its source;
- ``emulator``: the same situation made real in our emulator.

So the adapter is checked against the service, and the emulator against the
same answers: where the two disagree, a case fails.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import globus_sdk
import pytest
import responses
from globus_sdk.testing import (
    RegisteredResponse,
    get_last_request,
    get_response_set,
    load_response,
)
from globus_sdk.testing.data.transfer._common import ENDPOINT_ID, TASK_ID

from globus_auto.emulator import Emulator
from globus_auto.engine.plan import GlobusMails, TransferItem, TransferPlan
from globus_auto.errors import (
    EndpointNotReady,
    LoginRequired,
    NotACollection,
    SessionRequired,
    TaskUnknown,
    TransferFailed,
    UnknownCollection,
)
from globus_auto.globus.gateway import Gateway, connect

BACKENDS = ["recorded", "emulator"]


@dataclass
class World:
    """One backend: a gateway, the collection ids it knows, ways to shape it."""

    backend: str
    gateway: Gateway
    src: str
    dst: str
    endpoint: str  # a GCSv5 endpoint id (not a collection)
    emu: Emulator | None = None
    src_root: Path | None = None
    unauthorized: Gateway | None = None  # a gateway whose token is refused
    no_consent: Gateway | None = None  # a token without data_access consents
    served: list[str] = field(default_factory=list)

    @property
    def recorded(self) -> bool:
        return self.backend == "recorded"

    def serve(self, method: str, path: str, status: int, body: dict[str, Any]) -> None:
        """Recorded backend: answer ``method path`` (under /v0.10) with ``body``."""
        load_response(
            RegisteredResponse(
                service="transfer",
                method=method,
                path=f"/v0.10{path}",
                status=status,
                json=body,
            )
        )


@pytest.fixture(params=BACKENDS)
def world(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    if request.param == "recorded":
        yield from _recorded(monkeypatch)
    else:
        yield from _emulated(tmp_path, monkeypatch)


def _recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for name in ("GLOBUS_SDK_SERVICE_URL_TRANSFER", "GLOBUS_SDK_SERVICE_URL_AUTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GLOBUS_SDK_ENVIRONMENT", "production")
    responses.start()

    def gateway(token: str) -> Gateway:
        client = globus_sdk.TransferClient(
            authorizer=globus_sdk.AccessTokenAuthorizer(token)
        )
        client.retry_config.max_retries = 0  # the answer itself, not retries
        return Gateway(client)

    try:
        yield World(
            "recorded",
            gateway("recorded"),
            src=ENDPOINT_ID,
            dst=ENDPOINT_ID,
            endpoint=ENDPOINT_ID,
            unauthorized=gateway("refused"),
            no_consent=gateway("no-consent"),
        )
    finally:
        responses.stop()
        responses.reset()


def _emulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    src, dst, endpoint = (str(uuid.uuid4()) for _ in range(3))
    roots = {cid: tmp_path / name for cid, name in ((src, "s"), (dst, "d"))}
    roots[endpoint] = tmp_path / "endpoint"
    for root in roots.values():
        root.mkdir()
    client_id, secret = str(uuid.uuid4()), "contract-secret"
    other_id = str(uuid.uuid4())  # a client that never asked for data_access
    emu = Emulator(
        collections=roots,
        clients={client_id: secret, other_id: secret},
        collection_options={endpoint: {"entity_type": "GCSv5_endpoint"}},
    )
    emu.start()
    monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_TRANSFER", emu.url)
    monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_AUTH", emu.url)

    def app(client: str = client_id) -> globus_sdk.ClientApp:
        return globus_sdk.ClientApp(
            "contract",
            client_id=client,
            client_secret=secret,
            config=globus_sdk.GlobusAppConfig(token_storage="memory"),
        )

    refused = globus_sdk.TransferClient(
        authorizer=globus_sdk.AccessTokenAuthorizer("not-a-token-of-the-emulator")
    )
    try:
        yield World(
            "emulator",
            connect(app(), data_access=(src, dst)),
            src=src,
            dst=dst,
            endpoint=endpoint,
            emu=emu,
            src_root=roots[src],
            unauthorized=Gateway(refused),
            no_consent=connect(app(other_id)),
        )
    finally:
        emu.stop()


def plan(world: World, *paths: str) -> TransferPlan:
    return TransferPlan(
        source_id=world.src,
        destination_id=world.dst,
        label="contract",
        items=tuple(TransferItem(p, f"/copy{p}") for p in paths),
        recursive=False,
        files=None,
        count=len(paths),
        bytes=0,
        mails=GlobusMails(on_failed=True),
    )


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- submitting -----------------------------------------------------------------


def test_a_submission_id_is_a_uuid(world: World) -> None:
    if world.recorded:
        load_response(globus_sdk.TransferClient.get_submission_id)
    assert uuid.UUID(world.gateway.new_submission_id())


def test_a_task_goes_with_our_settings_and_skip_source_errors(world: World) -> None:
    """What the tool sets on every task reaches Globus, and Globus keeps it."""
    if world.recorded:
        meta = load_response(globus_sdk.TransferClient.submit_transfer).metadata
        submission = str(meta["submission_id"])
    else:
        assert world.src_root is not None
        (world.src_root / "a.txt").write_text("a")
        submission = world.gateway.new_submission_id()
    task_id = world.gateway.submit(plan(world, "/a.txt"), submission)
    if world.recorded:
        assert task_id == str(meta["task_id"])
        last = get_last_request()
        assert last is not None and last.body is not None
        sent = json.loads(last.body)
    else:
        # The real task document does not show the notify flags, so they are
        # read from what the emulator was sent (GET /task shows the others).
        assert world.emu is not None
        sent = world.emu.task_options(task_id)["options"]
        shown = world.gateway.client.get_task(task_id).data
        assert shown["skip_source_errors"] is True
    assert sent["skip_source_errors"] is True
    assert sent["verify_checksum"] is True and sent["encrypt_data"] is True
    assert sent["delete_destination_extra"] is False
    assert (
        sent["notify_on_succeeded"],
        sent["notify_on_failed"],
        sent["notify_on_inactive"],
    ) == (False, True, False)


def test_a_transfer_refused_outright_is_transfer_failed(world: World) -> None:
    if world.recorded:  # 400 ClientError.BadRequest.NoTransferItems
        load_response(globus_sdk.TransferClient.submit_transfer, case="failure")
    with pytest.raises(TransferFailed, match="NoTransferItems"):
        world.gateway.submit(plan(world), world_submission_id(world))


def world_submission_id(world: World) -> str:
    return str(uuid.uuid4()) if world.recorded else world.gateway.new_submission_id()


# --- collections and paths ---------------------------------------------------------


def test_a_collection_document_is_read(world: World) -> None:
    if world.recorded:  # globus-sdk's get_endpoint fixture: a GCSv4 host
        load_response(globus_sdk.TransferClient.get_endpoint)
    doc = world.gateway.check_collection(world.src, "source")
    assert doc["id"] == world.src


def test_an_endpoint_id_where_a_collection_is_needed_is_refused(world: World) -> None:
    if world.recorded:
        # globus-cli tests/files/api_fixtures/collection_operations.yaml: the
        # GCSv5 endpoint document (fields that matter here).
        world.serve(
            "GET",
            f"/endpoint/{world.endpoint}",
            200,
            {
                "DATA_TYPE": "endpoint",
                "id": world.endpoint,
                "display_name": "Happy Fun Collection Endpoint",
                "entity_type": "GCSv5_endpoint",
                "non_functional": True,
                "high_assurance": False,
                "gcs_version": "5.4.10",
            },
        )
    with pytest.raises(NotACollection, match="not a collection") as caught:
        world.gateway.check_collection(world.endpoint, "destination")
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("role", "variable"), [("source", "SRC_ID"), ("destination", "DST_ID")]
)
def test_a_collection_id_globus_does_not_know_is_a_config_error(
    world: World, role: str, variable: str
) -> None:
    unknown = ENDPOINT_ID if world.recorded else str(uuid.uuid4())
    if world.recorded:
        # globus-sdk's recorded answer for an endpoint id Transfer does not
        # know (set_subscription_id, case "not_found"), served for its lookup.
        body = get_response_set(globus_sdk.TransferClient.set_subscription_id)
        answer = body.lookup("not_found").json
        world.serve("GET", f"/endpoint/{unknown}", 404, answer)
    with pytest.raises(UnknownCollection) as caught:
        world.gateway.check_collection(unknown, role)
    assert caught.value.exit_code == 2
    assert str(caught.value).startswith(
        f"{variable} {unknown} names no collection Globus knows (404 EndpointNotFound"
    )


def test_a_missing_folder_is_known_by_its_status(world: World) -> None:
    if world.recorded:
        # globus-cli tests/functional/test_ls.py ran against the live service:
        # ls of a missing path is 404 ClientError.NotFound.
        world.serve(
            "GET",
            f"/operation/endpoint/{world.src}/ls",
            404,
            {
                "code": "ClientError.NotFound",
                "message": "Directory '/no/such/folder/' not found on endpoint",
                "request_id": "abc123",
                "resource": f"/operation/endpoint/{world.src}/ls",
            },
        )
    assert world.gateway.list_dir(world.src, "/no/such/folder", "source") is False


def test_a_folder_too_big_to_list_exists(world: World) -> None:
    if world.recorded:
        # globus-sdk TransferClient.operation_ls docstring; materials-data-
        # facility toolbox: past 100,000 entries ls answers 502 SizeLimit.
        world.serve(
            "GET",
            f"/operation/endpoint/{world.src}/ls",
            502,
            {
                "code": "ExternalError.DirListingFailed.SizeLimit",
                "message": "Directory limit of 100000 reached",
                "request_id": "abc123",
                "resource": f"/operation/endpoint/{world.src}/ls",
            },
        )
    else:
        assert world.emu is not None and world.src_root is not None
        world.emu.set_limits(ls_size_limit=3)
        for n in range(4):
            (world.src_root / f"f{n}").write_text("x")
    assert world.gateway.list_dir(world.src, "/", "source") is True


def test_mkdir_creates_a_missing_folder(world: World) -> None:
    if world.recorded:
        world.serve(
            "GET",
            f"/operation/endpoint/{world.dst}/ls",
            404,
            {"code": "ClientError.NotFound", "message": "not found"},
        )
        load_response(globus_sdk.TransferClient.operation_mkdir)
    world.gateway.make_dirs(world.dst, "/made")
    if not world.recorded:
        assert world.gateway.list_dir(world.dst, "/made", "destination")


def test_mkdir_of_an_existing_folder_answers_exists(world: World) -> None:
    """A folder made meanwhile (by a transfer) is what ``make_dirs`` wanted."""
    if world.recorded:
        # proxystore's Globus store and the MkdirFailed.Exists code it handles.
        world.serve(
            "POST",
            f"/operation/endpoint/{world.dst}/mkdir",
            502,
            {
                "code": "ExternalError.MkdirFailed.Exists",
                "message": "Path already exists, Error Path '/made/' already exists",
            },
        )
    else:
        world.gateway.client.operation_mkdir(world.dst, "/made")
    with pytest.raises(globus_sdk.TransferAPIError) as caught:
        world.gateway.client.operation_mkdir(world.dst, "/made")
    assert (caught.value.http_status, caught.value.code) == (
        502,
        "ExternalError.MkdirFailed.Exists",
    )


# --- logins, consents and session policies -------------------------------------------


def test_a_refused_token_is_login_required(world: World) -> None:
    if world.recorded:
        # globus-cli tests/functional/test_authentication_error_handling.py
        world.serve(
            "GET",
            f"/operation/endpoint/{world.src}/ls",
            401,
            {
                "code": "ClientError.AuthenticationFailed",
                "message": "foo bar",
                "request_id": "abc123",
            },
        )
    assert world.unauthorized is not None
    with pytest.raises(LoginRequired, match="rejected the stored login"):
        world.unauthorized.list_dir(world.src, "/", "source")


def test_a_missing_data_access_consent_is_a_consent_not_a_session(
    world: World,
) -> None:
    scope = (
        "urn:globus:auth:scope:transfer.api.globus.org:all"
        f"[*https://auth.globus.org/scopes/{world.src}/data_access]"
    )
    if world.recorded:
        # globus-cli tests/functional/exception_handling/test_session_hooks.py
        message = "Missing required data_access consent"
        world.serve(
            "GET",
            f"/operation/endpoint/{world.src}/ls",
            403,
            {
                "authorization_parameters": {
                    "required_scopes": [scope],
                    "session_message": message,
                },
                "code": "ConsentRequired",
                "message": message,
                "request_id": "m8RfX3cES",
                "required_scopes": [scope],
                "resource": f"/operation/endpoint/{world.src}/ls",
            },
        )
    assert world.no_consent is not None
    with pytest.raises(LoginRequired, match="data_access consent") as caught:
        world.no_consent.list_dir(world.src, "/", "source")
    assert not isinstance(caught.value, SessionRequired)


def test_a_required_domain_is_a_session_requirement_naming_it(world: World) -> None:
    if world.recorded:
        # globus/globus-sdk-javascript src/core/__tests__/errors.spec.ts
        # (TRANSFER_AUTHORIZATION_REQUIREMENTS_ERROR), a real 502 body.
        world.serve(
            "GET",
            f"/operation/endpoint/{world.src}/ls",
            502,
            {
                "authorization_parameters": {
                    "session_message": "Session reauthentication required "
                    "(Globus Transfer)",
                    "session_required_identities": [],
                    "session_required_mfa": False,
                    "session_required_single_domain": ["globus.org"],
                },
                "code": "ExternalError.DirListingFailed.LoginFailed",
                "message": "Command Failed: Error (login)\nMessage: Login Failed",
                "request_id": "rvWu7tCfa",
                "resource": f"/operation/endpoint/{world.src}/ls",
            },
        )
    else:
        assert world.emu is not None
        world.emu.set_collection(
            world.src, session_required_single_domain=["globus.org"]
        )
    with pytest.raises(
        SessionRequired, match=r"an identity from globus\.org"
    ) as caught:
        world.gateway.list_dir(world.src, "/", "source")
    assert caught.value.exit_code == 3
    assert caught.value.parameters["session_required_single_domain"] == ["globus.org"]


def test_a_policy_is_a_session_requirement_naming_it(world: World) -> None:
    policy = "4d3b3e6e-9c7d-4fb5-a8b7-1b2a3c4d5e6f"
    if world.recorded:
        # globus-cli tests/functional/exception_handling/test_session_hooks.py
        world.serve(
            "GET",
            f"/operation/endpoint/{world.src}/ls",
            403,
            {
                "authorization_parameters": {
                    "session_message": "Failing collection authentication policy",
                    "session_required_policies": policy,
                },
                "code": "AuthPolicyFailed",
                "message": "Failing collection authentication policy",
                "request_id": "MSbPbMR9n",
                "resource": f"/operation/endpoint/{world.src}/ls",
            },
        )
    else:
        assert world.emu is not None
        world.emu.set_collection(world.src, session_required_policies=[policy])
    with pytest.raises(SessionRequired, match=f"its policy {policy}"):
        world.gateway.list_dir(world.src, "/", "source")


# --- tasks ---------------------------------------------------------------------------


def test_a_task_globus_does_not_know_is_unknown(world: World) -> None:
    task_id = TASK_ID if world.recorded else str(uuid.uuid4())
    if world.recorded:
        # terraref/computing-pipeline issue 425: "ClientError.NotFound (404 Not
        # Found): No task found with id '...'" from the real service.
        world.serve(
            "GET",
            f"/task/{task_id}",
            404,
            {
                "code": "ClientError.NotFound",
                "message": f"No task found with id '{task_id}'",
                "request_id": "abc123",
                "resource": f"/task/{task_id}",
            },
        )
    with pytest.raises(TaskUnknown, match=r"404 ClientError\.NotFound"):
        world.gateway.task(task_id)


def test_a_missing_source_keeps_a_task_active_with_a_fault(world: World) -> None:
    """Without skip_source_errors Globus retries a missing file until the
    deadline: the task is ACTIVE with a fault, and its events say why."""
    if world.recorded:
        task_id = TASK_ID
        # Fields of globus-sdk's get_task1_active.json test data; faults and
        # the pending subtask as globus/globus-cli issue 1056 shows them.
        world.serve(
            "GET",
            f"/task/{task_id}",
            200,
            {
                "DATA_TYPE": "task",
                "task_id": task_id,
                "type": "TRANSFER",
                "status": "ACTIVE",
                "nice_status": "FILE_NOT_FOUND",
                "faults": 1,
                "files": 1,
                "files_transferred": 0,
                "subtasks_pending": 1,
                "subtasks_skipped_errors": 0,
                "skip_source_errors": False,
                "fatal_error": None,
            },
        )
        # argonne-lcf/balsam issue 114: the error event of a missing source.
        world.serve(
            "GET",
            f"/task/{task_id}/event_list",
            200,
            {
                "DATA_TYPE": "event_list",
                "DATA": [
                    {
                        "DATA_TYPE": "event",
                        "code": "FILE_NOT_FOUND",
                        "description": "file not found",
                        "details": "550-GlobusError: v=1 c=PATH_NOT_FOUND%0D%0A"
                        "550-GridFTP-Errno: 2%0D%0A550-GridFTP-Reason: System "
                        "error in stat%0D%0A550 End.%0D%0A",
                        "is_error": True,
                        "time": "2021-01-29T18:50:37+00:00",
                    }
                ],
                "length": 1,
                "limit": 100,
                "offset": 0,
                "total": 1,
            },
        )
    else:
        data = globus_sdk.TransferData(world.src, world.dst)  # no skip
        data.add_item("/gone.txt", "/copy/gone.txt")
        task_id = str(world.gateway.client.submit_transfer(data)["task_id"])
        eventually(lambda: world.gateway.task(task_id).faults > 0)
    state = world.gateway.task(task_id)
    assert (state.status, state.finished, state.skip_source_errors) == (
        "ACTIVE",
        False,
        False,
    )
    assert world.gateway.source_read_errors(task_id) == ["FILE_NOT_FOUND"]


def test_skipped_sources_are_listed_with_why(world: World) -> None:
    if world.recorded:
        task_id = "549ef13c-600f-11eb-9608-0afa7b051b85"
        # globus-cli tests/files/api_fixtures/skipped_error_list.yaml
        world.serve(
            "GET",
            f"/task/{task_id}/skipped_errors",
            200,
            {
                "DATA": [
                    {
                        "DATA_TYPE": "skipped_error",
                        "checksum_algorithm": None,
                        "destination_path": "/~/no-such-file",
                        "error_code": "FILE_NOT_FOUND",
                        "error_details": "550-GlobusError: v=1 c=PATH_NOT_FOUND",
                        "error_time": "2021-01-29T18:50:37+00:00",
                        "external_checksum": None,
                        "is_delete_destination_extra": False,
                        "is_directory": False,
                        "is_symlink": False,
                        "source_path": "/~/no-such-file",
                    }
                ]
            },
        )
        source = "/~/no-such-file"
    else:
        assert world.src_root is not None
        (world.src_root / "here.txt").write_text("here")
        task_id = world.gateway.submit(
            plan(world, "/here.txt", "/no-such-file"), world_submission_id(world)
        )
        eventually(lambda: world.gateway.task(task_id).finished)
        assert world.gateway.task(task_id).status == "SUCCEEDED"
        assert world.gateway.task(task_id).skipped_errors == 1
        source = "/no-such-file"
    skipped = world.gateway.skipped_sources(task_id)
    assert [(s.source_path, s.error_code) for s in skipped] == [
        (source, "FILE_NOT_FOUND")
    ]


def test_an_unreachable_collection_is_not_ready(world: World) -> None:
    if world.recorded:
        # globus-sdk services/transfer/transport.py: ExternalError is not
        # retried; the code Globus gives a disconnected Globus Connect Personal.
        world.serve(
            "GET",
            f"/operation/endpoint/{world.src}/ls",
            502,
            {
                "code": "ExternalError.DirListingFailed.GCDisconnected",
                "message": "The Globus Connect Personal endpoint is not connected",
            },
        )
    else:
        assert world.emu is not None
        world.emu.set_collection(world.src, connected=False)
    with pytest.raises(EndpointNotReady, match="DirListingFailed"):
        world.gateway.list_dir(world.src, "/", "source")
