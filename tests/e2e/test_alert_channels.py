"""Alert channels end to end: the ``globus-auto`` command, the emulator, and
loopback servers for mail (aiosmtpd), Apprise (its ``json://`` plugin posting
to a local HTTP endpoint), a command hook, and servers that drip one line at a
time; with the default grace of two failing runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
from emulator_fixtures import TestEmulator
from helpers_e2e import (
    MAIL_RECIPIENT,
    MAIL_SENDER,
    cli_env,
    mail_to,
    run_cli,
    src_data,
    state_dir_of,
)
from helpers_e2e import write_config as write_job
from notify_servers import JsonHook, Tarpit
from smtp_fixtures import SmtpTestServer

NOT_READY = "[globus-auto] default: a collection is not ready"
RESOLVED = "[globus-auto] default: resolved: a collection is not ready"


def write_config(tmp_path: Path, emulator: TestEmulator, **extra: Any) -> Path:
    """A job with two files waiting; ``extra`` adds the channels."""
    (src_data(emulator) / "a.txt").write_bytes(b"alpha")
    (src_data(emulator) / "b.txt").write_bytes(b"beta")
    return write_job(tmp_path / "config.py", emulator, **extra)


def write_both_channels(
    tmp_path: Path,
    emulator: TestEmulator,
    smtp: SmtpTestServer,
    hook: JsonHook,
    **extra: Any,
) -> Path:
    """The job of :func:`write_config` alerting by Apprise to ``hook`` and by
    mail through ``smtp``; ``extra`` adds settings."""
    return write_config(
        tmp_path,
        emulator,
        NOTIFY_URLS=[hook.apprise_url()],
        **mail_to(smtp),
        **extra,
    )


def cli(config: Path, emulator: TestEmulator, *args: str) -> CompletedProcess[str]:
    """``globus-auto --config CONFIG ARGS`` as a real process, to its end."""
    return run_cli(["--config", str(config), *args], cli_env(emulator))


def run(config: Path, emulator: TestEmulator) -> int:
    return cli(config, emulator, "run").returncode


def the_log(config: Path) -> str:
    return (state_dir_of(config) / "globus-auto.log").read_text()


def subjects(smtp: SmtpTestServer) -> list[str]:
    return [str(m["Subject"]) for m in smtp.messages]


def test_apprise_and_mail_one_alert_and_one_resolved_over_three_failing_runs(
    tmp_path: Path,
    emulator: TestEmulator,
    smtp_server: SmtpTestServer,
    json_hook: JsonHook,
) -> None:
    config = write_both_channels(tmp_path, emulator, smtp_server, json_hook)
    emulator.set_collection(emulator.dst_id, connected=False)
    for _ in range(3):
        assert run(config, emulator) == 4
    assert subjects(smtp_server) == [NOT_READY]  # the grace: the 2nd run alerted
    [new] = json_hook.bodies()
    assert new["title"] == NOT_READY and new["type"] == "failure"
    mailed = smtp_server.messages[0].get_content()  # the same words, CRLF aside
    assert new["message"].splitlines() == mailed.strip().splitlines()

    emulator.set_collection(emulator.dst_id, connected=True)
    assert run(config, emulator) == 0
    assert subjects(smtp_server) == [NOT_READY, RESOLVED]
    assert [b["title"] for b in json_hook.bodies()] == [NOT_READY, RESOLVED]
    assert json_hook.bodies()[1]["type"] == "success"
    assert run(config, emulator) == 0
    assert len(json_hook.bodies()) == 2 and len(smtp_server.messages) == 2


def test_one_passing_outage_tells_nobody(
    tmp_path: Path,
    emulator: TestEmulator,
    smtp_server: SmtpTestServer,
    json_hook: JsonHook,
) -> None:
    config = write_both_channels(tmp_path, emulator, smtp_server, json_hook)
    emulator.set_collection(emulator.dst_id, connected=False)
    assert run(config, emulator) == 4
    emulator.set_collection(emulator.dst_id, connected=True)
    assert run(config, emulator) == 0
    assert smtp_server.messages == [] and json_hook.bodies() == []
    assert "alerted after 2 failing runs in a row; so far 1" in the_log(config)


def test_mail_works_apprise_fails_only_apprise_is_retried(
    tmp_path: Path,
    emulator: TestEmulator,
    smtp_server: SmtpTestServer,
    json_hook: JsonHook,
) -> None:
    config = write_both_channels(
        tmp_path, emulator, smtp_server, json_hook, ALERT_AFTER_FAILURES=1
    )
    emulator.set_collection(emulator.dst_id, connected=False)
    json_hook.status = 503
    assert run(config, emulator) == 4
    assert subjects(smtp_server) == [NOT_READY]
    assert "the next run retries" in the_log(config)
    json_hook.status = 200
    assert run(config, emulator) == 4
    assert subjects(smtp_server) == [NOT_READY]  # not mailed again
    assert [b["title"] for b in json_hook.bodies()] == [NOT_READY] * 2  # 503, then ok
    assert run(config, emulator) == 4
    assert len(json_hook.bodies()) == 2


RECORDER = """
import json, os, sys
seen = {k: v for k, v in os.environ.items() if k.startswith("GLOBUS_AUTO_")}
seen["stdin"] = sys.stdin.read()
with open(sys.argv[1], "a") as out:
    out.write(json.dumps(seen) + "\\n")
