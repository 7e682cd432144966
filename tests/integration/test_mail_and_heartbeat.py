"""Sending alerts and heartbeats against real servers on loopback: SMTP
(aiosmtpd), HTTP monitors, Apprise to a JSON endpoint, a command hook, and
servers that drip one line at a time (deadlines for the whole call)."""

from __future__ import annotations

import contextlib
import http.server
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Literal

import pytest
import smtp_fixtures
from smtp_fixtures import SmtpTestServer, free_port
from tls_certificate import self_signed_certificate

from globus_auto.alerts.heartbeat import heartbeat_target, ping_heartbeat
from globus_auto.alerts.message import compose
from globus_auto.alerts.policy import Outgoing, plan_alerts
from globus_auto.alerts.smtp import NotifyError, send_mail, send_test_mail
from globus_auto.problems import Kind, Problem
from globus_auto.settings.model import SmtpSettings

smtp_server = smtp_fixtures.smtp_server

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Smtp:
    """Stands in for ``settings.SmtpSettings`` (same fields, same method)."""

    host: str = "127.0.0.1"
    port: int | None = None
    security: Literal["starttls", "ssl", "none"] = "none"
    username: str | None = None
    secret: str | None = None

    def password(self) -> str | None:
        return self.secret


def problem(job: str = "raw-data", summary: str = "endpoint not ready") -> Problem:
    return Problem(
        job=job,
        kind=Kind.ENDPOINT_NOT_READY,
        summary=summary,
        what_happened="The destination collection is paused.",
        what_to_do="Run: globus-auto check",
        next_attempt="The next cron run will try again.",
        pending_files=3,
        pending_bytes=1536,
    )


def new_mail(job: str = "raw-data", summary: str = "endpoint not ready") -> Outgoing:
    [decision] = plan_alerts(
        [],
        [problem(job, summary)],
        (),
        NOW,
        timedelta(hours=24),
        channels=lambda job: ("mail",),
    )
    [outgoing] = decision.messages
    return outgoing


def message_for(outgoing: Outgoing) -> EmailMessage:
    return compose(outgoing, "globus-auto@lab.example", ["ops@lab.example"], NOW, "h1")


# --- plain SMTP ---------------------------------------------------------------


def test_mail_arrives_with_headers_and_body(smtp_server: SmtpTestServer) -> None:
    message = compose(
        new_mail(),
        "globus-auto@lab.example",
        ["a@lab.example", "b@lab.example"],
        NOW,
        "h1",
    )
    send_mail(message, Smtp(port=smtp_server.port))
    [received] = smtp_server.wait_for(1)
    assert received["Subject"] == "[globus-auto] raw-data: endpoint not ready"
    assert received["Date"] == "Sat, 01 Mar 2025 12:00:00 +0000"
    assert received["Message-ID"].startswith("<") and received["Message-ID"].endswith(
        ">"
    )
    assert smtp_server.envelopes[0].rcpt_tos == ["a@lab.example", "b@lab.example"]
    body = received.get_content()
    assert "The destination collection is paused." in body
    assert "3 files (1.5 KiB) waiting to be sent" in body
    assert "Run: globus-auto check" in body
    assert "The next cron run will try again." in body


@pytest.mark.parametrize(
    "name", ["evil\r\nBcc: victim@example.org", "x\nX-Injected: 1"]
)
def test_cr_lf_in_names_cannot_inject_a_header(
    smtp_server: SmtpTestServer, name: str
) -> None:
    outgoing = new_mail(job=name, summary=f"file {name} unreadable")
    message = compose(
        outgoing, "globus-auto@lab.example", ["ops@lab.example"], NOW, name
    )
    send_mail(message, Smtp(port=smtp_server.port))
    [received] = smtp_server.wait_for(1)
    names = [header.lower() for header in received]
    assert "bcc" not in names and "x-injected" not in names
    assert names.count("subject") == 1
    assert "\n" not in received["Subject"] and "\r" not in received["Subject"]
    assert smtp_server.envelopes[0].rcpt_tos == ["ops@lab.example"]
    # The only header lines are the ones compose writes (folding aside).
    head = smtp_server.raw[0].split(b"\r\n\r\n", 1)[0].decode()
    starts = {
        line.split(":", 1)[0].lower() for line in head.splitlines() if line[:1] > " "
    }
    expected = {"subject", "from", "to", "date", "message-id", "auto-submitted"}
    assert starts == expected | {
        "content-type",
        "content-transfer-encoding",
        "mime-version",
    }


