"""Network trouble and a busy Globus, a wrong secret and an unknown collection,
through the ``globus-auto`` command: each says what happened and what to do,
with its own documented exit code.

Globus unreachable (refused, no answer in time) and 429 are exit 6, "retried
next run", never a bug (1) nor "not ready" (4); ``check`` blames the network,
not CLIENT_ID and CLIENT_SECRET; a wrong CLIENT_SECRET fails ``check`` even
while tokens are cached; a collection id Globus does not know is a config
error (2) naming SRC_ID or DST_ID.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from emulator_fixtures import TestEmulator
from helpers_e2e import cli_env, src_data, write_config, write_files
from terminal import run_on_terminal

from globus_auto.cli.group import LAZY_COMMANDS, cli
from globus_auto.errors import EXIT_GLOBUS_UNAVAILABLE
from globus_auto.globus import app

TRANSFER_URL = "GLOBUS_SDK_SERVICE_URL_TRANSFER"
AUTH_URL = "GLOBUS_SDK_SERVICE_URL_AUTH"


def invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


@pytest.fixture(autouse=True)
def short_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """globus-sdk's sleeps between its own retries: none in these tests (the
    tries still happen)."""
    monkeypatch.setattr(app, "RETRY_MAX_SLEEP", 0.0)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that takes connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)  # the kernel completes the handshakes; nobody reads
        yield int(sock.getsockname()[1])


@pytest.fixture
def delivered_once(tmp_path: Path, globus_env: TestEmulator) -> Path:
    """A config whose first run went through (its tokens are cached), with a
    new file waiting for the next run."""
    config = write_config(tmp_path / "config.py", globus_env)
    write_files(src_data(globus_env), {"a.txt": b"a"})
    assert invoke(config, "run", "--wait", "--timeout", "30").exit_code == 0
    write_files(src_data(globus_env), {"b.txt": b"b"})
    return config


def test_transfer_refusing_connections_is_exit_6_retried_next_run(
    delivered_once: Path, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setenv(TRANSFER_URL, f"http://127.0.0.1:{closed_port}/")
    result = invoke(delivered_once, "run")
    assert result.exit_code == EXIT_GLOBUS_UNAVAILABLE == 6, result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith(
        f"globus-auto: default: Globus is unreachable (no connection to "
        f"127.0.0.1:{closed_port}: Connection refused) while "
    ), first
    assert first.endswith("nothing was lost; the next run retries (or try again later)")
    assert "unexpected" not in result.stderr and "report it" not in result.stderr
    assert "globus-auto --config" in result.stderr.splitlines()[1]  # what to do


def test_transfer_never_answering_is_a_timeout_exit_6(
    delivered_once: Path, monkeypatch: pytest.MonkeyPatch, silent_server: int
) -> None:
    monkeypatch.setattr(app, "REQUEST_TIMEOUT", 0.3)
    monkeypatch.setenv(TRANSFER_URL, f"http://127.0.0.1:{silent_server}/")
    result = invoke(delivered_once, "run")
    assert result.exit_code == 6, result.output
    assert (
        f"Globus is unreachable (no answer in time from 127.0.0.1:{silent_server})"
        in result.stderr
    ), result.stderr
    assert "unexpected" not in result.stderr


def test_429_from_transfer_is_globus_busy_not_a_collection_not_ready(
    delivered_once: Path, globus_env: TestEmulator
) -> None:
    # Every try of globus-sdk's answered 429 (GLOBUS.md: rate limits).
    globus_env.add_faults(http_status=429, path_prefix="/v0.10/endpoint", count=20)
    result = invoke(delivered_once, "run")
    assert result.exit_code == 6, result.output
    assert (
        "Globus is busy: Globus Transfer answered 429 (too many requests) while "
        "looking up the source collection" in result.stderr
    ), result.stderr
    assert "not ready" not in result.stderr


def test_check_blames_the_network_not_the_client_secret(
    delivered_once: Path, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setenv(TRANSFER_URL, f"http://127.0.0.1:{closed_port}/")
    result = invoke(delivered_once, "check")
    assert result.exit_code == 6, result.output
    lines = result.stdout.splitlines()
    (login,) = [i for i, line in enumerate(lines) if line.startswith("✘ login:")]
    assert "Globus is unreachable (no connection to" in lines[login]
    assert lines[login + 1].startswith("    → check this machine's connection")
    assert "CLIENT_SECRET" not in result.stdout


def test_check_tests_the_secret_itself_while_tokens_are_cached(
    delivered_once: Path, globus_env: TestEmulator
) -> None:
    assert invoke(delivered_once, "check").exit_code == 0  # tokens cached
    text = delivered_once.read_text().replace(
        globus_env.confidential_client_secret, "a-wrong-secret"
    )
    delivered_once.write_text(text)
    result = invoke(delivered_once, "check")
    # The emulator's Auth answers a wrong secret as an OAuth2 server must
    # (RFC 6749 section 5.2: 401 invalid_client for HTTP Basic client auth).
    assert result.exit_code == 3, result.output
    assert (
        "✘ login: Globus Auth rejected the client id or secret while checking "
        "CLIENT_ID and CLIENT_SECRET with Globus Auth (401 invalid_client)"
        in result.stdout
    ), result.stdout
    assert "a-wrong-secret" not in result.stdout


@pytest.mark.parametrize(
    ("variable", "role"), [("SRC_ID", "source"), ("DST_ID", "destination")]
)
def test_a_collection_id_globus_does_not_know_is_a_config_error_naming_it(
    tmp_path: Path, globus_env: TestEmulator, variable: str, role: str
) -> None:
    unknown = str(uuid.uuid4())
    config = write_config(tmp_path / "config.py", globus_env, **{variable: unknown})
    write_files(src_data(globus_env), {"a.txt": b"a"})

    ran = invoke(config, "run")
    assert ran.exit_code == 2, ran.output
    happened, fix = ran.stderr.splitlines()[:2]
    assert (
        happened
        == (
            f"globus-auto: default: {variable} {unknown} names no collection Globus "
            "knows (404 EndpointNotFound, request_id "
        )
        + happened.rpartition("request_id ")[2]
    ), happened
    assert "not ready" not in ran.stderr
    assert fix.startswith("globus-auto: default: to fix: Fix SRC_ID or DST_ID of job")
    assert fix.endswith(f"globus-auto --config {config} check")

    checked = invoke(config, "check")
    assert checked.exit_code == 2, checked.output
    name = "source collection" if role == "source" else "destination"
    assert f"✘ default: {name}: {variable} {unknown} names no collection" in (
        checked.stdout
    ), checked.stdout


COMMANDS = sorted(name for name in LAZY_COMMANDS if name != "emulator")


@pytest.mark.parametrize("name", COMMANDS)
def test_every_help_documents_exit_6(name: str) -> None:
    shown = CliRunner().invoke(cli, [name, "--help"])
    assert shown.exit_code == 0, shown.output
    assert "    6  Globus is busy or unreachable" in shown.stdout


def test_a_login_when_globus_auth_cannot_be_reached_is_exit_6(
    tmp_path: Path, emulator: TestEmulator, closed_port: int
) -> None:
    """On a terminal (a login needs one): the code is pasted, and exchanging
    it finds Globus Auth unreachable."""
    config = write_config(
        tmp_path / "config.py",
        emulator,
        CLIENT_ID=emulator.native_client_id,
        CLIENT_SECRET=None,
    )
    env = cli_env(emulator, {AUTH_URL: f"http://127.0.0.1:{closed_port}/"})
    code, shown = run_on_terminal(config, ["login"], env, typed=b"a-code\n")
    assert code == 6, shown
    # The error follows the prompt, on its line: the terminal echoed the code
    # when it was typed, before the prompt asked for it.
    assert (
        "globus-auto: error: Globus is unreachable (no connection to "
        f"127.0.0.1:{closed_port}: Connection refused) while talking to Globus"
    ) in shown.strip().splitlines()[-1], shown
    assert "unexpected" not in shown
