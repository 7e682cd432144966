"""The login's files in the state folder: tokens, their lock, the keep-alive clock.

What lives in ``STATE_DIR`` (files 0600 in a 0700 folder, each replaced
atomically: written to a temporary file, fsynced, renamed):

- ``tokens.json``: the tokens (globus-sdk's JSON token storage format);
- ``auth_state.json``: when tokens were last obtained from Globus Auth (the
  keep-alive clock) and the last authentication error; never a secret;
- ``tokens.lock``: an advisory lock (``flock``) held while tokens are
  refreshed and saved, so overlapping runs never spend the same rotated
  refresh token twice.

No globus-sdk here: ``status`` reads token health without importing it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from globus_auto.clock import utcnow
from globus_auto.errors import GlobusAutoError
from globus_auto.files import ensure_private_dir, read_json, write_private_json
from globus_auto.globus.consents import job_collections, known_collections
from globus_auto.text import redact, secrets_of

if TYPE_CHECKING:
    from globus_auto.datastore.store import Datastore
    from globus_auto.settings.model import Settings

log = logging.getLogger(__name__)


TOKENS_FILE = "tokens.json"


AUTH_STATE_FILE = "auth_state.json"
TOKENS_LOCK_FILE = "tokens.lock"
# A refresh is one HTTP call with a timeout; a lock held longer than this is
# held by a process that hangs, and waiting on it would hang cron too.
TOKENS_LOCK_WAIT = 120.0
# A stored access token with less life than this left is refreshed (as
# globus-sdk's RenewingAuthorizer does).
TOKEN_MARGIN_SECONDS = 60


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


def _state(state_dir: Path) -> dict[str, Any]:
    data = read_json(state_dir / AUTH_STATE_FILE)
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
        last_error={
            "at": when.isoformat(),
            "message": redact(message, secrets_of(settings)),
        },
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
