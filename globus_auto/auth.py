"""Globus authentication: a user login (native app) or a service account.

What lives in ``STATE_DIR`` (files 0600 in a 0700 folder, each replaced
atomically: written to a temporary file, fsynced, renamed):

- ``tokens.json``: the tokens (globus-sdk's JSON token storage format);
- ``data_access.json``: which collections the login has looked at, and which
  of them need a ``data_access`` consent (non-high-assurance GCSv5 mapped
  collections), so that unattended runs request exactly the login's scopes;
- ``auth_state.json``: when tokens were last obtained from Globus Auth (the
  keep-alive clock) and the last authentication error; never a secret;
- ``tokens.lock``: an advisory lock (``flock``) held while tokens are
  refreshed and saved, so overlapping runs never spend the same rotated
  refresh token twice.

Without a terminal a login is never attempted: any need for one raises
:class:`LoginRequired` at once, so cron never blocks on a prompt. This module
imports globus-sdk only inside the functions that talk to Globus, so a run with
nothing to send pays neither for the import nor for a network call.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from globus_auto.alerts import Kind, Problem
from globus_auto.datastore import ensure_private_dir
from globus_auto.errors import EXIT_LOGIN_REQUIRED, GlobusAutoError, LoginRequired
from globus_auto.logs import FILE_ONLY

if TYPE_CHECKING:
    import globus_sdk
    from globus_sdk.gare import GlobusAuthorizationParameters
    from globus_sdk.globus_app.protocols import TokenValidationErrorHandler
    from globus_sdk.login_flows import LoginFlowManager
    from globus_sdk.token_storage import JSONTokenStorage, TokenValidationError

    from globus_auto.datastore import Datastore
    from globus_auto.globus import Gateway
    from globus_auto.runner import JobReport
    from globus_auto.settings import Job, Settings

log = logging.getLogger(__name__)

TOKENS_FILE = "tokens.json"
COLLECTIONS_FILE = "data_access.json"
AUTH_STATE_FILE = "auth_state.json"
TOKENS_LOCK_FILE = "tokens.lock"
# A refresh is one HTTP call with a timeout; a lock held longer than this is
# held by a process that hangs, and waiting on it would hang cron too.
TOKENS_LOCK_WAIT = 120.0
# A stored access token with less life than this left is refreshed (as
# globus-sdk's RenewingAuthorizer does).
TOKEN_MARGIN_SECONDS = 60
APP_NAME = "globus-auto"
TRANSFER_RS = "transfer.api.globus.org"
TRANSFER_SCOPE = "urn:globus:auth:scope:transfer.api.globus.org:all"
# A login asks for consents, then checks every collection; a collection found
# needing one more consent costs one more round. Three rounds cover any config.
MAX_LOGIN_ROUNDS = 3
LOGIN_SUMMARY = "Globus login or consent required"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# --- files --------------------------------------------------------------------


def tokens_path(state_dir: Path) -> Path:
    return state_dir / TOKENS_FILE


_lock_guard = threading.RLock()
_locks_held: dict[Path, int] = {}


@contextmanager
def tokens_lock(state_dir: Path) -> Iterator[None]:
    """Hold the advisory lock on the tokens of ``state_dir`` (re-entrant).

    Why: Globus rotates refresh tokens. Two processes (two cron lines) that
    refresh the same one at once leave one holding a spent token, a false
    "login required". Refreshing and saving under this lock, after re-reading
    the stored tokens, makes the second use the first one's new tokens.
    Threads of one process are serialised by an in-process lock, since a
    second ``flock`` by the holder itself would wait forever.
    """
    key = state_dir.absolute()
    with _lock_guard:
        if _locks_held.get(key):
            _locks_held[key] += 1
            try:
                yield
            finally:
                _locks_held[key] -= 1
            return
        ensure_private_dir(state_dir)
        fd = os.open(key / TOKENS_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _flock(fd, key)
            _locks_held[key] = 1
            try:
                yield
            finally:
                del _locks_held[key]
        finally:
            os.close(fd)  # releases the flock


def _flock(fd: int, state_dir: Path) -> None:
    deadline = time.monotonic() + TOKENS_LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise GlobusAutoError(
                    f"another globus-auto process has held {TOKENS_LOCK_FILE} in "
                    f"{state_dir} for {TOKENS_LOCK_WAIT:g} seconds; the next run "
                    "tries again"
                ) from None
            time.sleep(0.05)


def write_private_json(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically, mode 0600.

    Why atomic: a rotated refresh token is the only copy of a working login; a
    crash mid-write must leave the old file or the new one, never half of each.
    """
    ensure_private_dir(path.parent)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# --- which collections need data_access -----------------------------------------


