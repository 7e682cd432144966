"""The Transfer API v0.10 subset and the task worker that really copies files.

Documents follow docs.globus.org/api/transfer and the response fixtures in
``globus_sdk.testing``. Tasks are executed one at a time by a background
thread: each file is written to a temporary name in its destination directory
and renamed into place, so a destination file is never half-written.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import secrets
import stat
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from globus_auto.emulator.auth import TRANSFER_RS, TRANSFER_SCOPE, AuthService, Token
from globus_auto.emulator.server import (
    GlobusError,
    Handler,
    JSONDict,
    Request,
    Response,
)
from globus_auto.emulator.state import (
    Collection,
    EmulatorState,
    PathRefused,
    check_collection_path,
    iso_time,
    listing_time,
    resolve_path,
    utcnow,
)

CHUNK = 64 * 1024
SUCCESSFUL_TRANSFERS_PAGE = 100
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


class TaskFatal(Exception):
    """Ends a task FAILED with ``fatal_error`` = {code, description}."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class TaskCanceled(Exception):
    pass


@dataclass
class Item:
    source_path: str
    destination_path: str
    recursive: bool


@dataclass
class FilePlan:
    source: Path
    destination: Path
    source_path: str
    destination_path: str


@dataclass
class Task:
    task_id: str
    submission_id: str
    owner_id: str
    source: Collection
    destination: Collection
    items: list[Item]
    options: JSONDict
    request_time: str
    status: str = "ACTIVE"
    nice_status: str | None = "Queued"
    completion_time: str | None = None
    fatal_error: JSONDict | None = None
    files: int = 0
    directories: int = 0
    symlinks: int = 0
    files_transferred: int = 0
    files_skipped: int = 0
    bytes_transferred: int = 0
    bytes_checksummed: int = 0
    faults: int = 0
    subtasks_total: int = 0
    subtasks_succeeded: int = 0
    subtasks_failed: int = 0
    subtasks_canceled: int = 0
    cancel_requested: bool = False
    started_at: float | None = None
    events: list[JSONDict] = field(default_factory=list)
    successful: list[JSONDict] = field(default_factory=list)

    def add_event(
        self, code: str, description: str, details: Any, is_error: bool
    ) -> None:
        self.events.append(
            {
                "DATA_TYPE": "event",
                "code": code,
                "description": description,
                "details": details if isinstance(details, str) else json.dumps(details),
                "is_error": is_error,
                "time": iso_time(utcnow()),
            }
        )

    def document(self) -> JSONDict:
        done = self.status != "ACTIVE"
        pending = (
            0
            if done
            else max(
                0, self.subtasks_total - self.subtasks_succeeded - self.subtasks_failed
            )
        )
        elapsed = max(1.0, time.time() - (self.started_at or time.time()))
        opts = self.options
        return {
            "DATA_TYPE": "task",
            "bytes_checksummed": self.bytes_checksummed,
            "bytes_transferred": self.bytes_transferred,
            "canceled_by_admin": None,
            "canceled_by_admin_message": None,
            "command": "API 0.10",
            "completion_time": self.completion_time,
            "deadline": opts["deadline"],
            "delete_destination_extra": opts["delete_destination_extra"],
            "destination_endpoint": f"u_emulator#{self.destination.id}",
            "destination_endpoint_display_name": self.destination.display_name,
            "destination_endpoint_id": self.destination.id,
            "directories": self.directories,
            "effective_bytes_per_second": int(self.bytes_transferred / elapsed),
            "encrypt_data": opts["encrypt_data"],
            "fail_on_quota_errors": opts["fail_on_quota_errors"],
            "fatal_error": self.fatal_error,
            "faults": self.faults,
            "files": self.files,
            "files_skipped": self.files_skipped,
            "files_transferred": self.files_transferred,
            "filter_rules": opts["filter_rules"],
            "history_deleted": False,
            "is_ok": None if done else self.nice_status in ("Queued", "OK", None),
            "is_paused": False,
            "label": opts["label"],
            "nice_status": None if done else self.nice_status,
            "nice_status_details": None,
            "nice_status_expires_in": None if done else -1,
            "nice_status_short_description": None if done else self.nice_status,
            "owner_id": self.owner_id,
            "preserve_timestamp": opts["preserve_timestamp"],
            "recursive_symlinks": opts["recursive_symlinks"],
            "request_time": self.request_time,
            "skip_source_errors": opts["skip_source_errors"],
            "source_endpoint": f"u_emulator#{self.source.id}",
            "source_endpoint_display_name": self.source.display_name,
            "source_endpoint_id": self.source.id,
            "status": self.status,
            "subtasks_canceled": self.subtasks_canceled,
            "subtasks_expired": 0,
            "subtasks_failed": self.subtasks_failed,
            "subtasks_pending": pending,
            "subtasks_retrying": 0,
            "subtasks_skipped_errors": 0,
            "subtasks_succeeded": self.subtasks_succeeded,
            "subtasks_total": self.subtasks_total,
            "symlinks": self.symlinks,
            "sync_level": opts["sync_level"],
            "task_id": self.task_id,
            "type": "TRANSFER",
            "username": f"u_{self.owner_id.replace('-', '')[:26]}",
            "verify_checksum": opts["verify_checksum"],
        }


