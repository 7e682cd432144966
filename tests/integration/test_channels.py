"""The alert channels against real servers on loopback, and their deadlines.

Apprise posts to a loopback JSON endpoint (its ``json://`` plugin); the command
hook is a real process; the tarpits answer one line every 0.2 s, so a socket
timeout of a second never fires and only a deadline for the whole call ends
the call (issue 15: "a slow-dripping SMTP server or heartbeat URL holds a run
forever").
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from notify_servers import JsonHook, Tarpit, http_tarpit, json_hook, smtp_tarpit
from smtp_fixtures import SmtpTestServer

from globus_auto.alerts.channels import apprise_urls, command
from globus_auto.alerts.delivery import process_alerts
from globus_auto.alerts.heartbeat import ping_heartbeat
from globus_auto.alerts.message import Notice
from globus_auto.alerts.policy import Outgoing, plan_alerts
from globus_auto.alerts.smtp import send_mail
from globus_auto.alerts.store import FallbackAlertStore
from globus_auto.errors import NotifyError
from globus_auto.problems import Kind, Problem
from globus_auto.settings.model import CLIENT_SECRET_ENV, Job, Settings, SmtpSettings

__all__ = ["http_tarpit", "json_hook", "smtp_tarpit"]

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
PROBLEM = Problem(
    job="raw",
    kind=Kind.ENDPOINT_NOT_READY,
    summary="a collection is not ready",
    what_happened="The destination collection is paused.",
    what_to_do="Run: globus-auto check",
    next_attempt="The next scheduled run will try again.",
    pending_files=3,
    pending_bytes=1536,
)


def settings(tmp_path: Path, **values: object) -> Settings:
    base = Settings(
        config_path=tmp_path / "config.py",
        client_id=None,
        client_secret=None,
        state_dir=tmp_path / "state",
        email_sender=None,
        smtp=SmtpSettings(),
        jobs=(),
    )
    return replace(base, **values)  # type: ignore[arg-type]


def notice(problem: Problem = PROBLEM, resolved: bool = False) -> Notice:
    [decision] = plan_alerts(
        [], [problem], (), NOW, timedelta(hours=24), channels=lambda job: ("x",)
    )
    [outgoing] = decision.messages
    if resolved:
        outgoing = Outgoing(outgoing.record, "resolved", None, outgoing.channels)
    return Notice(outgoing, NOW, "host1")


# --- Apprise --------------------------------------------------------------------


def test_apprise_carries_the_mail_s_words(json_hook: JsonHook, tmp_path: Path) -> None:
    url = json_hook.apprise_url()
    config = settings(tmp_path, notify_urls=(url,))
    [channel] = apprise_urls.configured(config, "raw")
    assert url not in channel  # the id holds no token
    apprise_urls.send(config, channel, notice(), timeout=10)
    apprise_urls.send(config, channel, notice(resolved=True), timeout=10)
    new, resolved = json_hook.bodies()
    assert new["title"] == "[globus-auto] raw: a collection is not ready"
    assert new["message"] == notice().body.strip()  # Apprise trims the end
    assert "3 files (1.5 KiB) waiting to be sent" in new["message"]
    assert new["type"] == "failure"
    assert resolved["title"] == "[globus-auto] raw: resolved: a collection is not ready"
    assert resolved["type"] == "success"


def test_apprise_truncates_to_what_the_service_takes(
    json_hook: JsonHook, tmp_path: Path
) -> None:
    config = settings(tmp_path, notify_urls=(json_hook.apprise_url(),))
    [channel] = apprise_urls.configured(config, "raw")
    huge = replace(PROBLEM, what_happened="x" * 100_000)
    apprise_urls.send(config, channel, notice(huge), timeout=10)
    [body] = json_hook.bodies()
    # Apprise's default limit for a service that names none (NotifyBase.body_maxlen).
    assert 1_000 < len(body["message"]) <= 32_768


def test_apprise_refused_is_a_notify_error_without_the_token(
    json_hook: JsonHook, tmp_path: Path
) -> None:
    json_hook.status = 500
    url = json_hook.apprise_url("secret-token-123")
    config = settings(tmp_path, notify_urls=(url,))
    [channel] = apprise_urls.configured(config, "raw")
    with pytest.raises(NotifyError, match=r"NOTIFY_URLS\[0\].*did not take") as caught:
        apprise_urls.send(config, channel, notice(), timeout=10)
    assert "secret-token-123" not in str(caught.value)


def test_an_unknown_apprise_scheme_says_so(tmp_path: Path) -> None:
    config = settings(tmp_path, notify_urls=("nosuchservice://x/y",))
    [channel] = apprise_urls.configured(config, "raw")
    with pytest.raises(NotifyError, match="not a URL Apprise can use"):
        apprise_urls.send(config, channel, notice(), timeout=10)


def test_a_dripping_apprise_endpoint_is_given_up(
    http_tarpit: Tarpit, tmp_path: Path
) -> None:
    config = settings(tmp_path, notify_urls=(f"json://127.0.0.1:{http_tarpit.port}/",))
    [channel] = apprise_urls.configured(config, "raw")
    with pytest.raises(NotifyError, match="did not finish within 1 s"):
        apprise_urls.send(config, channel, notice(), timeout=1)


# --- the command hook -----------------------------------------------------------

RECORDER = """
import json, os, sys
seen = {k: v for k, v in os.environ.items() if k.startswith("GLOBUS_AUTO_")}
seen["stdin"] = sys.stdin.read()
with open(sys.argv[1], "a") as out:
    out.write(json.dumps(seen) + "\\n")
