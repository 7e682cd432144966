"""The command hook: ``ON_ALERT_COMMAND`` run once per alert, for a site's tools.

The alert is in environment variables (``GLOBUS_AUTO_EVENT``, ``_JOB``,
``_KIND``, ``_SUMMARY``, ``_WHAT_TO_DO``, ``_PENDING_FILES``, ...; see
:func:`globus_auto.alerts.message.notice_environment`) and the mail's body on
standard input. No shell runs it. It gets ``timeout`` seconds; then it and
everything it started (its own process group) are killed. Exit status 0 means
delivered; anything else is retried by the next run. The client secret and the
SMTP password variables are not passed on.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence

from globus_auto.alerts.message import (
    ENV_PREFIX,
    Notice,
    notice_environment,
    test_wording,
)
from globus_auto.errors import NotifyError
from globus_auto.settings.model import CLIENT_SECRET_ENV, Settings

PREFIX = "command"
OUTPUT_SHOWN = 200  # characters of the hook's last output line in an error


def configured(settings: Settings, job: str | None) -> list[str]:
    return [PREFIX] if settings.on_alert_command else []


def describe(settings: Settings, channel: str) -> str:
    return f"through the command {settings.on_alert_command[0]}"


def verify(settings: Settings, channel: str) -> None:
    """The command is there and may be run (no message is sent)."""
    name = settings.on_alert_command[0]
    if shutil.which(name) is None:
        raise NotifyError(
            f"ON_ALERT_COMMAND {name} is not an executable file (nor found in PATH; "
            "cron's PATH is short: give the full path)"
        )


def send(settings: Settings, channel: str, notice: Notice, timeout: float) -> None:
    """Run the hook for ``notice``; ``NotifyError`` unless it exits 0 in time."""
    run_hook(
        settings.on_alert_command,
        _environment(settings, notice_environment(notice)),
        notice.body,
        timeout,
    )


def send_test(settings: Settings, channel: str, timeout: float) -> None:
    """Run the hook once with ``GLOBUS_AUTO_EVENT=test``."""
    hostname = socket.gethostname()
    subject, body = test_wording(hostname)
    values = {"EVENT": "test", "SUBJECT": subject, "SUMMARY": "test message"}
    values["HOST"] = hostname
    alert = {ENV_PREFIX + name: value for name, value in values.items()}
    run_hook(settings.on_alert_command, _environment(settings, alert), body, timeout)


def _environment(settings: Settings, alert: Mapping[str, str]) -> dict[str, str]:
    """This process's environment less its secrets, plus the alert's variables."""
    hidden = {CLIENT_SECRET_ENV, settings.smtp.password_env}
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    env.update(alert)
    return env


def run_hook(
    argv: Sequence[str], env: Mapping[str, str], stdin: str, timeout: float
) -> None:
    """Run ``argv`` with ``env``, ``stdin`` on its input, for ``timeout`` s at most.

    Why its own session: a hook that is a script starts children of its own;
    killing only the script would leave them holding the pipes (and the run).
    """
    name = argv[0]
    try:
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )
    except OSError as exc:
        raise NotifyError(
            f"ON_ALERT_COMMAND {name} could not start: {exc.strerror or exc}"
        ) from exc
    try:
        output, _ = child.communicate(stdin.encode("utf-8", "replace"), timeout)
    except subprocess.TimeoutExpired:
        _kill_group(child)
        raise NotifyError(
            f"ON_ALERT_COMMAND {name} did not finish within {timeout:g} s; "
            "it was stopped"
        ) from None
    if child.returncode != 0:
        last = (output.decode("utf-8", "replace").strip().splitlines() or [""])[-1]
        raise NotifyError(
            f"ON_ALERT_COMMAND {name} exited with status {child.returncode}"
            + (f": {last[:OUTPUT_SHOWN]}" if last else "")
        )


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    """Kill the hook and everything in its process group, then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    for pipe in (child.stdin, child.stdout):
        if pipe is not None:
            pipe.close()
