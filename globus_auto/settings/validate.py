"""Turn an executed config's namespace into :class:`Settings`, or say every problem.

Every problem found is collected and reported in one :class:`ConfigError`, one
line per problem, each naming the file and the variable, with a fix and a "did
you mean" where one fits; unknown names are refused. Imports :mod:`.model`,
:mod:`.values` (the checks of single values), :mod:`.channels` (the SMTP and
heartbeat settings) and :mod:`.overlap` (destinations that would lose data).
"""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from globus_auto.errors import ConfigError
from globus_auto.settings.channels import ChannelChecker
from globus_auto.settings.model import (
    CLIENT_SECRET_ENV,
    DEFAULT_GLOBUS_TIMEOUT,
    DEFAULT_JOB_NAME,
    DEFAULT_MAX_TASKS_IN_FLIGHT,
    DEFAULT_PASSWORD_ENV,
    DEFAULT_RECURSIVE_THRESHOLD,
    GLOBUS_TASKS_PER_USER,
    GlobusMailChoice,
    Job,
    Settings,
    default_state_dir,
)
from globus_auto.settings.overlap import OverlapChecker
from globus_auto.settings.values import (
    MISSING,
    describe,
    suggest,
)

JOB_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")

# The original LBNL script's names (and SRC_LOCAL_DIR), which describe the job
# named "default".
SEED_JOB_NAMES = ("SRC_ID", "SRC_DIR", "DST_ID", "DST_DIR", "SRC_LOCAL_DIR")
# The original LBNL script's names kept for compatibility and ignored, with
# the reason given in a note.
IGNORED_NAMES = {
    "CODE_PATH": "globus-auto is an installed package; cron runs the `globus-auto`"
    " command directly (see crontab.example)",
    "PYTHON_PATH": "cron runs the `globus-auto` console script, which already knows"
    " its Python interpreter",
    # The fixed names at the end of the original script's template (and of its
    # later, timestamp-based version): globus-auto has its own for each.
    "EMAIL_SUBJECT": "globus-auto writes its own subjects ('[globus-auto] <job>: "
    "<what happened>')",
    "TOKEN_PATH": "the login is tokens.json in STATE_DIR (`globus-auto upgrade "
    "--from DIR` imports the old refresh_token)",
    "SHELF_NAME": "globus-auto keeps its own datastore in STATE_DIR; the old one "
    "is not reused",
    "SHELF_PATH": "globus-auto keeps its own datastore in STATE_DIR; the old one "
    "is not reused",
    "SHELF_TIMESTAMP_KEY": "globus-auto keeps its own datastore in STATE_DIR",
    "SHELF_TRIE_KEY": "globus-auto keeps its own datastore in STATE_DIR",
    "LOG_PATH": "the log is globus-auto.log in STATE_DIR",
    "DATE_FORMAT": "globus-auto writes ISO 8601 times in UTC",
}
GLOBAL_NAMES = (
    "CLIENT_ID",
    "CLIENT_SECRET",
    "STATE_DIR",
    "EXCLUDE",
    "MIN_AGE",
    "RECURSIVE_THRESHOLD",
    "MAX_TASKS_IN_FLIGHT",
    "EMAIL_SENDER",
    "EMAIL_RECIPIENTS",
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_SECURITY",
    "EMAIL_USERNAME",
    "EMAIL_PASSWORD_FILE",
    "EMAIL_PASSWORD_ENV",
    "ALERT_REPEAT_HOURS",
    "TASK_STUCK_HOURS",
    "HEARTBEAT_URL",
    "NOTIFY_URLS",
    "ON_ALERT_COMMAND",
    "NOTIFY_TIMEOUT",
    "GLOBUS_TIMEOUT",
    "ALERT_AFTER_FAILURES",
    "METRICS_FILE",
    "AUTH_KEEPALIVE_DAYS",
    "SCAN_THREADS",
    "GLOBUS_NOTIFY_ON_SUCCEEDED",
    "GLOBUS_NOTIFY_ON_FAILED",
    "GLOBUS_NOTIFY_ON_INACTIVE",
    "TRANSFERS",
)
KNOWN_NAMES = frozenset(SEED_JOB_NAMES + GLOBAL_NAMES + tuple(IGNORED_NAMES))

JOB_REQUIRED_KEYS = ("name", "src_id", "src_dir", "dst_id", "dst_dir")
JOB_OPTIONAL_KEYS = (
    "src_local_dir",
    "exclude",
    "min_age",
    "recursive_threshold",
    "email_recipients",
    "max_tasks_in_flight",
)
JOB_KEYS = JOB_REQUIRED_KEYS + JOB_OPTIONAL_KEYS

COLLECTION_UUID_FIX = "copy the collection's UUID from app.globus.org"
CLIENT_ID_FIX = "copy the Client UUID from app.globus.org/settings/developers"


