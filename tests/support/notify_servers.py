"""Loopback servers standing in for notification services.

``JsonHook`` is a threaded ``http.server`` that keeps every JSON body posted to
it (Apprise's ``json://`` URLs post there), answering ``status``.
``Tarpit`` accepts connections and answers one line every ``interval``
seconds, forever: each read gets data well within a socket timeout, so only a
deadline for the whole call ends it (issue 15's "slow-dripping server").
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

__all__ = ["JsonHook", "Tarpit", "http_tarpit", "json_hook", "smtp_tarpit"]


class _JsonHandler(http.server.BaseHTTPRequestHandler):
    hook: JsonHook

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with self.hook.lock:
            self.hook.posts.append((self.path, json.loads(body or b"null")))
        self.send_response(self.hook.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, format: str, *args: object) -> None:
        pass


class JsonHook:
    """A loopback HTTP server recording JSON posts: ``posts`` is (path, body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        self.status = 200
        self.lock = threading.Lock()
        handler = type("Handler", (_JsonHandler,), {"hook": self})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def apprise_url(self, path: str = "hook") -> str:
        """An Apprise URL that posts JSON here (Apprise's custom JSON plugin)."""
        return f"json://127.0.0.1:{self.port}/{path}"

    def bodies(self) -> list[Any]:
        with self.lock:
            return [body for _, body in self.posts]

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Tarpit:
    """Sends ``first``, then ``drip`` every ``interval`` seconds, to every client."""

    def __init__(self, first: bytes, drip: bytes, interval: float = 0.2) -> None:
        self.first, self.drip, self.interval = first, drip, interval
        self.stopping = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.port = int(self.listener.getsockname()[1])
        self.connections = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            threading.Thread(target=self._drip, args=(client,), daemon=True).start()

    def _drip(self, client: socket.socket) -> None:
        with client:
            try:
                client.sendall(self.first)
                while not self.stopping.wait(self.interval):
                    client.sendall(self.drip)
            except OSError:  # the client gave up: as it should
                pass

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def json_hook() -> Iterator[JsonHook]:
    hook = JsonHook()
    hook.start()
    try:
        yield hook
    finally:
        hook.stop()


@pytest.fixture
def smtp_tarpit() -> Iterator[Tarpit]:
    """An SMTP greeting that never ends: a continuation line every 0.2 s."""
    pit = Tarpit(b"220-tarpit.example ESMTP\r\n", b"220-still here\r\n")
    try:
        yield pit
    finally:
        pit.stop()


@pytest.fixture
def http_tarpit() -> Iterator[Tarpit]:
    """An HTTP answer whose headers never end: one header line every 0.2 s."""
    pit = Tarpit(b"HTTP/1.1 200 OK\r\n", b"X-Drip: 1\r\n")
    try:
        yield pit
    finally:
        pit.stop()
