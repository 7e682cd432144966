"""The deadline of a Globus call over TLS, as real Globus is reached (the
emulator speaks plain HTTP): a loopback TLS server with a throwaway
certificate completes the handshake, then drips a header. The call,
through a client made by ``globus_auto.globus.app.bounded``, is cut at its
deadline and not retried.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import globus_sdk
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from globus_auto.globus.app import bounded
from globus_auto.globus.watchdog import CallCutOff


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


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
    cert, key = self_signed(tmp_path)
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