"""


def test_the_hook_receives_the_alert_and_the_resolved_notice(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    script, seen = tmp_path / "hook.py", tmp_path / "seen.jsonl"
    script.write_text(RECORDER)
    config = write_config(
        tmp_path,
        emulator,
        ON_ALERT_COMMAND=[sys.executable, str(script), str(seen)],
        ALERT_AFTER_FAILURES=1,
    )
    emulator.set_collection(emulator.dst_id, connected=False)
    assert run(config, emulator) == 4
    emulator.set_collection(emulator.dst_id, connected=True)
    assert run(config, emulator) == 0
    new, resolved = [json.loads(line) for line in seen.read_text().splitlines()]
    assert new["GLOBUS_AUTO_EVENT"] == "new"
    assert new["GLOBUS_AUTO_JOB"] == "default"
    assert new["GLOBUS_AUTO_KIND"] == "endpoint-not-ready"
    assert new["GLOBUS_AUTO_SUMMARY"] == "a collection is not ready"
    assert f"--config {config} check" in new["GLOBUS_AUTO_WHAT_TO_DO"]
    assert new["GLOBUS_AUTO_PENDING_FILES"] == "2"
    assert "What happened:" in new["stdin"]
    assert resolved["GLOBUS_AUTO_EVENT"] == "resolved"
    assert resolved["GLOBUS_AUTO_SUBJECT"] == RESOLVED
    assert "GLOBUS_AUTO_CLIENT_SECRET" not in new


def test_a_hanging_hook_is_cut_off_and_retried(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    config = write_config(
        tmp_path,
        emulator,
        ON_ALERT_COMMAND=["sh", "-c", "sleep 600"],
        NOTIFY_TIMEOUT=1,
        ALERT_AFTER_FAILURES=1,
    )
    emulator.set_collection(emulator.dst_id, connected=False)
    assert run(config, emulator) == 4  # the run's own code, in about a second
    assert the_log(config).count("did not finish within 1 s; it was stopped") == 1
    assert run(config, emulator) == 4
    assert the_log(config).count("did not finish within 1 s; it was stopped") == 2


def test_dripping_servers_do_not_hold_the_run(
    tmp_path: Path,
    emulator: TestEmulator,
    smtp_tarpit: Tarpit,
    http_tarpit: Tarpit,
) -> None:
    # Issue 15: one line every 0.2 s never trips a socket timeout; without a
    # deadline for each whole call this run would never end (run_cli gives up
    # after 60 s and the test fails).
    config = write_config(
        tmp_path,
        emulator,
        EMAIL_SENDER=MAIL_SENDER,
        EMAIL_RECIPIENTS=[MAIL_RECIPIENT],
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=smtp_tarpit.port,
        HEARTBEAT_URL=f"http://127.0.0.1:{http_tarpit.port}/ping/abc",
        NOTIFY_URLS=[f"json://127.0.0.1:{http_tarpit.port}/hook"],
        NOTIFY_TIMEOUT=1,
        ALERT_AFTER_FAILURES=1,
    )
    emulator.set_collection(emulator.dst_id, connected=False)
    assert run(config, emulator) == 4
    log = the_log(config)
    assert "the SMTP session with 127.0.0.1" in log
    assert log.count("did not finish within 1 s") == 4  # start, mail, Apprise, end
    assert smtp_tarpit.connections == 1 and http_tarpit.connections == 3


def test_check_test_notify_tries_every_channel(
    tmp_path: Path,
    emulator: TestEmulator,
    smtp_server: SmtpTestServer,
    json_hook: JsonHook,
) -> None:
    script, seen = tmp_path / "hook.py", tmp_path / "seen.jsonl"
    script.write_text(RECORDER)
    config = write_config(
        tmp_path,
        emulator,
        NOTIFY_URLS=[json_hook.apprise_url("secret-path")],
        ON_ALERT_COMMAND=[sys.executable, str(script), str(seen)],
        **mail_to(smtp_server),
    )
    plain = cli(config, emulator, "check")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "NOTIFY_URLS[0]: alerts go to NOTIFY_URLS[0] (json://…)" in plain.stdout
    assert json_hook.bodies() == [] and smtp_server.messages == []

    for flag in ("--test-notify", "--test-mail"):  # the old name still works
        done = cli(config, emulator, "check", flag)
        assert done.returncode == 0, done.stdout + done.stderr
        for name in ("mail", "NOTIFY_URLS[0]", "ON_ALERT_COMMAND"):
            assert f" {name}: sent a test message" in done.stdout
        assert "secret-path" not in done.stdout
    assert len(smtp_server.messages) == 2 and len(json_hook.bodies()) == 2
    assert json_hook.bodies()[0]["title"].startswith("[globus-auto] test message")
    events = [
        json.loads(line)["GLOBUS_AUTO_EVENT"] for line in seen.read_text().splitlines()
    ]
    assert events == ["test", "test"]

    json_hook.status = 500
    failed = cli(config, emulator, "check", "--test-notify")
    assert failed.returncode == 1
    assert "NOTIFY_URLS[0]: NOTIFY_URLS[0] (json://…) did not take" in failed.stdout


@pytest.mark.parametrize(
    ("value", "line", "code"),
    [
        (["not a url"], "NOTIFY_URLS[0]: is not an Apprise URL", 2),
        (["ntfy://ntfy.sh/t", 3], "NOTIFY_URLS[1]: is not an Apprise URL", 2),
        (
            "ntfy://ntfy.sh/lab-transfers",  # one string: one URL
            "- NOTIFY_URLS[0]: alerts go to NOTIFY_URLS[0] (ntfy://…)",
            0,
        ),
        (
            ["nosuchservice://x/y"],
            "✘ NOTIFY_URLS[0]: NOTIFY_URLS[0] (nosuchservice://…) is not a URL "
            "Apprise can use",
            1,
        ),
        ([], "! mail: no EMAIL_RECIPIENTS", 0),
    ],
)
def test_notify_urls_in_the_config(
    tmp_path: Path, emulator: TestEmulator, value: Any, line: str, code: int
) -> None:
    config = write_config(tmp_path, emulator, NOTIFY_URLS=value)
    done = cli(config, emulator, "check")
    assert line in done.stdout
    assert done.returncode == code, done.stdout
    assert "not a url" not in done.stdout  # never echoed: URLs hold tokens


def test_check_finds_a_hook_cron_cannot_run(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    config = write_config(tmp_path, emulator, ON_ALERT_COMMAND="page-oncall --now")
    done = cli(config, emulator, "check")
    assert done.returncode == 1
    assert "✘ ON_ALERT_COMMAND: ON_ALERT_COMMAND page-oncall is not an executable" in (
        done.stdout
    )


def test_heartbeat_healthchecks_style_through_the_command(
    tmp_path: Path, emulator: TestEmulator, monitor: Any
) -> None:
    url, hits, handler = monitor  # .../ping/<id>: a healthchecks ping URL
    config = write_config(tmp_path, emulator, HEARTBEAT_URL=url)
    assert run(config, emulator) == 0
    assert hits == ["/ping/abc/start", "/ping/abc/0"]
    (src_data(emulator) / "c.txt").write_bytes(b"gamma")
    emulator.set_collection(emulator.dst_id, connected=False)
    assert run(config, emulator) == 4
    assert hits[2:] == ["/ping/abc/start", "/ping/abc/4"]
    body = handler.bodies[-1].decode()
    first, _, excerpt = body.partition("\n\n")
    assert first == "default: failed"
    assert "a collection is not ready" in excerpt  # the run's own log lines
    assert emulator.confidential_client_secret not in body
