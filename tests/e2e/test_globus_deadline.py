"""A deadline for each whole call to Globus (issue 15), through the
``globus-auto`` command: a loopback server that drips its answer (a byte of a
header, or of the body, every 0.2 s: no socket timeout ever trips)
stands in for Globus Transfer or Auth. The call is cut at GLOBUS_TIMEOUT, not
retried, the run ends with exit 6 ("Globus is busy or unreachable"), and the
next run, with Globus back, delivers. Without the deadline these runs would
never end: ``run_cli`` gives up after 60 s and the test fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator_fixtures import TestEmulator
from helpers_e2e import (
    cli_env,
    dst_data,
    run_cli,
    src_data,
    write_config,
    write_files,
)
from notify_servers import Tarpit

from globus_auto.errors import EXIT_GLOBUS_UNAVAILABLE

TRANSFER_URL = "GLOBUS_SDK_SERVICE_URL_TRANSFER"
AUTH_URL = "GLOBUS_SDK_SERVICE_URL_AUTH"
CUT = "Globus did not finish answering within 2 s (GLOBUS_TIMEOUT) while "

# What the dripping servers send: an answer whose headers never end (one
# header line a byte at a time: http.client gives up only after 100 header
# lines, or a line of 64 KiB), and one whose headers end but whose JSON body
# comes a byte at a time.
HEADERS_NEVER_END = (b"HTTP/1.1 200 OK\r\nX-Drip: ", b"a")
BODY_NEVER_ENDS = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n{",
    b" ",
)


@pytest.fixture(params=[HEADERS_NEVER_END, BODY_NEVER_ENDS], ids=["headers", "body"])
def dripping(request: pytest.FixtureRequest) -> Iterator[Tarpit]:
    first, drip = request.param
    pit = Tarpit(first, drip, interval=0.2)
    try:
        yield pit
    finally:
        pit.stop()


def run(config: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    done = run_cli(["--config", str(config), *args], env)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def delivered_once(tmp_path: Path, emulator: TestEmulator) -> Path:
    """A job with a 2 s GLOBUS_TIMEOUT whose first run went through (its
    tokens are stored), with a new file waiting for the next run."""
    config = write_config(tmp_path / "config.py", emulator, GLOBUS_TIMEOUT="2s")
    write_files(src_data(emulator), {"a.txt": b"a"})
    code, said = run(config, cli_env(emulator), "run", "--wait", "--timeout", "30")
    assert code == 0, said
    write_files(src_data(emulator), {"b.txt": b"b"})
    return config


def test_a_dripping_transfer_is_cut_at_the_deadline_and_retried_next_run(
    delivered_once: Path, emulator: TestEmulator, dripping: Tarpit
) -> None:
    url = f"http://127.0.0.1:{dripping.port}/"
    code, said = run(delivered_once, cli_env(emulator, {TRANSFER_URL: url}), "run")
    assert code == EXIT_GLOBUS_UNAVAILABLE == 6, said
    assert CUT in said, said
    assert "nothing was lost; the next run retries" in said
    assert "unexpected" not in said and "Traceback" not in said
    # Cut, not retried: one connection (globus-sdk would retry a network
    # error three more times with time left).
    assert dripping.connections == 1

    code, said = run(delivered_once, cli_env(emulator), "run", "--wait")
    assert code == 0, said
    assert (dst_data(emulator) / "b.txt").read_bytes() == b"b"


def test_a_dripping_globus_auth_is_cut_at_the_deadline(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    """``check`` asks Globus Auth for a token with the client's secret."""
    config = write_config(tmp_path / "config.py", emulator, GLOBUS_TIMEOUT=2)
    pit = Tarpit(*HEADERS_NEVER_END, interval=0.2)
    try:
        env = cli_env(emulator, {AUTH_URL: f"http://127.0.0.1:{pit.port}/"})
        code, said = run(config, env, "check")
    finally:
        pit.stop()
    assert code == 6, said
    assert CUT in said, said
    assert "rejected" not in said  # the network is blamed, not the secret
