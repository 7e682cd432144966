"""Which refusals of a submission are for the size of its document.

Only those split a list of files in halves (engine/tasks.py): any other
refusal, such as a collection's transient 502 ExternalError, is raised as it
is and the next run sends the same list again. Answers are served to the real
globus-sdk client by ``responses``, as in the contract tier.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import globus_sdk
import pytest
import responses
from globus_sdk.testing import RegisteredResponse, load_response
from globus_sdk.testing.data.transfer._common import ENDPOINT_ID

from globus_auto.engine.plan import GlobusMails, TransferItem, TransferPlan
from globus_auto.errors import DocumentTooLarge, TransferFailed
from globus_auto.globus.gateway import Gateway


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    for name in ("GLOBUS_SDK_SERVICE_URL_TRANSFER", "GLOBUS_SDK_SERVICE_URL_AUTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GLOBUS_SDK_ENVIRONMENT", "production")
    responses.start()
    client = globus_sdk.TransferClient(
        authorizer=globus_sdk.AccessTokenAuthorizer("served")
    )
    client.retry_config.max_retries = 0  # the answer itself, not retries
    try:
        yield Gateway(client)
    finally:
        responses.stop()
        responses.reset()


def serve_submit(status: int, body: dict[str, Any]) -> None:
    load_response(
        RegisteredResponse(
            service="transfer",
            method="POST",
            path="/v0.10/transfer",
            status=status,
            json=body,
        )
    )


def refusal(gateway: Gateway) -> TransferFailed:
    plan = TransferPlan(
        source_id=ENDPOINT_ID,
        destination_id=ENDPOINT_ID,
        label="refusals",
        items=(TransferItem("/a", "/copy/a"),),
        recursive=False,
        files=None,
        count=1,
        bytes=0,
        mails=GlobusMails(on_failed=True),
    )
    with pytest.raises(TransferFailed) as caught:
        gateway.submit(plan, str(uuid.uuid4()))
    return caught.value


def body(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": "r1", "resource": "/"}


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        # RFC 9110 15.5.14, what an HTTP front end answers for a body too large
        (413, "RequestEntityTooLarge", "Request Entity Too Large"),
        # the emulator's answer (emulator/server.py, MAX_BODY_BYTES)
        (400, "ClientError.BadRequest", "Request body too large (limit 8 bytes)"),
    ],
)
def test_a_document_too_large_is_told_apart(
    gateway: Gateway, status: int, code: str, message: str
) -> None:
    serve_submit(status, body(code, message))
    assert isinstance(refusal(gateway), DocumentTooLarge)


def test_a_collections_transient_error_is_no_reason_to_split(
    gateway: Gateway,
) -> None:
    # A 502 ExternalError about a collection (GLOBUS.md: globus-sdk does not
    # retry ExternalError); the code's shape as in ls's ConnectFailed.
    serve_submit(
        502,
        body(
            "ExternalError.TransferFailed.ConnectFailed",
            "Could not connect to the endpoint",
        ),
    )
    assert not isinstance(refusal(gateway), DocumentTooLarge)


def test_a_bad_request_of_another_kind_is_no_reason_to_split(
    gateway: Gateway,
) -> None:
    # globus-sdk's recorded refusal: 400 ClientError.BadRequest.NoTransferItems
    load_response(globus_sdk.TransferClient.submit_transfer, case="failure")
    assert not isinstance(refusal(gateway), DocumentTooLarge)
