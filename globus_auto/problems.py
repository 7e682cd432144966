"""The run's vocabulary and the users' wording: kinds of problem, and problems.

A run reports what went wrong as :class:`Problem` values, in words meant for
the person who gets the mail; the alert policy de-duplicates them per (job,
:class:`Kind`). The wording of every kind lives here, in one place: the
summary of each kind and what to do about it. Imports nothing of the project
at run time (the settings only for type checking), so every layer may use it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from globus_auto.settings.model import Job, Settings


class Kind(str, Enum):
    """The kinds of problem a run can report; one open alert per job and kind."""

    ENDPOINT_NOT_READY = "endpoint-not-ready"
    LOGIN_REQUIRED = "login-required"
    TASK_FAILED = "task-failed"
    TASK_STUCK = "task-stuck"
    TASK_INACTIVE = "task-inactive"  # Globus suspended a task (credentials)
    SKIPPED = "skipped-by-globus"  # Globus skipped files that are still there
    SOURCE_PROBLEM = "source-problem"  # the source is missing or unmounted
    UNSENDABLE = "unsendable-files"  # some files in it cannot be sent as they are
    BLOCKED = "blocked-at-destination"  # a folder where a file goes, or the reverse
    UNSETTLED = "never-settles"  # a file changed at every scan for a day
    DATASTORE = "datastore"
    STATE_DISK = "state-disk"  # the state folder's disk is full or failing
    RUN_STUCK = "run-stuck"  # a run has held the job's lock too long
    CONFIG = "config-error"  # SRC_ID/DST_ID unknown to Globus, or not a collection
    GLOBUS_UNAVAILABLE = "globus-unavailable"  # network, timeout, 429, 5xx
    UNEXPECTED = "unexpected"


AlertKey = tuple[str, Kind]


@dataclass(frozen=True)
class Problem:
    """Something a run found wrong for one job, in words meant for its user."""

    job: str
    kind: Kind
    summary: str  # short, for the subject: "[globus-auto] <job>: <summary>"
    what_happened: str
    what_to_do: str  # exact commands where possible
    next_attempt: str  # e.g. "The next cron run will try again."
    pending_files: int = 0  # what has not been delivered yet
    pending_bytes: int = 0

    @property
    def key(self) -> AlertKey:
        return (self.job, self.kind)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, for the datastore."""
        values = dataclasses.asdict(self)
        values["kind"] = self.kind.value
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Problem:
        """The inverse of ``to_dict``."""
        return cls(**{**values, "kind": Kind(values["kind"])})


SUMMARIES = {
    Kind.ENDPOINT_NOT_READY: "a collection is not ready",
    Kind.LOGIN_REQUIRED: "Globus login or consent required",
    Kind.TASK_FAILED: "a transfer failed",
    Kind.TASK_STUCK: "a transfer is not progressing",
    Kind.TASK_INACTIVE: "Globus suspended a transfer: a login is needed",
    Kind.SKIPPED: "Globus could not read some files",
    Kind.SOURCE_PROBLEM: "the source directory is not usable",
    Kind.UNSENDABLE: "some files cannot be sent",
    Kind.BLOCKED: "some files are blocked at the destination",
    Kind.UNSETTLED: "a file never stops changing",
    Kind.DATASTORE: "the datastore is not usable",
    Kind.STATE_DISK: "the disk holding the state folder is full or failing",
    Kind.RUN_STUCK: "a run has not finished",
    Kind.CONFIG: "SRC_ID or DST_ID names no usable collection",
    Kind.GLOBUS_UNAVAILABLE: "Globus is busy or unreachable",
    Kind.UNEXPECTED: "an unexpected error",
}