def needs_data_access(endpoint_doc: Mapping[str, Any]) -> bool:
    """True for a non-high-assurance GCSv5 mapped collection (its endpoint doc)."""
    return endpoint_doc.get("entity_type") == "GCSv5_mapped_collection" and not (
        endpoint_doc.get("high_assurance")
    )


def job_collections(jobs: Iterable[Job]) -> list[str]:
    """The collection ids of ``jobs``, lower case, each once, in order."""
    seen: dict[str, None] = {}
    for job in jobs:
        seen.setdefault(job.src_id.lower())
        seen.setdefault(job.dst_id.lower())
    return list(seen)


def known_collections(settings: Settings) -> dict[str, bool]:
    """Collections looked at for the current client: id -> needs data_access."""
    data = _read_json(settings.state_dir / COLLECTIONS_FILE)
    if isinstance(data, list):  # the first format: the ids needing data_access
        return {str(c).lower(): True for c in data}
    if not isinstance(data, dict) or data.get("client_id") != settings.client_id:
        return {}
    collections = data.get("collections")
    if not isinstance(collections, dict):
        return {}
    return {
        str(cid).lower(): bool(info.get("data_access"))
        for cid, info in collections.items()
        if isinstance(info, dict)
    }


def save_collections(settings: Settings, known: Mapping[str, bool]) -> None:
    write_private_json(
        settings.state_dir / COLLECTIONS_FILE,
        {
            "client_id": settings.client_id,
            "collections": {cid: {"data_access": need} for cid, need in known.items()},
        },
    )


def stored_data_access(settings: Settings) -> tuple[str, ...]:
    """Collections whose data_access consent the stored login carries."""
    return tuple(sorted(c for c, need in known_collections(settings).items() if need))


def transfer_scope(data_access: Iterable[str]) -> globus_sdk.Scope:
    """The Transfer scope with a data_access dependency per listed collection."""
    import globus_sdk

    scope = globus_sdk.Scope(TRANSFER_SCOPE)
    for collection in sorted(set(data_access)):
        scope = scope.with_dependency(
            globus_sdk.Scope(
                f"https://auth.globus.org/scopes/{collection}/data_access",
                optional=True,
            )
        )
    return scope


# --- auth state: last use, last error -------------------------------------------


def _state(state_dir: Path) -> dict[str, Any]:
    data = _read_json(state_dir / AUTH_STATE_FILE)
    return data if isinstance(data, dict) else {}


def _update_state(state_dir: Path, **values: Any) -> None:
    state = _state(state_dir)
    state.update(values)
    write_private_json(state_dir / AUTH_STATE_FILE, state)


def record_token_use(state_dir: Path, when: datetime) -> None:
    """Tokens were just obtained from Globus Auth: the keep-alive clock restarts."""
    _update_state(state_dir, last_used=when.isoformat())


def record_auth_error(settings: Settings, when: datetime, message: str) -> None:
    _update_state(
        settings.state_dir,
        last_error={"at": when.isoformat(), "message": _redact(settings, message)},
    )


def clear_auth_error(settings: Settings) -> None:
    if _state(settings.state_dir).get("last_error") is not None:
        _update_state(settings.state_dir, last_error=None)


def last_token_use(settings: Settings) -> datetime | None:
    """When tokens were last obtained (else the tokens file's time), or None."""
    text = _state(settings.state_dir).get("last_used")
    if isinstance(text, str):
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    try:
        mtime = tokens_path(settings.state_dir).stat().st_mtime
    except OSError:
        return None
    return datetime.fromtimestamp(mtime, timezone.utc)


def keepalive_due(settings: Settings, now: datetime) -> bool:
    """True when a stored user login has not been renewed for the keep-alive days."""
    if settings.client_secret or not tokens_path(settings.state_dir).exists():
        return False
    last = last_token_use(settings)
    limit = timedelta(days=settings.auth_keepalive_days)
    return last is None or now - last >= limit


def login_kind(settings: Settings) -> str:
    if settings.client_secret:
        return "service account"
    return "user login" if tokens_path(settings.state_dir).exists() else "none"


