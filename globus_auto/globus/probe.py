"""Look at the config's collections with a login: consents and sessions they ask for.

A login (``globus-auto login``, or a service account's first use of a new
collection) reads each collection's document and lists a path on it: a
GCSv5 mapped collection that is not high assurance needs a data_access
consent; a collection whose session policy the login does not meet says so
with ``authorization_parameters``, remembered (:mod:`.sessions`) for the next
login round. globus-sdk is imported only inside the functions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from globus_auto.globus.consents import needs_data_access
from globus_auto.globus.sessions import (
    forget_session_requirement,
    remember_session_requirement,
)

if TYPE_CHECKING:
    import globus_sdk

    from globus_auto.settings.model import Settings

log = logging.getLogger(__name__)


def look_at_collections(
    settings: Settings,
    app: globus_sdk.GlobusApp,
    known: dict[str, bool],
    granted: set[str],
    *,
    probe: bool = True,
    say: Callable[[str], None] = log.warning,
) -> list[str]:
    """Update ``known`` from each collection; return those needing a consent
    that is not in ``granted``. A collection Globus will not show is told
    through ``say``."""
    import globus_sdk

    from globus_auto.globus.app import transfer_client

    client = transfer_client(
        app, seconds=settings.globus_timeout, state_dir=settings.state_dir
    )
    for collection, path in _collection_paths(settings):
        try:
            doc = client.get_endpoint(collection)
        except globus_sdk.TransferAPIError as exc:
            say(f"collection {collection}: {exc.code}")
            known.setdefault(collection, False)
            continue
        # Once found needing a consent (by its document or by Globus asking
        # for one), a collection keeps needing it.
        known[collection] = needs_data_access(doc.data) or known.get(collection, False)
        if probe:
            known[collection] = (
                _probe(settings, client, collection, path) or known[collection]
            )
    return [c for c, need in known.items() if need and c not in granted]


def _collection_paths(settings: Settings) -> list[tuple[str, str]]:
    """Each collection of the config once, with a path of a job on it."""
    paths: dict[str, str] = {}
    for job in settings.jobs:
        paths.setdefault(job.src_id.lower(), job.src_dir)
        paths.setdefault(job.dst_id.lower(), job.dst_dir)
    return list(paths.items())


def _probe(
    settings: Settings, client: globus_sdk.TransferClient, collection: str, path: str
) -> bool:
    """List ``path`` on ``collection``: True if Globus asks for a data_access
    consent; a session requirement it answers with is remembered for the next
    login round, and one met is forgotten."""
    import globus_sdk
    import globus_sdk.gare

    try:
        client.operation_ls(collection, path=path, limit=1)
    except globus_sdk.TransferAPIError as exc:
        if exc.code == "ConsentRequired" or exc.info.consent_required:
            return True
        if exc.info.authorization_parameters:
            gare = globus_sdk.gare.to_gare(exc)
            if gare is not None:
                found = gare.authorization_parameters.to_dict()
                remember_session_requirement(settings, collection, found)
            return False
    forget_session_requirement(settings, collection)
    return False
