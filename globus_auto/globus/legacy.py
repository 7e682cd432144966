"""The login of the original LBNL ``globus_auto`` script, read and imported.

That script (github.com/matthew-li/globus_transfer, ``globus_auto/utils.py``)
kept its login in a file ``refresh_token`` in its folder: the ``CLIENT_ID`` on
the first line, then the Transfer refresh token of that native app, with no
newline after it. It kept only the Transfer token of its login, which asked
for no data_access consent (GCSv5 mapped collections need one); and a refresh
answer carries no id_token, so the imported tokens name no identity.

:func:`import_refresh_token` proves the old token still works with one
refresh at Globus Auth and stores the tokens Globus returns in the token
storage; :func:`look_with_stored_login` then looks at the config's
collections with them, as a login does, so that runs know them. globus-sdk
is imported only inside the functions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from globus_auto.errors import GlobusUnavailable, LoginRequired
from globus_auto.globus.app import APP_NAME, bounded, build_app, open_storage
from globus_auto.globus.consents import (
    TRANSFER_RS,
    known_collections,
    save_collections,
)
from globus_auto.globus.probe import look_at_collections
from globus_auto.problems import login_command

if TYPE_CHECKING:
    import globus_sdk

    from globus_auto.settings.model import Settings

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class OldToken:
    """What a ``refresh_token`` file holds: the token, and the client it names."""

    refresh_token: str
    client_id: str | None = None  # the first line of the original's format


def parse_token_file(text: str) -> OldToken:
    """The token in the text of a ``refresh_token`` file; ValueError saying why not.

    Accepted: the original's two lines (client id, then the token); one line
    with the token alone; JSON holding a ``refresh_token`` (at the top, or
    under ``transfer.api.globus.org`` at any depth, as globus-sdk's token
    files keep it). Why several: only the first is known from the original
    script's source; the others are what a hand-made or later file would
    plausibly hold. Surrounding whitespace and line ends (``\\r\\n`` too) are
    ignored.
    """
    stripped = text.strip()
    if not stripped:
        raise ValueError("it is empty")
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            raise ValueError("it looks like JSON but cannot be read as JSON") from None
        token = _token_in_json(data)
        if token is None:
            raise ValueError("its JSON holds no Transfer refresh_token")
        return OldToken(_one_word(token))
    lines = [line.strip() for line in stripped.splitlines() if line.strip()]
    if len(lines) == 1:
        return OldToken(_one_word(lines[0]))
    if len(lines) == 2 and UUID_RE.fullmatch(lines[0]):
        return OldToken(_one_word(lines[1]), client_id=lines[0].lower())
    raise ValueError(
        f"it has {len(lines)} lines; expected the client id and the token "
        "(as the original script writes it), or the token alone"
    )


def _one_word(token: str) -> str:
    if not token or any(c.isspace() for c in token):
        raise ValueError("the token is not one word")
    return token


def _token_in_json(data: Any) -> str | None:
    if not isinstance(data, Mapping):
        return None
    transfer = data.get(TRANSFER_RS)
    if isinstance(transfer, Mapping) and isinstance(transfer.get("refresh_token"), str):
        return str(transfer["refresh_token"])
    if isinstance(data.get("refresh_token"), str):
        return str(data["refresh_token"])
    for value in data.values():
        found = _token_in_json(value)
        if found is not None:
            return found
    return None


def read_token_file(path: Path, settings: Settings) -> OldToken:
    """The old token in ``path``, of the config's ``CLIENT_ID``; else
    LoginRequired saying why, with the login command."""
    login = f"log in once on a terminal instead: {login_command(settings)}"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or type(exc).__name__
        raise LoginRequired(f"cannot read {path}: {why}; {login}") from None
    try:
        old = parse_token_file(text)
    except ValueError as exc:
        raise LoginRequired(
            f"{path} does not hold a refresh token as the original script writes "
            f"it ({exc}); {login}"
        ) from None
    wanted = str(settings.client_id).lower()
    if old.client_id is not None and old.client_id != wanted:
        raise LoginRequired(
            f"{path} holds a refresh token of client {old.client_id}, but the "
            f"config's CLIENT_ID is {wanted}: a refresh token works only with the "
            f"native app it was issued to; nothing was imported; {login}"
        )
    return old


def import_refresh_token(settings: Settings, old: OldToken, source: Path) -> bool:
    """Refresh ``old`` once with the config's native app and store the result.

    Returns whether Globus replaced the refresh token (the old one may then
    be spent). LoginRequired when Globus Auth refuses the token or it is not
    one for Transfer; GlobusUnavailable when Globus cannot be reached. Nothing
    is stored unless the refresh worked. (Its length is its messages: each way
    the refresh can fail says what to do next.)
    """
    import globus_sdk

    client = globus_sdk.NativeAppAuthClient(
        client_id=str(settings.client_id), app_name=APP_NAME
    )
    bounded(client, settings.globus_timeout)
    login = f"log in once on a terminal: {login_command(settings)}"
    try:
        response = client.oauth2_refresh_token(old.refresh_token)
    except globus_sdk.AuthAPIError as exc:
        if exc.http_status >= 500:  # Globus Auth is down; the token may be fine
            raise GlobusUnavailable(
                f"Globus Auth answered {exc.http_status} {_oauth_error(exc)} to the "
                f"test of the refresh token in {source}; nothing was imported; run "
                "this upgrade again later"
            ) from exc
        raise LoginRequired(
            f"Globus Auth refused the refresh token in {source} "
            f"({exc.http_status} {_oauth_error(exc)}): it has expired, was "
            "revoked, or was issued to another client than CLIENT_ID "
            f"{settings.client_id}; nothing was imported; {login}"
        ) from exc
    except globus_sdk.GlobusConnectionError as exc:
        raise GlobusUnavailable(
            f"could not reach Globus Auth to test the refresh token in {source} "
            f"({type(exc).__name__}); nothing was imported; run this upgrade "
            "again later"
        ) from exc
    tokens = response.by_resource_server.get(TRANSFER_RS)
    if tokens is None:
        servers = ", ".join(sorted(response.by_resource_server)) or "nothing"
        raise LoginRequired(
            f"the refresh token in {source} is not one for Globus Transfer (it is "
            f"for {servers}); nothing was imported; {login}"
        )
    open_storage(settings).store_token_response(response)
    return bool(tokens.get("refresh_token") != old.refresh_token)


def _oauth_error(exc: globus_sdk.AuthAPIError) -> str:
    """The OAuth2 error code (``invalid_grant``...): the token endpoint answers
    ``{"error": ...}``, which globus-sdk does not read as ``code``."""
    body = exc.raw_json if isinstance(exc.raw_json, dict) else {}
    return str(exc.code or body.get("error") or "error")


def look_with_stored_login(
    settings: Settings, granted: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """Look at the config's collections with the stored login and remember them.

    Returns the collections needing a data_access consent that is not in
    ``granted``, and what Globus said about those it would not show.
    """
    from globus_auto.globus.errors import globus_errors

    said: list[str] = []
    known = known_collections(settings)
    with globus_errors("looking at the config's collections with the stored login"):
        app = build_app(settings, prompt=None)
        needs = look_at_collections(settings, app, known, set(granted), say=said.append)
    save_collections(settings, known)
    return needs, said
