"""The globus-sdk app: the one place that bends the SDK.

Every globus-sdk subclass lives here, each on a public interface: the JSON
token storage written atomically and privately, the authorizer that refreshes
under :func:`globus_auto.globus.tokens.tokens_lock`, and the login flows (one
through the command line's prompt, one that refuses, so cron never blocks on
a prompt); and every client is made here, with :func:`bounded`'s timeouts
(the transport that keeps each call's deadline, with the requests and urllib3
classes it needs, is in :mod:`globus_auto.globus.watchdog`). globus-sdk is
imported only inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from globus_auto.clock import utcnow
from globus_auto.errors import LoginRequired
from globus_auto.files import ensure_private_dir, read_json, write_private_json
from globus_auto.globus.consents import TRANSFER_RS, transfer_scope
from globus_auto.globus.tokens import (
    TOKEN_MARGIN_SECONDS,
    record_token_use,
    tokens_lock,
    tokens_path,
)
from globus_auto.problems import login_command
from globus_auto.settings.model import DEFAULT_GLOBUS_TIMEOUT

if TYPE_CHECKING:
    import globus_sdk
    import globus_sdk.authorizers
    import globus_sdk.token_storage
    from globus_sdk.gare import GlobusAuthorizationParameters
    from globus_sdk.globus_app.protocols import TokenValidationErrorHandler
    from globus_sdk.login_flows import LoginFlowManager
    from globus_sdk.token_storage import TokenValidationError

    from globus_auto.globus.prompt import LoginPrompt
    from globus_auto.settings.model import Settings

log = logging.getLogger(__name__)

ClientT = TypeVar("ClientT", bound="globus_sdk.BaseClient")

APP_NAME = "globus-auto"


# Seconds globus-sdk waits for a connection, and then for each read of the
# answer (requests' ``timeout``): a bound per socket operation, not for the
# whole call; the whole call, retries included, has GLOBUS_TIMEOUT
# (:func:`bounded`), so a server that answers a byte at a time ends too.
REQUEST_TIMEOUT = 60.0
# globus-sdk retries network errors, 429 and 5xx itself (5 times, sleeping up
# to 10 s, by default: transport/retry_config.py). A cron tool retries at its
# next run anyway, so our clients try 3 more times and sleep at most 4 s in
# between (Retry-After included): a call that keeps failing gives up within
# 4 x REQUEST_TIMEOUT + about 6 s of sleep, and an outage ends the run in
# seconds with "Globus is unreachable" rather than minutes later.
RETRIES = 3
RETRY_MAX_SLEEP = 4.0


@functools.cache
def _storage_class() -> Callable[[Path], globus_sdk.token_storage.TokenStorage]:
    """Tokens in globus-sdk's JSON file format, written atomically and privately.

    Built on globus-sdk's public ``TokenStorage`` interface (no private
    method): reads go through ``JSONTokenStorage``'s public getter, so files
    of every format it reads keep working; writes go through
    :func:`globus_auto.files.write_private_json` under the tokens lock. Why a
    cached factory holding the class: globus-sdk is imported only when a run
    needs it, and the class must derive from one of its classes.
    """
    from globus_sdk import __version__
    from globus_sdk.token_storage import (
        JSONTokenStorage,
        TokenStorage,
        TokenStorageData,
    )

    class PrivateJSONTokenStorage(TokenStorage):
        def __init__(self, path: Path) -> None:
            super().__init__(namespace="DEFAULT")
            self.path = path
            self.reader = JSONTokenStorage(path, namespace=self.namespace)

        def get_token_data_by_resource_server(self) -> dict[str, TokenStorageData]:
            if not self.path.exists():
                return {}
            return self.reader.get_token_data_by_resource_server()

        def store_token_data_by_resource_server(
            self, token_data_by_resource_server: Mapping[str, TokenStorageData]
        ) -> None:
            with tokens_lock(self.path.parent):  # read-modify-write: one at a time
                data, space = self._file_data()
                for (
                    resource_server,
                    token_data,
                ) in token_data_by_resource_server.items():
                    space[resource_server] = token_data.to_dict()
                write_private_json(self.path, data)
                record_token_use(self.path.parent, utcnow())

        def remove_token_data(self, resource_server: str) -> bool:
            with tokens_lock(self.path.parent):
                data, space = self._file_data()
                popped = space.pop(resource_server, None)
                write_private_json(self.path, data)
            return popped is not None

        def _file_data(self) -> tuple[dict[str, Any], dict[str, Any]]:
            """The file as JSONTokenStorage writes it (format 2.0), and this
            namespace's part of it; other namespaces are kept as they are."""
            data = read_json(self.path)
            if not isinstance(data, dict) or data.get("format_version") != "2.0":
                current = self.get_token_data_by_resource_server()
                data = {"data": {self.namespace: {}}}
                data["data"][self.namespace] = {
                    rs: td.to_dict() for rs, td in current.items()
                }
            data["format_version"] = "2.0"
            data["globus-sdk.version"] = __version__
            space = data.setdefault("data", {}).setdefault(self.namespace, {})
            return data, space

    return PrivateJSONTokenStorage


