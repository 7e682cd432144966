"""Globus errors mapped to this tool's: the one place that reads their codes.

Every call to Globus runs inside :func:`globus_errors`, which turns a
globus-sdk exception into the :mod:`globus_auto.errors` class that carries the
right exit code, with a message that says what to do.
"""

from __future__ import annotations

import contextlib
import logging
import re
import urllib.parse
from collections.abc import Iterator

import globus_sdk
import globus_sdk.gare

from globus_auto.errors import (
    EndpointNotReady,
    GlobusAutoError,
    GlobusUnavailable,
    LoginRequired,
    SessionRequired,
)
from globus_auto.globus.sessions import describe_session
from globus_auto.globus.watchdog import CallCutOff

log = logging.getLogger(__name__)

# How a message about Globus being busy or unreachable ends (exit 6): it is
# nobody's mistake, and waiting is usually the fix.
RETRIED = "nothing was lost; the next run retries (or try again later)"


@contextlib.contextmanager
def globus_errors(doing: str, collection: str | None = None) -> Iterator[None]:
    """Translate globus-sdk exceptions raised while ``doing`` into ours.

    ``collection`` is the id of the collection ``doing`` names ("listing /x on
    the destination collection"); messages add it in parentheses.
    """
    try:
        yield
    except GlobusAutoError:
        raise
    except globus_sdk.GlobusError as exc:
        mapped = translate(exc, doing, collection)
        if mapped is None:
            raise
        raise mapped from exc


def translate(
    exc: globus_sdk.GlobusError, doing: str, collection: str | None = None
) -> GlobusAutoError | None:
    """Our error for a globus-sdk one raised while ``doing``, or None for one
    this module does not know (left to the caller's handler)."""
    if isinstance(exc, globus_sdk.TransferAPIError):
        return _transfer_error(exc, doing, collection)
    if isinstance(exc, globus_sdk.AuthAPIError):
        return _auth_error(exc, doing)
    if isinstance(exc, globus_sdk.NetworkError) and isinstance(
        exc.underlying_exception, CallCutOff
    ):
        return GlobusUnavailable(
            f"Globus did not finish answering within "
            f"{exc.underlying_exception.seconds:g} s (GLOBUS_TIMEOUT) while "
            f"{doing}; {RETRIED}; raise GLOBUS_TIMEOUT if Globus is slow but "
            "working (a very large folder)"
        )
    if isinstance(exc, globus_sdk.NetworkError):
        # GlobusConnectionError (refused, DNS, TLS) and GlobusTimeoutError, after
        # globus-sdk's own retries (transport/default_retry_checks.py).
        return GlobusUnavailable(
            f"Globus is unreachable ({_network_cause(exc)}) while {doing}; {RETRIED}"
        )
    if isinstance(exc, globus_sdk.GlobusAPIError):
        return GlobusUnavailable(
            f"Globus answered {exc.http_status} {exc.code} while {doing}: "
            f"{exc.message}; {RETRIED}"
        )
    return None


def _auth_error(exc: globus_sdk.AuthAPIError, doing: str) -> GlobusAutoError:
    if exc.http_status == 429 or exc.http_status >= 500:  # the login may be fine
        return _busy(exc, doing, "Globus Auth")
    if _oauth_error(exc) == "invalid_client":  # RFC 6749 5.2: id or secret
        return LoginRequired(
            f"Globus Auth rejected the client id or secret while {doing} "
            f"({exc.http_status} invalid_client); check CLIENT_ID and "
            "CLIENT_SECRET"
        )
    return LoginRequired(
        f"Globus Auth refused the stored login while {doing} "
        f"({exc.http_status} {exc.code or _oauth_error(exc)}); log in again"
    )


def _oauth_error(exc: globus_sdk.AuthAPIError) -> str | None:
    """The ``error`` of an OAuth2 token endpoint's answer (``invalid_client``,
    ``invalid_grant``: RFC 6749 section 5.2), which globus-sdk does not read
    as the error's ``code``."""
    body = exc.raw_json
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None


