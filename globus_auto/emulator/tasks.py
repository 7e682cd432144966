"""Transfer tasks as records: their subtasks, faults, events and documents.

The worker (``worker.py``) executes a task; this module holds what a task is
and how Globus shows it. Field names and shapes follow the task documents
Globus returns (docs.globus.org/api/transfer/task; the SDK's ``task_list``
fixture; a real task document quoted in CommanderPho/PhoGlobusHelpers
``src/phoglobushelpers/compatibility_objects/Tasks.py``), the event documents
of docs.globus.org/api/transfer/task_events and globus-cli's
``task_event_list.yaml``, and the skipped errors of globus-cli's
``skipped_error_list.yaml``.
"""

from __future__ import annotations

import collections
import datetime
import json
import time
from dataclasses import dataclass, field
from typing import Any

from globus_auto.emulator.server import JSONDict
from globus_auto.emulator.state import Collection, iso_time, utcnow

# docs.globus.org/api/transfer/task_behavior, "Skippable Errors": with
# skip_source_errors, paths hitting these on the SOURCE collection are skipped.
SKIPPABLE_CODES = frozenset({"PERMISSION_DENIED", "FILE_NOT_FOUND", "AMBIGUOUS_PATH"})
# The same page: a queued task shows "Queued" unless it hit an error within
# the past 15 minutes, in which case nice_status shows the error.
RECENT_ERROR_SECONDS = 15 * 60
# The body of a real FILE_NOT_FOUND error (argonne-lcf/balsam issue 114).
PATH_NOT_FOUND_DETAILS = (
    "550-GlobusError: v=1 c=PATH_NOT_FOUND%0D%0A550-GridFTP-Errno: 2%0D%0A"
    "550-GridFTP-Reason: System error in stat%0D%0A"
    "550-GridFTP-Error-String: No such file or directory%0D%0A550 End.%0D%0A"
)


