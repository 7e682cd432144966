"""Alert mails end to end: config.py → run → emulator → real SMTP server.

The ``World`` (support/alert_world.py) runs the session with a written config,
the emulator and a real SMTP server; the clock is passed in, so tests move time.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from alert_world import PREFIX, RECIPIENT, World, assert_alert, disconnect, tree
from notify_servers import Tarpit

from globus_auto.alerts import store as alert_store
from globus_auto.engine.report import RunOptions
from globus_auto.engine.session import run_session
from globus_auto.errors import ConfigError


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
    reports = run_session(settings, settings.jobs, RunOptions(), now=world.clock)
    assert [r.exit_code for r in reports] == [4, 4]
    by_job = {
        str(m["Subject"]).split(":")[0]: e.rcpt_tos
        for m, e in zip(world.mails(), world.smtp.envelopes, strict=True)
    }
    assert by_job == {
        "[globus-auto] default": [RECIPIENT],
        "[globus-auto] own": ["owner@example.org"],
    }


def test_heartbeat_start_success_and_failure(
    world: World, monitor: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="globus_auto")  # as the command line does
    url, hits, handler = monitor  # .../ping/<id>: a healthchecks-style URL
    world.extra["HEARTBEAT_URL"] = url
    assert world.run().exit_code == 0
    assert hits == ["/ping/abc/start", "/ping/abc/0"]
    world.put({"new.txt": b"new"})
    world.emu.set_collection(world.emu.dst_id, connected=False)
    assert world.run().exit_code == 4
    assert hits[2:] == ["/ping/abc/start", "/ping/abc/4"]
    body = handler.bodies[-1].decode()
    assert body.startswith("default: failed")  # the outcome, then the log
    assert "a collection is not ready" in body and "\n" in body


def test_heartbeat_of_another_monitor_gets_the_url_or_fail(
    world: World, monitor: Any
) -> None:
    url, hits, _ = monitor
    world.extra["HEARTBEAT_URL"] = url.replace("/ping/", "/beat/")
    assert world.run().exit_code == 0
    world.put({"new.txt": b"new"})
    world.emu.set_collection(world.emu.dst_id, connected=False)
    assert world.run().exit_code == 4
    assert hits == ["/beat/abc/start", "/beat/abc", "/beat/abc/start", "/beat/abc/fail"]


def test_heartbeat_that_drips_or_is_down_does_not_hold_the_run(
    world: World, http_tarpit: Tarpit
) -> None:
    # The tarpit answers a header line every 0.2 s, forever: only a deadline
    # for the whole request ends it (a per-read timeout never fires).
    world.extra["NOTIFY_TIMEOUT"] = 0.5
    world.extra["HEARTBEAT_URL"] = f"http://127.0.0.1:{http_tarpit.port}/ping/x"
    assert world.run().exit_code == 0
    assert http_tarpit.connections == 2  # /start and the end, each given up
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        world.extra["HEARTBEAT_URL"] = f"http://127.0.0.1:{probe.getsockname()[1]}/x"
    assert world.run().exit_code == 0
