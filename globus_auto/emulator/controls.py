"""The test controls' plumbing: option checks shared by HTTP and Python.

Nothing here is part of Globus. ``control_body`` checks a ``/_emulator/...``
request body against a small spec; ``make_collection`` and ``apply_policy``
build and change collections from the options tests give.
"""

from __future__ import annotations

import enum
import uuid
from pathlib import Path
from typing import Any

from globus_auto.emulator.server import GlobusError, JSONDict, Request
from globus_auto.emulator.state import ENTITY_TYPES, Collection


class Unset(enum.Enum):
    """An option not given (None may mean "clear" for nullable options)."""

    UNSET = 0


UNSET = Unset.UNSET

# Field -> kind: bool, int, number, str, strlist; a trailing "?" allows null.
COLLECTION_CONTROL = {
    "connected": "bool",
    "paused": "bool",
    "entity_type": "str",
    "high_assurance": "bool",
    "display_name": "str",
    "requires_consent": "bool?",
    "session_required_single_domain": "strlist?",
    "session_required_mfa": "bool",
    "session_max_age": "int?",
    "session_required_policies": "strlist?",
}
LIMITS_CONTROL = {
    "task_deadline_seconds": "int",
    "retry_seconds": "number",
    "ls_size_limit": "int",
    "skipped_errors_page": "int",
    "cancel_seconds": "number",
}
COLLECTION_OPTIONS = {
    "entity_type",
    "high_assurance",
    "display_name",
    "requires_consent",
    "session_required_single_domain",
    "session_required_mfa",
    "session_max_age",
    "session_required_policies",
}


def bad_request(message: str) -> GlobusError:
    return GlobusError(400, "ClientError.BadRequest", message)


def _kind_ok(kind: str, value: Any) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if kind == "number":
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and value >= 0
        )
    if kind == "str":
        return isinstance(value, str)
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def control_body(req: Request, allowed: dict[str, str]) -> JSONDict:
    """The JSON object of a control request, each field of its kind."""
    body = req.json()
    for key, value in body.items():
        kind = allowed.get(key)
        if kind is None:
            raise bad_request(f"Unknown field '{key}'")
        if value is None and kind.endswith("?"):
            continue
        if not _kind_ok(kind.rstrip("?"), value):
            raise bad_request(f"Field '{key}' must be of kind {kind.rstrip('?')}")
    return body


def apply_policy(collection: Collection, changes: dict[str, Any]) -> None:
    """Set the given (not UNSET, and for booleans not None) policy fields."""
    for name, value in changes.items():
        if value is UNSET or (name == "session_required_mfa" and value is None):
            continue
        if isinstance(value, list):
            value = [str(v).lower() if "domain" in name else str(v) for v in value]
            value = value or None
        setattr(collection, name, value)


def make_collection(cid: str, root: Path, options: dict[str, Any]) -> Collection:
    """A collection from the options a test gives at construction."""
    unknown = set(options) - COLLECTION_OPTIONS
    if unknown:
        raise ValueError(f"unknown collection options: {sorted(unknown)}")
    entity_type = options.get("entity_type", "GCSv5_mapped_collection")
    if entity_type not in ENTITY_TYPES:
        raise ValueError(f"unknown entity_type {entity_type!r}")
    canonical = str(uuid.UUID(cid))
    collection = Collection(
        id=canonical,
        root=Path(root).resolve(),
        display_name=str(
            options.get("display_name", f"Emulated collection {canonical[:8]}")
        ),
        entity_type=entity_type,
        high_assurance=bool(options.get("high_assurance", False)),
    )
    apply_policy(
        collection,
        {
            "consent_override": options.get("requires_consent"),
            **{
                name: options.get(name, UNSET)
                for name in COLLECTION_OPTIONS
                if name.startswith("session_")
            },
        },
    )
    return collection
