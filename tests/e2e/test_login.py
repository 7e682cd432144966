"""Authentication end to end: the real ``globus-auto`` command against the emulator.

A person's login is driven through a real pseudo-terminal: the test reads the
printed authorize URL, opens it with ``requests`` as a browser would (the
emulator approves at once and shows the code), and types the code into the
prompt. Cron runs are subprocesses whose stdin is not a terminal. Alerts go to
a real SMTP server on loopback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import globus_sdk
import pytest
from emulator_fixtures import TestEmulator
from login_site import (
    Site,
    assert_no_secrets,
    delivered,
    login,
    make_site,
    mode,
    on_terminal,
    records,
    run_cli,
    stored_tokens,
    table,
)
from smtp_fixtures import SmtpTestServer

from globus_auto.emulator import Emulator
from globus_auto.globus.consents import stored_data_access
from globus_auto.globus.tokens import token_health, tokens_lock
from globus_auto.settings.source import load_settings

# --- the tests ------------------------------------------------------------------------


def test_login_as_a_person_then_runs_need_no_prompt(site: Site) -> None:
    rounds = login(site)
    # Both collections are GCSv5 mapped: a first round with the Transfer scope,
    # then one asking the data_access consents their endpoint documents call for.
    assert rounds == 2
    assert mode(site.state) == 0o700
    for name in ("tokens.json", "data_access.json", "auth_state.json"):
        assert mode(site.state / name) == 0o600, name
    assert stored_data_access(load_settings(site.config)) == tuple(
        sorted([site.src_id, site.dst_id])
    )
    # The collections now enforce data_access: the login's consents cover them.
    site.emulator.set_collection(site.src_id, requires_consent=True)
    site.emulator.set_collection(site.dst_id, requires_consent=True)

    result = run_cli(site, "run", "--wait")
    assert result.returncode == 0, result.stderr
    assert (site.dst / "a.txt").read_text() == "first file\n"
    assert (site.dst / "sub" / "b.bin").read_bytes() == (
        site.src / "sub" / "b.bin"
    ).read_bytes()
    (site.src / "c.txt").write_text("later\n")
    assert run_cli(site, "run", "--wait").returncode == 0
    assert (site.dst / "c.txt").read_text() == "later\n"
    assert mode(site.tokens) == 0o600
    assert site.smtp.messages == []
    assert_no_secrets(site)


@pytest.mark.parametrize("closed", [False, True], ids=["devnull", "closed"])
def test_no_tokens_and_no_terminal_exits_3_at_once(site: Site, closed: bool) -> None:
    started = time.monotonic()
    result = run_cli(site, "run", closed_stdin=closed)
    assert time.monotonic() - started < 5
    assert result.returncode == 3, result.stderr
    assert f"globus-auto --config {site.config} login" in result.stderr
    assert records(site) == {"files": [], "tasks": []}
    (mail,) = site.smtp.wait_for(1)
    assert "login" in str(mail["Subject"]).lower()
    assert f"globus-auto --config {site.config} login" in mail.get_content()
    assert not site.tokens.exists()
    # Never retried in a loop, never mailed twice.
    assert run_cli(site, "run", closed_stdin=closed).returncode == 3
    time.sleep(0.3)
    assert len(site.smtp.messages) == 1


@pytest.mark.parametrize("trouble", ["revoked", "refresh token expired"])
def test_a_login_gone_bad_exits_3_with_one_alert_and_no_change(
    site: Site, trouble: str
) -> None:
    login(site)
    first = run_cli(site, "run")  # submits a task; the next run follows it
    assert first.returncode == 0, first.stderr
    assert site.emulator.wait_idle()
    if trouble == "revoked":
        site.emulator.revoke_all_tokens()
    else:  # months unused: the access token lapsed long ago, then the refresh
        site.emulator.expire_access_tokens()
        site.emulator.expire_refresh_tokens()
    before = records(site)
    started = time.monotonic()
    result = run_cli(site, "run")
    assert time.monotonic() - started < 10
    assert result.returncode == 3, result.stderr
    assert f"globus-auto --config {site.config} login" in result.stderr
    assert "to fix: Log in again on a terminal:" in result.stderr  # it had one
    assert records(site) == before
    (mail,) = site.smtp.wait_for(1)
    assert "login" in str(mail["Subject"]).lower()
    health = token_health(load_settings(site.config))
    assert health["last_error"]
    assert run_cli(site, "run").returncode == 3
    assert records(site) == before
    time.sleep(0.3)
    assert len(site.smtp.messages) == 1

    assert login(site) == 1  # the consents are known: one round
    assert run_cli(site, "run", "--wait").returncode == 0
    assert (site.dst / "a.txt").exists()
    assert token_health(load_settings(site.config))["last_error"] is None
    assert_no_secrets(site)


def test_a_collection_newly_requiring_consent(
    three_collections: tuple[Emulator, list[str], str],
    smtp_server: SmtpTestServer,
    tmp_path: Path,
) -> None:
    emu, (mapped, guest, _), client = three_collections
    site = make_site(emu, smtp_server, tmp_path, mapped, guest, client)
    assert login(site) == 2  # only the mapped collection needs data_access
    assert run_cli(site, "run", "--wait").returncode == 0
    before = delivered(site)
    tasks = table(site, "tasks")

    (site.src / "new.txt").write_text("new\n")
    emu.set_collection(guest, requires_consent=True)
    result = run_cli(site, "run", "--wait")
    assert result.returncode == 3, result.stderr
    assert f"collection {guest}" in result.stderr
    assert "consent" in result.stderr
    assert table(site, "tasks") == tasks
    assert delivered(site) == [*before, (b"new.txt", None)] or sorted(
        delivered(site)
    ) == sorted([*before, (b"new.txt", None)])
    (mail,) = site.smtp.wait_for(1)
    assert guest in mail.get_content()
    unchanged = records(site)
    assert run_cli(site, "run").returncode == 3  # not retried in a loop
    assert records(site) == unchanged
    time.sleep(0.3)
    assert len(site.smtp.messages) == 1

    # Logging in again finds the consent Globus asks for and requests it.
    assert login(site) == 2
    assert guest in stored_data_access(load_settings(site.config))
    assert run_cli(site, "run", "--wait").returncode == 0
    assert (site.dst / "new.txt").read_text() == "new\n"
    assert_no_secrets(site)


def test_a_collection_added_to_the_config_needs_a_login(
    three_collections: tuple[Emulator, list[str], str],
    smtp_server: SmtpTestServer,
    tmp_path: Path,
) -> None:
    emu, (first, _, added), client = three_collections
    site = make_site(emu, smtp_server, tmp_path, first, first, client)
    site.write_config(DST_DIR="/copy")
    login(site)
    assert run_cli(site, "run", "--wait").returncode == 0

    site.write_config(DST_ID=added, DST_DIR="/backup")
    started = time.monotonic()
    result = run_cli(site, "run", "--wait")
    assert time.monotonic() - started < 5
    assert result.returncode == 3, result.stderr
    assert added in result.stderr
    assert f"globus-auto --config {site.config} login" in result.stderr
    (mail,) = site.smtp.wait_for(1)
    assert added in mail.get_content()

    # The stored login still works, so the new collection is looked at first
    # and its consent asked for in a single round.
    assert login(site) == 1
    assert added in stored_data_access(load_settings(site.config))
    emu.set_collection(added, requires_consent=True)
    assert run_cli(site, "run", "--wait").returncode == 0
    assert (emu.state.collections[added].root / "backup" / "a.txt").exists()


def test_service_account_needs_no_login_and_gets_data_access(
    emulator: TestEmulator, smtp_server: SmtpTestServer, tmp_path: Path
) -> None:
    site = make_site(
        emulator,
        smtp_server,
        tmp_path,
        emulator.src_id,
        emulator.dst_id,
        emulator.native_client_id,
    )
    site.write_config(
        CLIENT_ID=emulator.confidential_client_id,
        CLIENT_SECRET=emulator.confidential_client_secret,
    )
    emulator.set_collection(emulator.src_id, requires_consent=True)
    emulator.set_collection(emulator.dst_id, requires_consent=True)
    result = run_cli(site, "-vv", "run", "--wait")
    assert result.returncode == 0, result.stderr
    assert (site.dst / "a.txt").read_text() == "first file\n"
    settings = load_settings(site.config)
    assert stored_data_access(settings) == tuple(
        sorted([emulator.src_id, emulator.dst_id])
    )
    (site.src / "more.txt").write_text("more\n")
    assert run_cli(site, "-vv", "run", "--wait").returncode == 0
    assert (site.dst / "more.txt").exists()
    login_message = run_cli(site, "login")
    assert login_message.returncode == 0
    assert "service account" in login_message.stdout
    health = token_health(settings)
    assert health["kind"] == "service account"
    assert health["keepalive_due"] is False
    site.outputs.append(json.dumps(health))
    assert mode(site.tokens) == 0o600
    assert_no_secrets(site, emulator.confidential_client_secret)


def _age_tokens(site: Site, days: float) -> None:
    state = site.state / "auth_state.json"
    data = json.loads(state.read_text())
    when = datetime.now(timezone.utc) - timedelta(days=days)
    data["last_used"] = when.isoformat()
    state.write_text(json.dumps(data))


def test_keepalive_renews_unused_tokens_and_is_quiet_otherwise(site: Site) -> None:
    login(site)
    assert run_cli(site, "run", "--wait").returncode == 0
    requests_before = dict(site.emulator.stats()["requests"])
    assert run_cli(site, "run").returncode == 0  # nothing to do: no network
    assert site.emulator.stats()["requests"] == requests_before

    old_refresh = stored_tokens(site)["transfer.api.globus.org"]["refresh_token"]
    _age_tokens(site, 31)
    assert token_health(load_settings(site.config))["keepalive_due"] is True
    assert run_cli(site, "run").returncode == 0
    new_refresh = stored_tokens(site)["transfer.api.globus.org"]["refresh_token"]
    assert new_refresh != old_refresh
    health = token_health(load_settings(site.config))
    assert health["keepalive_due"] is False
    last_used = datetime.fromisoformat(health["last_used"])
    assert datetime.now(timezone.utc) - last_used < timedelta(minutes=1)
    assert mode(site.tokens) == 0o600

    requests_before = dict(site.emulator.stats()["requests"])
    assert run_cli(site, "run").returncode == 0
    assert site.emulator.stats()["requests"] == requests_before

    # A keep-alive that finds the login gone says so, once.
    site.emulator.revoke_all_tokens()
    _age_tokens(site, 45)
    before = records(site)
    result = run_cli(site, "run")
    assert result.returncode == 3, result.stderr
    assert records(site) == before
    (mail,) = site.smtp.wait_for(1)
    assert "login" in str(mail["Subject"]).lower()
    assert token_health(load_settings(site.config))["last_error"]
    assert_no_secrets(site)


def test_token_health_shows_no_secrets(site: Site) -> None:
    settings = load_settings(site.config)
    assert token_health(settings)["kind"] == "none"
    login(site)
    health = token_health(settings)
    assert health["kind"] == "user login"
    assert health["tokens_file"] == str(site.tokens)
    assert health["tokens_file_mode"] == "0600"
    assert health["last_used"] is not None
    assert health["last_error"] is None
    assert health["keepalive_due"] is False
    assert health["collections_needing_login"] == []
    site.outputs.append(json.dumps(health))
    assert_no_secrets(site)


def test_logout_revokes_and_deletes(site: Site, globus_env: TestEmulator) -> None:
    login(site)
    refresh = stored_tokens(site)["transfer.api.globus.org"]["refresh_token"]
    result = run_cli(site, "logout")
    assert result.returncode == 0, result.stderr
    assert "revoked" in result.stdout
    assert not site.tokens.exists()
    client = globus_sdk.NativeAppAuthClient(site.native_client_id)
    with pytest.raises(globus_sdk.AuthAPIError):
        client.oauth2_refresh_token(refresh)
    assert run_cli(site, "run").returncode == 3
    assert run_cli(site, "logout").stdout.startswith("No stored login")


def test_a_first_run_on_a_terminal_offers_the_login_and_goes_on(site: Site) -> None:
    status, shown, rounds = on_terminal(site, "run", "--wait")
    assert status == 0, shown
    assert "Log in to Globus now?" in shown
    assert rounds == 2
    assert (site.dst / "a.txt").read_text() == "first file\n"
    assert_no_secrets(site)


def test_login_without_a_terminal_refuses_at_once(site: Site) -> None:
    result = run_cli(site, "login")
    assert result.returncode == 3
    assert "terminal" in result.stderr
    assert not site.tokens.exists()


def test_the_login_alert_counts_the_files_waiting(site: Site) -> None:
    login(site)
    assert run_cli(site, "run", "--wait").returncode == 0
    (site.src / "c.txt").write_text("new\n")
    (site.src / "d.txt").write_text("newer\n")
    assert run_cli(site, "run").returncode == 0  # sent; settled by the next run
    assert site.emulator.wait_idle()
    assert run_cli(site, "logout").returncode == 0  # revoked and deleted
    result = run_cli(site, "run")
    assert result.returncode == 3, result.stderr
    (mail,) = site.smtp.wait_for(1)
    text = mail.get_content()
    assert "2 files" in text
    assert "nothing is waiting" not in text
    (alert,) = table(site, "alerts")
    assert '"pending_files": 2' in repr(alert)


def test_a_browser_is_opened_only_when_asked_for(site: Site, tmp_path: Path) -> None:
    opened = tmp_path / "opened"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(0o755)
    desktop = {"DISPLAY": ":0", "BROWSER": str(browser)}
    for name in ("SSH_CONNECTION", "SSH_TTY"):
        desktop[name] = ""
    status, shown, _ = on_terminal(site, "run", "--wait", env=desktop)
    assert status == 0, shown
    assert "Log in to Globus now?" in shown
    status, shown, _ = on_terminal(site, "login", env=desktop)
    assert status == 0, shown
    status, shown, _ = on_terminal(site, "login", "--no-browser", env=desktop)
    assert status == 0, shown
    assert not opened.exists()
    assert "a browser window was opened" not in "".join(site.outputs)

    status, shown, _ = on_terminal(site, "login", "--browser", env=desktop)
    assert status == 0, shown
    assert "a browser window was opened" in shown
    assert "/v2/oauth2/authorize?" in opened.read_text()


def test_a_cron_run_needing_a_login_says_so_once(site: Site) -> None:
    result = run_cli(site, "run")
    assert result.returncode == 3, result.stderr
    command = f"globus-auto --config {site.config} login"
    assert result.stderr.count("there is no stored Globus login") == 1, result.stderr
    assert result.stderr.count(command) == 1, result.stderr
    assert "to fix:" in result.stderr
    # Never logged in: "again" would be wrong the first time.
    assert f"to fix: Log in on a terminal: {command}" in result.stderr, result.stderr
    assert "again" not in result.stderr
    assert "no stored Globus login" in (site.state / "globus-auto.log").read_text()


def test_a_declined_login_is_not_offered_again_in_the_run(
    three_collections: tuple[Emulator, list[str], str],
    smtp_server: SmtpTestServer,
    tmp_path: Path,
) -> None:
    emu, (first, _, added), client = three_collections
    site = make_site(emu, smtp_server, tmp_path, first, first, client)
    site.write_config(DST_DIR="/copy")
    login(site)
    # A second job on a collection the login does not cover; the first job
    # has a new file, so it goes on to Globus after the offer was declined.
    extra = {"name": "extra", "src_id": first, "src_dir": "/data"}
    extra.update(src_local_dir=str(site.src), dst_id=added, dst_dir="/backup")
    site.write_config(TRANSFERS=[extra])
    (site.src / "c.txt").write_text("new\n")
    status, shown, rounds = on_terminal(site, "run", "--wait", confirm=b"n\n")
    assert status == 3, shown
    assert shown.count("Log in to Globus now?") == 1, shown
    assert rounds == 0
    assert (emu.state.collections[first].root / "copy" / "c.txt").exists()


def test_end_of_input_at_the_login_offer_is_a_decline(site: Site) -> None:
    status, shown, rounds = on_terminal(site, "run", confirm=b"\x04")
    assert status == 3, shown
    assert shown.count("Log in to Globus now?") == 1, shown
    assert rounds == 0
    assert "globus-auto --config" in shown


# Holds the stored tokens (as a run that has started does), waits for the
# signal, then calls Transfer with an access token Globus no longer accepts:
# a 401, so it must spend its refresh token.
REFRESHER = """
import pathlib, sys, time
from globus_auto.globus.app import build_app, transfer_client
from globus_auto.globus.consents import stored_data_access
from globus_auto.settings.source import load_settings

