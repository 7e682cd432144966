"""Alert mails end to end: config.py → run → emulator → real SMTP server.

Every run goes through ``main.execute`` with settings loaded from a written
0600 ``config.py``, globus-sdk pointed at the emulator and mail sent to a real
aiosmtpd server on loopback. The clock is passed in, so tests move time.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from emulator_fixtures import TestEmulator
from smtp_fixtures import SmtpTestServer

from globus_auto.alerts import delivery
from globus_auto.alerts import store as alert_store
from globus_auto.engine.report import JobReport, RunOptions
from globus_auto.engine.session import run_session
from globus_auto.errors import ConfigError
from globus_auto.settings.model import Settings
from globus_auto.settings.source import load_settings

SRC_DIR = "/data"
DST_DIR = "/backup"
RECIPIENT = "ops@example.org"
SENDER = "globus-auto@example.org"
PREFIX = "[globus-auto] default: "


class Clock:
    """The wall clock plus an offset that a test can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, hours: float) -> None:
        self.offset += timedelta(hours=hours)


@dataclass
class World:
    """One job from the emulator's /data to /backup, mailing to ``smtp``."""

    emu: TestEmulator
    smtp: SmtpTestServer
    config: Path
    clock: Clock = field(default_factory=Clock)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def src(self) -> Path:
        return self.emu.src_root / SRC_DIR.strip("/")

    @property
    def dst(self) -> Path:
        return self.emu.dst_root / DST_DIR.strip("/")

    @property
    def state_dir(self) -> Path:
        return self.config.parent / "state"

    def settings(self) -> Settings:
        values: dict[str, Any] = {
            "CLIENT_ID": self.emu.confidential_client_id,
            "CLIENT_SECRET": self.emu.confidential_client_secret,
            "SRC_ID": self.emu.src_id,
            "SRC_DIR": SRC_DIR,
            "SRC_LOCAL_DIR": str(self.src),
            "DST_ID": self.emu.dst_id,
            "DST_DIR": DST_DIR,
            "STATE_DIR": str(self.state_dir),
            "EMAIL_SENDER": SENDER,
            "EMAIL_RECIPIENTS": [RECIPIENT],
            "EMAIL_HOST": self.smtp.host,
            "EMAIL_PORT": self.smtp.port,
            "ALERT_REPEAT_HOURS": 24,
            "TASK_STUCK_HOURS": 6,
            **self.extra,
        }
        text = "".join(f"{name} = {value!r}\n" for name, value in values.items())
        fd = os.open(self.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        return load_settings(self.config, environ={})

    def run(self, wait: bool = True) -> JobReport:
        settings = self.settings()
        (report,) = run_session(
            settings,
            settings.jobs,
            RunOptions(wait=wait, timeout=30),
            interactive=False,
            now=self.clock,
        )
        return report

    def put(self, files: dict[str, bytes]) -> None:
        for name, content in files.items():
            target = self.src / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)

    def mails(self) -> list[EmailMessage]:
        return list(self.smtp.messages)


FILES = {"a.txt": b"alpha", "sub/b.bin": b"b" * 3000}


@pytest.fixture
def world(
    globus_env: TestEmulator, smtp_server: SmtpTestServer, tmp_path: Path
) -> Iterator[World]:
    w = World(globus_env, smtp_server, tmp_path / "config.py")
    w.put(FILES)
    yield w
    for raw in smtp_server.raw:  # no mail of any test may carry a secret
        assert globus_env.confidential_client_secret.encode() not in raw


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_alert(message: EmailMessage, summary: str, *, pending: str = "") -> str:
    """The checks every alert mail must pass; returns its body."""
    assert message["Subject"] == PREFIX + summary
    assert message["Date"] and message["Message-ID"]
    assert message["From"] == SENDER and message["To"] == RECIPIENT
    assert not message.is_multipart()
    body = message.get_content()
    for heading in ("What happened:", "Not delivered yet:", "What to do:"):
        assert heading in body
    assert "Next attempt:" in body
    assert pending in body
    return str(body)


def disconnect(emu: TestEmulator, personal: bool) -> None:
    if personal:  # a Globus Connect Personal collection, as the emulator has them
        with emu.state.lock:
            emu.state.collection(emu.dst_id).entity_type = "GCP_mapped_collection"
    emu.set_collection(emu.dst_id, connected=False)