def test_server_down_raises_notify_error_quickly(smtp_server: SmtpTestServer) -> None:
    smtp_server.stop()
    started = time.monotonic()
    with pytest.raises(
        NotifyError, match=r"could not reach the SMTP server 127\.0\.0\.1"
    ):
        send_mail(message_for(new_mail()), Smtp(port=smtp_server.port), timeout=5)
    assert time.monotonic() - started < 2
    smtp_server.start()
    send_mail(message_for(new_mail()), Smtp(port=smtp_server.port))
    assert len(smtp_server.wait_for(1)) == 1


def test_unanswering_server_times_out() -> None:
    with socket_that_never_answers() as port:
        started = time.monotonic()
        with pytest.raises(NotifyError, match=r"timed out|did not finish within"):
            send_mail(message_for(new_mail()), Smtp(port=port), timeout=0.5)
        assert time.monotonic() - started < 3


def test_username_without_password_is_a_clear_error(
    smtp_server: SmtpTestServer,
) -> None:
    settings = Smtp(port=smtp_server.port, username="alice")
    with pytest.raises(NotifyError, match="no password was found"):
        send_mail(message_for(new_mail()), settings)
    assert smtp_server.messages == []


def test_starttls_against_a_server_without_it_fails(
    smtp_server: SmtpTestServer,
) -> None:
    settings = Smtp(port=smtp_server.port, security="starttls")
    with pytest.raises(NotifyError, match="STARTTLS"):
        send_mail(message_for(new_mail()), settings)


def test_test_mail(smtp_server: SmtpTestServer) -> None:
    send_test_mail(Smtp(port=smtp_server.port), "g@lab.example", ["ops@lab.example"])
    [received] = smtp_server.wait_for(1)
    assert received["Subject"].startswith("[globus-auto] test message from ")
    assert received["Date"] and received["Message-ID"]


# --- TLS and AUTH ---------------------------------------------------------------


@dataclass(frozen=True)
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext  # trusts only the test certificate


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = self_signed_certificate(folder)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return Tls(server, client)


@pytest.fixture
def starttls_server(tls: Tls) -> Iterator[SmtpTestServer]:
    server = SmtpTestServer(starttls=tls.server, users={"alice": "s3cret"})
    server.start()
    yield server
    server.stop()


def test_starttls_with_login(starttls_server: SmtpTestServer, tls: Tls) -> None:
    settings = Smtp(
        port=starttls_server.port,
        security="starttls",
        username="alice",
        secret="s3cret",
    )
    send_mail(message_for(new_mail()), settings, tls_context=tls.client)
    assert len(starttls_server.wait_for(1)) == 1


def test_real_smtp_settings_with_a_password_file(
    starttls_server: SmtpTestServer, tls: Tls, tmp_path: Path
) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret\n")
    settings = SmtpSettings(
        host="127.0.0.1",
        port=starttls_server.port,
        security="starttls",
        username="alice",
        password_file=secret,
    )
    send_mail(message_for(new_mail()), settings, tls_context=tls.client)
    assert len(starttls_server.wait_for(1)) == 1


def test_unreadable_password_file_is_a_notify_error(
    starttls_server: SmtpTestServer, tls: Tls, tmp_path: Path
) -> None:
    settings = SmtpSettings(
        host="127.0.0.1",
        port=starttls_server.port,
        security="starttls",
        username="alice",
        password_file=tmp_path / "missing",
    )
    with pytest.raises(NotifyError, match="EMAIL_PASSWORD_FILE"):
        send_mail(message_for(new_mail()), settings, tls_context=tls.client)


def test_wrong_password_is_an_auth_error(
    starttls_server: SmtpTestServer, tls: Tls
) -> None:
    settings = Smtp(
        port=starttls_server.port, security="starttls", username="alice", secret="nope"
    )
    with pytest.raises(NotifyError, match=r"SMTP login to .* failed: 535"):
        send_mail(message_for(new_mail()), settings, tls_context=tls.client)
    assert starttls_server.messages == []


