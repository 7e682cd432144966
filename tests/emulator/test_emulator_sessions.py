"""Consents and collection authentication policies, as Globus enforces them.

A person logs in on the authorize page globus-sdk builds (followed with
``requests`` as a browser would), exchanges the code, and calls Transfer; the
errors must parse in globus-sdk as authorization requirements (GAREs), and a
login with the parameters they name must then succeed.
"""

from __future__ import annotations

import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import globus_sdk
import globus_sdk.gare
import pytest
import requests
from emulator_fixtures import TestEmulator, managed
from emulator_helpers import (
    TRANSFER_SCOPE,
    api_error,
    browse,
    client_transfer,
    control,
    data_access,
    person_login,
    transfer_of,
)
from test_emulator_sdk import user_app

from globus_auto.emulator import Emulator

DOMAIN = "example.edu"


def scope_of(emu: TestEmulator) -> str:
    return data_access(emu.src_id, emu.dst_id)


def person(emu: TestEmulator, **authorize: Any) -> globus_sdk.TransferClient:
    _, tokens = person_login(emu, scope_of(emu), **authorize)
    return transfer_of(tokens)


def endpoint_doc(emu: TestEmulator) -> dict[str, Any]:
    return dict(client_transfer(emu, TRANSFER_SCOPE).get_endpoint(emu.src_id).data)


def login_failed(err: Any, operation: str = "DirListingFailed") -> dict[str, Any]:
    """Check a LoginFailed as globus-sdk-javascript's errors.spec.ts has it and
    as globus-sdk must read it; return its authorization_parameters."""
    assert (err.http_status, err.code) == (
        502,
        f"ExternalError.{operation}.LoginFailed",
    )
    assert err.info.authorization_parameters
    assert globus_sdk.gare.to_gare(err) is not None
    params = dict(err.raw_json["authorization_parameters"])
    assert params["session_required_identities"] == []
    assert params["session_message"]
    return params


# ---------------------------------------------------------------- consents


@pytest.fixture
def every_kind(tmp_path: Path) -> Any:
    kinds = {
        "mapped": {},
        "mapped_ha": {"high_assurance": True},
        "guest": {"entity_type": "GCSv5_guest_collection"},
        "gcp_mapped": {"entity_type": "GCP_mapped_collection"},
        "gcp_guest": {"entity_type": "GCP_guest_collection"},
        "endpoint": {"entity_type": "GCSv5_endpoint"},
    }
    ids = {kind: str(uuid.uuid4()) for kind in kinds}
    for kind in kinds:
        (tmp_path / kind).mkdir()
    client = str(uuid.uuid4())
    emu = Emulator(
        collections={ids[k]: tmp_path / k for k in kinds},
        clients={client: "secret"},
        collection_options={ids[k]: options for k, options in kinds.items()},
    )
    with emu:
        auth = globus_sdk.ConfidentialAppAuthClient(client, "secret")
        auth.base_url = emu.url

        def transfer(scope: str) -> globus_sdk.TransferClient:
            tokens = auth.oauth2_client_credentials_tokens(requested_scopes=scope)
            tc = globus_sdk.TransferClient(
                authorizer=globus_sdk.AccessTokenAuthorizer(
                    tokens.by_resource_server["transfer.api.globus.org"]["access_token"]
                ),
                retry_config=globus_sdk.transport.RetryConfig(max_retries=0),
            )
            tc.base_url = emu.url
            return tc

        yield emu, ids, auth, transfer


