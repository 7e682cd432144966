"""Coming from the original LBNL script: its files read, its cron lines found,
the hint to upgrade. Pure functions and small temporary folders, no network."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from globus_auto.cli.upgrade import _old_schedule, old_cron_lines
from globus_auto.errors import LoginRequired
from globus_auto.globus import tokens
from globus_auto.globus.legacy import OldToken, parse_token_file, read_token_file
from globus_auto.settings import source

CLIENT = "0e7d2f3a-1b2c-4d5e-8f90-a1b2c3d4e5f6"
OTHER_CLIENT = "11111111-2222-4333-8444-555555555555"
TOKEN = "AgwekaBEle0Gdv6p8bm4PyqlOmeOB7r8pYMvbW6dPdm1QGwgykUJUx7avNjOd1dao"

# A config.py as the original script's template lays it out (its names, in its
# order and sections; the comments are ours), filled in.
ORIGINAL_CONFIG = """\
#!/usr/bin/env python

# --- what to transfer
SRC_DIR = "/global/cfs/cdirs/m1234/data/"  # here, and on the source endpoint
DST_DIR = "/archive/m1234/data"  # on the destination endpoint

# --- who hears about errors
EMAIL_SENDER = "globus_auto@lbl.gov"
EMAIL_RECIPIENTS = ["me@lbl.gov"]

# --- endpoints and the native app
SRC_ID = "6a1f6f2e-5e5b-4c3e-9e1a-0c1d2e3f4a5b"
DST_ID = "9d4e1e0c-3b2a-4f1e-8d7c-6b5a4f3e2d1c"
CLIENT_ID = "{client}"
CODE_PATH = "{folder}/"  # the script's folder, with a trailing slash
PYTHON_PATH = "python"

