"""The deadline of a Globus call over TLS, as real Globus is reached (the
emulator speaks plain HTTP): a loopback TLS server with a throwaway
certificate completes the handshake, then drips a header. The call,
through a client made by ``globus_auto.globus.app.bounded``, is cut at its
deadline and not retried.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import globus_sdk
import pytest
from tls_certificate import self_signed_certificate

from globus_auto.globus.app import bounded
from globus_auto.globus.watchdog import CallCutOff


class TlsTarpit:
    """Accepts TLS connections and drips a header, a byte every 0.2 s, to each
    (one line: http.client would give up after 100 header lines)."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.stopping = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = int(self.listener.getsockname()[1])
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._drip, args=(client,), daemon=True).start()

    def _drip(self, client: socket.socket) -> None:
        try:
            client.settimeout(5)
            with self.context.wrap_socket(client, server_side=True) as tls:
                tls.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
                while not self.stopping.wait(0.2):
                    tls.sendall(b"a")
        except OSError:  # the client gave up: as it should
            pass

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()


@pytest.fixture
def tarpit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TlsTarpit]:
    cert, key = self_signed_certificate(tmp_path)
    monkeypatch.setenv("GLOBUS_SDK_VERIFY_SSL", str(cert))  # read by the transport
    pit = TlsTarpit(cert, key)
    try:
        yield pit
    finally:
        pit.stop()


@pytest.mark.timeout(30)  # without the deadline the call would never end
def test_a_call_over_tls_that_drips_is_cut_at_its_deadline(tarpit: TlsTarpit) -> None:
    client = bounded(
        globus_sdk.TransferClient(
            base_url=f"https://127.0.0.1:{tarpit.port}/v0.10/",
            authorizer=globus_sdk.AccessTokenAuthorizer("unused"),
        ),
        1.0,
    )
    with pytest.raises(globus_sdk.GlobusTimeoutError) as raised:
        client.get_endpoint("00000000-0000-0000-0000-000000000001")
    assert isinstance(raised.value.underlying_exception, CallCutOff)
    assert tarpit.connections == 1  # the handshake went through; not retried
