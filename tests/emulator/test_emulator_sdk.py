"""The emulator driven end to end by globus-sdk's own clients, over HTTP."""

from __future__ import annotations

import re
from pathlib import Path

import globus_sdk
import pytest
import requests
from emulator_fixtures import TestEmulator, managed
from globus_sdk.gare import GlobusAuthorizationParameters
from globus_sdk.login_flows import LoginFlowManager

TRANSFER_SCOPE = "urn:globus:auth:scope:transfer.api.globus.org:all"


class BrowserlessLoginFlowManager(LoginFlowManager):
    """Logs in like a user would: open the authorize URL, read the code page."""

    @classmethod
    def for_globus_app(
        cls,
        app_name: str,
        login_client: globus_sdk.AuthLoginClient,
        config: globus_sdk.GlobusAppConfig,
    ) -> BrowserlessLoginFlowManager:
        return cls(login_client, request_refresh_tokens=config.request_refresh_tokens)

    def run_login_flow(
        self, auth_parameters: GlobusAuthorizationParameters
    ) -> globus_sdk.OAuthTokenResponse:
        redirect_uri = self.login_client.base_url + "v2/web/auth-code"
        url = self._get_authorize_url(auth_parameters, redirect_uri)
        page = requests.get(url, timeout=10)
        page.raise_for_status()
        found = re.search(r'id="auth-code">([^<]+)<', page.text)
        assert found, page.text
        return self.login_client.oauth2_exchange_code_for_tokens(found.group(1))


def client_app(emu: TestEmulator) -> globus_sdk.ClientApp:
    return globus_sdk.ClientApp(
        "emulator-test",
        client_id=emu.confidential_client_id,
        client_secret=emu.confidential_client_secret,
        config=globus_sdk.GlobusAppConfig(token_storage="memory"),
    )


def user_app(emu: TestEmulator, **config: object) -> globus_sdk.UserApp:
    return globus_sdk.UserApp(
        "emulator-test",
        client_id=emu.native_client_id,
        config=globus_sdk.GlobusAppConfig(
            token_storage="memory",
            login_flow_manager=BrowserlessLoginFlowManager,
            **config,  # type: ignore[arg-type]
        ),
    )


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "data/a.txt": b"alpha\n",
        "data/sub/b.bin": bytes(range(256)) * 300,
        "data/sub/deeper/c.txt": b"",
        "data/.hidden": b"secret",
    }
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return files


def exercise(tc: globus_sdk.TransferClient, emu: TestEmulator) -> None:
    """ls, mkdir, submit, wait, get_task, successful transfers, events."""
    files = make_tree(emu.src_root)
    listing = tc.operation_ls(emu.src_id, path="/data/")
    assert sorted(e["name"] for e in listing) == [".hidden", "a.txt", "sub"]
    tc.operation_mkdir(emu.dst_id, "/incoming")
    tdata = globus_sdk.TransferData(
        emu.src_id,
        emu.dst_id,
        label="sdk test",
        sync_level="checksum",
        verify_checksum=True,
        encrypt_data=True,
    )
    tdata.add_item("/data", "/incoming/data", recursive=True)
    tdata.add_item("/data/a.txt", "/incoming/single/a.txt")
    result = tc.submit_transfer(tdata)
    assert result["code"] == "Accepted"
    task_id = result["task_id"]
    assert emu.wait_idle(10)  # so task_wait's first poll already sees the end
    assert tc.task_wait(task_id, timeout=10, polling_interval=1)
    task = tc.get_task(task_id)
    assert task["status"] == "SUCCEEDED"
    assert task["files"] == 5
    assert task["files_transferred"] == 5
    assert task["encrypt_data"] is True
    assert task["label"] == "sdk test"
    assert task["source_endpoint_id"] == emu.src_id
    for rel, content in files.items():
        assert (emu.dst_root / "incoming" / rel).read_bytes() == content
    assert (emu.dst_root / "incoming/single/a.txt").read_bytes() == files["data/a.txt"]
    moved = list(tc.paginated.task_successful_transfers(task_id).items())
    assert {m["destination_path"] for m in moved} >= {
        "/incoming/data/a.txt",
        "/incoming/single/a.txt",
    }
    events = list(tc.task_event_list(task_id))
    assert events[0]["code"] == "SUCCEEDED"


def test_client_app_does_the_whole_round(globus_env: TestEmulator) -> None:
    with managed(client_app(globus_env)) as app:
        tc = globus_sdk.TransferClient(app=app)
        tc.add_app_data_access_scope([globus_env.src_id, globus_env.dst_id])
        exercise(tc, globus_env)


def test_user_app_logs_in_and_does_the_whole_round(globus_env: TestEmulator) -> None:
    with managed(user_app(globus_env, request_refresh_tokens=True)) as app:
        tc = globus_sdk.TransferClient(app=app)
        tc.add_app_data_access_scope([globus_env.src_id, globus_env.dst_id])
        exercise(tc, globus_env)


def test_user_app_survives_expired_access_tokens_by_refreshing(
    globus_env: TestEmulator,
) -> None:
    with managed(user_app(globus_env, request_refresh_tokens=True)) as app:
        tc = globus_sdk.TransferClient(app=app)
        tc.get_endpoint(globus_env.src_id)
        globus_env.expire_access_tokens()
        assert tc.get_endpoint(globus_env.src_id)["id"] == globus_env.src_id
        assert globus_env.stats()["requests"]["GET /v0.10/endpoint/{id}"] == 3


def test_revoked_login_is_refused(globus_env: TestEmulator) -> None:
    with managed(user_app(globus_env, request_refresh_tokens=True)) as app:
        tc = globus_sdk.TransferClient(app=app)
        tc.get_endpoint(globus_env.src_id)
        globus_env.revoke_all_tokens()
        with pytest.raises(globus_sdk.GlobusAPIError) as caught:
            tc.get_endpoint(globus_env.src_id)
        assert caught.value.http_status in (400, 401)
