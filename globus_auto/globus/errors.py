"""Globus errors mapped to this tool's: the one place that reads their codes.

Every call to Globus runs inside :func:`globus_errors`, which turns a
globus-sdk exception into the :mod:`globus_auto.errors` class that carries the
right exit code, with a message that says what to do.
"""

from __future__ import annotations

import contextlib
import logging
import re
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

log = logging.getLogger(__name__)


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
    except globus_sdk.TransferAPIError as exc:
        raise _transfer_error(exc, doing, collection) from exc
    except globus_sdk.AuthAPIError as exc:
        if exc.http_status >= 500:  # Auth is down; the login may be fine
            raise GlobusUnavailable(
                f"Globus Auth answered {exc.http_status} {exc.code} while {doing}; "
                "the next run will try again"
            ) from exc
        raise LoginRequired(
            f"Globus Auth refused the stored login while {doing} "
            f"({exc.http_status} {exc.code}); log in again"
        ) from exc
    except globus_sdk.GlobusConnectionError as exc:
        raise GlobusUnavailable(
            f"could not reach Globus while {doing} ({type(exc).__name__}); "
            "the next run will try again"
        ) from exc
    except globus_sdk.GlobusAPIError as exc:
        raise GlobusUnavailable(
            f"Globus answered {exc.http_status} {exc.code} while {doing}: "
            f"{exc.message}; the next run will try again"
        ) from exc


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
    if exc.http_status >= 500 or code.startswith("ServiceUnavailable"):
        return GlobusUnavailable(
            f"Globus answered {exc.http_status} {code} while {doing}{request}; "
            "the next run will try again"
        )
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
