"""Which collections need a ``data_access`` consent, and the scope that asks for it.

``data_access.json`` in the state folder remembers which collections the login
has looked at and which of them need the consent (GCSv5 mapped collections that
are not high assurance), so that unattended runs request exactly the login's
scopes. globus-sdk is imported only inside the functions that talk to Globus.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from globus_auto.files import read_json, write_private_json

if TYPE_CHECKING:
    import globus_sdk

    from globus_auto.settings.model import Job, Settings

log = logging.getLogger(__name__)


COLLECTIONS_FILE = "data_access.json"


TRANSFER_RS = "transfer.api.globus.org"
TRANSFER_SCOPE = "urn:globus:auth:scope:transfer.api.globus.org:all"


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
    data = read_json(settings.state_dir / COLLECTIONS_FILE)
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

    from globus_auto.globus.gateway import REQUEST_TIMEOUT

    client = globus_sdk.TransferClient(app=app)
    client.transport.http_timeout = REQUEST_TIMEOUT
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