def token_health(
    settings: Settings, store: Datastore | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """What ``status`` shows about authentication; never a secret.

    ``store`` is accepted for symmetry with the other status sources; the
    authentication state lives in files next to the tokens.
    """
    moment = now or utcnow()
    path = tokens_path(settings.state_dir)
    last = last_token_use(settings) if path.exists() else None
    error = _state(settings.state_dir).get("last_error")
    known = known_collections(settings)
    return {
        "kind": login_kind(settings),
        "client_id": settings.client_id,
        "tokens_file": str(path),
        "tokens_file_exists": path.exists(),
        "tokens_file_mode": _mode(path),
        "last_used": last.isoformat() if last else None,
        "last_error": error.get("message") if isinstance(error, dict) else None,
        "last_error_at": error.get("at") if isinstance(error, dict) else None,
        "keepalive_days": settings.auth_keepalive_days,
        "keepalive_due": keepalive_due(settings, moment),
        "data_access_collections": sorted(c for c, need in known.items() if need),
        "collections_needing_login": []
        if settings.client_secret
        else [c for c in job_collections(settings.jobs) if c not in known],
    }


def _mode(path: Path) -> str | None:
    try:
        return f"{path.stat().st_mode & 0o777:04o}"
    except OSError:
        return None


def _redact(settings: Settings, text: str) -> str:
    if settings.client_secret:
        text = text.replace(settings.client_secret, "[secret]")
    return text


# --- before and after a run (no network unless keep-alive is due) ---------------


def login_command(settings: Settings) -> str:
    """The exact command a person runs to log in again."""
    return f"globus-auto --config {settings.config_path} login"


def is_interactive() -> bool:
    """True when a person can answer a prompt on this process's terminal."""
    return sys.stdin is not None and sys.stdin.isatty()


def login_problem(settings: Settings, job: Job) -> str | None:
    """Why ``job`` cannot run without a login, found without the network; or None."""
    if settings.client_secret:
        return None
    if not tokens_path(settings.state_dir).exists():
        return f"there is no stored Globus login in {settings.state_dir}"
    known = known_collections(settings)
    new = [c for c in job_collections([job]) if c not in known]
    if new:
        return (
            f"collection {', '.join(new)} is not covered by the stored Globus login "
            "(it was added to the config after the last login)"
        )
    return None


def offer_login(
    settings: Settings, jobs: Iterable[Job], interactive: bool | None = None
) -> None:
    """On a terminal, when a job cannot run without a login, offer it now.

    Asked once per run, before the jobs: :func:`connect` does not ask again.
    End of input at the question is a "no".
    """
    import click

    if settings.client_secret or not (
        is_interactive() if interactive is None else interactive
    ):
        return
    reasons = [r for job in jobs if (r := login_problem(settings, job))]
    if not reasons:
        return
    click.echo(f"globus-auto: {reasons[0]}.", err=True)
    try:
        accepted = click.confirm("Log in to Globus now?", default=True, err=True)
    except click.Abort:  # end of input (Ctrl-D)
        click.echo("", err=True)
        return
    if accepted:
        click.echo(run_login(settings))  # the URL only: a browser is opt-in


def blocked_report(
    settings: Settings, job: Job, store: Datastore | None = None
) -> JobReport | None:
    """A failed report when ``job`` needs a login first (no network); else None.

    ``store``, when given, supplies what is waiting to be sent, for the alert.
    """
    from globus_auto.runner import JobReport

    reason = login_problem(settings, job)
    if reason is None:
        return None
    message = f"{reason}; run on a terminal: {login_command(settings)}"
    # The log file only: the report's lines (what happened, what to do) are
    # what the user reads on stderr, once.
    log.error("%s: %s", job.name, message, extra=FILE_ONLY)
    report = JobReport(job.name, outcome="failed", detail=message)
    report.fail(
        login_required_problem(settings, job.name, reason, _waiting(store, job)),
        EXIT_LOGIN_REQUIRED,
    )
    return report


def _waiting(store: Datastore | None, job: Job | None) -> tuple[int, int]:
    """(files, bytes) of ``job`` not yet delivered, as far as ``store`` knows.

    Why (0, 0) on any failure: the datastore may itself be broken, and the
    login alert must still go out.
    """
    if store is None or job is None:
        return 0, 0
    try:
        job_id = store.existing_job_id(job.identity)
        return (0, 0) if job_id is None else store.pending_totals(job_id)
    except Exception as exc:
        log.debug("could not count the files waiting: %s", exc)
        return 0, 0


def login_required_problem(
    settings: Settings, job: str, message: str, waiting: tuple[int, int] = (0, 0)
) -> Problem:
    """The login-required problem of ``job``; ``waiting`` is (files, bytes)
    not yet delivered."""
    return Problem(
        job=job,
        kind=Kind.LOGIN_REQUIRED,
        summary=LOGIN_SUMMARY,
        what_happened=_redact(settings, message),
        what_to_do=f"Log in again on a terminal: {login_command(settings)}",
        next_attempt="Runs stop at once, without prompting, until you log in.",
        pending_files=waiting[0],
        pending_bytes=waiting[1],
    )


def _job_named(settings: Settings, name: str) -> Job | None:
    return next((job for job in settings.jobs if job.name == name), None)


def after_jobs(
    settings: Settings,
    reports: list[JobReport],
    now: datetime,
    store: Datastore | None = None,
) -> None:
    """Remember the run's authentication outcome; renew tokens if keep-alive is due.

    A renewal that fails adds a login-required problem to every report (with
    what is waiting to be sent, from ``store`` when given).
    """
    errors = [
        p.what_happened
        for r in reports
        for p in r.problems
        if p.kind is Kind.LOGIN_REQUIRED
    ]
    if errors:
        record_auth_error(settings, now, errors[0])
        return
    if any(Kind.LOGIN_REQUIRED in r.cleared for r in reports):
        clear_auth_error(settings)
    if not keepalive_due(settings, now):
        return
    try:
        keep_alive(settings)
    except LoginRequired as exc:
        message = (
            "renewing the Globus tokens (unused for "
            f"{settings.auth_keepalive_days:g} days) failed: {exc}"
        )
        record_auth_error(settings, now, message)
        for report in reports:
            waiting = _waiting(store, _job_named(settings, report.job))
            report.fail(
                login_required_problem(settings, report.job, message, waiting),
                EXIT_LOGIN_REQUIRED,
            )
    except GlobusAutoError as exc:  # Globus unreachable: the next run retries
        log.warning("could not renew the Globus tokens: %s", exc)
    else:
        log.info("renewed the Globus tokens (keep-alive)")
        clear_auth_error(settings)


def keep_alive(settings: Settings) -> None:
    """Exchange every stored refresh token for a new one, now."""
    from globus_auto.globus import globus_errors

    app = build_app(
        settings, interactive=False, data_access=stored_data_access(settings)
    )
    with globus_errors("renewing the stored Globus tokens"):
        for resource_server in app.token_storage.get_token_data_by_resource_server():
            authorizer = app.get_authorizer(resource_server)
            authorizer.handle_missing_authorization()  # forces the refresh
            authorizer.get_authorization_header()


# --- the app --------------------------------------------------------------------


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
    interactive: bool,
    data_access: Iterable[str] = (),
    open_browser: bool = False,
) -> globus_sdk.GlobusApp:
    """The app that hands out authorizers for Transfer.

    With ``CLIENT_SECRET`` it is a service account (client credentials); else a
    native app with refresh tokens, prompting only when ``interactive``.
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
    manager = _login_flow(settings, login_client, interactive, open_browser)
    config = globus_sdk.GlobusAppConfig(
        token_storage=open_storage(settings),
        request_refresh_tokens=True,
        login_flow_manager=manager,
        token_validation_error_handler=resolve_by_login_flow
        if interactive
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
    interactive: bool,
    open_browser: bool,
) -> LoginFlowManager:
    from globus_sdk.login_flows import CommandLineLoginFlowManager, LoginFlowManager

    command = login_command(settings)

    class TerminalLoginFlow(CommandLineLoginFlowManager):
        """Prints the URL (opens a browser if asked and one is there), reads the
        code; a closed stdin is LoginRequired, not a traceback."""

        def print_authorize_url(self, authorize_url: str) -> None:
            print(
                "\nOpen this address in a browser and log in to Globus:\n\n"
                f"  {authorize_url}\n",
                flush=True,
            )
            if open_browser and _open_browser(authorize_url):
                print("(a browser window was opened for it)", flush=True)

        def prompt_for_code(self) -> str:
            try:
                code = input("Then paste the authorization code here: ").strip()
            except EOFError:
                code = ""
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

    if not interactive:
        return NoPromptLoginFlow(login_client, request_refresh_tokens=True)
    return TerminalLoginFlow(
        login_client,
        request_refresh_tokens=True,
        native_prefill_named_grant=f"{APP_NAME} on {os.uname().nodename}",
    )


def _open_browser(url: str) -> bool:
    """Open ``url`` in a graphical browser if this session has one."""
    import webbrowser

    if os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_TTY"):
        return False
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False
    try:
        return bool(webbrowser.get().open(url))
    except webbrowser.Error:
        return False


# --- login, logout, and the gateway of a run ----------------------------------


def run_login(settings: Settings, *, open_browser: bool = False) -> str:
    """Log in on this terminal, with every consent the config's collections need.

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
    if not is_interactive():
        raise LoginRequired(
            "globus-auto login needs a terminal to paste the code into; run it in an "
            f"interactive shell: {login_command(settings)}"
        )
    known = known_collections(settings)
    _look_with_stored_login(settings, known)
    for round_number in range(MAX_LOGIN_ROUNDS):
        wanted = sorted(c for c, need in known.items() if need)
        if round_number:
            print(
                "One more step: Globus asks your consent for data access on "
                f"collection {', '.join(wanted)} (GCSv5 mapped collections need it).",
                flush=True,
            )
        app = build_app(
            settings, interactive=True, data_access=wanted, open_browser=open_browser
        )
        app.login(force=True)
        if not _look_at_collections(settings, app, known, set(wanted)):
            save_collections(settings, known)
            clear_auth_error(settings)
            return f"Logged in. Tokens are stored in {tokens_path(settings.state_dir)}"
    raise LoginRequired("Globus still asks for a consent after several logins")