config, ready, go, collection = sys.argv[1:]
settings = load_settings(pathlib.Path(config))
app = build_app(
    settings, prompt=None, data_access=stored_data_access(settings)
)
client = transfer_client(app, state_dir=settings.state_dir)
pathlib.Path(ready).touch()
while not pathlib.Path(go).exists():
    time.sleep(0.005)
client.get_endpoint(collection)
print("ok")
"""


def test_overlapping_processes_refreshing_at_once_both_succeed(
    site: Site, tmp_path: Path
) -> None:
    login(site)
    site.emulator.expire_access_tokens()
    go = tmp_path / "go"
    processes, ready = [], []
    for n in range(3):
        ready.append(tmp_path / f"ready-{n}")
        args = [str(ready[-1]), str(go), site.src_id]
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", REFRESHER, str(site.config), *args],
                env=site.env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + 30
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    for process in processes:
        out, err = process.communicate(timeout=60)
        site.outputs += [out, err]
        assert process.returncode == 0 and out.strip() == "ok", err
    assert mode(site.tokens) == 0o600
    assert mode(site.state / "tokens.lock") == 0o600
    # The stored refresh token is the live one: a run goes on without a login.
    assert run_cli(site, "run", "--wait").returncode == 0
    assert (site.dst / "a.txt").exists()
    assert_no_secrets(site)


def test_the_tokens_lock_is_reentrant_and_serialises_threads(tmp_path: Path) -> None:
    import threading

    inside: list[int] = []
    overlaps: list[int] = []

    def hold() -> None:
        with tokens_lock(tmp_path), tokens_lock(tmp_path):
            inside.append(1)
            overlaps.append(len(inside))
            time.sleep(0.02)
            inside.pop()

    threads = [threading.Thread(target=hold) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert overlaps == [1] * 5