def test_only_plain_mapped_collections_need_data_access_by_default(
    every_kind: Any,
) -> None:
    """globus-sdk add_app_data_access_scope docstring; globus-cli endpointish.py
    requires_data_access_scope: GCSv5 mapped and not high assurance."""
    emu, ids, _, transfer = every_kind
    tc = transfer(TRANSFER_SCOPE)
    err = api_error(tc.operation_ls, ids["mapped"], path="/")
    assert (err.http_status, err.code) == (403, "ConsentRequired")
    assert err.info.consent_required
    for kind in ("mapped_ha", "guest", "gcp_mapped", "gcp_guest"):
        assert tc.operation_ls(ids[kind], path="/")["DATA"] == [], kind
    endpoint = tc.get_endpoint(ids["endpoint"])
    assert endpoint["non_functional"] is True
    err = api_error(tc.operation_ls, ids["endpoint"], path="/")
    assert err.http_status == 400
    emu.set_collection(ids["mapped"], requires_consent=False)  # a test's override
    assert tc.operation_ls(ids["mapped"], path="/")["DATA"] == []
    emu.set_collection(ids["mapped"], requires_consent=None)  # back to the default
    assert api_error(tc.operation_ls, ids["mapped"], path="/").code == "ConsentRequired"
    # the consent is the client's for this identity, whatever token asks later
    granted = transfer(data_access(ids["mapped"]))
    assert granted.operation_ls(ids["mapped"], path="/")["DATA"] == []
    assert tc.operation_ls(ids["mapped"], path="/")["DATA"] == []


def test_a_collection_changed_into_another_kind_follows_its_kind(
    every_kind: Any,
) -> None:
    emu, ids, _, transfer = every_kind
    tc = transfer(TRANSFER_SCOPE)
    emu.set_collection(ids["mapped"], entity_type="GCSv5_guest_collection")
    assert tc.operation_ls(ids["mapped"], path="/")["DATA"] == []
    emu.set_collection(ids["guest"], entity_type="GCSv5_mapped_collection")
    assert api_error(tc.operation_ls, ids["guest"], path="/").code == "ConsentRequired"
    emu.set_collection(ids["guest"], high_assurance=True, display_name="HA")
    assert tc.get_endpoint(ids["guest"])["display_name"] == "HA"
    assert tc.operation_ls(ids["guest"], path="/")["DATA"] == []
    answer = control(emu, f"collections/{ids['guest']}", {"entity_type": "bogus"})
    assert answer.status_code == 400


def test_auth_refuses_data_access_where_there_is_none(every_kind: Any) -> None:
    """GLOBUS.md: asking data_access of GCP or guest collections fails at login
    with "Unknown Scope" (the exact wording is unverified)."""
    _, ids, auth, _ = every_kind
    for kind in ("mapped_ha", "guest", "gcp_mapped", "gcp_guest", "endpoint"):
        with pytest.raises(globus_sdk.AuthAPIError) as caught:
            auth.oauth2_client_credentials_tokens(
                requested_scopes=data_access(ids[kind])
            )
        assert caught.value.http_status == 400
        assert isinstance(caught.value.raw_json, dict)
        assert caught.value.raw_json["error"] == "invalid_scope"
        assert "Unknown Scope" in caught.value.raw_json["error_description"]
    auth.oauth2_client_credentials_tokens(requested_scopes=data_access(ids["mapped"]))


def test_the_authorize_page_refuses_data_access_where_there_is_none(
    globus_env: TestEmulator, tmp_path: Path
) -> None:
    emu = globus_env
    emu.state.collection(emu.dst_id).entity_type = "GCSv5_guest_collection"
    client = globus_sdk.NativeAppAuthClient(emu.native_client_id)
    client.oauth2_start_flow(requested_scopes=data_access(emu.dst_id))
    answer = requests.get(
        client.oauth2_get_authorize_url(), allow_redirects=False, timeout=5
    )
    assert answer.status_code == 302
    query = urllib.parse.parse_qs(
        urllib.parse.urlsplit(answer.headers["Location"]).query
    )
    assert query["error"] == ["invalid_scope"]
    assert "Unknown Scope" in query["error_description"][0]
    page = browse(client.oauth2_get_authorize_url())
    assert page.status_code == 400 and "Unknown Scope" in page.text


# ------------------------------------------------------------ session policy