def _is_ignorable(name: str, value: object) -> bool:
    """Private names, modules, functions and classes are not settings.

    Why: a config may ``import os`` or define helpers, as any Python file can.
    """
    return (
        name.startswith("_")
        or isinstance(value, types.ModuleType)
        or callable(value)  # functions and classes, defined or imported
    )


def _entry_label(where: str, key: str) -> str:
    return f"{where}.{key}"


class _Validator(ChannelChecker, OverlapChecker):
    """Turns an executed config namespace into Settings, collecting problems."""

    def settings(self) -> Settings:
        """Validate everything, then build Settings or raise one ConfigError
        (one line per setting: long because the settings are many)."""
        self.check_names()
        client_id = self.required_uuid(
            "CLIENT_ID", self.get("CLIENT_ID"), CLIENT_ID_FIX
        )
        client_secret = self.client_secret()
        state_dir = self.local_dir("STATE_DIR", self.get("STATE_DIR"))
        email_sender = self.optional_address("EMAIL_SENDER", self.get("EMAIL_SENDER"))
        smtp = self.smtp()
        alert_repeat = self.time(
            "ALERT_REPEAT_HOURS", self.get("ALERT_REPEAT_HOURS"), 24.0
        )
        stuck = self.time("TASK_STUCK_HOURS", self.get("TASK_STUCK_HOURS"), 24.0)
        heartbeat = self.heartbeat_url()
        notify_urls = self.notify_urls("NOTIFY_URLS", self.get("NOTIFY_URLS"))
        on_alert = self.command("ON_ALERT_COMMAND", self.get("ON_ALERT_COMMAND"))
        notify_timeout = self.seconds_above_zero("NOTIFY_TIMEOUT", 20.0)
        globus_timeout = self.seconds_above_zero(
            "GLOBUS_TIMEOUT", DEFAULT_GLOBUS_TIMEOUT
        )
        after_failures = self.count_from_one("ALERT_AFTER_FAILURES", 2)
        metrics_file = self.prom_file("METRICS_FILE", self.get("METRICS_FILE"))
        keepalive = self.time(
            "AUTH_KEEPALIVE_DAYS", self.get("AUTH_KEEPALIVE_DAYS"), 30.0
        )
        scan_threads = self.scan_threads("SCAN_THREADS", self.get("SCAN_THREADS"))
        globus_mails = GlobusMailChoice(
            *(self.flag(f"GLOBUS_NOTIFY_ON_{e}") for e in GlobusMailChoice.EVENTS)
        )
        jobs = self.jobs()
        if email_sender is None and any(job.email_recipients for job in jobs):
            self.problem(
                "EMAIL_SENDER",
                "not set, but e-mail recipients are; set the From address, "
                "e.g. EMAIL_SENDER = 'globus-auto@your.host'",
            )
        if self.problems:
            raise ConfigError("\n".join(self.problems))
        return Settings(
            config_path=self.path,
            client_id=client_id,
            client_secret=client_secret,
            state_dir=state_dir or default_state_dir(),
            email_sender=email_sender,
            smtp=smtp,
            alert_repeat_hours=alert_repeat,
            task_stuck_hours=stuck,
            heartbeat_url=heartbeat,
            notify_urls=notify_urls,
            on_alert_command=on_alert,
            notify_timeout=notify_timeout,
            globus_timeout=globus_timeout,
            alert_after_failures=after_failures,
            metrics_file=metrics_file,
            auth_keepalive_days=keepalive,
            scan_threads=scan_threads,
            globus_mails=globus_mails,
            jobs=jobs,
            notes=tuple(self.notes),
        )

    # names --------------------------------------------------------------------

    def check_names(self) -> None:
        """Reject unknown and misspelled names; note the ignored names of the
        original LBNL script."""
        for name, value in self.ns.items():
            if name in IGNORED_NAMES:
                self.notes.append(
                    f"{name} is accepted but ignored: {IGNORED_NAMES[name]}"
                )
            elif name == "EMAIL_PASSWORD":
                self.problem(
                    name,
                    "a password must not be stored in the config; put it in a file "
                    "(mode 0600) named by EMAIL_PASSWORD_FILE, or in the environment "
                    f"variable {DEFAULT_PASSWORD_ENV} (name set by EMAIL_PASSWORD_ENV)",
                )
            elif name in KNOWN_NAMES or _is_ignorable(name, value):
                continue
            elif name.isupper():
                self.problem(
                    name,
                    "unknown name"
                    + (
                        suggest(name, KNOWN_NAMES)
                        or "; see config.example.py for the names"
                    ),
                )
            elif name.upper() in KNOWN_NAMES:
                self.problem(
                    name, f"names are upper case; did you mean {name.upper()}?"
                )

    # scalar checks ----------------------------------------------------------------

    # globals --------------------------------------------------------------------

    def client_secret(self) -> str | None:
        """The environment variable wins, so the secret need not be in the file."""
        from_env = self.environ.get(CLIENT_SECRET_ENV)
        if from_env:
            return from_env.strip()
        value = self.get("CLIENT_SECRET")
        if value is MISSING or value is None:
            return None
        if isinstance(value, str) and value.strip():
            return value.strip()
        # Never echo the value: it may be a secret.
        self.problem(
            "CLIENT_SECRET", f"must be a non-empty string, not {type(value).__name__}"
        )
        return None

    def prom_file(self, where: str, value: object) -> Path | None:
        """An absolute path ending in ``.prom``, or None if unset or wrong.

        Why the suffix: node_exporter's textfile collector reads only ``*.prom``
        files, so any other name would be written and never seen.
        """
        path = self.local_dir(where, value)
        if path is not None and path.suffix != ".prom":
            self.problem(
                where,
                f"{str(path)!r} does not end in .prom, the only files node_exporter's "
                "textfile collector reads; e.g. "
                "'/var/lib/node_exporter/textfile_collector/globus_auto.prom'",
            )
            return None
        return path

    # jobs ------------------------------------------------------------------------

    def jobs(self) -> tuple[Job, ...]:
        """The job of the original LBNL script's names (if they are set), followed
        by TRANSFERS."""
        defaults = {
            "exclude": self.patterns("EXCLUDE", self.get("EXCLUDE")),
            "min_age": self.time("MIN_AGE", self.get("MIN_AGE"), 0.0),
            "recursive_threshold": int(
                self.number(
                    "RECURSIVE_THRESHOLD",
                    self.get("RECURSIVE_THRESHOLD"),
                    DEFAULT_RECURSIVE_THRESHOLD,
                    integer=True,
                )
            ),
            "email_recipients": self.recipients(
                "EMAIL_RECIPIENTS", self.get("EMAIL_RECIPIENTS")
            ),
            "max_tasks_in_flight": self.tasks_in_flight(
                "MAX_TASKS_IN_FLIGHT", self.get("MAX_TASKS_IN_FLIGHT")
            ),
        }
        placed: list[tuple[Job, Callable[[str], str]]] = []
        seed = self.seed_job(defaults)
        if seed is not None:
            placed.append((seed, str.upper))
        placed.extend(self.transfer_jobs(defaults))
        jobs = [job for job, _ in placed]
        if not jobs and not self.problems:
            self.problem(
                "SRC_ID, SRC_DIR, DST_ID, DST_DIR",
                "no job configured; set these four names for one job, or TRANSFERS "
                "for several (see config.example.py)",
            )
        self.check_unique(jobs)
        for job, label in placed:
            self.check_own_paths(job, label)
        self.check_destinations(placed)
        return tuple(jobs)

    def seed_job(self, defaults: Mapping[str, Any]) -> Job | None:
        if all(self.get(name) is MISSING for name in SEED_JOB_NAMES):
            return None
        values = {name.lower(): self.get(name) for name in SEED_JOB_NAMES}
        values["name"] = DEFAULT_JOB_NAME
        return self.build_job(values, defaults, lambda key: key.upper())

    def transfer_jobs(
        self, defaults: Mapping[str, Any]
    ) -> list[tuple[Job, Callable[[str], str]]]:
        """The jobs of TRANSFERS, each with how its keys are named in problems."""
        value = self.get("TRANSFERS")
        if value is MISSING or value is None:
            return []
        if not isinstance(value, (list, tuple)):
            self.problem("TRANSFERS", f"must be a list of dicts, not {describe(value)}")
            return []
        jobs: list[tuple[Job, Callable[[str], str]]] = []
        for i, entry in enumerate(value):
            where = f"TRANSFERS[{i}]"
            if not isinstance(entry, Mapping):
                self.problem(where, f"must be a dict, not {describe(entry)}")
                continue
            self.check_job_keys(where, entry)
            label = functools.partial(_entry_label, where)
            job = self.build_job(
                {key: entry.get(key, MISSING) for key in JOB_KEYS}, defaults, label
            )
            if job is not None:
                jobs.append((job, label))
        return jobs

    def check_job_keys(self, where: str, entry: Mapping[Any, Any]) -> None:
        for key in entry:
            if key in JOB_KEYS:
                continue
            if isinstance(key, str) and key.lower() in JOB_KEYS:
                hint = f"; did you mean {key.lower()!r}?"
            else:
                hint = suggest(str(key), JOB_KEYS) or (
                    f"; the keys are {', '.join(JOB_KEYS)}"
                )
            self.problem(f"{where}", f"unknown key {key!r}{hint}")

    def build_job(
        self,
        values: Mapping[str, Any],
        defaults: Mapping[str, Any],
        label: Callable[[str], str],
    ) -> Job | None:
        """One Job from raw values (keys as in TRANSFERS); None after problems."""
        before = len(self.problems)
        name = values["name"]
        if not isinstance(name, str) or not JOB_NAME_RE.fullmatch(name):
            what = "required but not set" if name is MISSING else f"{name!r} is invalid"
            self.problem(
                label("name"), f"{what}; use letters, digits, '.', '_' and '-' only"
            )
        for key in ("src_id", "src_dir", "dst_id", "dst_dir"):
            if values[key] is MISSING or values[key] is None:
                self.problem(label(key), "required but not set")
        src_id = self.present(
            values, "src_id", label, self.uuid_value, COLLECTION_UUID_FIX
        )
        dst_id = self.present(
            values, "dst_id", label, self.uuid_value, COLLECTION_UUID_FIX
        )
        src_dir = self.present(values, "src_dir", label, self.collection_path)
        dst_dir = self.present(values, "dst_dir", label, self.collection_path)
        local = self.local_dir(label("src_local_dir"), values.get("src_local_dir"))
        overrides = self.job_overrides(values, defaults, label)
        if len(self.problems) > before:
            return None
        assert src_id and dst_id and src_dir and dst_dir
        return Job(
            name=name,
            src_id=src_id,
            src_dir=src_dir,
            src_local_dir=local or Path(src_dir),
            dst_id=dst_id,
            dst_dir=dst_dir,
            **overrides,
        )

    def present(
        self,
        values: Mapping[str, Any],
        key: str,
        label: Callable[[str], str],
        check: Callable[..., str | None],
        *args: str,
    ) -> str | None:
        value = values[key]
        if value is MISSING or value is None:
            return None
        return check(label(key), value, *args)

    def job_overrides(
        self,
        values: Mapping[str, Any],
        defaults: Mapping[str, Any],
        label: Callable[[str], str],
    ) -> dict[str, Any]:
        """Per-job values replace the global defaults; absent ones inherit them."""
        result = dict(defaults)
        if values.get("exclude", MISSING) is not MISSING:
            result["exclude"] = self.patterns(label("exclude"), values["exclude"])
        if values.get("min_age", MISSING) is not MISSING:
            result["min_age"] = self.time(
                label("min_age"), values["min_age"], 0.0, "MIN_AGE"
            )
        if values.get("recursive_threshold", MISSING) is not MISSING:
            result["recursive_threshold"] = int(
                self.number(
                    label("recursive_threshold"),
                    values["recursive_threshold"],
                    DEFAULT_RECURSIVE_THRESHOLD,
                    integer=True,
                )
            )
        if values.get("email_recipients", MISSING) is not MISSING:
            result["email_recipients"] = self.recipients(
                label("email_recipients"), values["email_recipients"]
            )
        if values.get("max_tasks_in_flight", MISSING) is not MISSING:
            result["max_tasks_in_flight"] = self.tasks_in_flight(
                label("max_tasks_in_flight"), values["max_tasks_in_flight"]
            )
        return result

    def tasks_in_flight(self, where: str, value: object) -> int:
        """MAX_TASKS_IN_FLIGHT: a whole number from 1 to Globus's 3 per user.

        Why at most 3: Globus works on 3 tasks of a user at once and queues
        the rest, so a fourth would only wait, ahead of the user's other tasks.
        """
        default = DEFAULT_MAX_TASKS_IN_FLIGHT
        number = int(self.number(where, value, default, integer=True))
        if not 1 <= number <= GLOBUS_TASKS_PER_USER:
            self.problem(
                where,
                f"must be 1 to {GLOBUS_TASKS_PER_USER}, not {number}: Globus runs at "
                f"most {GLOBUS_TASKS_PER_USER} tasks of a user at once and queues "
                "the rest, so more would only wait",
            )
            return default
        return number

    def check_unique(self, jobs: list[Job]) -> None:
        """Job names and identities must be unique (they key the datastore)."""
        by_name: dict[str, Job] = {}
        by_identity: dict[str, Job] = {}
        for job in jobs:
            if job.name in by_name:
                self.problem(
                    "TRANSFERS",
                    f"job name {job.name!r} is used twice"
                    + (
                        " (the original LBNL script's names SRC_ID/SRC_DIR/DST_ID/"
                        "DST_DIR already define the job 'default')"
                        if job.name == DEFAULT_JOB_NAME
                        else ""
                    ),
                )
            elif job.identity in by_identity:
                other = by_identity[job.identity].name
                self.problem(
                    "TRANSFERS",
                    f"jobs {other!r} and {job.name!r} have the same source and "
                    "destination; keep one",
                )
            by_name.setdefault(job.name, job)
            by_identity.setdefault(job.identity, job)
