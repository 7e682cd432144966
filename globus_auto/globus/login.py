"""Log in and out, keep tokens alive, and connect a run to Globus Transfer.

Without a terminal a login is never attempted: any need for one raises
:class:`LoginRequired` at once, so cron never blocks on a prompt. This module
imports globus-sdk only inside the functions that talk to Globus, so a run with
nothing to send pays neither for the import nor for a network call.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from globus_auto.errors import GlobusAutoError, LoginRequired
from globus_auto.globus.app import (
    APP_NAME,
    bounded,
    build_app,
    locked,
    open_storage,
)
from globus_auto.globus.consents import (
    COLLECTIONS_FILE,
    job_collections,
    known_collections,
    needs_data_access,
    save_collections,
    stored_data_access,
)
from globus_auto.globus.probe import look_at_collections
from globus_auto.globus.sessions import (
    describe_session,
    merged_session,
    session_requirements,
)
from globus_auto.globus.tokens import clear_auth_error, tokens_lock, tokens_path

if TYPE_CHECKING:
    import globus_sdk
    from globus_sdk.gare import GlobusAuthorizationParameters

    from globus_auto.globus.gateway import Gateway
    from globus_auto.globus.prompt import LoginPrompt
    from globus_auto.settings.model import Settings

log = logging.getLogger(__name__)


# A login asks for consents, then checks every collection; a collection found
# needing one more consent costs one more round. Three rounds cover any config.
MAX_LOGIN_ROUNDS = 3


def keep_alive(settings: Settings) -> None:
    """Exchange every stored refresh token for a new one, now."""
    from globus_auto.globus.errors import globus_errors

    app = build_app(settings, prompt=None, data_access=stored_data_access(settings))
    with (
        tokens_lock(settings.state_dir),
        globus_errors("renewing the stored Globus tokens"),
    ):
        for resource_server in app.token_storage.get_token_data_by_resource_server():
            authorizer = locked(
                app.get_authorizer(resource_server), resource_server, settings.state_dir
            )
            authorizer.handle_missing_authorization()  # forces the refresh
            authorizer.get_authorization_header()


def run_login(settings: Settings, prompt: LoginPrompt) -> str:
    """Log in through ``prompt``, with every consent the config's collections need.

    Returns what to tell the user. Each round logs in with the consents known
    to be needed, then looks at every collection (its endpoint document, and a
    listing for a consent Globus asks for); a collection found needing one more
    consent costs one more round.
    """
    if settings.client_secret:
        return (
            "CLIENT_SECRET is set: this is a service account, which needs no login. "
            "Try: globus-auto check"
        )
    known = known_collections(settings)
    _look_with_stored_login(settings, known)
    for round_number in range(MAX_LOGIN_ROUNDS):
        wanted = sorted(c for c, need in known.items() if need)
        sessions = session_requirements(settings)
        if round_number:
            prompt.say(_one_more_step(wanted, sessions))
        app = build_app(settings, prompt=prompt, data_access=wanted)
        _log_in(settings, app, sessions)
        missing = look_at_collections(settings, app, known, set(wanted), say=prompt.say)
        if not missing and not session_requirements(settings):
            save_collections(settings, known)
            clear_auth_error(settings)
            return f"Logged in. Tokens are stored in {tokens_path(settings.state_dir)}"
    raise LoginRequired(
        "Globus still asks for a consent or a session after several logins; "
        "see what it asks for with: globus-auto "
        f"--config {settings.config_path} check"
    )


def _log_in(
    settings: Settings, app: globus_sdk.GlobusApp, sessions: dict[str, dict[str, Any]]
) -> None:
    """One login through the app's flow; a code Globus Auth refuses (400: a
    mistyped or stale one) is LoginRequired saying to log in again."""
    import globus_sdk

    try:
        app.login(auth_params=_auth_params(sessions), force=True)
    except globus_sdk.AuthAPIError as exc:
        if exc.http_status != 400:
            raise
        raise LoginRequired(
            "Globus did not accept the authorization code (mistyped, incomplete or "
            "already used); run globus-auto --config "
            f"{settings.config_path} login again and paste the code the page shows"
        ) from exc


def _auth_params(
    sessions: dict[str, dict[str, Any]],
) -> GlobusAuthorizationParameters | None:
    """What the login asks Globus for, to meet the collections' session
    policies (a domain, identities, MFA, policies, a fresh login), or None."""
    from globus_sdk.gare import GlobusAuthorizationParameters

    if not sessions:
        return None
    return GlobusAuthorizationParameters.from_dict(merged_session(sessions.values()))


def _one_more_step(consents: list[str], sessions: dict[str, dict[str, Any]]) -> str:
    if sessions:
        asks = "; ".join(
            f"collection {c} requires {describe_session(p)}"
            for c, p in sessions.items()
        )
        return f"One more step: {asks}. Globus asks for it in this login."
    return (
        "One more step: Globus asks your consent for data access on "
        f"collection {', '.join(consents)} (GCSv5 mapped collections need it)."
    )


def _look_with_stored_login(settings: Settings, known: dict[str, bool]) -> None:
    """With a still-usable stored login, look at new collections before logging in
    (so one round suffices); quietly do nothing otherwise."""
    if not tokens_path(settings.state_dir).exists():
        return
    try:
        app = build_app(settings, prompt=None, data_access=stored_data_access(settings))
        look_at_collections(settings, app, known, set(), probe=False)
    except Exception as exc:  # any failure only means: find out after logging in
        log.debug("could not use the stored login: %s", type(exc).__name__)


def run_logout(settings: Settings) -> str:
    """Revoke the stored tokens at Globus Auth and delete them."""
    import globus_sdk

    path = tokens_path(settings.state_dir)
    if not path.exists():
        return "No stored login; nothing to do."
    storage = open_storage(settings)
    login_client: globus_sdk.AuthLoginClient
    if settings.client_secret:
        login_client = globus_sdk.ConfidentialAppAuthClient(
            str(settings.client_id), settings.client_secret, app_name=APP_NAME
        )
    else:
        login_client = globus_sdk.NativeAppAuthClient(
            str(settings.client_id), app_name=APP_NAME
        )
    bounded(login_client, settings.globus_timeout)
    failed = 0
    for data in storage.get_token_data_by_resource_server().values():
        for token in (data.access_token, data.refresh_token):
            if not token:
                continue
            try:
                login_client.oauth2_revoke_token(token)
            except globus_sdk.GlobusError as exc:
                failed += 1
                log.warning("could not revoke a token: %s", type(exc).__name__)
    path.unlink(missing_ok=True)
    (settings.state_dir / COLLECTIONS_FILE).unlink(missing_ok=True)
    if failed:
        return (
            f"Deleted the stored tokens, but {failed} could not be revoked at Globus; "
            "revoke them at https://app.globus.org/account/consents"
        )
    return "Logged out: the tokens were revoked and deleted."


def connect(settings: Settings, prompt: LoginPrompt | None) -> Gateway:
    """The Transfer gateway of a run (called only when the run needs Globus).

    ``prompt`` None: a login that is needed is LoginRequired, never a prompt.
    """
    from globus_auto.globus import gateway as transfer

    if settings.client_secret:
        return _service_account_gateway(settings)
    # No login offer here: the run offered it once before its jobs, and a
    # person who declined is not asked again.
    app = build_app(settings, prompt=prompt, data_access=stored_data_access(settings))
    return transfer.connect(
        app, state_dir=settings.state_dir, seconds=settings.globus_timeout
    )


def _service_account_gateway(settings: Settings) -> Gateway:
    """A service account has no login step: its collections are looked at on
    first use, and data_access is added for those that need it."""
    import globus_sdk

    from globus_auto.globus import gateway as transfer
    from globus_auto.globus.errors import globus_errors

    known = known_collections(settings)
    app = build_app(settings, prompt=None, data_access=stored_data_access(settings))
    gateway = transfer.connect(
        app, state_dir=settings.state_dir, seconds=settings.globus_timeout
    )
    new = [c for c in job_collections(settings.jobs) if c not in known]
    for collection in new:
        try:
            with globus_errors(f"looking up collection {collection}"):
                doc = gateway.client.get_endpoint(collection)
        except GlobusAutoError as exc:  # the job's own probe reports it
            log.debug("%s", exc)
            continue
        except globus_sdk.GlobusError:
            continue
        known[collection] = needs_data_access(doc.data)
    if new:
        save_collections(settings, known)
        if any(known.get(c) for c in new):
            # Tokens already held lack the new consents, and globus-sdk cannot
            # tell for a client's tokens: get new ones with the full scope.
            app = build_app(
                settings, prompt=None, data_access=stored_data_access(settings)
            )
            with globus_errors("getting tokens for the service account"):
                app.login(force=True)
            gateway = transfer.connect(
                app, state_dir=settings.state_dir, seconds=settings.globus_timeout
            )
    return gateway
