"""Every fix hint points at the command that shows the cause: ``check`` for
what it checks (the login, the collections, the source folder, the state
folder, the network), ``status`` for what only it lists (files waiting)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from globus_auto.engine.login_gate import login_required_problem
from globus_auto.problems import Kind, datastore_unusable_problem, what_to_do
from globus_auto.settings import source
from globus_auto.settings.model import Settings


def settings_in(tmp_path: Path, secret: bool) -> Settings:
    lines = {
        "CLIENT_ID": str(uuid.uuid4()),
        "SRC_ID": str(uuid.uuid4()),
        "SRC_DIR": "/data",
        "SRC_LOCAL_DIR": str(tmp_path),
        "DST_ID": str(uuid.uuid4()),
        "DST_DIR": "/backup",
        "STATE_DIR": str(tmp_path / "state"),
    }
    if secret:
        lines["CLIENT_SECRET"] = "a-long-client-secret"
    config = tmp_path / "config.py"
    config.write_text("".join(f"{k} = {v!r}\n" for k, v in lines.items()))
    config.chmod(0o600)
    return source.load_settings(config, {})


@pytest.mark.parametrize(
    ("kind", "secret", "command"),
    [
        (Kind.LOGIN_REQUIRED, True, "check"),  # check tests the secret itself
        (Kind.LOGIN_REQUIRED, False, "login"),
        (Kind.ENDPOINT_NOT_READY, True, "check"),
        (Kind.SOURCE_PROBLEM, True, "check"),  # check reads the source folder
        (Kind.CONFIG, True, "check"),
        (Kind.GLOBUS_UNAVAILABLE, True, "check"),
        (Kind.SKIPPED, True, "status --job default"),  # status lists the files
    ],
)
def test_the_hint_ends_with_the_command_that_shows_the_cause(
    tmp_path: Path, kind: Kind, secret: bool, command: str
) -> None:
    settings = settings_in(tmp_path, secret)
    hint = what_to_do(kind, settings, settings.jobs[0])
    assert f"globus-auto --config {settings.config_path} {command}" in hint


def test_a_datastore_that_cannot_be_written_points_at_check(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, True)
    problem = datastore_unusable_problem(settings, "default", OSError("disk full"))
    assert problem.what_to_do.endswith(
        f"globus-auto --config {settings.config_path} check"
    )


def test_a_config_error_names_both_variables_and_the_config(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, True)
    hint = what_to_do(Kind.CONFIG, settings, settings.jobs[0])
    assert "SRC_ID or DST_ID of job default" in hint
    assert str(settings.config_path) in hint


def test_a_first_login_is_not_asked_to_log_in_again(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, False)
    login = f"globus-auto --config {settings.config_path} login"
    never = login_required_problem(settings, "default", "no stored Globus login")
    assert never.what_to_do == f"Log in on a terminal: {login}"
    settings.state_dir.mkdir()
    (settings.state_dir / "tokens.json").write_text("{}")  # a login, since lapsed
    lapsed = login_required_problem(settings, "default", "the login was refused")
    assert lapsed.what_to_do == f"Log in again on a terminal: {login}"
