"""The emulator's shared state: collections, limits, faults and statistics.

One ``threading.RLock`` (``EmulatorState.lock``) guards everything here and the
Auth and Transfer records, so request threads and the task threads never see a
half-updated document.
"""

from __future__ import annotations

import datetime
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from globus_auto.emulator.server import GlobusError

GCP_ENTITY_TYPES = ("GCP_mapped_collection", "GCP_guest_collection")
ENTITY_TYPES = (
    "GCSv5_mapped_collection",
    "GCSv5_guest_collection",
    "GCSv5_endpoint",
    *GCP_ENTITY_TYPES,
)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def iso_time(moment: datetime.datetime | None) -> str | None:
    """Task times: ``2021-09-02T18:04:47+00:00``."""
    if moment is None:
        return None
    return moment.astimezone(datetime.timezone.utc).replace(microsecond=0).isoformat()


def listing_time(epoch_seconds: float) -> str:
    """File listing times: ``2023-12-18 16:52:50+00:00``."""
    moment = datetime.datetime.fromtimestamp(int(epoch_seconds), datetime.timezone.utc)
    return moment.isoformat(sep=" ")


@dataclass
class Collection:
    """A collection backed by a local directory.

    ``consent_override`` is a test's explicit word on data_access (None: what
    the entity type says). The ``session_*`` fields are the collection's
    authentication policy, checked by ``sessions.unmet_policy``.
    """

    id: str
    root: Path
    display_name: str
    entity_type: str = "GCSv5_mapped_collection"
    high_assurance: bool = False
    connected: bool = True
    paused: bool = False
    consent_override: bool | None = None
    session_required_single_domain: list[str] | None = None
    session_required_mfa: bool = False
    session_max_age: int | None = None
    session_required_policies: list[str] | None = None

    @property
    def is_personal(self) -> bool:
        return self.entity_type in GCP_ENTITY_TYPES

    @property
    def is_collection(self) -> bool:
        """A GCSv5 endpoint is not a collection: no ls, no transfers (GLOBUS.md;
        globus-cli ``endpointish/entity_type.py``)."""
        return self.entity_type != "GCSv5_endpoint"

    @property
    def scope_exists(self) -> bool:
        """Whether Globus Auth knows a data_access scope for this collection.

        Only GCSv5 mapped collections that are not high assurance have one
        (globus-sdk ``TransferClient.add_app_data_access_scope`` docstring;
        globus-cli ``endpointish.py`` ``requires_data_access_scope``); asking
        for it elsewhere fails at login with "Unknown Scope". A test that
        forces ``consent_override=True`` makes the scope exist too, or the
        consent it demands could never be given.
        """
        default = (
            self.entity_type == "GCSv5_mapped_collection" and not self.high_assurance
        )
        return default or self.consent_override is True

    @property
    def requires_consent(self) -> bool:
        """Whether Transfer refuses this collection without data_access consent:
        by default exactly when the scope exists (same sources)."""
        if self.consent_override is not None:
            return self.consent_override
        return self.scope_exists

    @requires_consent.setter
    def requires_consent(self, value: bool | None) -> None:
        self.consent_override = value

    @property
    def data_access_scope(self) -> str:
        return f"https://auth.globus.org/scopes/{self.id}/data_access"


class PathRefused(Exception):
    """A collection path is malformed or leads outside the collection's root."""


def check_collection_path(path: Any) -> PurePosixPath:
    """Validate a collection path's syntax: absolute POSIX, no '..', no NUL.

    ``/~/`` (the home directory in Globus) is taken as the root.
    """
    if not isinstance(path, str) or not path:
        raise PathRefused("path must be a non-empty string")
    if "\x00" in path:
        raise PathRefused("path must not contain NUL characters")
    if path == "~" or path.startswith("~/"):
        path = "/" + path
    if not path.startswith("/"):
        raise PathRefused(f"path '{path}' is not absolute")
    pure = PurePosixPath(path)
    parts = list(pure.parts[1:])
    if parts and parts[0] == "~":
        parts = parts[1:]
    if ".." in parts:
        raise PathRefused(f"path '{path}' contains '..'")
    return PurePosixPath("/", *parts)


