"""The world of the alert tests: a config, the emulator, a real SMTP server, a clock.

``World`` runs the session (:func:`globus_auto.engine.session.run_session`) with
settings loaded from a written 0600 ``config.py``, globus-sdk pointed at the
emulator and mail sent to a real aiosmtpd server on loopback. The clock is
passed in, so tests move time. ``world`` is one with FILES in its source that
checks no mail carried the client secret; ``monitor`` is a loopback HTTP
server standing in for a heartbeat monitor.
"""

from __future__ import annotations

import http.server
import os
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

from globus_auto.engine.report import JobReport, RunOptions
from globus_auto.engine.session import run_session
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
            # These tests are about what each alert says and when it repeats or
            # resolves; the grace (default 2) has tests of its own.
            "ALERT_AFTER_FAILURES": 1,
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


def world_of_files(emu: TestEmulator, smtp: SmtpTestServer, tmp_path: Path) -> World:
    """The world of ``tmp_path/config.py``, with FILES in its source."""
    w = World(emu, smtp, tmp_path / "config.py")
    w.put(FILES)
    return w


@pytest.fixture
def world(
    globus_env: TestEmulator, smtp_server: SmtpTestServer, tmp_path: Path
) -> Iterator[World]:
    """:func:`world_of_files`; at the end, no mail of the test may carry the
    client secret."""
    yield world_of_files(globus_env, smtp_server, tmp_path)
    for raw in smtp_server.raw:
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


class _Monitor(http.server.BaseHTTPRequestHandler):
    hits: list[str]
    bodies: list[bytes]
    delay: float = 0.0

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        time.sleep(self.delay)
        self.bodies.append(body)
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def monitor() -> Iterator[tuple[str, list[str], type[_Monitor]]]:
    handler = type("Monitor", (_Monitor,), {"hits": [], "bodies": []})
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