@functools.cache
def _locked_authorizer_class() -> Callable[
    [globus_sdk.RefreshTokenAuthorizer, str, Path],
    globus_sdk.authorizers.GlobusAuthorizer,
]:
    """A refresh-token authorizer that refreshes under :func:`tokens_lock`.

    Why: Globus may rotate refresh tokens; two runs that refresh the same one
    at once would leave one holding a spent token (a false "login required").
    Every refresh, the one after a 401 included, first re-reads the stored
    tokens under the lock and adopts what another process refreshed
    meanwhile. It wraps globus-sdk's authorizer through its public interface
    only (``get_authorization_header``, ``handle_missing_authorization``,
    ``ensure_valid_token`` and the ``refresh_token``, ``access_token`` and
    ``expires_at`` attributes); ``tests/unit/test_sdk_surface.py`` fails if
    a globus-sdk release changes them. A cached factory for the reason given
    at :func:`_storage_class`.
    """
    import globus_sdk

    class LockedRefreshAuthorizer(globus_sdk.authorizers.GlobusAuthorizer):
        def __init__(
            self,
            inner: globus_sdk.RefreshTokenAuthorizer,
            resource_server: str,
            state_dir: Path,
        ) -> None:
            self.inner = inner
            self.resource_server = resource_server
            self.state_dir = state_dir
            self.storage = _storage_class()(tokens_path(state_dir))

        def get_authorization_header(self) -> str | None:
            if self._still_valid():
                return self.inner.get_authorization_header()
            with tokens_lock(self.state_dir):
                self._adopt_stored()
                return self.inner.get_authorization_header()  # may refresh

        def handle_missing_authorization(self) -> bool:
            return self.inner.handle_missing_authorization()

        def _still_valid(self) -> bool:
            expires = self.inner.expires_at
            return (
                bool(self.inner.access_token)
                and expires is not None
                and (time.time() < expires - TOKEN_MARGIN_SECONDS)
            )

        def _adopt_stored(self) -> None:
            """Take tokens another process stored since these were read."""
            stored = self.storage.get_token_data(self.resource_server)
            if stored is None or not stored.refresh_token:
                return
            if stored.refresh_token == self.inner.refresh_token:
                return
            log.debug("using the tokens another process refreshed meanwhile")
            self.inner.refresh_token = stored.refresh_token
            left = stored.expires_at_seconds - time.time()
            if stored.access_token and left > TOKEN_MARGIN_SECONDS:
                self.inner.access_token = stored.access_token
                self.inner.expires_at = stored.expires_at_seconds
            else:
                self.inner.expires_at = None  # refresh with the adopted one

    return LockedRefreshAuthorizer


def locked(
    authorizer: globus_sdk.authorizers.GlobusAuthorizer,
    resource_server: str,
    state_dir: Path,
) -> globus_sdk.authorizers.GlobusAuthorizer:
    """``authorizer``, refreshing under the tokens lock if it refreshes at all
    (a service account's client-credentials authorizer needs no lock)."""
    import globus_sdk

    if isinstance(authorizer, globus_sdk.RefreshTokenAuthorizer):
        return _locked_authorizer_class()(authorizer, resource_server, state_dir)
    return authorizer


def transfer_client(
    app: globus_sdk.GlobusApp,
    *,
    seconds: float = DEFAULT_GLOBUS_TIMEOUT,
    state_dir: Path | None = None,
    data_access: Iterable[str] = (),
) -> globus_sdk.TransferClient:
    """A Transfer client with ``app``'s tokens and ``seconds`` for each whole
    call (:func:`bounded`).

    ``state_dir``: refresh the tokens under the lock of that state folder.
    ``data_access``: add those collections' data_access consents to the app's
    requirements (the app of a run has them already).
    """
    import globus_sdk

    if data_access or TRANSFER_RS not in app.scope_requirements:
        app.add_scope_requirements({TRANSFER_RS: [transfer_scope(data_access)]})
    from globus_auto.globus.errors import globus_errors

    # Under the lock: getting the authorizer may refresh tokens inside
    # globus-sdk (the Auth token it polls consents with), and the app's
    # authorizers are made from the tokens stored at that moment.
    lock = tokens_lock(state_dir) if state_dir else contextlib.nullcontext()
    with lock, globus_errors("using the stored Globus login"):
        authorizer = app.get_authorizer(TRANSFER_RS)  # a login, if one is needed
    if state_dir is not None:
        authorizer = locked(authorizer, TRANSFER_RS, state_dir)
    client = globus_sdk.TransferClient(authorizer=authorizer, app_name=APP_NAME)
    return bounded(client, seconds)