def test_untrusted_certificate_is_a_tls_error(starttls_server: SmtpTestServer) -> None:
    settings = Smtp(
        port=starttls_server.port,
        security="starttls",
        username="alice",
        secret="s3cret",
    )
    with pytest.raises(NotifyError, match=r"TLS with .* failed"):
        send_mail(message_for(new_mail()), settings)


def test_login_required_but_not_configured(
    starttls_server: SmtpTestServer, tls: Tls
) -> None:
    settings = Smtp(port=starttls_server.port, security="starttls")
    with pytest.raises(NotifyError, match="could not send mail via"):
        send_mail(message_for(new_mail()), settings, tls_context=tls.client)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_ssl_with_login(tls: Tls) -> None:
    server = SmtpTestServer(implicit_tls=tls.server, users={"alice": "s3cret"})
    server.start()
    try:
        settings = Smtp(
            port=server.port, security="ssl", username="alice", secret="s3cret"
        )
        send_mail(message_for(new_mail()), settings, tls_context=tls.client)
        assert len(server.wait_for(1)) == 1
    finally:
        server.stop()


# --- heartbeat ----------------------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[tuple[str, str, bytes]]
    status = 200

    def do_GET(self) -> None:
        self._record(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._record(self.rfile.read(length))

    def _record(self, body: bytes) -> None:
        self.requests.append((self.command, self.path, body))
        self.send_response(self.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def monitor() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Handler", (_Recorder,), {"requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ping/abc-123", handler
    server.shutdown()
    server.server_close()


def test_heartbeat_start_and_exit_codes_on_a_healthchecks_url(
    monitor: tuple[str, type[_Recorder]],
) -> None:
    url, handler = monitor  # .../ping/<uuid>: how healthchecks serves its pings
    ping_heartbeat(url, None)
    ping_heartbeat(url, 0)
    ping_heartbeat(url + "/", 4, message="raw-data: endpoint not ready")
    assert handler.requests == [
        ("GET", "/ping/abc-123/start", b""),
        ("GET", "/ping/abc-123/0", b""),
        ("POST", "/ping/abc-123/4", b"raw-data: endpoint not ready"),
    ]


def test_heartbeat_urls_of_other_monitors_get_success_or_fail() -> None:
    # healthchecks' ping API (healthchecks.io/docs/http_api/): /start, /fail,
    # /<exit status>; other monitors of this style know only the URL and /fail.
    assert heartbeat_target("https://hc-ping.com/u-1", 3) == "https://hc-ping.com/u-1/3"
    assert heartbeat_target("https://hc.lab/ping/u-1", 0) == "https://hc.lab/ping/u-1/0"
    assert heartbeat_target("https://mon.lab/beat/x", 0) == "https://mon.lab/beat/x"
    assert (
        heartbeat_target("https://mon.lab/beat/x", 4) == "https://mon.lab/beat/x/fail"
    )
    assert heartbeat_target("https://mon.lab/beat/x/", None) == (
        "https://mon.lab/beat/x/start"
    )


def test_heartbeat_http_error_does_not_leak_the_token(
    monitor: tuple[str, type[_Recorder]],
) -> None:
    url, handler = monitor
    handler.status = 404
    with pytest.raises(NotifyError, match="answered HTTP 404") as caught:
        ping_heartbeat(url, 0)
    assert "abc-123" not in str(caught.value)


def test_heartbeat_to_a_dead_port_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(NotifyError, match="unreachable"):
        ping_heartbeat(f"http://127.0.0.1:{free_port()}/ping/x", 0, timeout=2)
    assert time.monotonic() - started < 2


def test_heartbeat_that_never_answers_times_out() -> None:
    with socket_that_never_answers() as port:
        started = time.monotonic()
        with pytest.raises(NotifyError):
            ping_heartbeat(f"http://127.0.0.1:{port}/ping/x", 0, timeout=0.5)
        assert time.monotonic() - started < 3


def test_malformed_heartbeat_url() -> None:
    with pytest.raises(NotifyError, match="malformed"):
        ping_heartbeat("not a url", 0)


@contextlib.contextmanager
def socket_that_never_answers() -> Iterator[int]:
    """A listening socket that accepts connections and never says anything."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])
