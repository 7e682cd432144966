"""Which collections need a ``data_access`` consent, and the scope that asks for it.

``data_access.json`` in the state folder remembers which collections the login
has looked at and which of them need the consent (GCSv5 mapped collections that
are not high assurance), so that unattended runs request exactly the login's
scopes. globus-sdk is imported only inside the functions that talk to Globus.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from globus_auto.files import read_json, write_private_json

if TYPE_CHECKING:
    import globus_sdk
    import globus_sdk.gare

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