# --- fixed values the template says not to edit
EMAIL_HOST = "smtp.lbl.gov"
EMAIL_SUBJECT = "Globus Automatic Transfer Errors"
TOKEN_PATH = CODE_PATH + "refresh_token"
SHELF_NAME = "datastore"
SHELF_PATH = CODE_PATH + SHELF_NAME
"""

ACCEPTED_TODAY = """\
SRC_ID = '6a1f6f2e-5e5b-4c3e-9e1a-0c1d2e3f4a5b'
SRC_DIR = '/global/cfs/cdirs/m1234/data/'
DST_ID = '9d4e1e0c-3b2a-4f1e-8d7c-6b5a4f3e2d1c'
DST_DIR = '/archive/m1234/data'
CLIENT_ID = '{client}'
CODE_PATH = '{folder}/'
STATE_DIR = '{state}'
"""


def settings_in(folder: Path, text: str = ACCEPTED_TODAY) -> source.Settings:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.py"
    state = folder.parent / "state"
    config.write_text(text.format(client=CLIENT, folder=folder, state=state))
    config.chmod(0o600)
    return source.load_settings(config, {})


# --- refresh_token ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"{CLIENT}\n{TOKEN}",  # as the original writes it: no newline at the end
        f"{CLIENT}\n{TOKEN}\n",
        f"{CLIENT}\r\n{TOKEN}\r\n",
        f"  {CLIENT.upper()}\n\n{TOKEN}  \n",
    ],
)
def test_the_original_format_gives_the_client_and_the_token(text: str) -> None:
    assert parse_token_file(text) == OldToken(TOKEN, client_id=CLIENT)


@pytest.mark.parametrize(
    "text",
    [
        TOKEN,
        f"{TOKEN}\n",
        json.dumps({"refresh_token": TOKEN}),
        json.dumps({"transfer.api.globus.org": {"refresh_token": TOKEN}}),
        json.dumps(
            {
                "data": {
                    "DEFAULT": {
                        "auth.globus.org": {"refresh_token": "not-this-one"},
                        "transfer.api.globus.org": {"refresh_token": TOKEN},
                    }
                },
                "format_version": "2.0",
            }
        ),
    ],
)
def test_a_token_alone_or_in_json_is_accepted_too(text: str) -> None:
    assert parse_token_file(text) == OldToken(TOKEN)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("\n  \n", "empty"),
        (f"{CLIENT}\n{TOKEN}\nmore", "3 lines"),
        (f"not-a-client\n{TOKEN}", "2 lines"),
        ("two words", "not one word"),
        ("{not json", "cannot be read as JSON"),
        (json.dumps({"access_token": "x"}), "no Transfer refresh_token"),
    ],
)
def test_anything_else_is_refused_saying_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_token_file(text)


def test_a_token_of_another_client_is_refused_with_the_login(tmp_path: Path) -> None:
    settings = settings_in(tmp_path / "globus_auto")
    path = tmp_path / "globus_auto" / "refresh_token"
    path.write_text(f"{OTHER_CLIENT}\n{TOKEN}")
    with pytest.raises(LoginRequired) as caught:
        read_token_file(path, settings)
    message = str(caught.value)
    assert f"client {OTHER_CLIENT}" in message and f"CLIENT_ID is {CLIENT}" in message
    assert f"globus-auto --config {settings.config_path} login" in message
    assert TOKEN not in message
    path.write_text(f"{CLIENT}\n{TOKEN}")
    assert read_token_file(path, settings).refresh_token == TOKEN


def test_an_unreadable_token_file_says_what_to_do(tmp_path: Path) -> None:
    settings = settings_in(tmp_path / "globus_auto")
    path = tmp_path / "globus_auto" / "refresh_token"
    path.write_bytes(b"\xff\xfe not text")
    with pytest.raises(LoginRequired, match="log in once on a terminal instead"):
        read_token_file(path, settings)


# --- the hint ---------------------------------------------------------------------


def test_a_config_next_to_an_old_refresh_token_gets_the_hint(tmp_path: Path) -> None:
    folder = tmp_path / "globus_auto"
    assert source.upgrade_hint(settings_in(folder)) is None  # no refresh_token
    (folder / "refresh_token").write_text(f"{CLIENT}\n{TOKEN}")
    settings = settings_in(folder)
    hint = source.upgrade_hint(settings)
    assert hint is not None and "\n" not in hint
    assert hint.endswith(f"globus-auto upgrade --from {folder}")
    assert settings.notes.count(hint) == 1  # a note, logged by the session
    (settings.state_dir).mkdir()
    (settings.state_dir / "tokens.json").write_text("{}")
    assert source.upgrade_hint(settings_in(folder)) is None  # logged in already


def test_a_service_account_gets_no_hint(tmp_path: Path) -> None:
    folder = tmp_path / "globus_auto"
    (folder).mkdir()
    (folder / "refresh_token").write_text(TOKEN)
    settings = settings_in(folder, ACCEPTED_TODAY + "CLIENT_SECRET = 'secret'\n")
    assert source.upgrade_hint(settings) is None


def test_the_settings_name_the_tokens_file_as_the_globus_layer_does() -> None:
    assert source.TOKENS_FILE == tokens.TOKENS_FILE


# --- the old config ---------------------------------------------------------------


def test_the_original_names_accepted_today_describe_one_job(tmp_path: Path) -> None:
    settings = settings_in(tmp_path / "globus_auto")
    assert [job.name for job in settings.jobs] == ["default"]


def test_the_original_config_as_shipped_loads(tmp_path: Path) -> None:
    folder = tmp_path / "globus_auto"
    settings = settings_in(folder, textwrap.dedent(ORIGINAL_CONFIG))
    assert [job.name for job in settings.jobs] == ["default"]


# --- the crontab ------------------------------------------------------------------


def test_the_original_scripts_cron_lines_are_found(tmp_path: Path) -> None:
    folder = tmp_path / "globus_auto"
    crontab = [
        "MAILTO=me@lbl.gov",
        "# */5 * * * * python /old/main.py  (commented out)",
        f"*/10 * * * * cd {folder} && python3 main.py >> {folder}/log 2>&1",
        f"@hourly /usr/bin/python3 {folder}/main.py",
        "0 3 * * * /usr/local/bin/backup-home",
        "*/15 * * * * umask 077; /venv/bin/python -m globus_auto --config "
        f"{folder}/config.py run",
        "",
    ]
    assert old_cron_lines(crontab, folder) == [crontab[2], crontab[3]]


def test_the_schedule_is_kept_when_the_old_lines_share_one() -> None:
    assert _old_schedule(["*/10 * * * * cd /x && python main.py"]) == "*/10 * * * *"
    assert _old_schedule(["@daily python /x/main.py"]) == "@daily"
    assert _old_schedule(["*/10 * * * * a main.py", "0 * * * * b main.py"]) is None
    assert _old_schedule(["@reboot python /x/main.py"]) is None
    assert _old_schedule([]) is None