def _network_cause(exc: globus_sdk.NetworkError) -> str:
    """What went wrong on the network, in words: timeout or no connection, the
    host, and the system's reason ("Connection refused", "Name or service not
    known") out of the long text requests gives."""
    underlying = exc.underlying_exception
    request = getattr(underlying, "request", None)
    host = urllib.parse.urlsplit(str(getattr(request, "url", "") or "")).netloc
    if isinstance(exc, globus_sdk.GlobusTimeoutError):
        return f"no answer in time from {host or 'Globus'}"
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(underlying))
    reason = f": {found.group(1).strip()}" if found else ""
    return f"no connection to {host or 'Globus'}{reason}"


def _busy(exc: globus_sdk.GlobusAPIError, doing: str, who: str) -> GlobusUnavailable:
    """429 (too many requests) or a server error, after globus-sdk retried it
    (it retries 429 and 5xx, honouring Retry-After: transport/retry_config.py)."""
    request = f" (request_id {exc.request_id})" if exc.request_id else ""
    if exc.http_status == 429:
        said = f"Globus is busy: {who} answered 429 (too many requests)"
    else:
        said = f"Globus is unavailable: {who} answered {exc.http_status} {exc.code}"
    return GlobusUnavailable(f"{said} while {doing}{request}; {RETRIED}")


def _transfer_error(
    exc: globus_sdk.TransferAPIError, doing: str, collection: str | None
) -> GlobusAutoError:
    code = exc.code or ""
    where = f" ({collection})" if collection else ""
    request = f" (request_id {exc.request_id})" if exc.request_id else ""
    message = exc.message or ""
    if exc.http_status == 401:  # ClientError.AuthenticationFailed
        return LoginRequired(
            f"Globus rejected the stored login while {doing}{request}; log in again"
        )
    # A consent is asked before a session (globus-cli's exception hooks do
    # the same: tests/functional/exception_handling/test_session_hooks.py).
    if code == "ConsentRequired" or exc.info.consent_required:
        named = collection or _consent_collections(exc)
        where = f" collection {named}" if named else " collection"
        return LoginRequired(
            f"the{where} needs a data_access consent that this login "
            f"lacks (while {doing}){request}; log in again to grant it"
        )
    if exc.info.authorization_parameters:
        return _session_required(exc, doing, collection, request)
    if code.startswith("ExternalError."):
        # A 502 about the collection itself (e.g. DirListingFailed.ConnectFailed,
        # .GCDisconnected): the endpoint is down, not Globus.
        return EndpointNotReady(f"{doing}{where}: {code}: {message}{request}")
    if (
        exc.http_status == 429
        or exc.http_status >= 500
        or code.startswith("ServiceUnavailable")
    ):
        return _busy(exc, doing, "Globus Transfer")
    return EndpointNotReady(
        f"{doing}{where}: {code}: {message}{request}"
        if code
        else f"{doing}{where}: HTTP {exc.http_status}{request}"
    )


def _session_required(
    exc: globus_sdk.TransferAPIError,
    doing: str,
    collection: str | None,
    request: str,
) -> SessionRequired:
    """A collection's session policy (502 ...LoginFailed, 403 AuthPolicyFailed).

    Globus answers with ``authorization_parameters`` (globus-sdk user guide,
    "handling transfer auth params"); globus-sdk reads them as a Globus Auth
    requirement error (``globus_sdk.gare``), the form a login can satisfy.
    """
    gare = globus_sdk.gare.to_gare(exc)
    parameters = {} if gare is None else gare.authorization_parameters.to_dict()
    parameters.pop("required_scopes", None)  # the login asks for its own
    said = parameters.get("session_message") or exc.message or exc.code
    where = f"collection {collection}" if collection else "a collection"
    return SessionRequired(
        f"{where} requires {describe_session(parameters)} (while {doing}; "
        f"Globus: {said}){request}; log in again to meet it",
        collection=collection,
        parameters=parameters,
    )


def _consent_collections(exc: globus_sdk.TransferAPIError) -> str:
    """The collection ids named by a ConsentRequired's data_access scopes."""
    scopes = exc.info.consent_required.required_scopes or []
    found = re.findall(r"scopes/([0-9a-fA-F-]{36})/data_access", " ".join(scopes))
    return ", ".join(dict.fromkeys(c.lower() for c in found))
