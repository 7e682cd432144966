"""Pure decisions: what one transfer should carry, and how to describe it.

Nothing here touches the filesystem, the datastore or the network: a run
(:mod:`.tasks`) feeds these functions plain values and executes what they
return. Imports only the datastore's plain records.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from globus_auto.datastore.records import PendingFile
from globus_auto.settings.model import GlobusMailChoice

# More items than this in one submission is split over several runs: a huge
# JSON document is slow for Globus to accept and for this tool to build.
MAX_ITEMS_PER_TASK = 100_000
LABEL_MAX = 128


@dataclass(frozen=True)
class TransferItem:
    """One ``transfer_item``: a file, or a directory copied recursively."""

    source: str
    destination: str
    recursive: bool = False


@dataclass(frozen=True)
class GlobusMails:
    """Which of Globus's own mails a task asks for (its ``notify_on_*``)."""

    on_succeeded: bool = False
    on_failed: bool = False
    on_inactive: bool = False


def globus_mails(
    configured: GlobusMailChoice, tool_alerts_someone: bool
) -> GlobusMails:
    """The ``notify_on_*`` of a job's tasks.

    Why: Globus mails the task's owner for every task unless told not to (all
    three default to true: globus-sdk ``TransferData``); from cron that is
    dozens of mails a day (brockpalen/archivetar issue 26). A success is never
    worth a mail: the tool tracks delivery. A failed or suspended task is
    worth Globus's mail only when the tool has nobody to alert itself, so
    somebody is told. Each can be set in the config.
    """

    def choose(value: bool | None, default: bool) -> bool:
        return default if value is None else value

    return GlobusMails(
        on_succeeded=choose(configured.on_succeeded, False),
        on_failed=choose(configured.on_failed, not tool_alerts_someone),
        on_inactive=choose(configured.on_inactive, not tool_alerts_someone),
    )


@dataclass(frozen=True)
class TransferPlan:
    """One Globus transfer task to submit for a job."""

    source_id: str
    destination_id: str
    label: str
    items: tuple[TransferItem, ...]
    recursive: bool
    files: tuple[PendingFile, ...] | None  # None: every pending file (recursive)
    count: int
    bytes: int
    exclude_names: tuple[str, ...] = ()  # filter rules for a recursive item
    mails: GlobusMails = GlobusMails()  # Globus's own per-task mails


def collection_path(base: str, relpath: bytes) -> str:
    """The path on a collection of a file given relative to the job's directory."""
    return posixpath.join(base, relpath.decode("utf-8"))


def relative_path(base: str, path: str) -> bytes | None:
    """Inverse of :func:`collection_path`; None for a path outside ``base``."""
    prefix = base.rstrip("/") + "/"
    if not path.startswith(prefix):
        return None
    return path[len(prefix) :].encode("utf-8")


def task_label(job_name: str) -> str:
    """``globus-auto <job>``, fit to Globus's label rules (one line, 128 chars)."""
    clean = "".join(ch if ch.isprintable() else " " for ch in job_name)
    return f"globus-auto {clean}"[:LABEL_MAX]


_SUFFIX_PATTERN = re.compile(r"\*[^*?\[\]/]*")


def name_only_patterns(patterns: Sequence[str]) -> tuple[str, ...] | None:
    """The patterns as Globus filter rules, or None if one cannot be one.

    EXCLUDE patterns match paths relative to the source root; a Globus filter
    rule matches a file or directory *name* at any depth. The two agree only
    for a pattern like ``*.tmp`` (a star, then a plain suffix): a path ends in
    ``.tmp`` exactly when its name does. ``cache`` (top level only as a path,
    every depth as a name) or ``*o*r`` do not agree, so they rule out a
    recursive transfer.
    """
    if all(_SUFFIX_PATTERN.fullmatch(p) for p in patterns):
        return tuple(patterns)
    return None


def may_recurse(exclude: Sequence[str], young_files: int, problem_files: int) -> bool:
    """Whether one recursive item would carry exactly what should be sent.

    A recursive copy takes everything Globus sees, so it is used only when
    nothing in the tree must be held back: no too-young files (MIN_AGE), no
    files the scan could not handle, and exclusions that filter rules express.
    """
    return (
        young_files == 0
        and problem_files == 0
        and (name_only_patterns(exclude) is not None)
    )


def file_plan(
    *,
    job_name: str,
    source_id: str,
    source_dir: str,
    destination_id: str,
    destination_dir: str,
    files: Iterable[PendingFile],
    mails: GlobusMails,
) -> TransferPlan:
    """A task carrying each file as its own item."""
    chosen = tuple(files)
    items = tuple(
        TransferItem(
            collection_path(source_dir, f.path),
            collection_path(destination_dir, f.path),
        )
        for f in chosen
    )
    return TransferPlan(
        source_id=source_id,
        destination_id=destination_id,
        label=task_label(job_name),
        items=items,
        recursive=False,
        files=chosen,
        count=len(chosen),
        bytes=sum(f.size for f in chosen),
        mails=mails,
    )


def directory_plan(
    *,
    job_name: str,
    source_id: str,
    source_dir: str,
    destination_id: str,
    destination_dir: str,
    count: int,
    size: int,
    exclude: Sequence[str],
    mails: GlobusMails,
) -> TransferPlan:
    """A task carrying the whole source directory as one recursive item."""
    return TransferPlan(
        source_id=source_id,
        destination_id=destination_id,
        label=task_label(job_name),
        items=(TransferItem(source_dir, destination_dir, recursive=True),),
        recursive=True,
        files=None,
        count=count,
        bytes=size,
        exclude_names=name_only_patterns(exclude) or (),
        mails=mails,
    )


def choose_mode(pending_count: int, threshold: int, recursion_allowed: bool) -> str:
    """``"directory"`` if many files changed and recursion is safe, else ``"files"``."""
    if pending_count > threshold and recursion_allowed:
        return "directory"
    return "files"
