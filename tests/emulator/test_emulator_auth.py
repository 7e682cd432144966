"""The emulator's Auth API, driven by globus-sdk's login clients over HTTP."""

from __future__ import annotations

import re
import urllib.parse
import uuid
from pathlib import Path

import globus_sdk
import pytest
import requests
from emulator_fixtures import TestEmulator

from globus_auto.emulator import Emulator

TRANSFER_SCOPE = "urn:globus:auth:scope:transfer.api.globus.org:all"


def login_code(authorize_url: str) -> str:
    """Follow the authorize page's redirect to the code page; read the code."""
    page = requests.get(authorize_url, timeout=5)
    assert page.status_code == 200, page.text
    found = re.search(r'id="auth-code">([^<]+)<', page.text)
    assert found, page.text
    return found.group(1)


def oauth_error(err: globus_sdk.AuthAPIError) -> object:
    """The token endpoint answers OAuth2 errors: ``{"error": ..., ...}``."""
    assert isinstance(err.raw_json, dict)
    return err.raw_json["error"]


def native_login(
    emu: TestEmulator, scopes: str = f"openid {TRANSFER_SCOPE}"
) -> tuple[globus_sdk.NativeAppAuthClient, globus_sdk.OAuthTokenResponse]:
    client = globus_sdk.NativeAppAuthClient(emu.native_client_id)
    client.oauth2_start_flow(requested_scopes=scopes, refresh_tokens=True)
    code = login_code(client.oauth2_get_authorize_url())
    return client, client.oauth2_exchange_code_for_tokens(code)


def test_login_gives_tokens_per_resource_server_and_a_valid_id_token(
    globus_env: TestEmulator,
) -> None:
    _, tokens = native_login(globus_env)
    assert set(tokens.by_resource_server) == {
        "auth.globus.org",
        "transfer.api.globus.org",
    }
    assert isinstance(tokens["other_tokens"], list)
    transfer = tokens.by_resource_server["transfer.api.globus.org"]
    assert transfer["scope"] == TRANSFER_SCOPE and transfer["refresh_token"]
    claims = tokens.decode_id_token()
    assert claims["aud"] == globus_env.native_client_id
    assert claims["iss"] == globus_env.url.rstrip("/")
    assert claims["preferred_username"]


def test_authorize_redirects_with_code_and_state(globus_env: TestEmulator) -> None:
    client = globus_sdk.NativeAppAuthClient(globus_env.native_client_id)
    client.oauth2_start_flow(requested_scopes=TRANSFER_SCOPE, state="xyz")
    answer = requests.get(
        client.oauth2_get_authorize_url(), allow_redirects=False, timeout=5
    )
    assert answer.status_code == 302
    location = urllib.parse.urlsplit(answer.headers["Location"])
    query = urllib.parse.parse_qs(location.query)
    assert location.path == "/v2/web/auth-code"
    assert query["state"] == ["xyz"] and query["code"]


def test_pkce_is_verified_and_codes_are_single_use(globus_env: TestEmulator) -> None:
    client = globus_sdk.NativeAppAuthClient(globus_env.native_client_id)
    client.oauth2_start_flow(requested_scopes=TRANSFER_SCOPE)
    code = login_code(client.oauth2_get_authorize_url())
    other = globus_sdk.NativeAppAuthClient(globus_env.native_client_id)
    other.oauth2_start_flow(requested_scopes=TRANSFER_SCOPE)  # another verifier
    with pytest.raises(globus_sdk.AuthAPIError) as caught:
        other.oauth2_exchange_code_for_tokens(code)
    assert oauth_error(caught.value) == "invalid_grant"
    client.oauth2_exchange_code_for_tokens(code)
    with pytest.raises(globus_sdk.AuthAPIError) as caught:
        client.oauth2_exchange_code_for_tokens(code)
    assert oauth_error(caught.value) == "invalid_grant"


def test_refresh_tokens_rotate(globus_env: TestEmulator) -> None:
    client, tokens = native_login(globus_env, TRANSFER_SCOPE)
    first = tokens.by_resource_server["transfer.api.globus.org"]["refresh_token"]
    renewed = client.oauth2_refresh_token(first)
    second = renewed.by_resource_server["transfer.api.globus.org"]["refresh_token"]
    assert second != first
    with pytest.raises(globus_sdk.AuthAPIError) as caught:
        client.oauth2_refresh_token(first)
    assert oauth_error(caught.value) == "invalid_grant"
    client.oauth2_refresh_token(second)


