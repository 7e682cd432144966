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
from globus_auto.settings.model import GLOBUS_TASKS_PER_USER, GlobusMailChoice

# A list of files goes in documents of at most this many items and bytes,
# several tasks (or runs) if need be: a huge JSON document is slow for Globus to
# accept and for this tool to build. Globus does not document the largest body
# it accepts (unverified; its FAQ allows 100 million files per task, which only
# a recursive item reaches), so the bound is half of what the emulator refuses
# (8 MiB, emulator/server.py), and a refused document is split
# (SPLIT_REFUSED_ABOVE).
MAX_ITEMS_PER_TASK = 100_000
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
ITEM_OVERHEAD = 128  # the JSON of one transfer_item besides its two paths
# A refused document of more files than this is split in two and its first half
# submitted at once; a smaller one is not refused for its size (4096-byte paths
# would need 1,000 to fill 8 MiB), so its refusal is reported as it is.
SPLIT_REFUSED_ABOVE = 1_000
LABEL_MAX = 128

# Error event codes that say a destination path has the other type: a folder
# where a file goes (IS_A_DIRECTORY, NOT_A_FILE) or a file where a folder must
# be (NOT_A_DIRECTORY, IS_A_FILE); in Globus's list of event codes (Aaron
# Schaer of Globus, developer-discuss list, 2020-04-23, "Event Document error
# codes"). Whether Globus retries such a path until the deadline or fails the
# task is not documented (unverified): both are handled. No waiting cures them,
# so a task must not carry such a file again while the destination is so.
FOLDER_IN_THE_WAY = frozenset({"IS_A_DIRECTORY", "NOT_A_FILE"})
FILE_IN_THE_WAY = frozenset({"NOT_A_DIRECTORY", "IS_A_FILE"})
TYPE_CONFLICTS = FOLDER_IN_THE_WAY | FILE_IN_THE_WAY
# Other errors of one destination path that no retry cures by itself: a name
# the destination refuses, and PERMISSION_DENIED, which is the destination's
# when the task skips source errors (docs.globus.org/api/transfer/
# task_behavior "Skippable Errors": only source paths are skipped).
ITEM_REFUSED = frozenset({"INVALID_PATH_NAME", "PERMISSION_DENIED"})


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


def within_document(
    files: Iterable[PendingFile],
    source_dir: str,
    destination_dir: str,
    *,
    max_items: int | None = None,
    max_bytes: int | None = None,
) -> list[PendingFile]:
    """The leading ``files`` whose items fit one document (at least one); the
    bounds default to MAX_ITEMS_PER_TASK and MAX_DOCUMENT_BYTES.

    Reads ``files`` only as far as it needs. Each item is counted as its two
    paths as JSON writes them (non-ASCII names grow) plus ITEM_OVERHEAD.
    """
    max_items = MAX_ITEMS_PER_TASK if max_items is None else max_items
    max_bytes = MAX_DOCUMENT_BYTES if max_bytes is None else max_bytes
    chosen: list[PendingFile] = []
    size = 0
    for f in files:
        item = ITEM_OVERHEAD + sum(
            json_length(collection_path(base, f.path))
            for base in (source_dir, destination_dir)
        )
        if chosen and (len(chosen) >= max_items or size + item > max_bytes):
            break
        chosen.append(f)
        size += item
    return chosen


def json_length(text: str) -> int:
    """How many characters JSON (ASCII only, as globus-sdk sends it) takes to
    write ``text``, quotes included: a non-ASCII character is a \\u escape."""
    if text.isascii() and text.isprintable():
        return len(text) + 2 + text.count('"') + text.count("\\")
    length = 2
    for ch in text:
        code = ord(ch)
        if code >= 0x10000:
            length += 12  # a surrogate pair
        elif code > 0x7E or (code < 0x20 and ch not in "\n\r\t\b\f"):
            length += 6
        else:
            length += 2 if ch in '"\\\n\r\t\b\f' else 1
    return length


def task_label(job_name: str) -> str:
    """``globus-auto <job>``, fit to Globus's label rules (one line, 128 chars)."""
    clean = "".join(ch if ch.isprintable() else " " for ch in job_name)
    return f"globus-auto {clean}"[:LABEL_MAX]


# One token of a bare name that means the same to gitignore and to a Globus
# filter rule: a plain character, '*' (never '**'), '?', or a simple group
# such as [0-9] or [!a] (never gitignore's [^a], which Globus does not list).
_NAME_TOKEN = r"(?:[^*?\[\]\\/]|\*(?!\*)|\?|\[!?[^\]\[\\/^!][^\]\[\\/]*\])"
# A bare name (no '/', not starting with '!', '#' or a space) whose gitignore
# meaning is a Globus filter rule's; a leading '**/' adds nothing to it.
_GLOBUS_RULE = re.compile(rf"(?:\*\*/)*(?P<name>(?![!# ]){_NAME_TOKEN}+)")


def name_only_patterns(patterns: Sequence[str]) -> tuple[str, ...] | None:
    """The EXCLUDE patterns as Globus exclude filter rules, in order, or None
    when one cannot be one exactly.

    A Globus filter rule matches an item's *name* at any depth, with ``*``,
    ``?``, ``[...]`` and ``[!...]`` (globus-sdk's ``TransferData.
    add_filter_rule`` docstring; docs.globus.org/api/transfer/task_submit);
    a gitignore pattern without a
    ``/`` matches names at any depth the same way, and so does one that only
    adds a leading ``**/``: ``cache``, ``*.tmp`` and ``**/core.[0-9]`` become
    rules ``cache``, ``*.tmp`` and ``core.[0-9]``. What a plain exclude rule
    cannot say rules out a recursive transfer: a ``/`` inside (a path), a
    trailing ``/`` (folders only: the rule would drop files of that name too),
    a ``!`` re-include, a backslash escape.
    """
    names = []
    for pattern in patterns:
        found = _GLOBUS_RULE.fullmatch(pattern)
        if found is None:
            return None
        names.append(found["name"])
    return tuple(names)


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


def room_for_tasks(
    *,
    in_flight: int,
    recursive_in_flight: bool,
    job_limit: int,
    config_in_flight: int,
) -> int:
    """How many new tasks a job may submit now.

    ``in_flight``: the job's own tasks still running; ``job_limit``: its
    MAX_TASKS_IN_FLIGHT; ``config_in_flight``: the tasks of all the config's
    jobs in flight together. A recursive task carries everything, so nothing
    joins it. Why the shared cap: Globus works on 3 tasks of a user at once and
    queues the rest in submission order, so a job's extra task beyond 3 would
    only wait, ahead of another job's first. A job's first task never waits for
    other jobs (Globus queues it if need be), so no job is starved.
    """
    if recursive_in_flight:
        return 0
    shared = GLOBUS_TASKS_PER_USER - config_in_flight
    if in_flight == 0:
        shared = max(shared, 1)
    return max(0, min(job_limit - in_flight, shared))