def bounded(client: ClientT, seconds: float = DEFAULT_GLOBUS_TIMEOUT) -> ClientT:
    """``client`` with this tool's timeouts and retries: REQUEST_TIMEOUT per
    socket operation, RETRIES, and ``seconds`` for each whole call, its
    retries included (:mod:`globus_auto.globus.watchdog` says how).

    Why swap the transport and retry config of a made client rather than
    pass them to its constructor: the same works for the clients globus-sdk
    makes itself (the app's consent client, :func:`bound_app_clients`). The
    deadline's retry check goes first: globus-sdk asks its checks in order.
    """
    from globus_sdk.transport import RetryConfig

    from globus_auto.globus.watchdog import (
        DeadlineTransport,
        sleep_within_deadline,
        stop_retrying_after_deadline,
    )

    old = client.transport
    client.transport = DeadlineTransport(seconds, REQUEST_TIMEOUT)
    client.app_name = client.app_name or APP_NAME  # the User-Agent header
    old.close()
    retry = RetryConfig(max_retries=RETRIES, max_sleep=RETRY_MAX_SLEEP)
    retry.backoff = sleep_within_deadline(retry.backoff)
    retry.checks.register_check(stop_retrying_after_deadline)
    retry.checks.register_many_checks(client.retry_config.checks)
    client.retry_config = retry
    return client


def bound_app_clients(app: globus_sdk.GlobusApp, seconds: float) -> None:
    """Bound the clients ``app`` made itself: the Auth client its token
    storage asks for consents with (globus-sdk ``GlobusApp.__init__`` and
    ``ScopeRequirementsValidator.consent_client``, in 4.0 and 4.10 alike)."""
    from globus_sdk.token_storage.validating_token_storage import (
        ScopeRequirementsValidator,
    )

    for validator in app.token_storage.validators:
        if isinstance(validator, ScopeRequirementsValidator):
            bounded(validator.consent_client, seconds)


def verify_client_secret(settings: Settings) -> None:
    """Ask Globus Auth for a token with CLIENT_ID and CLIENT_SECRET, now.

    Why: a run's app reuses its stored tokens while they are valid (about 2
    hours), so a wrong or revoked secret would pass ``check`` until they
    expire. The token asked for here is thrown away. A wrong secret is
    ``LoginRequired`` (401 ``invalid_client``: RFC 6749 section 5.2, for a
    client that authenticates with HTTP Basic as globus-sdk's
    ``ConfidentialAppAuthClient`` does); no connection is ``GlobusUnavailable``.
    """
    import globus_sdk

    from globus_auto.globus.errors import globus_errors

    client = bounded(
        globus_sdk.ConfidentialAppAuthClient(
            str(settings.client_id), str(settings.client_secret), app_name=APP_NAME
        ),
        settings.globus_timeout,
    )
    with globus_errors("checking CLIENT_ID and CLIENT_SECRET with Globus Auth"):
        client.oauth2_client_credentials_tokens(requested_scopes=transfer_scope(()))


def open_storage(settings: Settings) -> globus_sdk.token_storage.TokenStorage:
    return _storage_class()(tokens_path(settings.state_dir))


def build_app(
    settings: Settings,
    *,
    prompt: LoginPrompt | None,
    data_access: Iterable[str] = (),
) -> globus_sdk.GlobusApp:
    """The app that hands out authorizers for Transfer.

    With ``CLIENT_SECRET`` it is a service account (client credentials); else a
    native app with refresh tokens, logging in through ``prompt`` when a login
    is needed, and never when ``prompt`` is None (cron).
    """
    import globus_sdk
    from globus_sdk.globus_app.config import resolve_by_login_flow

    ensure_private_dir(settings.state_dir)
    requirements = {TRANSFER_RS: [transfer_scope(data_access)]}
    if settings.client_secret:
        return _service_account_app(settings, requirements)
    login_client = bounded(
        globus_sdk.NativeAppAuthClient(
            client_id=str(settings.client_id), app_name=APP_NAME
        ),
        settings.globus_timeout,
    )
    manager = _login_flow(settings, login_client, prompt)
    config = globus_sdk.GlobusAppConfig(
        token_storage=open_storage(settings),
        request_refresh_tokens=True,
        login_flow_manager=manager,
        token_validation_error_handler=resolve_by_login_flow
        if prompt is not None
        else _no_prompt_handler(settings),
    )
    app = globus_sdk.UserApp(
        APP_NAME,
        login_client=login_client,
        scope_requirements=requirements,
        config=config,
    )
    _refresh_tokens_naming_no_identity(app)
    bound_app_clients(app, settings.globus_timeout)
    return app