# --- the "Done when" -----------------------------------------------------


@pytest.mark.parametrize("personal", [False, True], ids=["gcs", "personal"])
def test_disconnected_destination_one_mail_one_reminder_one_resolved(
    world: World, personal: bool
) -> None:
    disconnect(world.emu, personal)
    for _ in range(3):
        report = world.run()
        assert report.exit_code == 4, report.problems
    (first,) = world.mails()
    body = assert_alert(first, "a collection is not ready", pending="2 files")
    assert world.emu.dst_id in body
    assert f"globus-auto --config {world.config} check" in body
    assert ("Globus Connect Personal" in body) is personal
    assert world.smtp.envelopes[0].rcpt_tos == [RECIPIENT]

    world.clock.advance(hours=25)
    assert world.run().exit_code == 4
    assert world.run().exit_code == 4
    reminder = world.mails()[1]
    assert "still failing since" in str(reminder["Subject"])
    assert len(world.mails()) == 2

    world.emu.set_collection(world.emu.dst_id, connected=True)
    report = world.run()
    assert report.exit_code == 0, report.problems
    assert len(world.mails()) == 3
    assert world.mails()[2]["Subject"] == PREFIX + "resolved: a collection is not ready"
    assert tree(world.dst) == tree(world.src)
    assert world.run().exit_code == 0
    assert len(world.mails()) == 3


def test_smtp_down_run_completes_and_mail_goes_out_later(world: World) -> None:
    world.smtp.stop()
    world.emu.set_collection(world.emu.dst_id, connected=False)
    report = world.run()
    assert report.exit_code == 4  # the problem, not the mail
    assert world.mails() == []
    assert world.run().exit_code == 4
    world.smtp.start()
    assert world.run().exit_code == 4
    (mail,) = world.mails()
    assert_alert(mail, "a collection is not ready")
    assert world.run().exit_code == 4
    assert len(world.mails()) == 1


def test_smtp_down_when_resolved_sends_resolved_later(world: World) -> None:
    world.emu.set_collection(world.emu.dst_id, connected=False)
    world.run()
    world.smtp.stop()
    world.emu.set_collection(world.emu.dst_id, connected=True)
    assert world.run().exit_code == 0
    assert tree(world.dst) == tree(world.src)
    world.smtp.start()
    assert world.run().exit_code == 0
    subjects = [m["Subject"] for m in world.mails()]
    assert subjects == [
        PREFIX + "a collection is not ready",
        PREFIX + "resolved: a collection is not ready",
    ]


# --- every failure kind -----------------------------------------------------------


def test_service_account_consents_by_itself_so_no_alert(world: World) -> None:
    # A person's missing consent is covered by the auth tests (exit 3, one mail).
    world.emu.set_collection(world.emu.dst_id, requires_consent=True)
    assert world.run().exit_code == 0
    assert world.mails() == []
    assert tree(world.dst) == tree(world.src)


def test_wrong_client_secret_is_login_required_without_the_secret(
    world: World,
) -> None:
    wrong = "not-the-secret-" + "x" * 20
    world.extra["CLIENT_SECRET"] = wrong
    assert world.run().exit_code == 3
    (mail,) = world.mails()
    assert_alert(mail, "Globus login or consent required")
    assert wrong.encode() not in world.smtp.raw[0]
    world.extra.clear()
    assert world.run().exit_code == 0
    assert world.mails()[1]["Subject"] == (
        PREFIX + "resolved: Globus login or consent required"
    )


def test_task_failed_then_resent(world: World) -> None:
    world.emu.add_faults(fail_tasks=1)
    report = world.run(wait=True)
    assert report.exit_code == 5
    (mail,) = world.mails()
    body = assert_alert(mail, "a transfer failed", pending="2 files")
    assert str(report.task_id) in body and "Injected failure" in body
    assert world.run(wait=True).exit_code == 0
    assert tree(world.dst) == tree(world.src)
    assert world.mails()[1]["Subject"] == PREFIX + "resolved: a transfer failed"


