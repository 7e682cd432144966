"""The Transfer gateway: everything a run asks of Globus Transfer.

This module is imported only when a run has to talk to Globus, so a run with
nothing to do never pays for importing globus-sdk. Errors are mapped by
:mod:`.errors`.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import globus_sdk

from globus_auto.engine.plan import ITEM_REFUSED, TYPE_CONFLICTS, TransferPlan
from globus_auto.errors import (
    DocumentTooLarge,
    EndpointNotReady,
    NotACollection,
    TaskUnknown,
    TransferFailed,
    UnknownCollection,
)
from globus_auto.globus.app import transfer_client
from globus_auto.globus.errors import globus_errors
from globus_auto.settings.model import DEFAULT_GLOBUS_TIMEOUT

log = logging.getLogger(__name__)


FINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED"})


@dataclass(frozen=True)
class TaskState:
    """What Globus says about one task."""

    task_id: str
    status: str  # ACTIVE, INACTIVE, SUCCEEDED, FAILED
    nice_status: str | None
    fatal_error: str | None
    files: int
    files_transferred: int
    files_skipped: int
    bytes_transferred: int
    faults: int
    request_time: str | None
    skipped_errors: int = 0  # subtasks_skipped_errors: source paths skipped
    skip_source_errors: bool = False  # how the task was submitted

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES

    def describe(self) -> str:
        text = (
            f"{self.status}: {self.files_transferred}/{self.files} files, "
            f"{self.bytes_transferred} bytes transferred"
        )
        if self.faults:
            text += f", {self.faults} faults"
        if self.skipped_errors:
            text += f", {self.skipped_errors} skipped (source errors)"
        if self.fatal_error:
            text += f"; {self.fatal_error}"
        elif self.nice_status and self.nice_status not in ("OK", "Queued"):
            text += f" ({self.nice_status})"
        return text


def _task_state(doc: Any) -> TaskState:
    fatal = doc.get("fatal_error")
    fatal_text = None
    if isinstance(fatal, dict):
        fatal_text = f"{fatal.get('code', 'ERROR')}: {fatal.get('description', '')}"
    return TaskState(
        task_id=str(doc["task_id"]),
        status=str(doc["status"]),
        nice_status=doc.get("nice_status"),
        fatal_error=fatal_text,
        files=int(doc.get("files") or 0),
        files_transferred=int(doc.get("files_transferred") or 0),
        files_skipped=int(doc.get("files_skipped") or 0),
        bytes_transferred=int(doc.get("bytes_transferred") or 0),
        faults=int(doc.get("faults") or 0),
        request_time=doc.get("request_time"),
        skipped_errors=int(doc.get("subtasks_skipped_errors") or 0),
        skip_source_errors=bool(doc.get("skip_source_errors")),
    )


@dataclass(frozen=True)
class SkippedFile:
    """A source path a task skipped (``skip_source_errors``) and why."""

    source_path: str
    error_code: str  # FILE_NOT_FOUND, PERMISSION_DENIED, ...
    details: str


# Error events of a task still ACTIVE that mean a source file cannot be read:
# Globus retries such a task until its deadline (a day at first) instead of
# failing it (globus/globus-cli issue 1056; argonne-lcf/balsam issue 114).
SOURCE_READ_ERRORS = frozenset(
    {"FILE_NOT_FOUND", "PERMISSION_DENIED", "AMBIGUOUS_PATH"}
)


@dataclass(frozen=True)
class PathFault:
    """An error event of a task that names one path (its ``File:`` line)."""

    code: str  # one of plan.TYPE_CONFLICTS or plan.ITEM_REFUSED
    path: str  # a collection path, as the event names it


def event_path(details: str) -> str | None:
    """The path an error event names: its ``File:`` line, as in the event
    document of docs.globus.org/api/transfer/task_events ("Error (transfer)\n
    Server: ...\nFile: /~/Downloads/x.png\nCommand: STOR ..."); None without."""
    for line in details.splitlines():
        if line.startswith("File: "):
            return line[len("File: ") :].strip() or None
    return None


# Entity types that are endpoints, not collections: nothing is transferred to
# or from them (globus-cli endpointish/entity_type.py).
NOT_COLLECTIONS = frozenset({"GCSv5_endpoint"})


def unknown_collection(
    exc: globus_sdk.TransferAPIError, collection_id: str, role: str
) -> UnknownCollection | None:
    """The config error for an id Globus does not know, or None for any other
    error.

    Globus answers 404 ``EndpointNotFound`` ("No such endpoint '<id>'") for an
    unknown endpoint or collection id (globus-sdk's testing fixture
    ``transfer/set_subscription_id.py``, case ``not_found``), where a missing
    path is ``ClientError.NotFound`` or ``NotFound``. A typo in the config is
    no collection being offline: no waiting fixes it.
    """
    if exc.http_status != 404 or exc.code != "EndpointNotFound":
        return None
    variable = "SRC_ID" if role == "source" else "DST_ID"
    request = f", request_id {exc.request_id}" if exc.request_id else ""
    return UnknownCollection(
        f"{variable} {collection_id} names no collection Globus knows (404 "
        f"EndpointNotFound{request}); fix {variable} in the config: copy the "
        "collection's id from app.globus.org → Collections"
    )


class Gateway:
    """A Transfer client with the few operations a run needs."""

    def __init__(self, client: globus_sdk.TransferClient) -> None:
        self.client = client
        # Told each state :meth:`wait` polls (a terminal's status line).
        self.on_poll: Callable[[TaskState], None] | None = None

    def check_collection(self, collection_id: str, role: str) -> dict[str, Any]:
        """The endpoint document; EndpointNotReady if the collection cannot work,
        NotACollection if the id is a Globus Connect Server endpoint."""
        with globus_errors(f"looking up the {role} collection", collection_id):
            try:
                doc = self.client.get_endpoint(collection_id).data
            except globus_sdk.TransferAPIError as exc:
                unknown = unknown_collection(exc, collection_id, role)
                if unknown is None:
                    raise
                raise unknown from exc
        name = doc.get("display_name") or collection_id
        if doc.get("entity_type") in NOT_COLLECTIONS:
            raise NotACollection(
                f"the {role} id {collection_id} ({name}) is a Globus Connect Server "
                "endpoint, not a collection, so nothing can be transferred with it; "
                f"use the id of one of its collections instead (app.globus.org → "
                f"Collections, or: globus endpoint show {collection_id}, then "
                "globus collection list)"
            )
        if doc.get("is_globus_connect"):
            if doc.get("gcp_connected") is False:
                raise EndpointNotReady(
                    f"the {role} collection {name} ({collection_id}) is a Globus "
                    "Connect Personal collection that is not connected; start Globus "
                    "Connect Personal on that machine"
                )
            if doc.get("gcp_paused"):
                raise EndpointNotReady(
                    f"the {role} collection {name} ({collection_id}) is paused; "
                    "resume Globus Connect Personal on that machine"
                )
        return dict(doc)

    def list_dir(self, collection_id: str, path: str, role: str) -> bool:
        """True if ``path`` is a listable directory, False if it does not exist.

        Missing paths are recognised by the HTTP status: the codes differ
        between operations (``ClientError.NotFound`` for ls, ``NotFound`` for
        stat: globus-cli's live tests and globus-sdk's operation_stat fixture).
        A folder too big to list (``SizeLimit``, past 100,000 entries) exists.
        """
        with globus_errors(f"listing {path} on the {role} collection", collection_id):
            try:
                self.client.operation_ls(collection_id, path=path, limit=1)
            except globus_sdk.TransferAPIError as exc:
                unknown = unknown_collection(exc, collection_id, role)
                if unknown is not None:
                    raise unknown from exc
                if exc.http_status == 404:
                    return False
                if (exc.code or "").endswith(".SizeLimit"):
                    return True
                raise
        return True

    def make_dirs(self, collection_id: str, path: str) -> None:
        """``mkdir -p`` on a collection."""
        if path in ("/", "") or self.list_dir(collection_id, path, "destination"):
            return
        parent = posixpath.dirname(path.rstrip("/"))
        if parent != path:
            self.make_dirs(collection_id, parent)
        doing = f"creating {path} on the destination collection"
        with globus_errors(doing, collection_id):
            try:
                self.client.operation_mkdir(collection_id, path)
            except globus_sdk.TransferAPIError as exc:
                # ExternalError.MkdirFailed.Exists: made meanwhile, as wanted.
                if not (exc.code or "").endswith(".Exists"):
                    raise

    def new_submission_id(self) -> str:
        with globus_errors("asking for a submission id"):
            return str(self.client.get_submission_id()["value"])

    def submit(self, plan: TransferPlan, submission_id: str) -> str:
        """Submit the plan under ``submission_id``; returns the task id.

        Submitting again with the same id returns the same task (Globus answers
        ``Duplicate``), which is what makes a resubmission after a crash safe.
        ``skip_source_errors``: a source file gone or unreadable is skipped, not
        retried for a day, and the task settles (``skipped_sources``).
        """
        data = globus_sdk.TransferData(
            plan.source_id,
            plan.destination_id,
            label=plan.label,
            submission_id=submission_id,
            sync_level="checksum",
            verify_checksum=True,
            encrypt_data=True,
            preserve_timestamp=True,
            delete_destination_extra=False,
            skip_source_errors=True,
            notify_on_succeeded=plan.mails.on_succeeded,
            notify_on_failed=plan.mails.on_failed,
            notify_on_inactive=plan.mails.on_inactive,
        )
        for item in plan.items:
            data.add_item(item.source, item.destination, recursive=item.recursive)
        for name in plan.exclude_names:
            data.add_filter_rule(name, method="exclude")
        try:
            with globus_errors("submitting the transfer"):
                response = self.client.submit_transfer(data)
        except EndpointNotReady as exc:
            refused = DocumentTooLarge if _too_large(exc.__cause__) else TransferFailed
            raise refused(f"Globus refused the transfer: {exc}") from exc
        return str(response["task_id"])

    def task(self, task_id: str) -> TaskState:
        """The task's state; :class:`TaskUnknown` if Globus cannot show it.

        Any 404 is "unknown": the real service answers ``ClientError.NotFound``
        ("No task found with id ...", terraref/computing-pipeline issue 425);
        403 ``PermissionDenied``: another identity's task.
        """
        with globus_errors(f"asking Globus about task {task_id}"):
            try:
                return _task_state(self.client.get_task(task_id))
            except globus_sdk.TransferAPIError as exc:
                if exc.http_status != 404 and (exc.http_status, exc.code) != (
                    403,
                    "PermissionDenied",
                ):
                    raise
                request = f" (request_id {exc.request_id})" if exc.request_id else ""
                raise TaskUnknown(
                    f"Globus does not know task {task_id} or does not show it to "
                    f"this login ({exc.http_status} {exc.code}{request})"
                ) from exc

    def skipped_sources(self, task_id: str) -> list[SkippedFile]:
        """The source paths a task skipped, with why (marker paging)."""
        with globus_errors(f"listing the files task {task_id} skipped"):
            return [
                SkippedFile(
                    str(doc["source_path"]),
                    str(doc.get("error_code") or ""),
                    str(doc.get("error_details") or ""),
                )
                for doc in self.client.paginated.task_skipped_errors(task_id).items()
            ]

    def source_read_errors(self, task_id: str) -> list[str]:
        """Codes of the task's error events that say a source cannot be read."""
        with globus_errors(f"reading the events of task {task_id}"):
            events = self.client.task_event_list(
                task_id, limit=100, query_params={"filter": "is_error:1"}
            )
            return [
                str(event["code"])
                for event in events
                if event.get("code") in SOURCE_READ_ERRORS
            ]

    def path_faults(self, task_id: str) -> list[PathFault]:
        """The task's error events that name one path and say it has the other
        type or was refused (TYPE_CONFLICTS, ITEM_REFUSED), newest first."""
        with globus_errors(f"reading the events of task {task_id}"):
            events = self.client.task_event_list(
                task_id, limit=1000, query_params={"filter": "is_error:1"}
            )
            found = []
            for event in events:
                code = str(event.get("code") or "")
                path = event_path(str(event.get("details") or ""))
                if path and code in TYPE_CONFLICTS | ITEM_REFUSED:
                    found.append(PathFault(code, path))
            return found

    def type_conflict_at(self, collection_id: str, path: str, top: str) -> bool:
        """Whether a file still cannot be written at ``path``: a folder is there,
        or a file holds the place of a folder between it and ``top`` (which
        exists). One listing per level, from ``path`` up."""
        if self._path_kind(collection_id, path) == "dir":
            return True
        parent = posixpath.dirname(path.rstrip("/"))
        while _inside(parent, top):  # never "/" itself, so this ends
            kind = self._path_kind(collection_id, parent)
            if kind is not None:
                return kind == "file"
            parent = posixpath.dirname(parent)
        return False

    def _path_kind(self, collection_id: str, path: str) -> str | None:
        """``dir``, ``file`` or None (nothing there), by listing it: ls on a
        file answers ``ExternalError.DirListingFailed.NotDirectory`` (GLOBUS.md:
        materials-data-facility/toolbox), a missing path 404."""
        with globus_errors(f"looking at {path} on the destination", collection_id):
            try:
                self.client.operation_ls(collection_id, path=path, limit=1)
            except globus_sdk.TransferAPIError as exc:
                if exc.http_status == 404:
                    return None
                if (exc.code or "").endswith(".NotDirectory"):
                    return "file"
                if (exc.code or "").endswith(".SizeLimit"):
                    return "dir"
                raise
        return "dir"

    def cancel(self, task_id: str) -> bool:
        """Ask Globus to cancel a task; True only if it has stopped, cancelled.

        The answer's code (docs.globus.org/api/transfer/task, "Cancel task by
        id"): ``Canceled`` once it is (globus_sdk.testing's recorded
        ``cancel_task`` response), ``CancelAccepted`` while it is still
        stopping, ``TaskComplete`` if it had ended already (tapis-globus-proxy's
        GlobusTaskCancelEnum names the same three: CANCELLED, ACCEPTED,
        COMPLETE). Why False for all but ``Canceled``: until a final status is
        seen the task may still copy its files, and a task that had ended may
        have SUCCEEDED; polling it next run tells which.
        """
        with globus_errors(f"cancelling task {task_id}"):
            response = self.client.cancel_task(task_id)
        return bool(response.get("code") == "Canceled")

    def successful_sources(self, task_id: str) -> Iterator[str]:
        """Source paths of every file a task transferred (marker paging)."""
        with globus_errors(f"listing the files task {task_id} transferred"):
            for page in self.client.paginated.task_successful_transfers(task_id):
                for doc in page:
                    yield str(doc["source_path"])

    def wait(
        self,
        task_id: str,
        timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        interval: float = 2.0,
        until: Callable[[TaskState], bool] | None = None,
    ) -> TaskState:
        """Poll until the task finishes, ``until`` says a state polled is
        enough, or ``timeout`` seconds pass; each state polled goes to
        :attr:`on_poll` too."""
        deadline = clock() + timeout
        state = self._polled(task_id)
        while (
            not state.finished
            and clock() < deadline
            and not (until is not None and until(state))
        ):
            sleep(min(interval, max(0.1, deadline - clock())))
            state = self._polled(task_id)
        return state

    def _polled(self, task_id: str) -> TaskState:
        state = self.task(task_id)
        if self.on_poll is not None:
            self.on_poll(state)
        return state


def _too_large(exc: BaseException | None) -> bool:
    """Whether ``exc`` (of a submit) refuses the request for the size of its
    body: 413 (Content Too Large, RFC 9110 section 15.5.14: what an HTTP front
    end answers for a body over its limit) or a 400 whose code or message says
    so (the emulator's ``Request body too large``: emulator/server.py,
    MAX_BODY_BYTES). Which one the real service answers is not published
    (unverified; no globus-sdk or globus-cli source pins it), so both count;
    anything else, such as a collection's 502 ExternalError, is no reason to
    split a document.
    """
    if not isinstance(exc, globus_sdk.GlobusAPIError):
        return False
    if exc.http_status == 413:
        return True
    said = f"{exc.code or ''} {exc.message or ''}".lower().replace(" ", "")
    return exc.http_status == 400 and ("toolarge" in said or "toobig" in said)


def _inside(path: str, top: str) -> bool:
    """Whether collection path ``path`` is strictly inside folder ``top``."""
    path, top = path.rstrip("/"), top.rstrip("/")
    return path != top and path.startswith(top + "/")


def connect(
    app: globus_sdk.GlobusApp,
    data_access: tuple[str, ...] = (),
    state_dir: Path | None = None,
    seconds: float = DEFAULT_GLOBUS_TIMEOUT,
) -> Gateway:
    """A gateway whose client uses ``app`` for its tokens (refreshed under the
    lock of ``state_dir`` when given), each call within ``seconds``."""
    client = transfer_client(
        app, seconds=seconds, state_dir=state_dir, data_access=data_access
    )
    return Gateway(client)