def _look_with_stored_login(settings: Settings, known: dict[str, bool]) -> None:
    """With a still-usable stored login, look at new collections before logging in
    (so one round suffices); quietly do nothing otherwise."""
    if not tokens_path(settings.state_dir).exists():
        return
    try:
        app = build_app(
            settings, interactive=False, data_access=stored_data_access(settings)
        )
        _look_at_collections(settings, app, known, set(), probe=False)
    except Exception as exc:  # any failure only means: find out after logging in
        log.debug("could not use the stored login: %s", type(exc).__name__)


def _look_at_collections(
    settings: Settings,
    app: globus_sdk.GlobusApp,
    known: dict[str, bool],
    granted: set[str],
    *,
    probe: bool = True,
) -> list[str]:
    """Update ``known`` from each collection; return those needing a consent
    that is not in ``granted``."""
    import globus_sdk

    from globus_auto.globus import REQUEST_TIMEOUT

    client = globus_sdk.TransferClient(app=app)
    client.transport.http_timeout = REQUEST_TIMEOUT
    for collection, path in _collection_paths(settings):
        try:
            doc = client.get_endpoint(collection)
        except globus_sdk.TransferAPIError as exc:
            print(f"globus-auto: collection {collection}: {exc.code}", file=sys.stderr)
            known.setdefault(collection, False)
            continue
        # Once found needing a consent (by its document or by Globus asking
        # for one), a collection keeps needing it.
        known[collection] = needs_data_access(doc.data) or known.get(collection, False)
        if probe and not known[collection]:
            known[collection] = _consent_required(client, collection, path)
    return [c for c, need in known.items() if need and c not in granted]