def test_auth_controls_expire_and_revoke(globus_env: TestEmulator) -> None:
    emu = globus_env
    client, tokens = native_login(emu, TRANSFER_SCOPE)
    transfer = tokens.by_resource_server["transfer.api.globus.org"]
    headers = {"Authorization": f"Bearer {transfer['access_token']}"}
    url = f"{emu.url}v0.10/endpoint/{emu.src_id}"
    assert requests.get(url, headers=headers, timeout=5).status_code == 200
    control = f"{emu.url}_emulator/auth"
    assert requests.post(control, json={"expire_access_tokens": True}, timeout=5).ok
    assert requests.get(url, headers=headers, timeout=5).status_code == 401
    renewed = client.oauth2_refresh_token(transfer["refresh_token"])
    refresh = renewed.by_resource_server["transfer.api.globus.org"]["refresh_token"]
    assert requests.post(control, json={"expire_refresh_tokens": True}, timeout=5).ok
    with pytest.raises(globus_sdk.AuthAPIError):
        client.oauth2_refresh_token(refresh)
    _, tokens = native_login(emu, TRANSFER_SCOPE)
    access = tokens.by_resource_server["transfer.api.globus.org"]["access_token"]
    assert requests.post(control, json={"revoke_all": True}, timeout=5).ok
    headers = {"Authorization": f"Bearer {access}"}
    assert requests.get(url, headers=headers, timeout=5).status_code == 401


def test_short_access_token_lifetime(tmp_path: Path) -> None:
    client_id = str(uuid.uuid4())
    with Emulator(
        collections={str(uuid.uuid4()): tmp_path},
        clients={client_id: "s"},
        access_token_lifetime=60,
    ) as emu:
        auth = globus_sdk.ConfidentialAppAuthClient(client_id, "s")
        auth.base_url = emu.url
        tokens = auth.oauth2_client_credentials_tokens(requested_scopes=TRANSFER_SCOPE)
        assert tokens["expires_in"] == 60


def test_introspect_and_revoke(globus_env: TestEmulator) -> None:
    emu = globus_env
    auth = globus_sdk.ConfidentialAppAuthClient(
        emu.confidential_client_id, emu.confidential_client_secret
    )
    tokens = auth.oauth2_client_credentials_tokens(requested_scopes=TRANSFER_SCOPE)
    token = tokens["access_token"]
    assert auth.oauth2_token_introspect(token)["active"] is True
    assert auth.oauth2_revoke_token(token).data == {"active": False}
    assert auth.oauth2_token_introspect(token)["active"] is False
    assert auth.oauth2_token_introspect("never-issued")["active"] is False


def test_bad_client_credentials_and_unknown_scopes(globus_env: TestEmulator) -> None:
    emu = globus_env
    wrong = globus_sdk.ConfidentialAppAuthClient(emu.confidential_client_id, "wrong")
    with pytest.raises(globus_sdk.AuthAPIError) as caught:
        wrong.oauth2_client_credentials_tokens(requested_scopes=TRANSFER_SCOPE)
    assert caught.value.http_status == 401
    assert oauth_error(caught.value) == "invalid_client"
    right = globus_sdk.ConfidentialAppAuthClient(
        emu.confidential_client_id, emu.confidential_client_secret
    )
    with pytest.raises(globus_sdk.AuthAPIError) as caught:
        right.oauth2_client_credentials_tokens(requested_scopes="urn:no:such:scope")
    assert oauth_error(caught.value) == "invalid_scope"


def test_identities_userinfo_and_consents(globus_env: TestEmulator) -> None:
    emu = globus_env
    scope = (
        f"openid {TRANSFER_SCOPE}"
        f"[*https://auth.globus.org/scopes/{emu.dst_id}/data_access]"
    )
    _, tokens = native_login(emu, scope)
    access = tokens.by_resource_server["auth.globus.org"]["access_token"]
    ac = globus_sdk.AuthClient(authorizer=globus_sdk.AccessTokenAuthorizer(access))
    info = ac.userinfo()
    identity_id = info["sub"]
    found = ac.get_identities(ids=identity_id)["identities"]
    assert [i["id"] for i in found] == [identity_id]
    assert set(found[0]) >= {"email", "id", "identity_provider", "name", "username"}
    consents = ac.get_consents(identity_id)
    forest = consents.to_forest()
    required = globus_sdk.Scope.parse(
        f"{TRANSFER_SCOPE}[*https://auth.globus.org/scopes/{emu.dst_id}/data_access]"
    )
    assert forest.meets_scope_requirements([required])
    missing = globus_sdk.Scope.parse(
        f"{TRANSFER_SCOPE}[*https://auth.globus.org/scopes/{emu.src_id}/data_access]"
    )
    assert not forest.meets_scope_requirements([missing])
    unauth = requests.get(f"{emu.url}v2/api/identities", timeout=5)
    assert unauth.status_code == 401 and unauth.json()["errors"][0]["code"]
