"""What globus-auto relies on in globus-sdk, checked so a release that changes it
fails here, loudly, rather than in a user's cron job.

``globus_auto.globus.app`` bends the SDK only through these public names: the
refresh lock wraps a ``RefreshTokenAuthorizer`` (its ``refresh_token``,
``access_token``, ``expires_at`` and ``ensure_valid_token``), the token storage
implements ``TokenStorage`` and reads through ``JSONTokenStorage``, the login
flows override ``CommandLineLoginFlowManager``'s two hooks, and a session
requirement is read and met through ``globus_sdk.gare``.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import globus_sdk
from globus_sdk.gare import GlobusAuthorizationParameters, to_gare
from globus_sdk.login_flows import CommandLineLoginFlowManager
from globus_sdk.token_storage import JSONTokenStorage, TokenStorage, TokenStorageData


def test_a_refresh_token_authorizer_takes_adopted_tokens_without_refreshing() -> None:
    """The refresh lock adopts another process's tokens by setting these
    attributes; the authorizer must then use them and not call Auth."""
    auth = globus_sdk.NativeAppAuthClient("00000000-0000-0000-0000-000000000001")
    authorizer = globus_sdk.RefreshTokenAuthorizer(
        "old-refresh", auth, access_token="old", expires_at=int(time.time()) + 3600
    )
    authorizer.refresh_token = "new-refresh"
    authorizer.access_token = "adopted"
    authorizer.expires_at = int(time.time()) + 3600
    authorizer.ensure_valid_token()  # valid: no call to Auth
    assert authorizer.get_authorization_header() == "Bearer adopted"
    assert authorizer.refresh_token == "new-refresh"
    assert authorizer.handle_missing_authorization() is True
    assert authorizer.expires_at is None  # the next header refreshes


def test_token_storage_interface_is_what_our_storage_implements() -> None:
    abstract = TokenStorage.__abstractmethods__
    assert abstract == {
        "store_token_data_by_resource_server",
        "get_token_data_by_resource_server",
        "remove_token_data",
    }


def test_json_token_storage_reads_what_we_write(tmp_path: Path) -> None:
    """Our writer uses globus-sdk's JSON format 2.0; its reader reads it."""
    from globus_auto.globus.app import _storage_class

    data = TokenStorageData(
        resource_server="transfer.api.globus.org",
        identity_id=None,
        scope="urn:globus:auth:scope:transfer.api.globus.org:all",
        access_token="a",
        refresh_token="r",
        expires_at_seconds=int(time.time()) + 60,
        token_type="Bearer",
    )
    ours = _storage_class()(tmp_path / "tokens.json")
    ours.store_token_data_by_resource_server({data.resource_server: data})
    theirs = JSONTokenStorage(tmp_path / "tokens.json", namespace="DEFAULT")
    read = theirs.get_token_data_by_resource_server()
    assert read[data.resource_server].to_dict() == data.to_dict()
    assert (tmp_path / "tokens.json").stat().st_mode & 0o777 == 0o600


def test_the_login_flow_hooks_exist() -> None:
    for hook in ("print_authorize_url", "prompt_for_code"):
        assert callable(getattr(CommandLineLoginFlowManager, hook))
    login = inspect.signature(globus_sdk.UserApp.login)
    assert {"auth_params", "force"} <= set(login.parameters)


def test_a_session_requirement_reads_as_authorization_parameters() -> None:
    """The shape of a 502 LoginFailed (globus-sdk-javascript errors.spec.ts)."""
    body = {
        "code": "ExternalError.DirListingFailed.LoginFailed",
        "authorization_parameters": {
            "session_message": "Session reauthentication required",
            "session_required_single_domain": ["globus.org"],
            "session_required_mfa": False,
        },
    }
    gare = to_gare(body)
    assert gare is not None
    params = gare.authorization_parameters
    assert params.session_required_single_domain == ["globus.org"]
    again = GlobusAuthorizationParameters.from_dict(
        {**params.to_dict(), "prompt": "login"}
    )
    assert again.prompt == "login"


def test_skipped_errors_are_paged_by_globus_sdk() -> None:
    client = globus_sdk.TransferClient(
        authorizer=globus_sdk.AccessTokenAuthorizer("unused")
    )
    assert callable(client.paginated.task_skipped_errors)


def test_the_identity_check_dropped_for_imported_tokens_is_where_we_drop_it(
    tmp_path: Path,
) -> None:
    """``globus_auto.globus.app`` drops ``UnchangingIdentityIDValidator`` from
    the app's validating storage while the stored tokens name no identity
    (tokens imported from the original LBNL script): this is the one place
    that reaches inside globus-sdk, so its shape is checked here."""
    from globus_sdk.token_storage import UnchangingIdentityIDValidator

    app = globus_sdk.UserApp(
        "surface",
        client_id="00000000-0000-0000-0000-000000000001",
        config=globus_sdk.GlobusAppConfig(token_storage="memory"),
    )
    storage = app.token_storage
    assert storage.identity_id is None
    assert isinstance(storage.validators, list)
    assert any(isinstance(v, UnchangingIdentityIDValidator) for v in storage.validators)
    assert isinstance(storage.token_storage, TokenStorage)


def test_each_client_calls_through_our_transport_with_our_retry_check_first() -> None:
    """``bounded`` swaps a made client's ``transport`` and ``retry_config``
    (plain attributes, read at each request) and keeps the SDK's own checks
    after the deadline's; ``DeadlineTransport`` overrides ``request``, which
    the client calls with keywords only, and mounts its adapter on
    ``session``; the adapter swaps urllib3's pool classes."""
    import urllib3
    from globus_sdk.transport import RequestsTransport

    from globus_auto.globus.app import bounded
    from globus_auto.globus.watchdog import (
        DeadlineAdapter,
        DeadlineTransport,
        stop_retrying_after_deadline,
    )

    client = globus_sdk.TransferClient(
        authorizer=globus_sdk.AccessTokenAuthorizer("unused")
    )
    own = list(client.retry_config.checks)
    bounded(client, 5.0)
    assert isinstance(client.transport, DeadlineTransport)
    assert list(client.retry_config.checks) == [stop_retrying_after_deadline, *own]
    assert client.transport.user_agent.endswith("/globus-auto")
    parameters = inspect.signature(RequestsTransport.request).parameters
    assert list(parameters)[:3] == ["self", "method", "url"]
    assert all(p.kind is p.KEYWORD_ONLY for p in list(parameters.values())[3:])
    assert isinstance(
        client.transport.session.get_adapter("https://x/"), DeadlineAdapter
    )
    assert isinstance(urllib3.PoolManager().pool_classes_by_scheme, dict)


def test_the_consent_client_of_an_app_is_where_we_bound_it() -> None:
    """The app's own Auth client (consents) sits in its validating storage."""
    from globus_sdk.token_storage.validating_token_storage import (
        ScopeRequirementsValidator,
    )

    from globus_auto.globus.app import bound_app_clients
    from globus_auto.globus.watchdog import DeadlineTransport

    app = globus_sdk.UserApp(
        "surface",
        client_id="00000000-0000-0000-0000-000000000001",
        config=globus_sdk.GlobusAppConfig(token_storage="memory"),
    )
    (validator,) = [
        v
        for v in app.token_storage.validators
        if isinstance(v, ScopeRequirementsValidator)
    ]
    bound_app_clients(app, 5.0)
    assert isinstance(validator.consent_client.transport, DeadlineTransport)