def test_task_active_too_long(world: World) -> None:
    world.put({"big.dat": os.urandom(400_000)})
    world.emu.add_faults(bytes_per_second=20_000)
    report = world.run(wait=False)
    assert report.exit_code == 0 and report.task_id
    assert world.run(wait=False).exit_code == 0  # still running: no mail yet
    assert world.mails() == []
    world.clock.advance(hours=7)
    assert world.run(wait=False).exit_code == 5
    (mail,) = world.mails()
    body = assert_alert(mail, "a transfer is not progressing", pending="3 files")
    assert report.task_id in body and "ACTIVE" in body
    world.emu.add_faults(bytes_per_second=0)
    assert world.emu.wait_idle(20)
    assert world.run(wait=False).exit_code == 0
    assert world.mails()[1]["Subject"] == (
        PREFIX + "resolved: a transfer is not progressing"
    )
    assert tree(world.dst) == tree(world.src)


@pytest.mark.parametrize("how", ["missing", "unmounted"])
def test_source_missing_or_unmounted(world: World, how: str) -> None:
    assert world.run().exit_code == 0
    aside = world.src.with_name("aside")
    world.src.rename(aside)
    if how == "unmounted":
        world.src.mkdir()  # an empty mount point
    assert world.run().exit_code == 1
    (mail,) = world.mails()
    body = assert_alert(mail, "the source directory is not usable")
    assert str(world.src) in body
    assert ("unmounted" in body) is (how == "unmounted")
    assert world.run().exit_code == 1
    assert len(world.mails()) == 1
    shutil.rmtree(world.src, ignore_errors=True)
    aside.rename(world.src)
    assert world.run().exit_code == 0
    assert world.mails()[1]["Subject"] == (
        PREFIX + "resolved: the source directory is not usable"
    )


def test_corrupt_datastore_is_reset_and_mailed(world: World) -> None:
    assert world.run().exit_code == 0
    datastore = world.state_dir / "datastore"
    datastore.write_bytes(b"this is not SQLite" * 100)
    for side in ("-wal", "-shm"):
        Path(str(datastore) + side).unlink(missing_ok=True)
    assert world.run().exit_code == 0
    (mail,) = world.mails()
    body = assert_alert(mail, "the datastore was corrupt and was reset")
    assert "corrupt-" in body  # where the old file was moved
    assert world.run().exit_code == 0
    assert len(world.mails()) == 2
    assert "resolved" in str(world.mails()[1]["Subject"])


def test_datastore_that_cannot_be_opened_is_mailed_once(world: World) -> None:
    world.settings()
    world.state_dir.mkdir(mode=0o700)
    (world.state_dir / "datastore").mkdir()  # sqlite cannot open a folder
    for _ in range(3):
        assert world.run().exit_code == 1
    (mail,) = world.mails()
    body = assert_alert(mail, "the datastore is not usable")
    assert str(world.state_dir) in body
    (world.state_dir / "datastore").rmdir()
    assert world.run().exit_code == 0
    assert tree(world.dst) == tree(world.src)
    assert world.mails()[1]["Subject"] == (
        PREFIX + "resolved: the datastore is not usable"
    )
    assert not (world.state_dir / alert_store.FALLBACK_FILE).exists()


def test_unexpected_error_names_the_log(world: World) -> None:
    world.settings()
    world.state_dir.mkdir(mode=0o700)
    (world.state_dir / "tokens.json").write_text("{ not json")
    report = world.run()
    assert report.exit_code == 1
    (mail,) = world.mails()
    body = assert_alert(mail, "an unexpected error")
    assert str(world.state_dir / "globus-auto.log") in body
    assert world.run().exit_code == 1
    assert len(world.mails()) == 1
    (world.state_dir / "tokens.json").unlink()
    assert world.run().exit_code == 0  # reaching Globus shows it is gone
    assert world.mails()[1]["Subject"] == PREFIX + "resolved: an unexpected error"
    assert tree(world.dst) == tree(world.src)


# --- header injection -------------------------------------------------------------


def test_job_name_with_line_break_is_refused(world: World) -> None:
    world.extra["TRANSFERS"] = [
        {
            "name": "evil\r\nBcc: victim@example.org",
            "src_id": world.emu.src_id,
            "src_dir": "/other",
            "dst_id": world.emu.dst_id,
            "dst_dir": "/other",
        }
    ]
    with pytest.raises(ConfigError, match="name"):
        world.settings()