def _service_account_app(
    settings: Settings, requirements: dict[str, list[globus_sdk.Scope]]
) -> globus_sdk.ClientApp:
    """A service account: client credentials, no login step, no refresh token."""
    import globus_sdk

    client = globus_sdk.ConfidentialAppAuthClient(
        str(settings.client_id), str(settings.client_secret), app_name=APP_NAME
    )
    app = globus_sdk.ClientApp(
        APP_NAME,
        login_client=bounded(client, settings.globus_timeout),
        scope_requirements=requirements,
        config=globus_sdk.GlobusAppConfig(token_storage=open_storage(settings)),
    )
    bound_app_clients(app, settings.globus_timeout)
    return app


def _refresh_tokens_naming_no_identity(app: globus_sdk.UserApp) -> None:
    """Let stored tokens that name no identity be refreshed and stored again.

    Why: the tokens ``globus-auto upgrade`` imports from the original LBNL
    script come from a refresh, whose answer carries no id_token, so they name
    no identity; globus-sdk's ``UnchangingIdentityIDValidator`` refuses to
    store every later refresh of them (MissingIdentityError), and a rotated
    refresh token would be lost with it. With no identity stored there is
    nothing to compare against; the next ``globus-auto login`` stores one, and
    the check applies again from then on.
    """
    from globus_sdk.token_storage import UnchangingIdentityIDValidator

    storage = app.token_storage
    stored = storage.token_storage.get_token_data_by_resource_server()
    if storage.identity_id is not None or not stored:
        return
    storage.validators = [
        v
        for v in storage.validators
        if not isinstance(v, UnchangingIdentityIDValidator)
    ]


def _no_prompt_handler(settings: Settings) -> TokenValidationErrorHandler:
    """Without a terminal, stored tokens that do not do raise LoginRequired."""
    from globus_sdk.token_storage.validating_token_storage import (
        MissingTokenError,
        UnmetScopeRequirementsError,
    )

    def handle(app: globus_sdk.GlobusApp, error: TokenValidationError) -> None:
        if isinstance(error, MissingTokenError):
            why = "there is no stored Globus login"
        elif isinstance(error, UnmetScopeRequirementsError):
            why = (
                "the stored Globus login lacks a consent this run needs (a "
                "data_access consent for a collection may have been revoked)"
            )
        else:
            why = f"the stored Globus login is not usable ({type(error).__name__})"
        raise LoginRequired(f"{why}; run on a terminal: {login_command(settings)}")

    return handle


def _login_flow(
    settings: Settings,
    login_client: globus_sdk.NativeAppAuthClient,
    prompt: LoginPrompt | None,
) -> LoginFlowManager:
    """The login flow: through ``prompt``, or (None) one that refuses, so cron
    never blocks on a question. Its two classes close over ``prompt`` and the
    login command, and derive from globus-sdk's, imported only now."""
    from globus_sdk.login_flows import CommandLineLoginFlowManager, LoginFlowManager

    command = login_command(settings)

    class PromptLoginFlow(CommandLineLoginFlowManager):
        """Shows the URL and reads the code through the command line's prompt;
        no code entered is LoginRequired, not a traceback."""

        def print_authorize_url(self, authorize_url: str) -> None:
            assert prompt is not None
            prompt.show_url(authorize_url)

        def prompt_for_code(self) -> str:
            assert prompt is not None
            code = prompt.read_code().strip()
            if not code:
                raise LoginRequired(f"no authorization code was entered; {command}")
            return code

    class NoPromptLoginFlow(LoginFlowManager):
        """Used without a terminal: a needed login is an error, never a prompt."""

        def run_login_flow(
            self, auth_parameters: GlobusAuthorizationParameters
        ) -> globus_sdk.OAuthTokenResponse:
            raise LoginRequired(
                "a Globus login is needed and there is no terminal to ask on; "
                f"run on a terminal: {command}"
            )

    if prompt is None:
        return NoPromptLoginFlow(login_client, request_refresh_tokens=True)
    return PromptLoginFlow(
        login_client,
        request_refresh_tokens=True,
        native_prefill_named_grant=f"{APP_NAME} on {os.uname().nodename}",
    )
