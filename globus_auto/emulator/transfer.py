"""The Transfer API v0.10 subset: endpoints, file operations, submissions, tasks.

Documents follow docs.globus.org/api/transfer and the response fixtures in
``globus_sdk.testing``; the task records and their execution live in
``tasks.py`` and ``worker.py``, the submission checks in ``documents.py``, the
collection authentication policies in ``sessions.py``.
"""

from __future__ import annotations

import os
import stat
import time
import uuid
from pathlib import Path
from typing import Any

from globus_auto.emulator.auth import AuthService
from globus_auto.emulator.auth_records import TRANSFER_RS, TRANSFER_SCOPE, Token
from globus_auto.emulator.documents import endpoint_document, validate_transfer
from globus_auto.emulator.server import (
    GlobusError,
    Handler,
    JSONDict,
    Request,
    Response,
)
from globus_auto.emulator.sessions import check_policy
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
from globus_auto.emulator.tasks import Task
from globus_auto.emulator.worker import TaskWorker

SUCCESSFUL_TRANSFERS_PAGE = 100


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


def _event_filter(text: str) -> bool | None:
    """``is_error:1`` → True, ``is_error:0`` → False, nothing → None."""
    if not text:
        return None
    name, _, value = text.partition(":")
    if name != "is_error" or value not in ("0", "1"):
        raise GlobusError(400, "ClientError.BadRequest", f"Invalid filter '{text}'")
    return value == "1"


