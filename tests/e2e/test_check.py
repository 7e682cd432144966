"""``globus-auto check`` against the emulator and a loopback SMTP server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helpers_e2e
from click.testing import CliRunner, Result
from emulator_fixtures import TestEmulator
from smtp_fixtures import SmtpTestServer

from globus_auto.cli.check import FAIL, Check, format_check
from globus_auto.cli.group import cli


def write_config(tmp_path: Path, emulator: TestEmulator, **extra: Any) -> Path:
    """A 0600 config.py: one job from the source's /data (holding one file) to
    the destination's /backup/data, with STATE_DIR in tmp."""
    (helpers_e2e.src_data(emulator) / "one.txt").write_bytes(b"1")
    values: dict[str, Any] = {"DST_DIR": "/backup/data", **extra}
    return helpers_e2e.write_config(tmp_path / "config.py", emulator, **values)


def invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), "check", *args])


def checks_json(config: Path, *args: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(invoke(config, "--json", *args).stdout)
    return doc


def test_everything_ok_creates_the_destination(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    config = write_config(tmp_path, globus_env)
    result = invoke(config)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"✔ config: {config}: jobs default"
    assert f"✔ state folder: {tmp_path / 'state'} is writable" in lines
    assert (
        "✔ login: service account: Globus Auth accepts CLIENT_SECRET, Globus "
        "Transfer accepts it"
    ) in lines
    assert any(
        line.startswith("✔ default: source collection: /data is listed")
        for line in lines
    )
    assert any(
        line.startswith("✔ default: destination: created /backup/data")
        for line in lines
    )
    assert "! mail: no EMAIL_RECIPIENTS" in result.stdout
    assert lines[-1].startswith("All checks passed.")
    assert (globus_env.dst_root / "backup" / "data").is_dir()
    assert globus_env.stats()["tasks_submitted"] == 0

    again = checks_json(config)
    assert again["ok"] is True and again["exit_code"] == 0
    by_name = {c["name"]: c for c in again["checks"]}
    assert by_name["default: destination"]["status"] == "ok"
    assert "is listed" in by_name["default: destination"]["detail"]
    assert by_name["mail"]["status"] == "warn"


def test_test_mail_reaches_the_smtp_server(
    tmp_path: Path, globus_env: TestEmulator, smtp_server: SmtpTestServer
) -> None:
    config = write_config(
        tmp_path,
        globus_env,
        EMAIL_SENDER="robot@example.org",
        EMAIL_RECIPIENTS=["me@example.org", "you@example.org"],
        EMAIL_HOST=smtp_server.host,
        EMAIL_PORT=smtp_server.port,
    )
    without = invoke(config)
    assert without.exit_code == 0, without.output
    assert "- mail: alerts go to me@example.org, you@example.org" in without.stdout
    assert "globus-auto check --test-notify" in without.stdout  # or --test-mail
    assert smtp_server.messages == []

    result = invoke(config, "--test-mail")
    assert result.exit_code == 0, result.output
    assert "✔ mail: sent a test message to me@example.org, you@example.org" in (
        result.stdout
    )
    (message,) = smtp_server.wait_for(1)
    assert "test message" in str(message["Subject"])
    assert smtp_server.envelopes[0].rcpt_tos == ["me@example.org", "you@example.org"]

    smtp_server.stop()
    down = checks_json(config, "--test-mail")
    assert down["ok"] is False and down["exit_code"] != 0
    mail = next(c for c in down["checks"] if c["name"] == "mail")
    assert mail["status"] == FAIL
    assert "EMAIL_HOST" in mail["fix"]


def test_test_mail_without_recipients_fails(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    result = invoke(write_config(tmp_path, globus_env), "--test-mail")
    assert result.exit_code == 2
    assert "✘ mail: no EMAIL_RECIPIENTS" in result.stdout
    assert "→ set EMAIL_SENDER and EMAIL_RECIPIENTS" in result.stdout


def test_a_wrong_secret_fails_the_login_and_skips_the_collections(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    config = write_config(tmp_path, globus_env, CLIENT_SECRET="wrong")
    result = invoke(config)
    assert result.exit_code == 3, result.output
    assert "✘ login:" in result.stdout
    assert "→ check CLIENT_ID and CLIENT_SECRET" in result.stdout
    assert "- default: collections: not checked without a login" in result.stdout
    assert "✔ default: source folder" in result.stdout
    assert "1 check failed" in result.stdout


def test_missing_paths_fail_with_what_to_do(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    config = write_config(
        tmp_path,
        globus_env,
        SRC_DIR="/not-there",
        SRC_LOCAL_DIR=str(tmp_path / "not-mounted"),
    )
    doc = checks_json(config)
    assert doc["exit_code"] == 1  # the first failure: the folder on this machine
    by_name = {c["name"]: c for c in doc["checks"]}
    folder = by_name["default: source folder"]
    assert folder["status"] == FAIL
    assert "does not exist" in folder["detail"]
    source = by_name["default: source collection"]
    assert source["status"] == FAIL and source["exit_code"] == 4
    assert "/not-there does not exist" in source["detail"]
    assert "fix SRC_DIR" in source["fix"]
    assert by_name["default: destination"]["status"] == "ok"


def test_an_offline_destination_fails(tmp_path: Path, globus_env: TestEmulator) -> None:
    config = write_config(tmp_path, globus_env)
    globus_env.set_collection(globus_env.dst_id, connected=False)
    result = invoke(config)
    assert result.exit_code != 0
    assert "✘ default: destination:" in result.stdout
    assert "→ check DST_ID" in result.stdout


def test_config_problems_are_listed_one_per_line(tmp_path: Path) -> None:
    config = tmp_path / "config.py"
    config.write_text("SRC_ID = 'nope'\nEMIAL_HOST = 'x'\n")
    config.chmod(0o600)
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 2
    lines = [line for line in result.stdout.splitlines() if line.startswith("✘")]
    assert len(lines) >= 3
    assert any("EMIAL_HOST" in line and "EMAIL_HOST" in line for line in lines)
    assert any("CLIENT_ID" in line for line in lines)


def test_ascii_marks() -> None:
    failed = Check("login", FAIL, "refused", "log in again", 3)
    assert format_check(failed, unicode=False) == [
        "[FAIL] login: refused",
        "    -> log in again",
    ]
    assert format_check(Check("mail", "ok", "sent"), unicode=False) == [
        "[ok] mail: sent"
    ]