def test_file_name_with_line_break_injects_nothing(world: World) -> None:
    evil = "evil\r\nBcc: victim@example.org\r\nSubject: hi"
    world.put({evil: b"x"})
    world.emu.set_collection(world.emu.dst_id, connected=False)
    assert world.run().exit_code == 4
    subjects = sorted(str(m["Subject"]) for m in world.mails())
    assert subjects == [
        PREFIX + "a collection is not ready",
        PREFIX + "some files cannot be sent",
    ]
    for mail, envelope, raw in zip(
        world.mails(), world.smtp.envelopes, world.smtp.raw, strict=True
    ):
        assert mail["Bcc"] is None
        assert envelope.rcpt_tos == [RECIPIENT]
        headers, body = raw.split(b"\r\n\r\n", 1)
        assert b"victim" not in headers
        assert b"\r\nBcc:" not in body
    (unsendable,) = (m for m in world.mails() if "cannot be sent" in m["Subject"])
    body = assert_alert(unsendable, "some files cannot be sent", pending="1 file")
    assert r"evil\r\nBcc: victim@example.org\r\nSubject: hi" in body
    assert "line break" in body and "status --job default" in body


def test_unsendable_file_is_mailed_once_while_the_rest_goes_on(
    world: World,
) -> None:
    world.put({"bad\nname": b"x"})
    for _ in range(3):
        assert world.run().exit_code == 1
    (mail,) = world.mails()
    assert_alert(mail, "some files cannot be sent")
    assert "good-name" not in tree(world.dst)
    (world.src / "bad\nname").rename(world.src / "good-name")
    assert world.run().exit_code == 0
    assert world.mails()[1]["Subject"] == PREFIX + "resolved: some files cannot be sent"
    assert tree(world.dst) == tree(world.src)


# --- recipients -------------------------------------------------------------------


def test_jobs_without_own_recipients_get_the_global_ones(world: World) -> None:
    world.extra["TRANSFERS"] = [
        {
            "name": "own",
            "src_id": world.emu.src_id,
            "src_dir": "/own",
            "src_local_dir": str(world.emu.src_root / "own"),
            "dst_id": world.emu.dst_id,
            "dst_dir": "/own",
            "email_recipients": ["owner@example.org"],
        }
    ]
    (world.emu.src_root / "own").mkdir()
    (world.emu.src_root / "own" / "f").write_bytes(b"f")
    world.emu.set_collection(world.emu.dst_id, connected=False)
    settings = world.settings()
    reports = run_session(
        settings, settings.jobs, RunOptions(), interactive=False, now=world.clock
    )
    assert [r.exit_code for r in reports] == [4, 4]
    by_job = {
        str(m["Subject"]).split(":")[0]: e.rcpt_tos
        for m, e in zip(world.mails(), world.smtp.envelopes, strict=True)
    }
    assert by_job == {
        "[globus-auto] default": [RECIPIENT],
        "[globus-auto] own": ["owner@example.org"],
    }


# --- heartbeat --------------------------------------------------------------------


class _Monitor(http.server.BaseHTTPRequestHandler):
    hits: list[str]
    delay: float = 0.0

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        time.sleep(self.delay)
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def monitor() -> Iterator[tuple[str, list[str], type[_Monitor]]]:
    handler = type("Monitor", (_Monitor,), {"hits": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield (
            f"http://127.0.0.1:{server.server_address[1]}/ping/abc",
            handler.hits,
            handler,
        )
    finally:
        server.shutdown()
        server.server_close()


def test_heartbeat_success_and_failure(world: World, monitor: Any) -> None:
    url, hits, _ = monitor
    world.extra["HEARTBEAT_URL"] = url
    assert world.run().exit_code == 0
    assert hits == ["/ping/abc"]
    world.put({"new.txt": b"new"})
    world.emu.set_collection(world.emu.dst_id, connected=False)
    assert world.run().exit_code == 4
    assert hits == ["/ping/abc", "/ping/abc/fail"]


def test_heartbeat_that_hangs_or_is_down_does_not_hold_the_run(
    world: World, monitor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _hits, handler = monitor
    handler.delay = 3.0
    monkeypatch.setattr(delivery, "HEARTBEAT_TIMEOUT", 0.5)
    world.extra["HEARTBEAT_URL"] = url
    started = time.monotonic()
    assert world.run().exit_code == 0
    assert time.monotonic() - started < 3.0
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        world.extra["HEARTBEAT_URL"] = f"http://127.0.0.1:{probe.getsockname()[1]}/x"
    assert world.run().exit_code == 0
