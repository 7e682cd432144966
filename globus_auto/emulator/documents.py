"""Transfer documents: the endpoint document and the checks of a submission.

Pure functions over plain values: what ``GET /endpoint/<id>`` answers, and
whether a transfer document (``POST /transfer``) is one Globus accepts, as
docs.globus.org/api/transfer/task_submit and globus-sdk's ``TransferData``
describe it.
"""

from __future__ import annotations

import datetime
import fnmatch
import uuid
from typing import Any

from globus_auto.emulator.server import GlobusError, JSONDict
from globus_auto.emulator.state import (
    Collection,
    PathRefused,
    check_collection_path,
)
from globus_auto.emulator.tasks import Item

LABEL_MAX = 128
SYNC_LEVELS = {0: "exists", 1: "size", 2: "mtime", 3: "checksum"}

TRANSFER_FIELDS = {
    "DATA_TYPE",
    "DATA",
    "submission_id",
    "source_endpoint",
    "destination_endpoint",
    "label",
    "sync_level",
    "verify_checksum",
    "preserve_timestamp",
    "encrypt_data",
    "delete_destination_extra",
    "deadline",
    "skip_source_errors",
    "fail_on_quota_errors",
    "recursive_symlinks",
    "notify_on_succeeded",
    "notify_on_failed",
    "notify_on_inactive",
    "skip_activation_check",
    "filter_rules",
    "source_local_user",
    "destination_local_user",
    "store_base_path_info",
}
# Defaults of the boolean options a submission may omit. The notify_on_* flags
# default to TRUE: without them Globus mails the owner about every task
# (globus-sdk TransferData docs; brockpalen/archivetar issue 26).
BOOL_DEFAULTS = {
    "verify_checksum": True,
    "encrypt_data": False,
    "notify_on_succeeded": True,
    "notify_on_failed": True,
    "notify_on_inactive": True,
}
FILTER_RULE_FIELDS = {"DATA_TYPE", "method", "name", "type"}
FILTER_METHODS = ("include", "exclude")
FILTER_TYPES = ("file", "dir")
ITEM_FIELDS = {
    "DATA_TYPE",
    "source_path",
    "destination_path",
    "recursive",
    "external_checksum",
    "checksum_algorithm",
}
BOOL_FIELDS = (
    "verify_checksum",
    "preserve_timestamp",
    "encrypt_data",
    "delete_destination_extra",
    "skip_source_errors",
    "fail_on_quota_errors",
    "notify_on_succeeded",
    "notify_on_failed",
    "notify_on_inactive",
    "skip_activation_check",
    "store_base_path_info",
)


