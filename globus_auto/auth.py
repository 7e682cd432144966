"""Building the Globus app: a user login (native app) or a service account.

Tokens live in ``STATE_DIR``; files 0600 in a 0700 folder. Without a terminal a
login is never attempted: any need for one raises :class:`LoginRequired` at once,
so cron never blocks on a prompt.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import globus_sdk
from globus_sdk.login_flows import CommandLineLoginFlowManager, LoginFlowManager
from globus_sdk.token_storage import JSONTokenStorage

from globus_auto.datastore import ensure_private_dir
from globus_auto.errors import LoginRequired

if TYPE_CHECKING:
    from globus_sdk.gare import GlobusAuthorizationParameters

    from globus_auto.settings import Settings

TOKENS_FILE = "tokens.json"
APP_NAME = "globus-auto"
TRANSFER_SCOPE = "urn:globus:auth:scope:transfer.api.globus.org:all"


def tokens_path(state_dir: Path) -> Path:
    return state_dir / TOKENS_FILE


def login_command(settings: Settings) -> str:
    """The exact command a person runs to log in again."""
    return f"globus-auto --config {settings.config_path} login"


class PrivateJSONTokenStorage(JSONTokenStorage):
    """JSON token storage whose file is 0600 and replaced atomically."""

    def store_token_data_by_resource_server(
        self, token_data_by_resource_server: Any
    ) -> None:
        ensure_private_dir(Path(self.filepath).parent)
        old_umask = os.umask(0o077)
        try:
            super().store_token_data_by_resource_server(token_data_by_resource_server)
        finally:
            os.umask(old_umask)
        os.chmod(self.filepath, 0o600)


class NoPromptLoginFlowManager(LoginFlowManager):
    """Used without a terminal: a needed login is an error, never a prompt."""

    def __init__(self, login_client: globus_sdk.AuthLoginClient, command: str) -> None:
        super().__init__(login_client, request_refresh_tokens=True)
        self.command = command

    def run_login_flow(
        self, auth_parameters: GlobusAuthorizationParameters
    ) -> globus_sdk.OAuthTokenResponse:
        raise LoginRequired(
            f"a Globus login is needed and there is no terminal to ask on; "
            f"run on a terminal: {self.command}"
        )


def is_interactive() -> bool:
    """True when a person can answer a prompt on this process's terminal."""
    return sys.stdin is not None and sys.stdin.isatty()


def build_app(
    settings: Settings,
    *,
    interactive: bool,
    data_access: tuple[str, ...] = (),
) -> globus_sdk.GlobusApp:
    """The app that hands out authorizers for Transfer.

    With ``CLIENT_SECRET`` it is a service account (client credentials); else a
    native app with refresh tokens, prompting only when ``interactive``.
    """
    ensure_private_dir(settings.state_dir)
    storage = PrivateJSONTokenStorage(tokens_path(settings.state_dir))
    scope = transfer_scope(data_access)
    if settings.client_secret:
        return globus_sdk.ClientApp(
            APP_NAME,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            scope_requirements={"transfer.api.globus.org": [scope]},
            config=globus_sdk.GlobusAppConfig(token_storage=storage),
        )
    login_client = globus_sdk.NativeAppAuthClient(
        client_id=str(settings.client_id), app_name=APP_NAME
    )
    manager: LoginFlowManager
    if interactive:
        manager = CommandLineLoginFlowManager(login_client, request_refresh_tokens=True)
    else:
        manager = NoPromptLoginFlowManager(login_client, login_command(settings))
    config = globus_sdk.GlobusAppConfig(
        token_storage=storage,
        request_refresh_tokens=True,
        login_flow_manager=manager,
    )
    return globus_sdk.UserApp(
        APP_NAME,
        login_client=login_client,
        scope_requirements={"transfer.api.globus.org": [scope]},
        config=config,
    )


def transfer_scope(data_access: tuple[str, ...]) -> globus_sdk.Scope:
    """The Transfer scope with a data_access dependency per listed collection."""
    scope = globus_sdk.Scope(TRANSFER_SCOPE)
    for collection in sorted(set(data_access)):
        scope = scope.with_dependency(
            globus_sdk.Scope(
                f"https://auth.globus.org/scopes/{collection}/data_access",
                optional=True,
            )
        )
    return scope


DATA_ACCESS_KEY = "data_access_collections"


def stored_data_access(settings: Settings) -> tuple[str, ...]:
    """Collections whose data_access consent the stored login carries."""
    path = settings.state_dir / "data_access.json"
    try:
        import json

        return tuple(json.loads(path.read_text()))
    except (OSError, ValueError):
        return ()


def run_login(settings: Settings, *, open_browser: bool = False) -> str:
    """Log in on this terminal and store the tokens; returns what to tell the user."""
    if settings.client_secret:
        return (
            "CLIENT_SECRET is set: this is a service account, which needs no login. "
            "Try: globus-auto check"
        )
    if not is_interactive():
        raise LoginRequired(
            "globus-auto login needs a terminal to paste the code into; run it in an "
            "interactive shell"
        )
    app = build_app(
        settings, interactive=True, data_access=stored_data_access(settings)
    )
    app.login(force=True)
    return f"Logged in. Tokens are stored in {tokens_path(settings.state_dir)}"


def run_logout(settings: Settings) -> str:
    """Revoke the stored tokens at Globus Auth and delete them."""
    path = tokens_path(settings.state_dir)
    if settings.client_secret or not path.exists():
        path.unlink(missing_ok=True)
        return "No stored login; nothing to do."
    app = build_app(settings, interactive=False)
    app.logout()
    path.unlink(missing_ok=True)
    return "Logged out: the tokens were revoked and deleted."
