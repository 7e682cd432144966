"""Helpers of the emulator tier: clients, logins and waiting, all over HTTP.

Tokens come from the emulator's own Auth API through globus-sdk (client
credentials for the confidential client, a browserless authorize-page login
for the person); waits poll with a deadline and never sleep a fixed time.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import globus_sdk
import pytest
import requests
from emulator_fixtures import TestEmulator

TRANSFER_SCOPE = "urn:globus:auth:scope:transfer.api.globus.org:all"
T = TypeVar("T")


def data_access(*collection_ids: str) -> str:
    """The Transfer scope with a data_access dependency per collection."""
    deps = " ".join(
        f"*https://auth.globus.org/scopes/{cid}/data_access" for cid in collection_ids
    )
    return f"{TRANSFER_SCOPE}[{deps}]" if deps else TRANSFER_SCOPE


def no_retries() -> globus_sdk.transport.RetryConfig:
    return globus_sdk.transport.RetryConfig(max_retries=0)


def client_transfer(emu: TestEmulator, scope: str) -> globus_sdk.TransferClient:
    """A TransferClient of the confidential client (client credentials)."""
    auth = globus_sdk.ConfidentialAppAuthClient(
        emu.confidential_client_id, emu.confidential_client_secret
    )
    tokens = auth.oauth2_client_credentials_tokens(requested_scopes=scope)
    token = tokens.by_resource_server["transfer.api.globus.org"]["access_token"]
    return globus_sdk.TransferClient(
        authorizer=globus_sdk.AccessTokenAuthorizer(token), retry_config=no_retries()
    )


def browse(url: str) -> requests.Response:
    """Open an authorize URL as a browser would, following the redirects."""
    return requests.get(url, timeout=10)


def code_of(page: requests.Response) -> str:
    """The authorization code the code page shows (as tests/e2e reads it)."""
    found = re.search(r'id="auth-code">([^<]+)<', page.text)
    assert page.status_code == 200 and found, page.text
    return found.group(1)


def person_login(
    emu: TestEmulator, scope: str, **authorize_params: Any
) -> tuple[globus_sdk.NativeAppAuthClient, globus_sdk.OAuthTokenResponse]:
    """The person logs in on the authorize page globus-sdk builds, with
    ``authorize_params`` (session_required_single_domain, prompt, ...)."""
    client = globus_sdk.NativeAppAuthClient(emu.native_client_id)
    client.oauth2_start_flow(requested_scopes=scope, refresh_tokens=True)
    page = browse(client.oauth2_get_authorize_url(**authorize_params))
    return client, client.oauth2_exchange_code_for_tokens(code_of(page))


def transfer_of(tokens: globus_sdk.OAuthTokenResponse) -> globus_sdk.TransferClient:
    token = tokens.by_resource_server["transfer.api.globus.org"]["access_token"]
    return globus_sdk.TransferClient(
        authorizer=globus_sdk.AccessTokenAuthorizer(token), retry_config=no_retries()
    )


def api_error(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The TransferAPIError (or AuthAPIError) a call raises."""
    with pytest.raises(globus_sdk.GlobusAPIError) as caught:
        call(*args, **kwargs)
    return caught.value


def wait_for(probe: Callable[[], T], timeout: float = 10.0) -> T:
    """Poll ``probe`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last value {value!r}")
        time.sleep(0.02)


def write(path: Path, content: bytes, mtime: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def submit(
    tc: globus_sdk.TransferClient,
    emu: TestEmulator,
    items: list[tuple[str, str, bool]],
    **options: Any,
) -> str:
    """Submit one transfer from the source to the destination; its task id."""
    tdata = globus_sdk.TransferData(emu.src_id, emu.dst_id, **options)
    for source, destination, recursive in items:
        tdata.add_item(source, destination, recursive=recursive)
    return str(tc.submit_transfer(tdata)["task_id"])


def task_when(
    tc: globus_sdk.TransferClient,
    task_id: str,
    condition: Callable[[dict[str, Any]], bool],
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Poll get_task until ``condition`` holds; the document then."""

    def probe() -> dict[str, Any] | None:
        doc = dict(tc.get_task(task_id).data)
        return doc if condition(doc) else None

    return wait_for(probe, timeout)


def control(emu: TestEmulator, path: str, body: Any = None) -> requests.Response:
    """POST (or GET, without a body) an ``/_emulator/...`` control."""
    url = f"{emu.url}_emulator/{path}"
    if body is None:
        return requests.get(url, timeout=5)
    return requests.post(url, json=body, timeout=5)