def endpoint_document(c: Collection) -> JSONDict:
    """The endpoint/collection document of GET /endpoint/{id}.

    A GCSv5 endpoint is ``non_functional`` (globus-cli
    collection_operations.yaml). The session policy shows as
    ``mfa_required`` and ``authentication_timeout_mins`` (field names of the
    endpoint document; how Globus fills them from a GCS policy is unverified).
    """
    personal = c.is_personal
    timeout = None if c.session_max_age is None else max(1, c.session_max_age // 60)
    return {
        "DATA_TYPE": "endpoint",
        "id": c.id,
        "display_name": c.display_name,
        "canonical_name": f"u_emulator#{c.id}",
        "organization": "globus-auto emulator",
        "department": None,
        "username": "u_emulator",
        "owner_id": "00000000-0000-4000-8000-000000000001",
        "owner_string": "emulator@globusid.org",
        "description": "A directory served by the globus-auto test emulator",
        "keywords": None,
        "contact_email": None,
        "contact_info": None,
        "info_link": None,
        "user_message": None,
        "user_message_link": None,
        "entity_type": c.entity_type,
        "high_assurance": c.high_assurance,
        "authentication_assurance_timeout": None,
        "authentication_timeout_mins": timeout,
        "public": False,
        "french_english_bilingual": False,
        "is_globus_connect": personal,
        "globus_connect_setup_key": None,
        "gcp_connected": c.connected if personal else None,
        "gcp_paused": c.paused if personal else None,
        "gcs_version": None if personal else "5.4.80",
        "gcs_manager_url": None,
        "s3_url": None,
        "s3_owner_activated": False,
        "host_endpoint_id": None,
        "host_path": None,
        "disable_verify": False,
        "disable_anonymous_writes": False,
        "force_verify": False,
        "force_encryption": False,
        "mfa_required": c.session_required_mfa,
        "myproxy_server": None,
        "myproxy_dn": None,
        "non_functional": not c.is_collection,
        "non_functional_endpoint_display_name": None,
        "non_functional_endpoint_id": None,
        "oauth_server": None,
        "default_directory": "/",
        "activated": True,
        "expires_in": -1,
        "expire_time": None,
        "shareable": not personal,
        "acl_available": False,
        "acl_editable": False,
        "in_use": False,
        "local_user_info_available": not personal,
        "network_use": "normal",
        "location": None,
        "subscription_id": None,
        "https_server": None,
        "tlsftp_server": None,
        "DATA": [],
    }


def _filter_rules(raw: Any) -> list[JSONDict] | None:
    """Check ``filter_rules`` as Globus does; return the rules, None if absent.

    Each rule is ``{"DATA_TYPE": "filter_rule", "method": "include"|"exclude",
    "name": <pattern>}`` with an optional ``"type": "file"|"dir"``.
    """
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise GlobusError(
            400, "ClientError.BadRequest", "filter_rules must be a list of filter_rule"
        )
    return [_filter_rule(rule, index) for index, rule in enumerate(raw)]


def _filter_rule(rule: Any, index: int) -> JSONDict:
    """One checked ``filter_rule`` document (a copy), or a 400 naming the fault."""

    def bad(why: str) -> GlobusError:
        return GlobusError(
            400, "ClientError.BadRequest", f"Invalid filter_rules[{index}]: {why}"
        )

    if not isinstance(rule, dict):
        raise bad("must be a filter_rule object")
    unknown = set(rule) - FILTER_RULE_FIELDS
    if unknown:
        raise bad(f"unknown field(s) {', '.join(sorted(unknown))}")
    if rule.get("DATA_TYPE") != "filter_rule":
        raise bad("DATA_TYPE must be 'filter_rule'")
    if rule.get("method") not in FILTER_METHODS:
        raise bad("method must be 'include' or 'exclude'")
    name = rule.get("name")
    if not isinstance(name, str) or not name:
        raise bad("name must be a non-empty pattern")
    if rule.get("type") is not None and rule["type"] not in FILTER_TYPES:
        raise bad("type must be 'file' or 'dir'")
    return dict(rule)


def filtered_out(rules: list[JSONDict] | None, name: str, kind: str) -> bool:
    """Whether the first rule matching ``name`` (a ``kind`` "file"/"dir") excludes it.

    Rules are tried in order; a rule with a ``type`` applies to that kind only.
    No matching rule means the item is included.
    """
    for rule in rules or ():
        if rule.get("type") not in (None, kind):
            continue
        if fnmatch.fnmatchcase(name, rule["name"]):
            return bool(rule["method"] == "exclude")
    return False


def validate_transfer(body: JSONDict) -> tuple[JSONDict, list[Item]]:
    """Check a transfer document; return its options and items."""

    def bad(message: str, code: str = "ClientError.BadRequest") -> GlobusError:
        return GlobusError(400, code, message)

    unknown = set(body) - TRANSFER_FIELDS
    if unknown:
        raise bad(
            f"Unknown field(s) in transfer document: {', '.join(sorted(unknown))}"
        )
    if body.get("DATA_TYPE", "transfer") != "transfer":
        raise bad("DATA_TYPE must be 'transfer'")
    for name in ("submission_id", "source_endpoint", "destination_endpoint"):
        value = body.get(name)
        if not isinstance(value, str):
            raise bad(f"Missing required field '{name}'")
        try:
            uuid.UUID(value)
        except ValueError:
            raise bad(f"Invalid {name} '{value}'") from None
    label = body.get("label")
    if label is not None and (
        not isinstance(label, str)
        or len(label) > LABEL_MAX
        or any(ch in label for ch in "\r\n")
    ):
        raise bad(
            "Invalid label: must be a string of at most 128 characters "
            "without newlines",
            "ClientError.BadRequest.InvalidLabel",
        )
    sync_level = body.get("sync_level")
    if sync_level is not None and (
        isinstance(sync_level, bool) or sync_level not in SYNC_LEVELS
    ):
        raise bad("sync_level must be 0, 1, 2 or 3")
    options: JSONDict = {
        "label": label,
        "sync_level": sync_level,
        "deadline": _deadline(body.get("deadline")),
        "filter_rules": _filter_rules(body.get("filter_rules")),
        "recursive_symlinks": body.get("recursive_symlinks", "ignore"),
        "source_local_user": _optional_str(body, "source_local_user"),
        "destination_local_user": _optional_str(body, "destination_local_user"),
    }
    for name in BOOL_FIELDS:
        value = body.get(name, BOOL_DEFAULTS.get(name, False))
        if not isinstance(value, bool):
            raise bad(f"Field '{name}' must be a boolean")
        options[name] = value
    if options["recursive_symlinks"] not in ("ignore", "keep", "copy"):
        raise bad("recursive_symlinks must be one of ignore, keep, copy")
    items = _validate_items(body.get("DATA"))
    return options, items


def _validate_items(data: Any) -> list[Item]:
    if data is None or data == []:
        raise GlobusError(
            400,
            "ClientError.BadRequest.NoTransferItems",
            "A transfer requires at least one item",
        )
    if not isinstance(data, list):
        raise GlobusError(400, "ClientError.BadRequest", "DATA must be a list")
    items = []
    for raw in data:
        if not isinstance(raw, dict):
            raise GlobusError(400, "ClientError.BadRequest", "Items must be objects")
        unknown = set(raw) - ITEM_FIELDS
        if unknown or raw.get("DATA_TYPE", "transfer_item") != "transfer_item":
            raise GlobusError(
                400,
                "ClientError.BadRequest",
                "Invalid transfer item (unknown field or DATA_TYPE): "
                + ", ".join(sorted(unknown) or [str(raw.get("DATA_TYPE"))]),
            )
        recursive = raw.get("recursive", False)
        if recursive is None:
            recursive = False
        if not isinstance(recursive, bool):
            raise GlobusError(
                400, "ClientError.BadRequest", "recursive must be a boolean"
            )
        paths = []
        for name in ("source_path", "destination_path"):
            try:
                paths.append(str(check_collection_path(raw.get(name))))
            except PathRefused as why:
                raise GlobusError(
                    400, "ClientError.BadRequest", f"Invalid {name}: {why}"
                ) from None
        items.append(Item(paths[0], paths[1], recursive))
    return items


def _optional_str(body: JSONDict, name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise GlobusError(400, "ClientError.BadRequest", f"{name} must be a string")
    return value


def _deadline(raw: Any) -> float | None:
    """The submitted ``deadline`` (ISO 8601, e.g. ``2017-10-12 12:33:54+00:00``
    as globus-sdk's TransferData docs show) as epoch seconds, None if absent.

    A deadline without a zone is taken as UTC, and one already past is
    accepted and expires the task at once (both unverified).
    """
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise GlobusError(400, "ClientError.BadRequest", "deadline must be a string")
    text = raw.strip()
    if text.endswith(("Z", "z")):  # Python 3.10's fromisoformat wants +00:00
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise GlobusError(
            400, "ClientError.BadRequest", f"Invalid deadline '{raw}'"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()
