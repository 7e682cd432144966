"""The globus-sdk app: the one place that bends the SDK.

Every globus-sdk subclass lives here: the JSON token storage written
atomically and privately, the user app whose refresh-token authorizers refresh
under :func:`globus_auto.globus.tokens.tokens_lock`, and the login flows (a
terminal one, and one that refuses without a terminal, so cron never blocks on
a prompt). globus-sdk is imported only inside the functions, so importing this
module costs nothing.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from globus_auto.clock import utcnow
from globus_auto.errors import LoginRequired
from globus_auto.files import ensure_private_dir, write_private_json
from globus_auto.globus.consents import TRANSFER_RS, transfer_scope
from globus_auto.globus.tokens import (
    TOKEN_MARGIN_SECONDS,
    record_token_use,
    tokens_lock,
    tokens_path,
)
from globus_auto.problems import login_command

if TYPE_CHECKING:
    import globus_sdk
    from globus_sdk.gare import GlobusAuthorizationParameters
    from globus_sdk.globus_app.protocols import TokenValidationErrorHandler
    from globus_sdk.login_flows import LoginFlowManager
    from globus_sdk.token_storage import JSONTokenStorage, TokenValidationError

    from globus_auto.globus.prompt import LoginPrompt
    from globus_auto.settings.model import Settings

log = logging.getLogger(__name__)


APP_NAME = "globus-auto"


@functools.cache
def _storage_class() -> type[JSONTokenStorage]:
    """globus-sdk's JSON storage, written atomically and privately."""
    from globus_sdk import __version__
    from globus_sdk.token_storage import JSONTokenStorage, TokenStorageData

    class PrivateJSONTokenStorage(JSONTokenStorage):
        def store_token_data_by_resource_server(
            self, token_data_by_resource_server: Mapping[str, TokenStorageData]
        ) -> None:
            path = Path(self.filepath)
            with tokens_lock(path.parent):  # read-modify-write: one at a time
                data = self._load()
                space = data["data"].setdefault(self.namespace, {})
                for (
                    resource_server,
                    token_data,
                ) in token_data_by_resource_server.items():
                    space[resource_server] = token_data.to_dict()
                data["globus-sdk.version"] = __version__
                write_private_json(path, data)
                record_token_use(path.parent, utcnow())

        def remove_token_data(self, resource_server: str) -> bool:
            path = Path(self.filepath)
            with tokens_lock(path.parent):
                data = self._load()
                space = data["data"].get(self.namespace, {})
                popped = space.pop(resource_server, None)
                write_private_json(path, data)
            return popped is not None

    return PrivateJSONTokenStorage


@functools.cache
def _user_app_class() -> type[globus_sdk.UserApp]:
    """globus-sdk's UserApp, refreshing tokens under :func:`tokens_lock`.

    It replaces the app's refresh-token authorizer factory (a private hook of
    globus-sdk 4) so every refresh, including the one after a 401, re-reads
    the stored tokens under the lock before spending a refresh token.
    """
    import globus_sdk
    from globus_sdk.globus_app.authorizer_factory import (
        RefreshTokenAuthorizerFactory,
    )
    from globus_sdk.token_storage import TokenStorage

    class LockedRefreshTokenAuthorizer(globus_sdk.RefreshTokenAuthorizer):
        def __init__(
            self,
            storage: TokenStorage,
            resource_server: str,
            state_dir: Path,
            **kwargs: Any,
        ) -> None:
            self.storage = storage
            self.resource_server = resource_server
            self.state_dir = state_dir
            super().__init__(**kwargs)

        def _get_new_access_token(self) -> None:
            with tokens_lock(self.state_dir):
                if not self._take_newer_stored_tokens():
                    super()._get_new_access_token()  # saves through on_refresh

        def _take_newer_stored_tokens(self) -> bool:
            """Adopt tokens another process stored since these were read;
            True if their access token is still good (no refresh needed)."""
            stored = self.storage.get_token_data(self.resource_server)
            if stored is None or not stored.refresh_token:
                return False
            if stored.refresh_token == self.refresh_token:
                return False
            log.debug("using the tokens another process refreshed meanwhile")
            self.refresh_token = stored.refresh_token
            left = stored.expires_at_seconds - time.time()
            if not stored.access_token or left <= TOKEN_MARGIN_SECONDS:
                return False
            self.expires_at = stored.expires_at_seconds
            self.access_token = stored.access_token
            return True

    class LockedRefreshTokenAuthorizerFactory(RefreshTokenAuthorizerFactory):
        def _make_authorizer(
            self, resource_server: str
        ) -> globus_sdk.RefreshTokenAuthorizer:
            token_data = self.token_storage.get_token_data(resource_server)
            if token_data.refresh_token is None:  # pragma: no cover
                raise ValueError("token data missing required field refresh_token")
            storage = self.token_storage.token_storage
            path = getattr(storage, "filepath", None)
            if path is None:  # pragma: no cover (always our JSON storage)
                return super()._make_authorizer(resource_server)
            return LockedRefreshTokenAuthorizer(
                storage,
                resource_server,
                Path(path).parent,
                refresh_token=token_data.refresh_token,
                auth_client=self.auth_login_client,
                access_token=token_data.access_token,
                expires_at=token_data.expires_at_seconds,
                on_refresh=self.token_storage.store_token_response,
            )

    class LockingUserApp(globus_sdk.UserApp):
        def _initialize_authorizer_factory(self) -> None:
            super()._initialize_authorizer_factory()
            if isinstance(self._authorizer_factory, RefreshTokenAuthorizerFactory):
                self._authorizer_factory = LockedRefreshTokenAuthorizerFactory(
                    token_storage=self.token_storage,
                    auth_login_client=self._login_client,
                )

    return LockingUserApp


def open_storage(settings: Settings) -> JSONTokenStorage:
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
        return globus_sdk.ClientApp(
            APP_NAME,
            client_id=str(settings.client_id),
            client_secret=settings.client_secret,
            scope_requirements=requirements,
            config=globus_sdk.GlobusAppConfig(token_storage=open_storage(settings)),
        )
    login_client = globus_sdk.NativeAppAuthClient(
        client_id=str(settings.client_id), app_name=APP_NAME
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
    return _user_app_class()(
        APP_NAME,
        login_client=login_client,
        scope_requirements=requirements,
        config=config,
    )


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