class TaskFatal(Exception):
    """Ends a task FAILED with ``fatal_error`` = {code, description}."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class FileFault(Exception):
    """An error on one path: the task records a fault and retries the path
    later, or skips it (``skip_source_errors`` and a skippable source error).

    Globus retries such errors until the deadline instead of failing the task
    (globus-cli issue 1056: a missing file leaves the task ACTIVE with
    ``faults: 1``; docs task_behavior "Errors").
    """

    def __init__(
        self,
        code: str,
        details: str,
        *,
        source_side: bool,
        is_directory: bool = False,
    ) -> None:
        super().__init__(details)
        self.code = code
        self.description = code.lower().replace("_", " ")  # "file not found"
        self.details = details
        self.source_side = source_side
        self.is_directory = is_directory


def file_not_found(is_directory: bool = False) -> FileFault:
    return FileFault(
        "FILE_NOT_FOUND",
        PATH_NOT_FOUND_DETAILS,
        source_side=True,
        is_directory=is_directory,
    )


def permission_denied(
    collection: Collection, path: str, why: str, *, source_side: bool
) -> FileFault:
    """A PERMISSION_DENIED fault in the shape of the real details text
    (docs.globus.org/api/transfer/task_events example; globus-cli
    skipped_error_list.yaml)."""
    command = "RETR" if source_side else "STOR"
    details = (
        f"Error (transfer)\nEndpoint: {collection.display_name} ({collection.id})\n"
        f"Server: 127.0.0.1:443\nFile: {path}\nCommand: {command} {path}\n"
        f"Message: Fatal FTP response\n---\n500 Command failed. : {why}\n"
    )
    return FileFault("PERMISSION_DENIED", details, source_side=source_side)


def type_conflict(collection: Collection, path: str, folder_there: bool) -> FileFault:
    """A destination path of the other type, as a fault Globus retries (the
    destination's: never skipped by ``skip_source_errors``): a folder where a
    file goes (IS_A_DIRECTORY) or a file where a folder must be
    (NOT_A_DIRECTORY), codes of Globus's event code list (Globus
    developer-discuss, 2020-04-23). Whether Globus retries these or fails the
    task is undocumented (unverified); retrying is the case that holds a task
    ACTIVE and blocks the job, so the emulator does that. The details are in
    the shape of the real ones (docs task_events' example), naming the path."""
    code = "IS_A_DIRECTORY" if folder_there else "NOT_A_DIRECTORY"
    why = "Is a directory" if folder_there else "Not a directory"
    details = (
        f"Error (transfer)\nEndpoint: {collection.display_name} ({collection.id})\n"
        f"Server: 127.0.0.1:443\nFile: {path}\nCommand: STOR {path}\n"
        f"Message: Fatal FTP response\n---\n500 Command failed. : {why}\n"
    )
    return FileFault(code, details, source_side=False)


@dataclass
class Item:
    """One transfer item as submitted."""

    source_path: str
    destination_path: str
    recursive: bool


@dataclass
class Work:
    """One subtask: ``item`` (look at a submitted item, expand a directory),
    ``listdir`` (expand a subdirectory whose listing failed), ``mkdir`` or
    ``file`` (copy one file). ``fault`` is the code of its last error."""

    kind: str
    source_path: str
    destination_path: str
    recursive: bool = False
    fault: str | None = None


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
    deadline: float
    status: str = "ACTIVE"
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
    subtasks_expired: int = 0
    subtasks_skipped_errors: int = 0
    # execution state, kept by the worker under the state lock
    todo: collections.deque[Work] = field(default_factory=collections.deque)
    pending: list[Work] = field(default_factory=list)
    retry_at: float = 0.0
    running: bool = False
    stop: str | None = None  # "cancel", "expire" or "pause": asks the thread to stop
    cancel_at: float | None = None  # when a task being cancelled has stopped
    blocked_status: str | None = None  # an endpoint is unreachable
    inactive_status: str = "CREDENTIALS_EXPIRED"
    last_error: FileFault | None = None
    last_error_at: float = 0.0
    fault_keys: set[tuple[str, str]] = field(default_factory=set)
    fault_injection_checked: bool = False
    started_at: float | None = None
    events: list[JSONDict] = field(default_factory=list)
    successful: list[JSONDict] = field(default_factory=list)
    skipped: list[JSONDict] = field(default_factory=list)

    @property
    def cancel_requested(self) -> bool:
        return self.stop == "cancel"

    @property
    def done(self) -> bool:
        return self.status in ("SUCCEEDED", "FAILED")

    def remaining(self) -> int:
        """Subtasks neither succeeded, failed nor skipped: the pending ones."""
        return max(
            0,
            self.subtasks_total
            - self.subtasks_succeeded
            - self.subtasks_failed
            - self.subtasks_canceled
            - self.subtasks_expired
            - self.subtasks_skipped_errors,
        )

    def faulted_destinations(self) -> list[str]:
        """Destination paths of the subtasks waiting after an error."""
        works = [*self.pending, *self.todo]
        return [w.destination_path for w in works if w.fault is not None]

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

    def record_skip(self, work: Work, fault: FileFault) -> None:
        """A skipped path, as ``GET /task/<id>/skipped_errors`` lists it."""
        self.subtasks_skipped_errors += 1
        self.files_skipped += 1
        self.skipped.append(
            {
                "DATA_TYPE": "skipped_error",
                "checksum_algorithm": None,
                "destination_path": work.destination_path,
                "error_code": fault.code,
                "error_details": fault.details,
                "error_time": iso_time(utcnow()),
                "external_checksum": None,
                "is_delete_destination_extra": False,
                "is_directory": fault.is_directory or work.kind == "listdir",
                "is_symlink": False,
                "source_path": work.source_path,
            }
        )

    def record_fault(self, work: Work, fault: FileFault) -> None:
        """A fault on ``work``: counted, with an event, once per path and
        kind of error (a real task retries far less often than we do)."""
        key = (work.source_path, fault.code)
        if key not in self.fault_keys:
            self.fault_keys.add(key)
            self.faults += 1
            self.add_event(fault.code, fault.description, fault.details, True)
        self.last_error, self.last_error_at = fault, time.time()
        work.fault = fault.code
        self.pending.append(work)

    def _nice(self) -> tuple[str | None, str | None, str | None]:
        """nice_status, its short description, its details (docs
        task_behavior "Queuing": "Queued", or the error of the last 15 min)."""
        if self.done:
            return None, None, None
        if self.status == "INACTIVE":
            # unverified: the real value depends on why a task is INACTIVE
            status = self.inactive_status
            return status, status.lower().replace("_", " "), None
        error = self.last_error
        if error is not None and time.time() - self.last_error_at < (
            RECENT_ERROR_SECONDS
        ):
            return error.code, error.description, error.details
        if self.blocked_status:
            short = self.blocked_status.lower().replace("_", " ")
            return self.blocked_status, short, None
        status = "OK" if self.running else "Queued"
        return status, status, None

    def document(self) -> JSONDict:
        nice, short, details = self._nice()
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
            "deadline": iso_time_of(self.deadline),
            "delete_destination_extra": opts["delete_destination_extra"],
            "destination_base_path": None,
            "destination_endpoint": f"u_emulator#{self.destination.id}",
            "destination_endpoint_display_name": self.destination.display_name,
            "destination_endpoint_id": self.destination.id,
            "destination_local_user": opts["destination_local_user"],
            "destination_local_user_status": None,
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
            "is_ok": None if nice is None else nice in ("OK", "Queued"),
            "is_paused": False,
            "label": opts["label"],
            "nice_status": nice,
            "nice_status_details": details,
            "nice_status_expires_in": None if nice is None else -1,
            "nice_status_short_description": short,
            "owner_id": self.owner_id,
            "preserve_timestamp": opts["preserve_timestamp"],
            "recursive_symlinks": opts["recursive_symlinks"],
            "request_time": self.request_time,
            "skip_source_errors": opts["skip_source_errors"],
            "source_base_path": None,
            "source_endpoint": f"u_emulator#{self.source.id}",
            "source_endpoint_display_name": self.source.display_name,
            "source_endpoint_id": self.source.id,
            "source_local_user": opts["source_local_user"],
            "source_local_user_status": None,
            "status": self.status,
            "subtasks_canceled": self.subtasks_canceled,
            "subtasks_expired": self.subtasks_expired,
            "subtasks_failed": self.subtasks_failed,
            "subtasks_pending": 0 if self.done else self.remaining(),
            "subtasks_retrying": 0,
            "subtasks_skipped_errors": self.subtasks_skipped_errors,
            "subtasks_succeeded": self.subtasks_succeeded,
            "subtasks_total": self.subtasks_total,
            "symlinks": self.symlinks,
            "sync_level": opts["sync_level"],
            "task_id": self.task_id,
            "type": "TRANSFER",
            "username": f"u_{self.owner_id.replace('-', '')[:26]}",
            "verify_checksum": opts["verify_checksum"],
        }


def iso_time_of(epoch_seconds: float) -> str | None:
    return iso_time(
        datetime.datetime.fromtimestamp(epoch_seconds, datetime.timezone.utc)
    )
