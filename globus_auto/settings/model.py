"""The settings as frozen dataclasses: what every other part reads of the config.

Plain values with no I/O beyond reading the SMTP password file on demand.
Imports only :mod:`globus_auto.errors`; finding, executing and validating the
config live in :mod:`.source` and :mod:`.validate`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import platformdirs

from globus_auto.errors import ConfigError

APP_NAME = "globus_auto"
CONFIG_ENV = "GLOBUS_AUTO_CONFIG"
CLIENT_SECRET_ENV = "GLOBUS_AUTO_CLIENT_SECRET"
DEFAULT_PASSWORD_ENV = "GLOBUS_AUTO_EMAIL_PASSWORD"
DEFAULT_JOB_NAME = "default"
DEFAULT_RECURSIVE_THRESHOLD = 1000
# Threads of the scan (stat, listing, reading): on NFS, Lustre and GPFS each
# metadata call waits for a server that can answer many at once.
DEFAULT_SCAN_THREADS = 16
MAX_SCAN_THREADS = 256
# Globus works on at most 3 transfer tasks of a user at once and queues the
# rest (docs.globus.org/api/transfer/task_behavior, "Queuing"; GLOBUS.md).
GLOBUS_TASKS_PER_USER = 3
DEFAULT_MAX_TASKS_IN_FLIGHT = 2  # leaves one of the user's 3 for the others

Security = Literal["starttls", "ssl", "none"]
SECURITY_VALUES: tuple[Security, ...] = ("starttls", "ssl", "none")
DEFAULT_PORTS: dict[str, int] = {"ssl": 465, "starttls": 587, "none": 25}


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the SMTP server; the password itself is never stored here."""

    host: str = "localhost"
    port: int | None = None  # None: 465 for ssl, 587 for starttls, 25 otherwise
    security: Security = "none"
    username: str | None = None
    password_file: Path | None = None
    password_env: str = DEFAULT_PASSWORD_ENV

    @property
    def effective_port(self) -> int:
        """The configured port, or the usual one for the security mode."""
        return self.port if self.port is not None else DEFAULT_PORTS[self.security]

    def password(self, environ: Mapping[str, str] | None = None) -> str | None:
        """Read the SMTP password now: from ``password_file`` (one trailing
        newline stripped) if set, else from the ``password_env`` variable.

        Returns None when neither gives one. A file that cannot be read raises
        ConfigError naming the file (never its content).
        """
        if self.password_file is not None:
            try:
                text = self.password_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"EMAIL_PASSWORD_FILE: cannot read {self.password_file}: "
                    f"{getattr(exc, 'strerror', None) or type(exc).__name__}"
                ) from None
            return text.rstrip("\r\n") or None
        env = os.environ if environ is None else environ
        return env.get(self.password_env) or None


@dataclass(frozen=True)
class Job:
    """One source directory kept mirrored (as a superset) into one destination."""

    name: str
    src_id: str
    src_dir: str
    src_local_dir: Path
    dst_id: str
    dst_dir: str
    exclude: tuple[str, ...] = ()
    min_age: float = 0.0
    recursive_threshold: int = DEFAULT_RECURSIVE_THRESHOLD
    email_recipients: tuple[str, ...] = ()
    max_tasks_in_flight: int = DEFAULT_MAX_TASKS_IN_FLIGHT

    @property
    def identity(self) -> str:
        """A stable key from both endpoints and both paths.

        Why: pointing a job at a new destination must start it afresh. JSON keeps
        the key unambiguous whatever characters the paths contain.
        """
        return json.dumps(
            [self.src_id, self.src_dir, self.dst_id, self.dst_dir],
            ensure_ascii=False,
            separators=(",", ":"),
        )


@dataclass(frozen=True)
class GlobusMailChoice:
    """``GLOBUS_NOTIFY_ON_SUCCEEDED``/``_FAILED``/``_INACTIVE``: whether Globus
    itself mails the task's owner; None (unset) lets the tool decide."""

    EVENTS: ClassVar[tuple[str, ...]] = ("SUCCEEDED", "FAILED", "INACTIVE")

    on_succeeded: bool | None = None
    on_failed: bool | None = None
    on_inactive: bool | None = None


# Seconds for each whole call to Globus, its retries included: enough to list
# a folder of 100,000 entries or send a document of several MB on a slow
# link; short enough that a hung service ends the run (exit 6) before cron's
# next runs pile up behind its lock.
DEFAULT_GLOBUS_TIMEOUT = 300.0


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything loaded from one config file. Secrets stay out of ``repr``."""

    config_path: Path
    client_id: str | None
    client_secret: str | None = field(repr=False)
    state_dir: Path
    email_sender: str | None
    smtp: SmtpSettings
    alert_repeat_hours: float = 24.0
    task_stuck_hours: float = 24.0
    heartbeat_url: str | None = None
    # Alert channels besides mail: Apprise URLs (they hold tokens) and a command.
    notify_urls: tuple[str, ...] = field(default=(), repr=False)
    on_alert_command: tuple[str, ...] = ()  # argv; empty: none
    notify_timeout: float = 20.0  # seconds for each notification call
    globus_timeout: float = DEFAULT_GLOBUS_TIMEOUT  # GLOBUS_TIMEOUT
    alert_after_failures: int = 2  # runs in a row before a passing kind alerts
    metrics_file: Path | None = None  # a node_exporter textfile-collector file
    auth_keepalive_days: float = 30.0
    scan_threads: int = DEFAULT_SCAN_THREADS  # 1: the serial walk
    globus_mails: GlobusMailChoice = GlobusMailChoice()
    jobs: tuple[Job, ...]
    notes: tuple[str, ...] = ()
    # Secrets others may read: shown by `check`, logged by every run.
    warnings: tuple[str, ...] = ()

    def recipients_for(self, job_name: str) -> tuple[str, ...]:
        """Who is mailed about a job: its own recipients (every job has the
        global EMAIL_RECIPIENTS unless it names its own), nobody without an
        EMAIL_SENDER; for a name no job has, everyone's."""
        if not self.email_sender:
            return ()
        job = self.job_named(job_name)
        if job is not None:
            return job.email_recipients
        return tuple(dict.fromkeys(a for j in self.jobs for a in j.email_recipients))

    def job_named(self, name: str) -> Job | None:
        """The job called ``name``, or None."""
        return next((job for job in self.jobs if job.name == name), None)

    def job(self, name: str) -> Job:
        """The job called ``name``; ConfigError listing the known jobs if absent."""
        found = self.job_named(name)
        if found is not None:
            return found
        known = ", ".join(job.name for job in self.jobs) or "none"
        raise ConfigError(
            f"{self.config_path}: no job named {name!r}; known jobs: {known}"
        )


def default_config_path() -> Path:
    """``config.py`` in the platformdirs user config folder for globus_auto."""
    return platformdirs.user_config_path(APP_NAME) / "config.py"


def default_state_dir() -> Path:
    """The platformdirs user state folder for globus_auto."""
    return platformdirs.user_state_path(APP_NAME)