class TransferService:
    """The Transfer routes, over the task worker's records."""

    def __init__(self, state: EmulatorState, auth: AuthService) -> None:
        self.state = state
        self.auth = auth
        self.worker = TaskWorker(state)
        self.tasks: dict[str, Task] = self.worker.tasks
        self.by_submission: dict[str, str] = {}
        self.wakeup = self.worker.wakeup

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def idle(self) -> bool:
        return self.worker.idle()

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
            ("GET", "/v0.10/task/{id}/skipped_errors", self.skipped_errors),
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
        self, token: Token, endpoint_id: str, operation: str | None
    ) -> Collection:
        """The collection, if this token may use it (lock held): a collection
        and not a GCSv5 endpoint, consent first (globus-cli prefers the consent
        hook to the session hook), then the authentication policy
        (``sessions.check_policy``; ``operation`` None for a submission)."""
        collection = self.state.collection(endpoint_id)
        if not collection.is_collection:
            # GLOBUS.md: a GCSv5 endpoint is not a collection; the code and
            # wording Transfer answers with are unverified.
            raise GlobusError(
                400,
                "ClientError.BadRequest",
                f"'{collection.id}' is a Globus Connect Server v5 endpoint, "
                "not a collection",
            )
        self._require_consent(token, collection)
        if operation is not None and not collection.connected:
            raise self._disconnected(collection, operation)
        check_policy(collection, token.session, operation)
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
            collection = self._usable_collection(token, endpoint_id, "DirListingFailed")
            size_limit = self.state.limits.ls_size_limit
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
        if len(names) > size_limit:
            # globus-sdk operation_ls docstring: a folder of more than 100,000
            # entries cannot be listed; mdf toolbox shows the same code.
            raise GlobusError(
                502,
                "ExternalError.DirListingFailed.SizeLimit",
                f"Directory limit of {size_limit} reached",
            )
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
            collection = self._usable_collection(token, endpoint_id, "MkdirFailed")
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
        options, items = validate_transfer(body)
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
            self._usable_collection(token, source.id, None)
            self._usable_collection(token, destination.id, None)
            now = time.time()
            deadline = options["deadline"]
            task = Task(
                task_id=str(uuid.uuid4()),
                submission_id=submission_id,
                owner_id=token.identity_id,
                source=source,
                destination=destination,
                items=items,
                options=options,
                request_time=str(iso_time(utcnow())),
                # docs task_behavior "Deadlines": 24 h after submission unless
                # the submission names one (globus-cli issue 1056 shows it)
                deadline=deadline
                if deadline is not None
                else now + self.state.limits.task_deadline_seconds,
            )
            self.worker.submit(task)
            self.by_submission[submission_id] = task.task_id
            self.state.stats.tasks_submitted += 1
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

    def _task(self, token: Token, task_id: str) -> Task:
        """The caller's task, or the 404 Globus answers for a task it does not
        know or that another identity owns: ``ClientError.NotFound``, "No task
        found with id '<id>'" (terraref/computing-pipeline issue 425, a
        real-service message; GLOBUS.md)."""
        task = self.tasks.get(task_id.lower())
        if task is None or task.owner_id != token.identity_id:
            raise GlobusError(
                404, "ClientError.NotFound", f"No task found with id '{task_id}'"
            )
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
        """Newest first; ``filter=is_error:1`` (or ``:0``) keeps error events
        (or the others), as Parsl/parsl issue 1323 and docs.globus.org/api/
        transfer/task "Get event list" filter them."""
        token = self._token(req)
        limit = _int_param(req, "limit", 10, 1000)
        offset = _int_param(req, "offset", 0, 10**9)
        wanted = _event_filter(req.arg("filter") or "")
        with self.state.lock:
            events = list(reversed(self._task(token, task_id).events))
        if wanted is not None:
            events = [e for e in events if e["is_error"] is wanted]
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
        """Files a task transferred; skipped ones are not among them (globus-sdk
        ``task_successful_transfers`` docstring). Marker paging."""
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

    def skipped_errors(self, req: Request, task_id: str) -> Response:
        """Paths skipped under ``skip_source_errors`` (globus-sdk PR 393;
        items as globus-cli ``skipped_error_list.yaml``, whose top level is
        ``{"DATA": [...]}``). Marker paging as the SDK's NullableMarkerPaginator
        reads it: ``next_marker`` back as ``marker``, null at the end; the page
        size is ``Limits.skipped_errors_page`` (the real one is unverified)."""
        token = self._token(req)
        marker = _int_param(req, "marker", 0, 10**9)
        with self.state.lock:
            skipped = list(self._task(token, task_id).skipped)
            size = self.state.limits.skipped_errors_page
        page = skipped[marker : marker + size]
        end = marker + len(page)
        return Response(
            200, {"DATA": page, "next_marker": end if end < len(skipped) else None}
        )

    def cancel_task(self, req: Request, task_id: str) -> Response:
        """Cancel a task. The answer's code (docs.globus.org/api/transfer/task,
        "Cancel task by id"): ``TaskComplete`` for a task that had ended,
        ``Canceled`` once it has stopped (globus_sdk.testing's recorded
        ``cancel_task`` response), ``CancelAccepted`` while it is still
        stopping: a file mid-copy, or ``Limits.cancel_seconds``."""
        token = self._token(req)
        with self.state.lock:
            task = self._task(token, task_id)
            if task.done:
                return Response(200, _cancel_result(req, "TaskComplete", task))
            self.worker.cancel(task, time.time())
            stopping = task.cancel_at is not None and task.cancel_at > time.time()
        deadline = time.monotonic() + (0 if stopping else CANCEL_WAIT_SECONDS)
        ended = ("SUCCEEDED", "FAILED")  # read anew: the worker ends it
        while time.monotonic() < deadline:
            with self.state.lock:
                if task.status in ended:
                    break
            time.sleep(0.01)
        with self.state.lock:
            code = "Canceled" if task.status in ended else "CancelAccepted"
        return Response(200, _cancel_result(req, code, task))


# How long a cancel waits for a task mid-copy to stop before it answers
# CancelAccepted (the real service's wait is not published).
CANCEL_WAIT_SECONDS = 5.0
_CANCEL_MESSAGES = {
    "TaskComplete": "Task {} is already complete",
    "Canceled": "The task has been cancelled successfully.",
    "CancelAccepted": "The cancel request for task {} has been accepted; "
    "the task is stopping",  # wording unverified
}


def _cancel_result(req: Request, code: str, task: Task) -> JSONDict:
    """The body of a cancel answer with ``code``."""
    return {
        "DATA_TYPE": "result",
        "code": code,
        "message": _CANCEL_MESSAGES[code].format(task.task_id),
        "request_id": req.request_id,
        "resource": req.path,
    }
