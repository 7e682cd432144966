"""The exception hierarchy and the documented exit codes.

Every error a user can meet is one of these; the top-level handler
(:mod:`globus_auto.cli.group`) prints its message (one line that says what to do
next) and exits with its code, and a run turns it into an alert of its kind.
Imports only :mod:`globus_auto.problems` (for the kinds).
"""

from __future__ import annotations

from typing import Any

from globus_auto.problems import Kind

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_LOGIN_REQUIRED = 3
EXIT_ENDPOINT_NOT_READY = 4
EXIT_TRANSFER_FAILED = 5
EXIT_GLOBUS_UNAVAILABLE = 6
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a process ended by Ctrl-C

EXIT_CODES_HELP = """\
\b
Exit codes:
    0  success, nothing to do, or skipped because another run holds the lock
    1  unexpected error (see the log), files that cannot be sent (see status),
       a run has held the lock too long, a file has not stopped changing
       for a day, or the state folder's disk is full
    2  usage or configuration error (also a state folder of another user,
       or a state folder that is a file)
    3  login or consent required
    4  a collection is not ready (offline, paused, a path missing)
    5  a transfer failed, Globus no longer knows a recorded task, or files
       are blocked at the destination (a folder where a file goes; see status)
    6  Globus is busy or unreachable (network, timeout, rate limit);
       the next run retries
  130  interrupted (Ctrl-C), 143 SIGTERM, 129 SIGHUP; the next run carries on safely"""


class GlobusAutoError(Exception):
    """Base of every error this tool reports to its user.

    Each class carries the exit code the command ends with and the kind of
    alert a run raises for it.
    """

    exit_code = EXIT_UNEXPECTED
    kind = Kind.UNEXPECTED


class ConfigError(GlobusAutoError):
    """The configuration file is missing, unreadable or invalid."""

    exit_code = EXIT_USAGE


class StateFolderError(ConfigError):
    """The state folder, or a file in it, belongs to another user (e.g. after
    one run with ``sudo``) or cannot be read or written by this one."""


class SourceError(GlobusAutoError):
    """The source directory is missing, unreadable or looks unmounted."""

    exit_code = EXIT_UNEXPECTED
    kind = Kind.SOURCE_PROBLEM


class DatastoreError(GlobusAutoError):
    """The datastore could not be opened or written."""

    exit_code = EXIT_UNEXPECTED
    kind = Kind.DATASTORE


class LoginRequired(GlobusAutoError):
    """A login or a consent is needed before the tool can talk to Globus."""

    exit_code = EXIT_LOGIN_REQUIRED
    kind = Kind.LOGIN_REQUIRED


class SessionRequired(LoginRequired):
    """A collection's policy asks for a login this one is not: a domain, an
    identity, MFA, a policy, or a fresh authentication.

    ``collection`` is the collection that asked, ``parameters`` Globus's
    ``authorization_parameters`` (plain values), for the login that meets them.
    """

    def __init__(
        self, message: str, *, collection: str | None, parameters: dict[str, Any]
    ) -> None:
        super().__init__(message)
        self.collection = collection
        self.parameters = parameters


class NotACollection(ConfigError):
    """An id in the config names a Globus Connect Server endpoint, not one of
    its collections: nothing can be transferred to or from it."""

    kind = Kind.CONFIG


class UnknownCollection(ConfigError):
    """An id in the config (SRC_ID or DST_ID) names no collection Globus knows:
    a typo or a deleted collection, which no waiting will fix."""

    kind = Kind.CONFIG


class EndpointNotReady(GlobusAutoError):
    """A collection is unknown, offline, paused or refuses the listing."""

    exit_code = EXIT_ENDPOINT_NOT_READY
    kind = Kind.ENDPOINT_NOT_READY


class TransferFailed(GlobusAutoError):
    """Globus reported a task FAILED, or a submission was refused."""

    exit_code = EXIT_TRANSFER_FAILED
    kind = Kind.TASK_FAILED


class DocumentTooLarge(TransferFailed):
    """Globus refused a submission for the size of its document (a list of
    files in two smaller tasks goes)."""


class TaskUnknown(GlobusAutoError):
    """Globus does not know a recorded task (404) or will not show it (403).

    E.g. its records expired, or the login is now another identity. Whether its
    files arrived cannot be known, so they are sent again.
    """

    exit_code = EXIT_TRANSFER_FAILED
    kind = Kind.TASK_FAILED


class GlobusUnavailable(GlobusAutoError):
    """Globus is busy or unreachable: the network failed or timed out, Globus
    answered 429 (too many requests) or a server error. Not a bug and not the
    config: the next run retries."""

    exit_code = EXIT_GLOBUS_UNAVAILABLE
    kind = Kind.GLOBUS_UNAVAILABLE


class ConfirmationNeeded(GlobusAutoError):
    """A command that asks before it changes something (``reset``) has no
    terminal to ask on, and was not given ``--yes``."""

    exit_code = EXIT_USAGE


class NotifyError(GlobusAutoError):
    """A mail or a heartbeat ping could not be delivered."""