def test_a_required_domain_until_a_login_in_that_domain(
    globus_env: TestEmulator,
) -> None:
    emu = globus_env
    emu.set_collection(emu.src_id, session_required_single_domain=[DOMAIN])
    tc = person(emu)
    params = login_failed(api_error(tc.operation_ls, emu.src_id, path="/"))
    assert params["session_required_single_domain"] == [DOMAIN]
    assert params["session_required_mfa"] is False
    assert "session_required_policies" not in params
    login_failed(api_error(tc.operation_mkdir, emu.src_id, "/d"), "MkdirFailed")
    tdata = globus_sdk.TransferData(emu.src_id, emu.dst_id)
    tdata.add_item("/a", "/a")
    err = api_error(tc.submit_transfer, tdata)
    assert (err.http_status, err.code) == (403, "AuthPolicyFailed")
    assert err.info.authorization_parameters
    assert globus_sdk.gare.to_gare(err) is not None
    assert err.raw_json["authorization_parameters"][
        "session_required_single_domain"
    ] == [DOMAIN]
    assert tc.operation_ls(emu.dst_id, path="/")["DATA"] == []  # no policy there

    gare = globus_sdk.gare.to_gare(api_error(tc.operation_ls, emu.src_id, path="/"))
    assert gare is not None
    required = gare.authorization_parameters
    again = person(
        emu, session_required_single_domain=required.session_required_single_domain
    )
    assert again.operation_ls(emu.src_id, path="/")["DATA"] == []
    again.operation_mkdir(emu.src_id, "/d")
    identities = {i["username"] for i in emu.auth.person.all()}
    assert f"emulated-user@{DOMAIN}" in identities  # the page logged it in


def test_required_mfa_and_a_refreshed_token_keeps_its_session(
    globus_env: TestEmulator,
) -> None:
    emu = globus_env
    emu.set_collection(emu.src_id, session_required_mfa=True)
    params = login_failed(api_error(person(emu).operation_ls, emu.src_id, path="/"))
    assert params["session_required_mfa"] is True
    client, tokens = person_login(emu, scope_of(emu), session_required_mfa=True)
    assert transfer_of(tokens).operation_ls(emu.src_id, path="/")["DATA"] == []
    refresh = tokens.by_resource_server["transfer.api.globus.org"]["refresh_token"]
    renewed = transfer_of(client.oauth2_refresh_token(refresh))
    assert renewed.operation_ls(emu.src_id, path="/")["DATA"] == []
    # later logins reuse the browser session, MFA included
    assert person(emu).operation_ls(emu.src_id, path="/")["DATA"] == []


def test_a_session_too_old_needs_prompt_login(globus_env: TestEmulator) -> None:
    emu = globus_env
    emu.set_collection(emu.src_id, session_max_age=3600)
    assert endpoint_doc(emu)["authentication_timeout_mins"] == 60
    assert person(emu).operation_ls(emu.src_id, path="/")["DATA"] == []
    assert control(emu, "auth", {"age_sessions": 7200}).status_code == 200
    stale = person(emu)  # the same browser session: still too old
    params = login_failed(api_error(stale.operation_ls, emu.src_id, path="/"))
    assert params["prompt"] == "login"
    fresh = person(emu, prompt="login")
    assert fresh.operation_ls(emu.src_id, path="/")["DATA"] == []


def test_required_policies_answer_auth_policy_failed(globus_env: TestEmulator) -> None:
    """globus-cli test_session_hooks.py: 403 AuthPolicyFailed, the policies a
    comma-separated string, on ls."""
    emu = globus_env
    policies = [str(uuid.uuid4()), str(uuid.uuid4())]
    answer = control(
        emu, f"collections/{emu.src_id}", {"session_required_policies": policies}
    )
    assert answer.status_code == 200
    err = api_error(person(emu).operation_ls, emu.src_id, path="/")
    assert (err.http_status, err.code) == (403, "AuthPolicyFailed")
    params = err.raw_json["authorization_parameters"]
    assert params["session_required_policies"] == ",".join(policies)
    assert err.info.authorization_parameters.session_required_policies == policies
    gare = globus_sdk.gare.to_gare(err)
    assert gare is not None
    assert gare.authorization_parameters.session_required_policies == policies
    ok = person(emu, session_required_policies=policies)
    assert ok.operation_ls(emu.src_id, path="/")["DATA"] == []


