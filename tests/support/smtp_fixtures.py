"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives.

``smtp_server`` is a plain server (no TLS, no AUTH) on a free port. Use
``smtp_server.messages`` (parsed ``EmailMessage`` objects), ``.envelopes``
(sender and recipients as the server saw them), ``.stop()`` to simulate a server
that is down and ``.start()`` to bring it back on the same port.
``SmtpTestServer`` also runs with STARTTLS, implicit TLS and AUTH.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

__all__ = ["Envelope", "SmtpTestServer", "free_port", "smtp_server"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Envelope:
    mail_from: str
    rcpt_tos: list[str]


@dataclass
class _Collector:
    """The aiosmtpd handler: parses and stores every message it accepts."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        message = BytesParser(policy=policy.default).parsebytes(content)
        with self.arrived:
            self.raw.append(content)
            self.messages.append(message)  # type: ignore[arg-type]
            self.envelopes.append(Envelope(envelope.mail_from, list(envelope.rcpt_tos)))
            self.arrived.notify_all()
        return "250 OK"


class _Authenticator:
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            user = data.login.decode()
            if self.users.get(user) == data.password.decode():
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


class SmtpTestServer:
    """An aiosmtpd ``Controller`` on 127.0.0.1 that can be stopped and restarted.

    ``starttls`` offers STARTTLS with that context (and requires it before AUTH);
    ``implicit_tls`` wraps the whole connection (the "ssl" security); ``users``
    turns on AUTH PLAIN/LOGIN with those logins.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self._collector = _Collector()
        self._options: dict[str, Any] = {}
        if starttls is not None:
            self._options.update(tls_context=starttls, require_starttls=True)
        if implicit_tls is not None:
            self._options["ssl_context"] = implicit_tls
        if users is not None:
            self._options.update(
                authenticator=_Authenticator(users),
                auth_required=True,
                # aiosmtpd only counts STARTTLS as TLS; with implicit TLS the
                # whole connection is encrypted anyway.
                auth_require_tls=starttls is not None,
            )
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[EmailMessage]:
        return self._collector.messages

    @property
    def envelopes(self) -> list[Envelope]:
        return self._collector.envelopes

    @property
    def raw(self) -> list[bytes]:
        """The bytes of each message exactly as received."""
        return self._collector.raw

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        """Listen on this server's port (again)."""
        if self._controller is not None:
            return
        controller = Controller(
            self._collector,
            hostname=self.host,
            port=self.port,
            ready_timeout=10,
            **self._options,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Stop listening: connections are refused until ``start``."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, count: int, timeout: float = 5) -> list[EmailMessage]:
        """Block until at least ``count`` messages arrived; return all of them."""
        deadline = time.monotonic() + timeout
        with self._collector.arrived:
            while len(self.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} messages, got {len(self.messages)}"
                    )
                self._collector.arrived.wait(remaining)
        return list(self.messages)


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    """A running plain SMTP server on loopback; stopped at the end of the test."""
    server = SmtpTestServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