def what_to_do(kind: Kind, settings: Settings, job: Job) -> str:
    """The commands that fix a problem of ``kind`` for ``job``, for the mail."""
    config = f"--config {settings.config_path}"
    status = f"globus-auto {config} status --job {job.name}"
    check = f"globus-auto {config} check"  # shows the cause of most problems
    if kind is Kind.LOGIN_REQUIRED:
        if settings.client_secret:
            return (
                "Check that the service account's client id and secret are valid and "
                f"that it has access to both collections, then run: {check}"
            )
        # Raised by Globus calls, which a job without a stored login never
        # reaches (engine/login_gate.py stops it first): so "again".
        return login_what_to_do(settings, first=False)
    if kind is Kind.CONFIG:
        return (
            f"Fix SRC_ID or DST_ID of job {job.name} in {settings.config_path} "
            "(copy the collection's id from app.globus.org → Collections), then "
            f"run: {check}"
        )
    if kind is Kind.GLOBUS_UNAVAILABLE:
        return (
            "Nothing, if it passes: the next run retries and loses nothing. If it "
            "persists, check this machine's network and proxy settings and "
            f"https://status.globus.org, then run: {check}"
        )
    if kind is Kind.ENDPOINT_NOT_READY:
        return (
            f"Check that collections {job.src_id} and {job.dst_id} are online and "
            f"that the paths exist, then run: {check}"
        )
    if kind is Kind.SOURCE_PROBLEM:
        return f"Check that {job.src_local_dir} is mounted and readable, then: {check}"
    if kind is Kind.STATE_DISK:
        return (
            f"Free space on the disk holding {settings.state_dir} (df -h "
            f"{settings.state_dir}) or, if it has room, check it for errors "
            "(dmesg); nothing already recorded is lost. Then run: "
            f"{status}"
        )
    if kind is Kind.TASK_FAILED:
        return f"See the task at https://app.globus.org/activity and run: {status}"
    if kind is Kind.TASK_INACTIVE:
        renew = (
            "check that the service account still has access to both collections"
            if settings.client_secret
            else f"log in again on a terminal: globus-auto {config} login"
        )
        return (
            f"Globus needs fresh credentials for it: {renew}, and renew the "
            "collection's credentials if app.globus.org/activity asks you to. The "
            "task then resumes; nothing is lost meanwhile."
        )
    if kind is Kind.BLOCKED:
        return (
            f"On collection {job.dst_id}, move aside or remove each destination path "
            "named (a folder where the source now has a file, or a file where the "
            "source now has a folder), e.g. in app.globus.org → File Manager; for "
            "PERMISSION_DENIED or INVALID_PATH_NAME, let your identity write there "
            f"or rename the item in {job.src_local_dir}. The next run sends it. "
            f"List them with: {status}"
        )
    if kind is Kind.UNSETTLED:
        settled = (
            f"has not changed for MIN_AGE ({job.min_age:g} s)"
            if job.min_age > 0
            else "stops changing while it is read"
        )
        return (
            "If it is written all the time (a live log, a database), add it to "
            f"EXCLUDE of job {job.name} in {settings.config_path} and let a copy "
            "made when it is complete be sent instead; else find what keeps "
            f"writing it. It is sent as soon as it {settled}. List them with: "
            f"{status}"
        )
    if kind is Kind.SKIPPED:
        return (
            f"Check that collection {job.src_id} can read them (their permissions "
            "for the account the collection maps your identity to, and that "
            "SRC_DIR on the collection is the folder src_local_dir is here); "
            f"list the files waiting with: {status}"
        )
    return f"Run {status} and read the log in {settings.state_dir}"


def login_what_to_do(settings: Settings, *, first: bool) -> str:
    """What to do when a run needs a person's login: ``Log in ...`` when
    ``first`` (no login was ever stored), ``Log in again ...`` when the stored
    one lapsed, was refused or does not cover a collection."""
    verb = "Log in" if first else "Log in again"
    return f"{verb} on a terminal: {login_command(settings)}"


def session_what_to_do(settings: Settings) -> str:
    """What to do when a collection's session policy refuses the login."""
    if settings.client_secret:
        return (
            "A service account (a client identity) cannot meet a collection's "
            "session policy (a domain, MFA, a recent login). Ask the collection's "
            "administrators for a guest collection the service account may use, "
            "or use a user login instead: remove CLIENT_SECRET and run on a "
            f"terminal: {login_command(settings)}"
        )
    return (
        "Log in again on a terminal; the login asks Globus for what the "
        f"collection requires: {login_command(settings)}"
    )


def unexpected_problem(job: str, error: BaseException, log_path: str) -> Problem:
    """The alert for an error nobody anticipated, pointing at the log."""
    return Problem(
        job=job,
        kind=Kind.UNEXPECTED,
        summary=SUMMARIES[Kind.UNEXPECTED],
        what_happened=f"{type(error).__name__}: {error}",
        what_to_do=(
            f"Read the traceback in the log {log_path}; if the error persists, "
            "report it with that traceback."
        ),
        next_attempt="The next scheduled run will try again.",
    )


def corrupt_problems(settings: Settings, reason: str, aside: Path) -> list[Problem]:
    """One problem per job: the datastore was unreadable and was started afresh."""
    return [
        Problem(
            job=job.name,
            kind=Kind.DATASTORE,
            summary="the datastore was corrupt and was reset",
            what_happened=f"{reason}. It was moved to {aside}.",
            what_to_do="Nothing is needed: the tool started afresh and sends "
            "everything again with a checksum sync, which skips what the "
            "destination already has. Keep the moved file for a bug report.",
            next_attempt="This run carries on with a fresh datastore.",
        )
        for job in settings.jobs
    ]


def datastore_unusable_problem(
    settings: Settings, job: str, error: BaseException
) -> Problem:
    """The datastore cannot be opened or written: no job could run."""
    return Problem(
        job=job,
        kind=Kind.DATASTORE,
        summary=SUMMARIES[Kind.DATASTORE],
        what_happened=f"{error}. No job ran.",
        what_to_do=(
            f"Check that {settings.state_dir} is writable by this user and "
            "that its disk has free space, then run: globus-auto --config "
            f"{settings.config_path} check"
        ),
        next_attempt="The next scheduled run will try again.",
    )


def login_command(settings: Settings) -> str:
    """The exact command a person runs to log in again."""
    return f"globus-auto --config {settings.config_path} login"
