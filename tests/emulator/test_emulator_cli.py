"""``globus-auto emulator`` as a real process: starts, serves, stops on signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

LAUNCH = "from globus_auto.emulator.cli import emulator_command; emulator_command()"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_command_serves_until_signalled(tmp_path: Path, sig: signal.Signals) -> None:
    collection, client = str(uuid.uuid4()), str(uuid.uuid4())
    (tmp_path / "hello").write_text("hi")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            LAUNCH,
            "--collection",
            f"{collection}={tmp_path}",
            "--client",
            f"{client}:secret",
            "--client",
            str(uuid.uuid4()),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("listening on http://127.0.0.1:"), first
        url = first.removeprefix("listening on ") + "/"
        answer = requests.post(
            f"{url}v2/oauth2/token",
            data={
                "grant_type": "client_credentials",
                # a GCSv5 mapped collection (the default) needs data_access
                "scope": "urn:globus:auth:scope:transfer.api.globus.org:all"
                f"[*https://auth.globus.org/scopes/{collection}/data_access]",
            },
            auth=(client, "secret"),
            timeout=5,
        )
        token = answer.json()["access_token"]
        listing = requests.get(
            f"{url}v0.10/operation/endpoint/{collection}/ls",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert [e["name"] for e in listing.json()["DATA"]] == ["hello"]
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_help_says_it_is_a_test_service() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LAUNCH, "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "TEST service" in result.stdout
    assert "--collection" in result.stdout and "--client" in result.stdout
    for control in (
        "/_emulator/collections/<id>",
        "/_emulator/tasks/<id>",
        "/_emulator/limits",
        "/_emulator/identities",
        "/_emulator/faults",
        "/_emulator/auth",
        "/_emulator/stats",
        "set_task_status()",
        "session_required_single_domain",
        "age_sessions",
        "notification_mails",
    ):
        assert control in result.stdout, control


def test_bad_collection_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", LAUNCH, "--collection", f"not-a-uuid={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "UUID" in result.stderr