"""


def recorder(tmp_path: Path) -> tuple[tuple[str, ...], Path]:
    script, out = tmp_path / "hook.py", tmp_path / "seen.jsonl"
    script.write_text(RECORDER)
    return (sys.executable, str(script), str(out)), out


def test_the_hook_gets_the_alert_in_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CLIENT_SECRET_ENV, "do-not-pass-this-on")
    argv, out = recorder(tmp_path)
    config = settings(tmp_path, on_alert_command=argv)
    command.send(config, "command", notice(), timeout=30)
    [seen] = [json.loads(line) for line in out.read_text().splitlines()]
    assert seen["GLOBUS_AUTO_EVENT"] == "new"
    assert seen["GLOBUS_AUTO_JOB"] == "raw"
    assert seen["GLOBUS_AUTO_KIND"] == "endpoint-not-ready"
    assert seen["GLOBUS_AUTO_SUMMARY"] == "a collection is not ready"
    assert seen["GLOBUS_AUTO_WHAT_TO_DO"] == "Run: globus-auto check"
    assert seen["GLOBUS_AUTO_PENDING_FILES"] == "3"
    assert seen["GLOBUS_AUTO_PENDING_BYTES"] == "1536"
    assert seen["GLOBUS_AUTO_SUBJECT"] == "[globus-auto] raw: a collection is not ready"
    assert seen["stdin"] == notice().body
    assert CLIENT_SECRET_ENV not in seen


def test_a_hanging_hook_and_its_children_are_stopped(tmp_path: Path) -> None:
    # A shell that starts a child holding the output pipe: killing only the
    # shell would leave the run waiting for the pipe to close.
    marker = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {marker}; wait"
    config = settings(tmp_path, on_alert_command=("sh", "-c", script))
    with pytest.raises(NotifyError, match="did not finish within 1 s; it was stopped"):
        command.send(config, "command", notice(), timeout=1)
    assert stops(int(marker.read_text()))


def stops(pid: int, within: float = 10.0) -> bool:
    """Whether ``pid`` stops running within ``within`` seconds: a SIGKILL is
    delivered asynchronously, so a loaded machine may show the child still
    running for a moment after its group was killed."""
    deadline = time.monotonic() + within
    while running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def running(pid: int) -> bool:
    """Whether ``pid`` still runs (a killed one may linger as a zombie until
    whoever inherits it reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_a_failing_hook_says_its_status_and_last_line(tmp_path: Path) -> None:
    argv = (sys.executable, "-c", "print('no ticket queue'); raise SystemExit(3)")
    config = settings(tmp_path, on_alert_command=argv)
    with pytest.raises(NotifyError, match="exited with status 3: no ticket queue"):
        command.send(config, "command", notice(), timeout=30)


def test_a_missing_hook_is_a_notify_error(tmp_path: Path) -> None:
    config = settings(tmp_path, on_alert_command=(str(tmp_path / "nope"),))
    with pytest.raises(NotifyError, match="could not start"):
        command.send(config, "command", notice(), timeout=30)


# --- deadlines for the whole call --------------------------------------------------


def test_a_dripping_smtp_server_is_given_up_at_the_deadline(
    smtp_tarpit: Tarpit,
) -> None:
    from email.message import EmailMessage

    message = EmailMessage()
    message["To"] = "ops@lab.example"
    message.set_content("x")
    smtp = SmtpSettings(host="127.0.0.1", port=smtp_tarpit.port)
    with pytest.raises(NotifyError, match="did not finish within 1 s"):
        send_mail(message, smtp, timeout=1)
    assert smtp_tarpit.connections == 1


def test_a_dripping_heartbeat_is_given_up_at_the_deadline(http_tarpit: Tarpit) -> None:
    url = f"http://127.0.0.1:{http_tarpit.port}/ping/abc"
    with pytest.raises(NotifyError, match="did not finish within 1 s") as caught:
        ping_heartbeat(url, 0, timeout=1)
    assert "abc" not in str(caught.value)  # the URL's token stays out


# --- the run's budget for alerts ---------------------------------------------------


@dataclass
class Outcome:
    """One job's run as the alerts read it (the engine's JobReport)."""

    job: str
    problems: list[Problem]
    outcome: str = "failed"
    exit_code: int = 5
    skipped: bool = False
    cleared: tuple[Kind, ...] = ()


def test_a_run_s_alerts_stop_when_its_budget_is_spent_and_the_rest_go_next_run(
    tmp_path: Path, smtp_server: SmtpTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    names = [f"job{i}" for i in range(6)]
    config = settings(
        tmp_path,
        email_sender="g@lab.example",
        smtp=SmtpSettings(host=smtp_server.host, port=smtp_server.port),
        notify_timeout=20.0,  # so the run's alerts get 5 x 20 = 100 s
        jobs=tuple(job(name) for name in names),
    )
    reports = [
        Outcome(name, [replace(PROBLEM, job=name, kind=Kind.TASK_FAILED)])
        for name in names
    ]
    store = FallbackAlertStore(tmp_path)

    def clock() -> float:  # every mail takes 30 s of the budget
        return 30.0 * len(smtp_server.messages)

    assert process_alerts(config, store, reports, NOW, clock=clock) == 4
    assert "the time for this run's alerts is used up" in caplog.text
    assert process_alerts(config, store, reports, NOW, clock=clock) == 2
    sent = sorted(str(m["Subject"]).split(":")[0] for m in smtp_server.messages)
    assert sent == [f"[globus-auto] {name}" for name in names]  # each once


def job(name: str) -> Job:
    return Job(
        name=name,
        src_id="00000000-0000-4000-8000-000000000001",
        src_dir=f"/{name}",
        src_local_dir=Path(f"/{name}"),
        dst_id="00000000-0000-4000-8000-000000000002",
        dst_dir=f"/{name}",
        email_recipients=("ops@lab.example",),
    )