def test_required_identities_log_in_a_linked_identity(globus_env: TestEmulator) -> None:
    emu = globus_env
    other = emu.add_identity("someone@other.org")
    assert other["username"] == "someone@other.org"
    emu.set_collection(emu.src_id, session_required_single_domain=["other.org"])
    login_failed(api_error(person(emu).operation_ls, emu.src_id, path="/"))
    ok = person(emu, session_required_identities=[other["id"]])
    assert ok.operation_ls(emu.src_id, path="/")["DATA"] == []
    unknown = globus_sdk.NativeAppAuthClient(emu.native_client_id)
    unknown.oauth2_start_flow(requested_scopes=scope_of(emu))
    page = browse(
        unknown.oauth2_get_authorize_url(
            session_required_identities=[str(uuid.uuid4())]
        )
    )
    assert page.status_code == 400  # nobody can log in as a stranger


def test_a_service_account_cannot_meet_a_domain_policy(
    globus_env: TestEmulator,
) -> None:
    emu = globus_env
    emu.set_collection(emu.src_id, session_required_single_domain=[DOMAIN])
    tc = client_transfer(emu, scope_of(emu))
    login_failed(api_error(tc.operation_ls, emu.src_id, path="/"))


def test_globus_app_logs_in_again_with_the_error_s_parameters(
    globus_env: TestEmulator,
) -> None:
    """The path GLOBUS.md gives: to_gare, then app.login(auth_params=...)."""
    emu = globus_env
    emu.set_collection(emu.src_id, session_required_single_domain=[DOMAIN])
    with managed(user_app(emu, request_refresh_tokens=True)) as app:
        tc = globus_sdk.TransferClient(app=app)
        tc.retry_config.max_retries = 0
        tc.add_app_data_access_scope([emu.src_id, emu.dst_id])
        err = api_error(tc.operation_ls, emu.src_id, path="/")
        gare = globus_sdk.gare.to_gare(err)
        assert gare is not None
        params = gare.authorization_parameters
        params.required_scopes = [scope_of(emu)]
        params.prompt = "login"
        app.login(auth_params=params)
        assert tc.operation_ls(emu.src_id, path="/")["DATA"] == []


def test_session_options_are_checked_and_reach_the_collection(
    globus_env: TestEmulator,
) -> None:
    emu = globus_env
    path = f"collections/{emu.src_id}"
    for body in (
        {"session_required_single_domain": "example.edu"},
        {"session_required_mfa": "yes"},
        {"session_max_age": -1},
        {"session_required_policies": [1]},
    ):
        assert control(emu, path, body).status_code == 400, body
    body = {
        "session_required_single_domain": ["Example.EDU"],
        "session_required_mfa": True,
        "session_max_age": 600,
    }
    assert control(emu, path, body).status_code == 200
    doc = endpoint_doc(emu)
    assert doc["mfa_required"] is True and doc["authentication_timeout_mins"] == 10
    collection = emu.state.collection(emu.src_id)
    assert collection.session_required_single_domain == ["example.edu"]
    none = {"session_required_single_domain": None, "session_max_age": None}
    assert control(emu, path, {**none, "session_required_mfa": False}).ok
    assert person(emu).operation_ls(emu.src_id, path="/")["DATA"] == []
    assert control(emu, "identities", {"username": "nodomain"}).status_code == 400
    linked = control(emu, "identities", {"username": "a@b.org"}).json()
    assert linked["username"] == "a@b.org" and linked["id"]


def test_policies_and_consent_can_be_given_at_construction(tmp_path: Path) -> None:
    cid = str(uuid.uuid4())
    emu = Emulator(
        collections={cid: tmp_path},
        clients={},
        collection_options={
            cid: {
                "requires_consent": False,
                "session_required_single_domain": ["Example.EDU"],
                "session_required_mfa": True,
                "session_max_age": 60,
                "session_required_policies": ["p"],
            }
        },
    )
    collection = emu.state.collection(cid)
    assert collection.requires_consent is False and collection.scope_exists
    assert collection.session_required_single_domain == ["example.edu"]
    assert collection.session_required_mfa is True
    assert (collection.session_max_age, collection.session_required_policies) == (
        60,
        ["p"],
    )
    with pytest.raises(ValueError, match="unknown collection options"):
        Emulator(
            collections={cid: tmp_path},
            clients={},
            collection_options={cid: {"mfa": True}},
        )