def endpoint_document(c: Collection) -> JSONDict:
    """The endpoint/collection document of GET /endpoint/{id}."""
    personal = c.is_personal
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
        "authentication_timeout_mins": None,
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
        "mfa_required": False,
        "myproxy_server": None,
        "myproxy_dn": None,
        "non_functional": False,
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


def _filtered_out(rules: list[JSONDict] | None, name: str, kind: str) -> bool:
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


def _bool_param(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "no", "off", "")


def _int_param(req: Request, name: str, default: int, maximum: int) -> int:
    raw = req.arg(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise GlobusError(
            400, "ClientError.BadRequest", f"Invalid {name} '{raw}'"
        ) from None
    if value < 0 or value > maximum:
        raise GlobusError(
            400, "ClientError.BadRequest", f"{name} must be between 0 and {maximum}"
        )
    return value


class TransferService:
    """Transfer records, the Transfer routes and the task worker."""

    def __init__(self, state: EmulatorState, auth: AuthService) -> None:
        self.state = state
        self.auth = auth
        self.tasks: dict[str, Task] = {}
        self.by_submission: dict[str, str] = {}
        self.wakeup = threading.Condition(state.lock)
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self._running_task: Task | None = None

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/v0.10/endpoint/{id}", self.get_endpoint),
            ("GET", "/v0.10/operation/endpoint/{id}/ls", self.ls),
            ("POST", "/v0.10/operation/endpoint/{id}/mkdir", self.mkdir),
            ("GET", "/v0.10/submission_id", self.submission_id),
            ("POST", "/v0.10/transfer", self.submit_transfer),
            ("GET", "/v0.10/task/{id}", self.get_task),
            ("GET", "/v0.10/task_list", self.task_list),
            ("GET", "/v0.10/task/{id}/event_list", self.event_list),
            ("GET", "/v0.10/task/{id}/successful_transfers", self.successful_transfers),
            ("POST", "/v0.10/task/{id}/cancel", self.cancel_task),
        ]

    # ---------------------------------------------------------------- checks

    def _token(self, req: Request) -> Token:
        return self.auth.bearer_token(req, TRANSFER_RS)

    def _require_consent(self, token: Token, collection: Collection) -> None:
        if not collection.requires_consent or self.auth.has_data_access(
            token, collection.id
        ):
            return
        scope = f"{TRANSFER_SCOPE}[*{collection.data_access_scope}]"
        message = "Missing required data_access consent"
        raise GlobusError(
            403,
            "ConsentRequired",
            message,
            required_scopes=[scope],
            authorization_parameters={
                "session_message": message,
                "required_scopes": [scope],
            },
        )

    def _usable_collection(
        self, req: Request, token: Token, endpoint_id: str
    ) -> Collection:
        collection = self.state.collection(endpoint_id)
        self._require_consent(token, collection)
        return collection

    @staticmethod
    def _disconnected(collection: Collection, operation: str) -> GlobusError:
        if collection.is_personal:
            return GlobusError(
                502,
                f"ExternalError.{operation}.GCDisconnected",
                f"The Globus Connect Personal endpoint '{collection.display_name}' "
                f"({collection.id}) is not currently connected to Globus",
            )
        return GlobusError(
            502,
            f"ExternalError.{operation}.ConnectFailed",
            f"Could not connect to the endpoint '{collection.display_name}' "
            f"({collection.id})",
        )

    @staticmethod
    def _refused(collection: Collection, path: Any, why: PathRefused) -> GlobusError:
        return GlobusError(
            403,
            "EndpointPermissionDenied",
            f"Denied by endpoint, Error\nEndpoint: {collection.display_name} "
            f"({collection.id})\nMessage: Path not allowed: {why}",
        )

    # -------------------------------------------------------------- endpoint

    def get_endpoint(self, req: Request, endpoint_id: str) -> Response:
        self._token(req)
        with self.state.lock:
            return Response(200, endpoint_document(self.state.collection(endpoint_id)))

    def ls(self, req: Request, endpoint_id: str) -> Response:
        token = self._token(req)
        with self.state.lock:
            collection = self._usable_collection(req, token, endpoint_id)
            if not collection.connected:
                raise self._disconnected(collection, "DirListingFailed")
        raw_path = req.arg("path") or "/~/"
        try:
            pure = check_collection_path(raw_path)
            local = resolve_path(collection, raw_path)
        except PathRefused as why:
            raise self._refused(collection, raw_path, why) from None
        limit = _int_param(req, "limit", 100000, 100000)
        offset = _int_param(req, "offset", 0, 10**9)
        show_hidden = _bool_param(req.arg("show_hidden"), True)
        names = self._list_dir(collection, local, str(pure))
        if not show_hidden:
            names = [name for name in names if not name.startswith(".")]
        names.sort()
        # Documents (an lstat each) only for the page asked for.
        page = [self._file_doc(collection, local / n) for n in names[offset:][:limit]]
        absolute = str(pure).rstrip("/") + "/"
        return Response(
            200,
            {
                "DATA_TYPE": "file_list",
                "DATA": page,
                "absolute_path": absolute,
                "endpoint": collection.id,
                "length": len(page),
                "path": absolute,
                "rename_supported": True,
                "symlink_supported": False,
                "total": len(names),
                "limit": limit,
                "offset": offset,
                "has_next_page": offset + len(page) < len(names),
            },
        )

    def _list_dir(self, collection: Collection, local: Path, cpath: str) -> list[str]:
        """The names in a collection's directory, or the error Globus gives."""
        try:
            if not local.is_dir():
                if local.exists():
                    raise GlobusError(
                        502,
                        "ExternalError.DirListingFailed.NotDirectory",
                        f"Directory listing failed: '{cpath}' is not a directory",
                    )
                raise GlobusError(
                    404,
                    "ClientError.NotFound",
                    f"Directory '{cpath}' not found on endpoint "
                    f"'{collection.display_name}' ({collection.id})",
                )
            names = os.listdir(local)
        except PermissionError:
            raise GlobusError(
                403,
                "EndpointPermissionDenied",
                f"Permission denied listing '{cpath}'",
            ) from None
        return names

    @staticmethod
    def _file_doc(collection: Collection, path: Path) -> JSONDict:
        doc: JSONDict = {
            "DATA_TYPE": "file",
            "group": "emulator",
            "last_modified": None,
            "link_group": None,
            "link_last_modified": None,
            "link_size": None,
            "link_target": None,
            "link_user": None,
            "name": path.name,
            "permissions": "0000",
            "size": 0,
            "type": "file",
            "user": "emulator",
        }
        try:
            lst = path.lstat()
            st = lst
            if stat.S_ISLNK(lst.st_mode):
                doc["link_target"] = os.readlink(path)
                doc["link_size"] = lst.st_size
                doc["link_last_modified"] = listing_time(lst.st_mtime)
                doc["link_user"] = doc["link_group"] = "emulator"
                try:
                    resolve_path(
                        collection, "/" + str(path.relative_to(collection.root))
                    )
                    st = path.stat()
                except (PathRefused, OSError):
                    doc["type"] = "invalid_symlink"
                    doc["last_modified"] = listing_time(lst.st_mtime)
                    return doc
        except OSError:
            doc["type"] = "invalid_symlink"
            return doc
        doc["type"] = "dir" if stat.S_ISDIR(st.st_mode) else "file"
        doc["size"] = st.st_size
        doc["permissions"] = f"{stat.S_IMODE(st.st_mode):04o}"
        doc["last_modified"] = listing_time(st.st_mtime)
        return doc

    def mkdir(self, req: Request, endpoint_id: str) -> Response:
        token = self._token(req)
        body = req.json()
        unknown = set(body) - {"DATA_TYPE", "path", "local_user"}
        if unknown:
            raise GlobusError(
                400,
                "ClientError.BadRequest",
                f"Unknown field(s): {', '.join(sorted(unknown))}",
            )
        if body.get("DATA_TYPE", "mkdir") != "mkdir":
            raise GlobusError(
                400, "ClientError.BadRequest", "DATA_TYPE must be 'mkdir'"
            )
        with self.state.lock:
            collection = self._usable_collection(req, token, endpoint_id)
            if not collection.connected:
                raise self._disconnected(collection, "MkdirFailed")
        raw = body.get("path")
        try:
            pure = check_collection_path(raw)
            local = resolve_path(collection, raw)
        except PathRefused as why:
            if not isinstance(raw, str):
                raise GlobusError(
                    400, "ClientError.BadRequest", f"Invalid path: {why}"
                ) from None
            raise self._refused(collection, raw, why) from None
        try:
            local.mkdir()
        except FileExistsError:
            raise GlobusError(
                502,
                "ExternalError.MkdirFailed.Exists",
                f"Path already exists, Error Path '{pure}' already exists",
            ) from None
        except FileNotFoundError:
            raise GlobusError(
                404, "ClientError.NotFound", f"Parent directory of '{pure}' not found"
            ) from None
        except OSError as exc:
            raise GlobusError(
                502, "ExternalError.MkdirFailed", f"Mkdir failed: {exc.strerror}"
            ) from None
        return Response(
            200,
            {
                "DATA_TYPE": "mkdir_result",
                "code": "DirectoryCreated",
                "message": "The directory was created successfully",
                "request_id": req.request_id,
                "resource": req.path,
            },
        )

    # ------------------------------------------------------------ submission

    def submission_id(self, req: Request) -> Response:
        self._token(req)
        return Response(200, {"DATA_TYPE": "submission_id", "value": str(uuid.uuid4())})

    def submit_transfer(self, req: Request) -> Response:
        token = self._token(req)
        body = req.json()
        options, items = self._validate_transfer(body)
        with self.state.lock:
            source = self.state.collection(str(body["source_endpoint"]))
            destination = self.state.collection(str(body["destination_endpoint"]))
            submission_id = str(body["submission_id"]).lower()
            existing = self.by_submission.get(submission_id)
            if existing is not None:
                self.state.stats.duplicate_submissions += 1
                return Response(
                    200,
                    self._transfer_result(req, existing, submission_id, "Duplicate"),
                )
            self._require_consent(token, source)
            self._require_consent(token, destination)
            task = Task(
                task_id=str(uuid.uuid4()),
                submission_id=submission_id,
                owner_id=token.identity_id,
                source=source,
                destination=destination,
                items=items,
                options=options,
                request_time=str(iso_time(utcnow())),
            )
            self.tasks[task.task_id] = task
            self.by_submission[submission_id] = task.task_id
            self.state.stats.tasks_submitted += 1
            self.wakeup.notify_all()
        return Response(
            202, self._transfer_result(req, task.task_id, submission_id, "Accepted")
        )

    @staticmethod
    def _transfer_result(
        req: Request, task_id: str, submission_id: str, code: str
    ) -> JSONDict:
        message = (
            "The transfer has been accepted and a task has been created and queued "
            "for execution"
            if code == "Accepted"
            else f"A transfer with id '{submission_id}' was already submitted"
        )
        return {
            "DATA_TYPE": "transfer_result",
            "code": code,
            "message": message,
            "request_id": req.request_id,
            "resource": req.path,
            "submission_id": submission_id,
            "task_id": task_id,
            "task_link": {
                "DATA_TYPE": "link",
                "href": f"/v0.10/task/{task_id}?format=json",
                "rel": "related",
                "resource": "task",
                "title": "related task",
            },
        }

    def _validate_transfer(self, body: JSONDict) -> tuple[JSONDict, list[Item]]:
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
            "deadline": body.get("deadline"),
            "filter_rules": _filter_rules(body.get("filter_rules")),
            "recursive_symlinks": body.get("recursive_symlinks", "ignore"),
        }
        defaults = {"verify_checksum": True, "encrypt_data": False}
        for name in BOOL_FIELDS:
            value = body.get(name, defaults.get(name, False))
            if not isinstance(value, bool):
                raise bad(f"Field '{name}' must be a boolean")
            options[name] = value
        if options["recursive_symlinks"] not in ("ignore", "keep", "copy"):
            raise bad("recursive_symlinks must be one of ignore, keep, copy")
        items = self._validate_items(body.get("DATA"))
        return options, items

    @staticmethod
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
                raise GlobusError(
                    400, "ClientError.BadRequest", "Items must be objects"
                )
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

    # ---------------------------------------------------------- task routes

    def _task(self, token: Token, task_id: str) -> Task:
        task = self.tasks.get(task_id.lower())
        if task is None or task.owner_id != token.identity_id:
            raise GlobusError(404, "TaskNotFound", f"Task '{task_id}' not found")
        return task

    def get_task(self, req: Request, task_id: str) -> Response:
        token = self._token(req)
        with self.state.lock:
            return Response(200, self._task(token, task_id).document())

    def task_list(self, req: Request) -> Response:
        token = self._token(req)
        limit = _int_param(req, "limit", 10, 1000)
        offset = _int_param(req, "offset", 0, 10**9)
        filters = self._parse_filter(req.arg("filter") or "")
        with self.state.lock:
            docs = [
                t.document()
                for t in self.tasks.values()
                if t.owner_id == token.identity_id
            ]
        for key, allowed in filters.items():
            docs = [d for d in docs if str(d.get(key)).lower() in allowed]
        docs.sort(key=lambda d: d["request_time"], reverse=True)
        page = docs[offset : offset + limit]
        return Response(
            200,
            {
                "DATA_TYPE": "task_list",
                "DATA": page,
                "length": len(page),
                "limit": limit,
                "offset": offset,
                "total": len(docs),
            },
        )

    @staticmethod
    def _parse_filter(text: str) -> dict[str, set[str]]:
        """``status:ACTIVE,INACTIVE/type:TRANSFER`` → {field: allowed values}."""
        result: dict[str, set[str]] = {}
        for clause in filter(None, text.split("/")):
            name, sep, values = clause.partition(":")
            if not sep or name not in ("status", "type", "task_id", "label"):
                raise GlobusError(
                    400, "ClientError.BadRequest", f"Invalid filter '{clause}'"
                )
            result[name] = {v.lower() for v in values.split(",")}
        return result

    def event_list(self, req: Request, task_id: str) -> Response:
        token = self._token(req)
        limit = _int_param(req, "limit", 10, 1000)
        offset = _int_param(req, "offset", 0, 10**9)
        with self.state.lock:
            events = list(reversed(self._task(token, task_id).events))
        page = events[offset : offset + limit]
        return Response(
            200,
            {
                "DATA_TYPE": "event_list",
                "DATA": page,
                "length": len(page),
                "limit": limit,
                "offset": offset,
                "total": len(events),
            },
        )

    def successful_transfers(self, req: Request, task_id: str) -> Response:
        token = self._token(req)
        marker = _int_param(req, "marker", 0, 10**9)
        with self.state.lock:
            done = list(self._task(token, task_id).successful)
        page = done[marker : marker + SUCCESSFUL_TRANSFERS_PAGE]
        end = marker + len(page)
        return Response(
            200,
            {
                "DATA_TYPE": "successful_transfers",
                "marker": marker,
                "next_marker": end if end < len(done) else None,
                "DATA": page,
            },
        )

    def cancel_task(self, req: Request, task_id: str) -> Response:
        token = self._token(req)
        with self.state.lock:
            task = self._task(token, task_id)
            if task.status != "ACTIVE":
                body = {
                    "DATA_TYPE": "result",
                    "code": "TaskComplete",
                    "message": f"Task {task.task_id} is already complete",
                    "request_id": req.request_id,
                    "resource": req.path,
                }
                return Response(200, body)
            task.cancel_requested = True
            self.wakeup.notify_all()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with self.state.lock:
                if task.status != "ACTIVE":
                    break
            time.sleep(0.01)
        return Response(
            200,
            {
                "DATA_TYPE": "result",
                "code": "Canceled",
                "message": "The task has been cancelled successfully.",
                "request_id": req.request_id,
                "resource": req.path,
            },
        )

    # ------------------------------------------------------------- worker

    def start(self) -> None:
        self._worker = threading.Thread(
            target=self._work, name="globus-emulator-worker", daemon=True
        )
        self._worker.start()

    def stop(self) -> None:
        self._stopping.set()
        with self.state.lock:
            self.wakeup.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=5)

    def idle(self) -> bool:
        with self.state.lock:
            return all(t.status != "ACTIVE" for t in self.tasks.values())

    def _work(self) -> None:
        while not self._stopping.is_set():
            with self.state.lock:
                task = self._next_task()
                if task is None:
                    self.wakeup.wait(timeout=0.2)
                    continue
                self._running_task = task
            try:
                self._execute(task)
            finally:
                with self.state.lock:
                    self._running_task = None

    def _next_task(self) -> Task | None:
        for task in self.tasks.values():
            if task.status != "ACTIVE":
                continue
            if task.cancel_requested:
                self._finish(task, canceled=True)
                continue
            if self._blocked(task):
                continue
            return task
        return None

    def _blocked(self, task: Task) -> bool:
        """Set nice_status and return True while an endpoint is unreachable."""
        for collection in (task.source, task.destination):
            if not collection.connected:
                task.nice_status = (
                    "GC_NOT_CONNECTED"
                    if collection.is_personal
                    else "CONNECTION_FAILED"
                )
                return True
        return False

    def _execute(self, task: Task) -> None:
        with self.state.lock:
            task.started_at = time.time()
            task.nice_status = "OK"
        try:
            if self.state.take_task_fault():
                raise TaskFatal("ENDPOINT_ERROR", "Injected failure (emulator fault)")
            plans, dirs = self._expand(task)
            with self.state.lock:
                task.files, task.directories = len(plans), len(dirs)
                task.subtasks_total = len(plans) + len(dirs) + 1
                task.subtasks_succeeded = 1  # the expansion subtask
            for directory in dirs:
                self._checkpoint(task)
                self._make_dir(task, directory)
            for plan in plans:
                self._checkpoint(task)
                self._transfer_file(task, plan)
            if task.options["delete_destination_extra"]:
                self._delete_extra(task)
        except TaskCanceled:
            with self.state.lock:
                self._finish(task, canceled=True)
            return
        except TaskFatal as fatal:
            with self.state.lock:
                task.faults += 1
                task.subtasks_failed += 1
                task.add_event(
                    fatal.code,
                    fatal.code.lower().replace("_", " "),
                    fatal.description,
                    True,
                )
                task.fatal_error = {
                    "code": fatal.code,
                    "description": fatal.description,
                }
                self._finish(task)
            return
        with self.state.lock:
            self._finish(task)

    def _finish(self, task: Task, *, canceled: bool = False) -> None:
        """Settle a task (lock held): SUCCEEDED, or FAILED with fatal_error."""
        if canceled:
            task.fatal_error = {"code": "CANCELED", "description": "canceled"}
            task.add_event(
                "CANCELED", "canceled", "The task was canceled by the user", True
            )
            task.subtasks_canceled = max(
                0, task.subtasks_total - task.subtasks_succeeded - task.subtasks_failed
            )
        if task.fatal_error is None:
            task.status = "SUCCEEDED"
            task.add_event(
                "SUCCEEDED",
                "succeeded",
                {"files_succeeded": task.files_transferred},
                False,
            )
        else:
            task.status = "FAILED"
        task.nice_status = None
        task.completion_time = iso_time(utcnow())

    def _checkpoint(self, task: Task) -> None:
        """Between steps: stop if canceled, wait while an endpoint is offline."""
        while True:
            with self.state.lock:
                if task.cancel_requested or self._stopping.is_set():
                    raise TaskCanceled
                if not self._blocked(task):
                    task.nice_status = "OK"
                    return
                self.wakeup.wait(timeout=0.1)

    def _local(self, collection: Collection, cpath: str, role: str) -> Path:
        try:
            return resolve_path(collection, cpath)
        except PathRefused as why:
            raise TaskFatal(
                "PERMISSION_DENIED",
                f"Permission denied on {role} path '{cpath}': {why}",
            ) from None

    def _expand(self, task: Task) -> tuple[list[FilePlan], list[tuple[Path, str]]]:
        """Turn the items into files to copy and directories to create."""
        plans: list[FilePlan] = []
        dirs: list[tuple[Path, str]] = []
        for item in task.items:
            src = self._local(task.source, item.source_path, "source")
            dst = self._local(task.destination, item.destination_path, "destination")
            if not src.exists():
                if task.options["skip_source_errors"]:
                    continue
                raise TaskFatal(
                    "FILE_NOT_FOUND", f"No such file or directory: '{item.source_path}'"
                )
            if item.recursive != src.is_dir():
                kind = "a directory" if src.is_dir() else "not a directory"
                raise TaskFatal(
                    "NOT_A_FILE" if src.is_dir() else "NOT_A_DIRECTORY",
                    f"'{item.source_path}' is {kind} but recursive="
                    f"{str(item.recursive).lower()}",
                )
            if not item.recursive:
                plans.append(
                    FilePlan(src, dst, item.source_path, item.destination_path)
                )
                continue
            dirs.append((dst, item.destination_path))
            self._walk(
                task, src, dst, item.source_path, item.destination_path, plans, dirs
            )
        return plans, dirs

    def _walk(
        self,
        task: Task,
        src: Path,
        dst: Path,
        spath: str,
        dpath: str,
        plans: list[FilePlan],
        dirs: list[tuple[Path, str]],
    ) -> None:
        try:
            entries = sorted(os.scandir(src), key=lambda e: e.name)
        except OSError as exc:
            raise TaskFatal(
                "PERMISSION_DENIED", f"Cannot list '{spath}': {exc.strerror}"
            ) from None
        rules = task.options["filter_rules"]
        for entry in entries:
            kind = "dir" if entry.is_dir(follow_symlinks=False) else "file"
            if _filtered_out(rules, entry.name, kind):
                continue  # an excluded directory is not descended
            s_child = f"{spath.rstrip('/')}/{entry.name}"
            d_child = f"{dpath.rstrip('/')}/{entry.name}"
            if entry.is_symlink():
                task.symlinks += 1  # recursive_symlinks=ignore: skipped, as Globus does
                continue
            if entry.is_dir(follow_symlinks=False):
                dirs.append((dst / entry.name, d_child))
                self._walk(
                    task,
                    Path(entry.path),
                    dst / entry.name,
                    s_child,
                    d_child,
                    plans,
                    dirs,
                )
            elif entry.is_file(follow_symlinks=False):
                plans.append(
                    FilePlan(Path(entry.path), dst / entry.name, s_child, d_child)
                )

    def _make_dir(self, task: Task, target: tuple[Path, str]) -> None:
        local, cpath = target
        local = self._local(task.destination, cpath, "destination")
        try:
            local.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TaskFatal(
                "PERMISSION_DENIED",
                f"Cannot create directory '{cpath}': {exc.strerror}",
            ) from None
        with self.state.lock:
            task.subtasks_succeeded += 1

    def _transfer_file(self, task: Task, plan: FilePlan) -> None:
        src = self._local(task.source, plan.source_path, "source")
        dst = self._local(task.destination, plan.destination_path, "destination")
        try:
            src_stat = src.stat()
        except OSError:
            if task.options["skip_source_errors"]:
                return
            raise TaskFatal(
                "FILE_NOT_FOUND", f"No such file or directory: '{plan.source_path}'"
            ) from None
        if dst.is_dir():
            raise TaskFatal(
                "NOT_A_FILE", f"Destination '{plan.destination_path}' is a directory"
            )
        if self._in_sync(task, src, dst, src_stat):
            with self.state.lock:
                task.files_skipped += 1
                task.subtasks_succeeded += 1
            return
        self._copy(task, src, dst, src_stat, plan.destination_path)
        with self.state.lock:
            task.files_transferred += 1
            task.subtasks_succeeded += 1
            task.successful.append(
                {
                    "DATA_TYPE": "successful_transfer",
                    "source_path": plan.source_path,
                    "destination_path": plan.destination_path,
                }
            )

    def _in_sync(
        self, task: Task, src: Path, dst: Path, src_stat: os.stat_result
    ) -> bool:
        """The documented sync_level rules: True means the file is skipped."""
        level = task.options["sync_level"]
        if level is None:
            return False
        try:
            dst_stat = dst.stat()
        except OSError:
            return False
        if level == 0:
            return True
        if dst_stat.st_size != src_stat.st_size:
            return False
        if level == 1:
            return True
        if level == 2:
            return int(dst_stat.st_mtime) >= int(src_stat.st_mtime)
        return self._checksum(task, src) == self._checksum(task, dst)

    def _checksum(self, task: Task, path: Path) -> str:
        digest = hashlib.md5(usedforsecurity=False)
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
                    self._count_checksummed(task, len(chunk))
        except OSError as exc:
            raise TaskFatal(
                "FILE_NOT_FOUND", f"Cannot read '{path.name}': {exc.strerror}"
            ) from None
        return digest.hexdigest()

    def _count_checksummed(self, task: Task, size: int) -> None:
        with self.state.lock:
            task.bytes_checksummed += size
            self.state.stats.bytes_checksummed += size

    def _copy(
        self, task: Task, src: Path, dst: Path, src_stat: os.stat_result, dpath: str
    ) -> None:
        """Copy to a temporary name beside ``dst``, verify, then rename."""
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TaskFatal(
                "PERMISSION_DENIED",
                f"Cannot create the parent of '{dpath}': {exc.strerror}",
            ) from None
        self._local(task.destination, dpath, "destination")  # parent may be a new link
        tmp = dst.parent / f".{dst.name}.{secrets.token_hex(4)}.globus-emulator-part"
        try:
            source_md5 = self._stream(task, src, tmp)
            if task.options["verify_checksum"]:
                self._count_checksummed(task, src_stat.st_size)
                if self._checksum(task, tmp) != source_md5:
                    task.faults += 1
                    raise TaskFatal(
                        "VERIFY_CHECKSUM", f"Checksum mismatch for '{dpath}'"
                    )
            if task.options["preserve_timestamp"]:
                os.utime(tmp, ns=(src_stat.st_atime_ns, src_stat.st_mtime_ns))
            os.replace(tmp, dst)
        except OSError as exc:
            raise TaskFatal(
                "PERMISSION_DENIED", f"Cannot write '{dpath}': {exc.strerror}"
            ) from None
        finally:
            tmp.unlink(missing_ok=True)

    def _stream(self, task: Task, src: Path, tmp: Path) -> str:
        """Copy bytes (throttled if asked), return the source's MD5."""
        digest = hashlib.md5(usedforsecurity=False)
        started = time.monotonic()
        sent = 0
        with src.open("rb") as reader, tmp.open("xb") as writer:
            while chunk := reader.read(CHUNK):
                if task.cancel_requested or self._stopping.is_set():
                    raise TaskCanceled
                writer.write(chunk)
                digest.update(chunk)
                sent += len(chunk)
                with self.state.lock:
                    task.bytes_transferred += len(chunk)
                    self.state.stats.bytes_copied += len(chunk)
                    rate = self.state.faults.bytes_per_second
                if rate > 0:
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(min(ahead, 1.0))
        return digest.hexdigest()

    def _delete_extra(self, task: Task) -> None:
        """delete_destination_extra: remove what the source does not have."""
        for item in task.items:
            if not item.recursive:
                continue
            src = self._local(task.source, item.source_path, "source")
            dst = self._local(task.destination, item.destination_path, "destination")
            self._prune(src, dst)

    def _prune(self, src: Path, dst: Path) -> None:
        for entry in list(os.scandir(dst)):
            counterpart = src / entry.name
            if entry.is_dir(follow_symlinks=False):
                if counterpart.is_dir() and not counterpart.is_symlink():
                    self._prune(counterpart, Path(entry.path))
                    continue
                _remove_tree(Path(entry.path))
            elif ".globus-emulator-part" not in entry.name and not (
                counterpart.is_file() and not counterpart.is_symlink()
            ):
                os.unlink(entry.path)


def _remove_tree(path: Path) -> None:
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            _remove_tree(Path(entry.path))
        else:
            os.unlink(entry.path)
    path.rmdir()