def resolve_path(collection: Collection, path: Any) -> Path:
    """Map a collection path to a local path that is surely inside the root.

    Symbolic links are followed as the filesystem would; if any of them leads
    outside the root, the path is refused.
    """
    pure = check_collection_path(path)
    local = collection.root.joinpath(*pure.parts[1:])
    real_root = os.path.realpath(collection.root)
    real = os.path.realpath(local)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise PathRefused(f"path '{path}' leads outside the collection")
    return local


def collection_path(pure: PurePosixPath | str) -> str:
    """Normalize a collection path for documents (``/a/b`` style)."""
    return str(check_collection_path(str(pure)))


@dataclass
class Faults:
    """Failures the tests asked for."""

    fail_tasks: int = 0
    http_status: int = 0
    path_prefix: str = "/"
    http_count: int = 0
    bytes_per_second: int = 0


DEFAULT_TASK_DEADLINE = 24 * 3600
DEFAULT_RETRY_SECONDS = 60.0
DEFAULT_LS_SIZE_LIMIT = 100_000
DEFAULT_SKIPPED_ERRORS_PAGE = 100


@dataclass
class Limits:
    """Service limits a test may shrink (``/_emulator/limits``).

    - ``task_deadline_seconds``: the deadline of a task submitted without one;
      24 h at first (docs.globus.org/api/transfer/task_behavior "Deadlines";
      globus-cli issue 1056 shows request_time + 24 h).
    - ``retry_seconds``: how long a task backs off after an error before it
      tries the failed paths again. Globus does not publish its back-off;
      60 s is our guess (unverified), made short by tests.
    - ``ls_size_limit``: more entries than this and ls answers
      ``ExternalError.DirListingFailed.SizeLimit`` (100,000: globus-sdk
      ``operation_ls`` docstring).
    - ``skipped_errors_page``: items per page of ``/task/<id>/skipped_errors``
      (the real page size is not published; 100 is unverified).
    - ``cancel_seconds``: how long a cancelled task takes to stop. Meanwhile
      it stays ACTIVE and the cancel call answers ``CancelAccepted`` (the
      real service's answer for a cancel accepted but not yet done:
      docs.globus.org/api/transfer/task, "Cancel task by id"); how long the
      real service takes is not published. 0: a task not copying stops at
      once (``Canceled``), one mid-copy at its next step.
    """

    task_deadline_seconds: int = DEFAULT_TASK_DEADLINE
    retry_seconds: float = DEFAULT_RETRY_SECONDS
    ls_size_limit: int = DEFAULT_LS_SIZE_LIMIT
    skipped_errors_page: int = DEFAULT_SKIPPED_ERRORS_PAGE
    cancel_seconds: float = 0.0


NOTIFICATION_KINDS = ("succeeded", "failed", "inactive")


@dataclass
class Stats:
    """Counters served at ``/_emulator/stats``.

    ``notification_mails`` counts the mails Globus would have sent the task
    owner, by kind (``notify_on_*`` of each task; globus-sdk ``TransferData``
    docs).
    """

    tasks_submitted: int = 0
    duplicate_submissions: int = 0
    bytes_copied: int = 0
    bytes_checksummed: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    notification_mails: Counter[str] = field(default_factory=Counter)


class EmulatorState:
    """Collections, faults and stats, behind one lock."""

    def __init__(self, collections: dict[str, Collection]) -> None:
        self.lock = threading.RLock()
        self.collections = collections
        self.faults = Faults()
        self.stats = Stats()
        self.limits = Limits()

    def collection(self, collection_id: str) -> Collection:
        """Return the collection or raise the 404 Transfer sends (code and
        wording of globus-sdk's testing fixture transfer/set_subscription_id.py,
        case ``not_found``)."""
        found = self.collections.get(collection_id.lower())
        if found is None:
            raise GlobusError(
                404, "EndpointNotFound", f"No such endpoint '{collection_id}'"
            )
        return found

    def take_http_fault(self, path: str) -> int:
        """Return an HTTP status to answer instead, consuming one fault, or 0."""
        with self.lock:
            faults = self.faults
            if faults.http_count <= 0 or not path.startswith(faults.path_prefix):
                return 0
            faults.http_count -= 1
            return faults.http_status

    def take_task_fault(self) -> bool:
        with self.lock:
            if self.faults.fail_tasks <= 0:
                return False
            self.faults.fail_tasks -= 1
            return True