def _collection_paths(settings: Settings) -> list[tuple[str, str]]:
    """Each collection of the config once, with a path of a job on it."""
    paths: dict[str, str] = {}
    for job in settings.jobs:
        paths.setdefault(job.src_id.lower(), job.src_dir)
        paths.setdefault(job.dst_id.lower(), job.dst_dir)
    return list(paths.items())


def _consent_required(
    client: globus_sdk.TransferClient, collection: str, path: str
) -> bool:
    """True if Globus answers a listing on ``collection`` with ConsentRequired."""
    import globus_sdk

    try:
        client.operation_ls(collection, path=path, limit=1)
    except globus_sdk.TransferAPIError as exc:
        return exc.code == "ConsentRequired" or bool(exc.info.consent_required)
    return False


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


def connect(settings: Settings, interactive: bool) -> Gateway:
    """The Transfer gateway of a run (called only when the run needs Globus)."""
    from globus_auto import globus

    if settings.client_secret:
        return _service_account_gateway(settings)
    # No login offer here: the run offered it once before its jobs, and a
    # person who declined is not asked again.
    app = build_app(
        settings, interactive=interactive, data_access=stored_data_access(settings)
    )
    return globus.connect(app)


def _service_account_gateway(settings: Settings) -> Gateway:
    """A service account has no login step: its collections are looked at on
    first use, and data_access is added for those that need it."""
    import globus_sdk

    from globus_auto import globus

    known = known_collections(settings)
    app = build_app(
        settings, interactive=False, data_access=stored_data_access(settings)
    )
    gateway = globus.connect(app)
    new = [c for c in job_collections(settings.jobs) if c not in known]
    for collection in new:
        try:
            with globus.globus_errors(f"looking up collection {collection}"):
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
                settings, interactive=False, data_access=stored_data_access(settings)
            )
            with globus.globus_errors("getting tokens for the service account"):
                app.login(force=True)
            gateway = globus.connect(app)
    return gateway
