"""Operations: a dry run locks nothing, reset respects the job lock, one-line
errors without ``-vv``, and collection errors that read well."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import globus_sdk
import pytest
import requests
from click.testing import CliRunner, Result
from emulator_fixtures import TestEmulator
from helpers_e2e import src_data, write_config, write_files

from globus_auto.alerts import delivery
from globus_auto.cli.group import cli
from globus_auto.engine import crash as crashpoints
from globus_auto.errors import EndpointNotReady, UnknownCollection
from globus_auto.globus.errors import globus_errors
from globus_auto.globus.gateway import Gateway
from globus_auto.lock import job_lock

TRANSFER_SCOPE = "urn:globus:auth:scope:transfer.api.globus.org:all"


def invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def state_files(state: Path) -> dict[str, bytes]:
    """Every file of the state folder but the logs and locks, with its bytes."""
    return {
        str(p.relative_to(state)): p.read_bytes()
        for p in sorted(state.rglob("*"))
        if p.is_file() and not p.name.endswith(".log") and p.parent.name != "locks"
    }


@pytest.fixture
def no_crash_hook() -> Iterator[None]:
    yield
    crashpoints.CRASH_HOOK = None


# --- 1. a dry run works on a private copy -----------------------------------------


def test_dry_run_holds_no_write_lock_and_leaves_the_datastore_as_it_was(
    tmp_path: Path, globus_env: TestEmulator, no_crash_hook: None
) -> None:
    config = write_config(tmp_path / "config.py", globus_env)
    state = tmp_path / "state"
    write_files(src_data(globus_env), {"a.txt": b"a", "sub/b.txt": b"b"})
    assert invoke(config, "run", "--wait", "--timeout", "30").exit_code == 0
    write_files(src_data(globus_env), {"c.txt": b"c", "a.txt": b"A"})
    before = state_files(state)

    seen: list[str] = []

    def write_beside_the_dry_run(point: str) -> None:
        # What a cron run of another job does: a write transaction, no waiting.
        if point != "after-scan":
            return
        other = sqlite3.connect(state / "datastore", timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("INSERT INTO meta (key, value) VALUES ('other', 'job')")
            other.execute("ROLLBACK")
            seen.append("wrote")
        except sqlite3.OperationalError as exc:
            seen.append(str(exc))
        finally:
            other.close()

    crashpoints.CRASH_HOOK = write_beside_the_dry_run
    result = invoke(config, "run", "--dry-run")
    crashpoints.CRASH_HOOK = None
    assert result.exit_code == 0, result.output
    assert seen == ["wrote"]  # mid-run, after its scan wrote what it saw
    assert "2 files would be sent (1 new, 1 changed)" in result.stdout
    assert state_files(state) == before  # byte for byte, and no copy left behind
    assert not list(state.glob("dry-run-*"))


def test_private_copy_is_0600_in_a_0700_folder_and_removed(
    tmp_path: Path,
) -> None:
    from datetime import datetime, timezone

    from globus_auto.datastore.opening import open_datastore, private_copy

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    store = open_datastore(tmp_path / "state", now)
    store.put_alert("job", "kind", {"k": "real"})
    with private_copy(store, now) as copy:
        assert copy.alert_rows("job") == [{"k": "real"}]
        copy.put_alert("job", "kind", {"k": "dry"})
        assert copy.path.stat().st_mode & 0o777 == 0o600
        assert copy.path.parent.stat().st_mode & 0o777 == 0o700
        folder = copy.path.parent
    assert store.alert_rows("job") == [{"k": "real"}]
    assert not folder.exists()
    store.close()


# --- 2. reset takes the job lock -----------------------------------------------------


def test_reset_refuses_while_a_run_holds_the_job_lock(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    config = write_config(tmp_path / "config.py", globus_env)
    state = tmp_path / "state"
    write_files(src_data(globus_env), {"a.txt": b"a"})
    assert invoke(config, "run", "--wait", "--timeout", "30").exit_code == 0
    before = state_files(state)["datastore"]

    with job_lock(state, "default"):  # a run of the job is working
        result = invoke(config, "reset", "--yes")
    assert result.exit_code == 1
    assert "another globus-auto is running job default" in result.stderr
    assert "nothing was reset" in result.stderr and "run the reset again" in (
        result.stderr
    )
    assert len(result.stderr.strip().splitlines()) == 1
    assert state_files(state)["datastore"] == before

    done = invoke(config, "reset", "--yes")  # and once it has finished
    assert done.exit_code == 0, done.output
    assert "default: forgot 1 file;" in done.stdout


# --- 3. tracebacks only with -vv -----------------------------------------------------


def boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("boom")


@pytest.mark.parametrize("verbose", [[], ["-v"], ["-vv"]])
def test_an_unexpected_error_is_one_line_without_vv_and_always_in_the_log(
    tmp_path: Path,
    globus_env: TestEmulator,
    monkeypatch: pytest.MonkeyPatch,
    verbose: list[str],
) -> None:
    config = write_config(tmp_path / "config.py", globus_env)
    write_files(src_data(globus_env), {"a.txt": b"a"})
    monkeypatch.setattr(delivery, "after_run", boom)  # reaches the top level
    result = CliRunner().invoke(cli, [*verbose, "--config", str(config), "run"])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "boom" in line]
    if verbose == ["-vv"]:
        assert result.stderr.count("Traceback") == 1
    else:
        assert "Traceback" not in result.stderr
        assert errors == [
            "globus-auto: error: unexpected error: RuntimeError: boom "
            "(run with -vv for the traceback; details are in the log)"
        ]
    logged = (tmp_path / "state" / "globus-auto.log").read_text()
    assert "Traceback" in logged and "RuntimeError: boom" in logged


def test_one_job_s_unexpected_error_shows_no_traceback_without_vv(
    tmp_path: Path, globus_env: TestEmulator, no_crash_hook: None
) -> None:
    config = write_config(tmp_path / "config.py", globus_env)
    write_files(src_data(globus_env), {"a.txt": b"a"})

    def fail(point: str) -> None:
        if point == "after-scan":
            raise RuntimeError("boom")

    crashpoints.CRASH_HOOK = fail
    quiet = invoke(config, "run")
    loud = CliRunner().invoke(cli, ["-vv", "--config", str(config), "run"])
    crashpoints.CRASH_HOOK = None
    assert quiet.exit_code == loud.exit_code == 1
    assert "Traceback" not in quiet.stderr
    assert "globus-auto: default: unexpected error" in quiet.stderr
    assert "Traceback" in loud.stderr
    assert "Traceback" in (tmp_path / "state" / "globus-auto.log").read_text()


# --- 6. collection errors read well ------------------------------------------------


def gateway(emu: TestEmulator) -> Gateway:
    deps = " ".join(
        f"*https://auth.globus.org/scopes/{c}/data_access"
        for c in (emu.src_id, emu.dst_id)
    )
    auth = globus_sdk.ConfidentialAppAuthClient(
        emu.confidential_client_id, emu.confidential_client_secret
    )
    tokens = auth.oauth2_client_credentials_tokens(
        requested_scopes=f"{TRANSFER_SCOPE}[{deps}]"
    )
    token = tokens.by_resource_server["transfer.api.globus.org"]["access_token"]
    return Gateway(
        globus_sdk.TransferClient(
            authorizer=globus_sdk.AccessTokenAuthorizer(token),
            retry_config=globus_sdk.transport.RetryConfig(max_retries=0),
        )
    )


def sdk_error(status: int, code: str, message: str) -> globus_sdk.TransferAPIError:
    response = requests.Response()
    response.status_code = status
    response.headers["Content-Type"] = "application/json"
    response._content = json.dumps(
        {"code": code, "message": message, "request_id": "r1"}
    ).encode()
    response.request = requests.Request("POST", "https://x/v0.10/x").prepare()
    return globus_sdk.TransferAPIError(response)


def test_collection_errors_name_the_collection_once(globus_env: TestEmulator) -> None:
    dst = globus_env.dst_id
    gw = gateway(globus_env)
    messages = []
    globus_env.set_collection(dst, connected=False)
    with pytest.raises(EndpointNotReady) as listing:
        gw.list_dir(dst, "/backup", "destination")
    messages.append(str(listing.value))
    globus_env.set_collection(dst, connected=True)
    # An id Globus does not know is the config's fault, not a collection that
    # is not ready: a config error (exit 2) naming DST_ID.
    unknown = "00000000-0000-4000-8000-00000000abcd"
    with pytest.raises(UnknownCollection) as lookup:
        gw.check_collection(unknown, "destination")
    assert lookup.value.exit_code == 2
    messages.append(str(lookup.value))
    with (
        pytest.raises(EndpointNotReady) as mkdir,
        globus_errors("creating /backup on the destination collection", dst),
    ):
        raise sdk_error(502, "ExternalError.MkdirFailed", "Mkdir failed: no space")
    messages.append(str(mkdir.value))

    assert messages[0].startswith(
        f"listing /backup on the destination collection ({dst}): "
        "ExternalError.DirListingFailed.ConnectFailed"
    )
    assert messages[1].startswith(
        f"DST_ID {unknown} names no collection Globus knows (404 EndpointNotFound"
    )
    assert messages[2] == (
        f"creating /backup on the destination collection ({dst}): "
        "ExternalError.MkdirFailed: Mkdir failed: no space (request_id r1)"
    )
    for message in messages:
        assert "collection collection" not in message
