"""Settings: finding, executing and validating config.py (pure, fast)."""

from __future__ import annotations

import dataclasses
import os
import re
import textwrap
import uuid
from pathlib import Path

import pytest

from globus_auto.errors import ConfigError
from globus_auto.settings import model, source, validate, values

REPO = Path(__file__).resolve().parents[2]
SRC = "6a1f6f2e-5e5b-4c3e-9e1a-0c1d2e3f4a5b"
DST = "9D4E1E0C-3B2A-4F1E-8D7C-6B5A4F3E2D1C"  # upper case, as sometimes pasted
CLIENT = "0e7d2f3a-1b2c-4d5e-8f90-a1b2c3d4e5f6"

SEED = f"""\
# Config for globus_auto
SRC_ID = '{SRC}'
SRC_DIR = '/global/cfs/cdirs/m1234/data/'
DST_ID = '{DST}'
DST_DIR = '/archive/m1234/data'
CLIENT_ID = '{CLIENT}'
EMAIL_SENDER = 'globus_auto@lbl.gov'
EMAIL_RECIPIENTS = ['a@b']
EMAIL_HOST = 'smtp.lbl.gov'
CODE_PATH = '/global/homes/u/user/globus_auto'
PYTHON_PATH = '/usr/bin/python3'
"""

MINIMAL = f"""\
SRC_ID = '{SRC}'
SRC_DIR = '/src'
DST_ID = '{DST}'
DST_DIR = '/dst'
CLIENT_ID = '{CLIENT}'
"""


def write(tmp_path: Path, text: str, name: str = "config.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    path.chmod(0o600)
    return path


def load(tmp_path: Path, text: str, **environ: str) -> model.Settings:
    return source.load_settings(write(tmp_path, text), environ)


def problems(tmp_path: Path, text: str, **environ: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, **environ)
    return str(info.value).splitlines()


def one_problem(tmp_path: Path, text: str) -> str:
    lines = problems(tmp_path, text)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{tmp_path / 'config.py'}: ")
    return lines[0]


# --- the original LBNL script's config -----------------------------------------


def test_seed_config_loads_as_one_default_job(tmp_path: Path) -> None:
    settings = load(tmp_path, SEED)
    assert settings.config_path == tmp_path / "config.py"
    assert settings.client_id == CLIENT
    assert settings.client_secret is None
    assert settings.email_sender == "globus_auto@lbl.gov"
    assert settings.smtp == model.SmtpSettings(host="smtp.lbl.gov")
    assert settings.smtp.effective_port == 25
    assert settings.state_dir == model.default_state_dir()
    (job,) = settings.jobs
    assert job == model.Job(
        name="default",
        src_id=SRC,
        src_dir="/global/cfs/cdirs/m1234/data",
        src_local_dir=Path("/global/cfs/cdirs/m1234/data"),
        dst_id=DST.lower(),
        dst_dir="/archive/m1234/data",
        email_recipients=("a@b",),
    )
    assert settings.job("default") is job
    assert len(settings.notes) == 2
    assert any("CODE_PATH" in note and "ignored" in note for note in settings.notes)
    assert any("PYTHON_PATH" in note for note in settings.notes)


PLACEHOLDER_RE = re.compile(r"0{8}-0{4}-0{4}-0{4}-0{10}\d\d")


def with_real_ids(text: str) -> str:
    """The template with each placeholder UUID made a real-looking one."""
    return PLACEHOLDER_RE.sub(
        lambda m: str(uuid.uuid5(uuid.NAMESPACE_URL, m.group())), text
    )


def test_example_config_is_refused_until_its_placeholders_are_replaced(
    tmp_path: Path,
) -> None:
    text = (REPO / "config.example.py").read_text()
    lines = problems(tmp_path, text)
    assert sorted(line.split(": ")[1] for line in lines) == [
        "CLIENT_ID",
        "DST_ID",
        "SRC_ID",
    ]
    assert all("is the template's placeholder, not a real UUID" in x for x in lines)
    assert all("app.globus.org" in line for line in lines)
    settings = load(tmp_path, with_real_ids(text))
    assert [job.name for job in settings.jobs] == ["default"]


def test_every_uuid_of_the_template_counts_as_a_placeholder() -> None:
    """`init` writes the same file, so its placeholders are refused too."""
    from globus_auto.cli.init import example_config

    text = example_config()
    assert text == (REPO / "config.example.py").read_text()
    found = re.findall(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text
    )
    assert len(found) >= 3
    assert all(values.is_placeholder(uuid.UUID(u)) for u in found)
    assert not values.is_placeholder(uuid.UUID(SRC))


def test_example_config_transfers_block_loads_when_uncommented(
    tmp_path: Path,
) -> None:
    text = with_real_ids((REPO / "config.example.py").read_text())
    start = text.index("# TRANSFERS = [")
    block = "\n".join(line[2:] for line in text[start:].splitlines())
    settings = load(tmp_path, text[:start] + block)
    assert [job.name for job in settings.jobs] == ["default", "raw", "processed"]
    assert settings.job("processed").src_local_dir == Path("/mnt/gcp/processed")


def test_example_documents_every_name() -> None:
    text = (REPO / "config.example.py").read_text()
    for name in [*sorted(validate.KNOWN_NAMES), "EMAIL_PASSWORD"]:
        assert name in text, name
    for key in validate.JOB_KEYS:
        assert f'"{key}"' in text, key


# --- defaults and globals -------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path, MINIMAL)
    assert settings.alert_repeat_hours == 24.0
    assert settings.task_stuck_hours == 24.0
    assert settings.auth_keepalive_days == 30.0
    assert settings.heartbeat_url is None
    assert settings.email_sender is None
    assert settings.notes == ()
    job = settings.jobs[0]
    assert job.exclude == ()
    assert job.min_age == 0.0
    assert job.recursive_threshold == model.DEFAULT_RECURSIVE_THRESHOLD == 1000
    assert job.email_recipients == ()


def test_all_global_names(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        MINIMAL
        + """
CLIENT_SECRET = 'shh-secret'
STATE_DIR = '~/state/../gastate'
EXCLUDE = ['*.tmp', 'scratch']
MIN_AGE = 30
RECURSIVE_THRESHOLD = 50
EMAIL_SENDER = 'Globus Auto <ga@x.org>'
EMAIL_RECIPIENTS = 'a@x.org, b@x.org'
EMAIL_HOST = 'mail.x.org'
EMAIL_PORT = 2525
EMAIL_SECURITY = 'STARTTLS'
EMAIL_USERNAME = 'me'
EMAIL_PASSWORD_FILE = '/etc/pw'
EMAIL_PASSWORD_ENV = 'MY_PW'
ALERT_REPEAT_HOURS = 6
TASK_STUCK_HOURS = 2.5
HEARTBEAT_URL = 'https://hc-ping.com/abc'
AUTH_KEEPALIVE_DAYS = 7
""",
    )
    assert settings.client_secret == "shh-secret"
    assert settings.state_dir == Path(os.path.expanduser("~")) / "gastate"
    assert settings.smtp == model.SmtpSettings(
        host="mail.x.org",
        port=2525,
        security="starttls",
        username="me",
        password_file=Path("/etc/pw"),
        password_env="MY_PW",
    )
    assert settings.alert_repeat_hours == 6.0
    assert settings.task_stuck_hours == 2.5
    assert settings.heartbeat_url == "https://hc-ping.com/abc"
    assert settings.auth_keepalive_days == 7.0
    job = settings.jobs[0]
    assert job.exclude == ("*.tmp", "scratch")
    assert job.min_age == 30.0
    assert isinstance(job.min_age, float)
    assert job.recursive_threshold == 50
    assert job.email_recipients == ("a@x.org", "b@x.org")


def test_secret_never_in_repr(tmp_path: Path) -> None:
    settings = load(tmp_path, MINIMAL + "CLIENT_SECRET = 'shh-secret'\n")
    assert "shh-secret" not in repr(settings)
    assert "shh-secret" not in str(settings)


def test_client_secret_from_environment_overrides(tmp_path: Path) -> None:
    env = {"GLOBUS_AUTO_CLIENT_SECRET": "from-env"}
    assert load(tmp_path, MINIMAL, **env).client_secret == "from-env"
    with_file = MINIMAL + "CLIENT_SECRET = 'in-file'\n"
    assert load(tmp_path, with_file, **env).client_secret == "from-env"
    assert load(tmp_path, with_file).client_secret == "in-file"


def test_wrong_client_secret_type_does_not_echo_it(tmp_path: Path) -> None:
    line = one_problem(tmp_path, MINIMAL + "CLIENT_SECRET = 1234567\n")
    assert "CLIENT_SECRET" in line
    assert "1234567" not in line


@pytest.mark.parametrize(
    ("security", "port"), [("ssl", 465), ("starttls", 587), ("none", 25)]
)
def test_smtp_default_ports(tmp_path: Path, security: str, port: int) -> None:
    settings = load(tmp_path, MINIMAL + f"EMAIL_SECURITY = '{security}'\n")
    assert settings.smtp.port is None
    assert settings.smtp.effective_port == port


def test_smtp_password_from_file_read_at_call_time(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    smtp = model.SmtpSettings(password_file=secret)
    secret.write_text("hunter2\n")
    assert smtp.password({}) == "hunter2"
    secret.write_text("changed\r\n")
    assert smtp.password({"GLOBUS_AUTO_EMAIL_PASSWORD": "env"}) == "changed"
    assert "hunter2" not in repr(smtp)
    assert all(
        "changed" not in str(getattr(smtp, f.name)) for f in dataclasses.fields(smtp)
    )


def test_smtp_password_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert model.SmtpSettings().password({"GLOBUS_AUTO_EMAIL_PASSWORD": "pw"}) == "pw"
    assert model.SmtpSettings(password_env="X").password({"X": "x"}) == "x"
    assert model.SmtpSettings().password({}) is None
    monkeypatch.setenv("GLOBUS_AUTO_EMAIL_PASSWORD", "from-os")
    assert model.SmtpSettings().password() == "from-os"


def test_smtp_password_file_missing(tmp_path: Path) -> None:
    smtp = model.SmtpSettings(password_file=tmp_path / "nope")
    with pytest.raises(ConfigError, match="EMAIL_PASSWORD_FILE"):
        smtp.password({})


def test_email_password_in_config_is_refused(tmp_path: Path) -> None:
    line = one_problem(tmp_path, MINIMAL + "EMAIL_PASSWORD = 'hunter2'\n")
    assert "EMAIL_PASSWORD:" in line
    assert "EMAIL_PASSWORD_FILE" in line
    assert "GLOBUS_AUTO_EMAIL_PASSWORD" in line
    assert "hunter2" not in line


def test_recipients_without_sender(tmp_path: Path) -> None:
    line = one_problem(tmp_path, MINIMAL + "EMAIL_RECIPIENTS = ['a@b']\n")
    assert "EMAIL_SENDER" in line


# --- names -----------------------------------------------------------------------


def test_misspelled_name_suggests_the_right_one(tmp_path: Path) -> None:
    line = one_problem(tmp_path, MINIMAL + "EMAIL_RECIPIENT = ['a@b']\n")
    assert "EMAIL_RECIPIENT:" in line
    assert "did you mean EMAIL_RECIPIENTS?" in line


def test_unknown_name_without_a_close_match(tmp_path: Path) -> None:
    line = one_problem(tmp_path, MINIMAL + "XYZZY = 1\n")
    assert "XYZZY" in line and "config.example.py" in line


def test_lower_case_known_name_is_flagged(tmp_path: Path) -> None:
    line = one_problem(tmp_path, MINIMAL + "min_age = 5\n")
    assert "did you mean MIN_AGE?" in line


def test_imports_helpers_and_private_names_are_ignored(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        f"""\
import os
import os.path as OSPATH
from pathlib import Path as PATH
from os.path import join as JOIN
_BASE = '/data'
base = 'lower case helpers are fine'
def HELPER():
    return 1
class THING:
    pass
SRC_ID = '{SRC}'
SRC_DIR = JOIN(_BASE, 'raw')
DST_ID = '{DST}'
DST_DIR = PATH('/dst')
CLIENT_ID = '{CLIENT}'
""",
    )
    assert settings.jobs[0].src_dir == "/data/raw"
    assert settings.jobs[0].dst_dir == "/dst"


def test_all_problems_reported_together(tmp_path: Path) -> None:
    lines = problems(
        tmp_path,
        """\
SRC_ID = 'abc'
SRC_DIR = 'relative/dir'
DST_ID = 42
CLIENT_ID = 'nope'
MIN_AGE = -1
EMAIL_SECURITY = 'tls'
HEARTBEAT_URL = 'ftp://x'
STATE_DIR = 'state'
SRC_DRI = '/x'
""",
    )
    text = "\n".join(lines)
    for needle in (
        "SRC_ID: 'abc' is not a UUID; copy the collection's UUID from app.globus.org",
        "SRC_DIR: 'relative/dir' is not an absolute path",
        "DST_ID: 42 is not a UUID",
        "DST_DIR: required but not set",
        "CLIENT_ID: 'nope' is not a UUID",
        "MIN_AGE: must be zero or more",
        "EMAIL_SECURITY: 'tls' is not one of",
        "HEARTBEAT_URL",
        "STATE_DIR: 'state' is not an absolute path",
        "SRC_DRI: unknown name; did you mean SRC_DIR?",
    ):
        assert needle in text, needle
    assert all(line.startswith(f"{tmp_path / 'config.py'}: ") for line in lines)
    assert len(lines) == 10


def test_missing_client_id(tmp_path: Path) -> None:
    text = MINIMAL.replace(f"CLIENT_ID = '{CLIENT}'\n", "")
    line = one_problem(tmp_path, text)
    assert "CLIENT_ID: required" in line and "app.globus.org" in line


def test_no_jobs(tmp_path: Path) -> None:
    line = one_problem(tmp_path, f"CLIENT_ID = '{CLIENT}'\n")
    assert "no job configured" in line and "TRANSFERS" in line


def test_seed_job_needs_all_four_names(tmp_path: Path) -> None:
    lines = problems(tmp_path, f"CLIENT_ID = '{CLIENT}'\nSRC_DIR = '/x'\n")
    assert len(lines) == 3
    for name in ("SRC_ID", "DST_ID", "DST_DIR"):
        assert any(f": {name}: required but not set" in line for line in lines)


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("MIN_AGE = '5 minutes'", "MIN_AGE: '5 minutes' is not a time; write"),
        ("MIN_AGE = [5]", "MIN_AGE: must be a number"),
        ("MIN_AGE = True", "MIN_AGE: must be a number"),
        ("MIN_AGE = float('nan')", "MIN_AGE: must be zero or more"),
        ("MIN_AGE = float('inf')", "MIN_AGE: must be a finite number"),
        ("MIN_AGE = 10**400", "MIN_AGE: must be a finite number"),
        ("TASK_STUCK_HOURS = float('inf')", "TASK_STUCK_HOURS: must be a finite"),
        ("ALERT_REPEAT_HOURS = 1e999", "ALERT_REPEAT_HOURS: must be a finite"),
        ("AUTH_KEEPALIVE_DAYS = float('inf')", "AUTH_KEEPALIVE_DAYS: must be a finite"),
        ("RECURSIVE_THRESHOLD = 10**400", "RECURSIVE_THRESHOLD: must be a finite"),
        ("EMAIL_PORT = float('inf')", "EMAIL_PORT: must be a port number"),
        (
            "TRANSFERS = [dict(name='j', src_id=SRC_ID, src_dir='/s', dst_id=DST_ID,"
            " dst_dir='/d', min_age=float('inf'))]",
            "TRANSFERS[0].min_age: must be a finite number",
        ),
        ("RECURSIVE_THRESHOLD = 1.5", "RECURSIVE_THRESHOLD: must be a whole number"),
        ("RECURSIVE_THRESHOLD = -3", "RECURSIVE_THRESHOLD: must be zero or more"),
        ("ALERT_REPEAT_HOURS = -1", "ALERT_REPEAT_HOURS: must be zero or more"),
        ("TASK_STUCK_HOURS = 'x'", "TASK_STUCK_HOURS: 'x' is not a time"),
        ("AUTH_KEEPALIVE_DAYS = -0.5", "AUTH_KEEPALIVE_DAYS: must be zero or more"),
        ("EXCLUDE = 5", "EXCLUDE: must be a list of glob patterns"),
        ("EXCLUDE = ['']", "EXCLUDE[0]: must be a non-empty string"),
        ("EXCLUDE = ['#x']", "EXCLUDE[0]: '#x' starts with '#'"),
        ("EXCLUDE = ['a[']", "EXCLUDE[0]: 'a[' is not a gitignore pattern"),
        ("EXCLUDE = ['!']", "EXCLUDE[0]: '!' is not a gitignore pattern"),
        ("EXCLUDE = ['*']", "EXCLUDE: ['*'] excludes every file and folder"),
        ("EXCLUDE = ['**']", "EXCLUDE: ['**'] excludes every file and folder"),
        ("EXCLUDE = ['x', '/*']", "EXCLUDE: ['x', '/*'] excludes every file"),
        ("EMAIL_RECIPIENTS = 5", "EMAIL_RECIPIENTS: must be a list"),
        ("EMAIL_RECIPIENTS = ['nobody']", "EMAIL_RECIPIENTS[0]: 'nobody' is not"),
        ("EMAIL_SENDER = 'a@b\\nBcc: x@y'", "EMAIL_SENDER: 'a@b\\nBcc: x@y' is not"),
        ("EMAIL_HOST = ''", "EMAIL_HOST: must be a non-empty string"),
        ("EMAIL_PORT = 0", "EMAIL_PORT: must be a port number"),
        ("EMAIL_PORT = '25'", "EMAIL_PORT: must be a port number"),
        ("EMAIL_SECURITY = 'sssl'", "did you mean ssl?"),
        ("EMAIL_USERNAME = 3", "EMAIL_USERNAME: must be a non-empty string"),
        ("EMAIL_PASSWORD_FILE = 'pw.txt'", "EMAIL_PASSWORD_FILE: 'pw.txt' is not an"),
        ("EMAIL_PASSWORD_ENV = 'A-B'", "EMAIL_PASSWORD_ENV: 'A-B' is not"),
        ("HEARTBEAT_URL = 'https://x/ y'", "HEARTBEAT_URL"),
        ("STATE_DIR = 7", "STATE_DIR: must be a path string"),
        ("DST_DIR = 'x/y'", "DST_DIR: 'x/y' is not an absolute path"),
        ("DST_DIR = '/a\\nb'", "DST_DIR: '/a\\nb' contains a NUL or newline"),
        ("DST_ID = '1234'", "DST_ID: '1234' is not a UUID"),
        ("TRANSFERS = {}", "TRANSFERS: must be a list of dicts"),
        ("TRANSFERS = ['x']", "TRANSFERS[0]: must be a dict"),
    ],
)
def test_bad_values(tmp_path: Path, line: str, needle: str) -> None:
    assert needle in one_problem(tmp_path, MINIMAL + line + "\n")


# --- paths and identity -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normal"),
    [("/", "/"), ("//", "/"), ("/a/b/", "/a/b"), ("//a/./b/../c//", "/a/c")],
)
def test_collection_paths_are_normalized(tmp_path: Path, raw: str, normal: str) -> None:
    text = MINIMAL.replace("DST_DIR = '/dst'", f"DST_DIR = {raw!r}")
    assert load(tmp_path, text).jobs[0].dst_dir == normal


def test_src_local_dir_for_the_seed_job(tmp_path: Path) -> None:
    job = load(tmp_path, MINIMAL + "SRC_LOCAL_DIR = '/mnt/src/'\n").jobs[0]
    assert job.src_dir == "/src"
    assert job.src_local_dir == Path("/mnt/src")


def test_identity_covers_both_endpoints_and_paths() -> None:
    job = model.Job("j", SRC, "/a", Path("/a"), CLIENT, "/b")
    assert (
        job.identity
        == model.Job("other", SRC, "/a", Path("/mnt"), CLIENT, "/b").identity
    )
    changed = [
        dataclasses.replace(job, src_id=CLIENT),
        dataclasses.replace(job, dst_id=SRC),
        dataclasses.replace(job, src_dir="/c"),
        dataclasses.replace(job, dst_dir="/c"),
    ]
    assert len({job.identity, *(other.identity for other in changed)}) == 5
    assert SRC in job.identity and "/b" in job.identity


def test_job_lookup_names_known_jobs(tmp_path: Path) -> None:
    settings = load(tmp_path, MINIMAL)
    with pytest.raises(ConfigError, match="known jobs: default"):
        settings.job("nightly")


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load(tmp_path, MINIMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.jobs[0].src_dir = "/x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.client_id = "x"  # type: ignore[misc]


# --- TRANSFERS ----------------------------------------------------------------------


def transfer(name: str, **extra: object) -> str:
    entry = {
        "name": name,
        "src_id": SRC,
        "src_dir": f"/src/{name}",
        "dst_id": DST,
        "dst_dir": f"/dst/{name}",
        **extra,
    }
    return repr(entry)


def test_transfers_with_overrides_and_global_defaults(tmp_path: Path) -> None:
    text = f"""\
CLIENT_ID = '{CLIENT}'
EMAIL_SENDER = 'ga@x.org'
EXCLUDE = ['*.tmp']
MIN_AGE = 60
RECURSIVE_THRESHOLD = 10
EMAIL_RECIPIENTS = ['all@x.org']
TRANSFERS = [
    {transfer("plain")},
    {
        transfer(
            "custom",
            src_local_dir="/mnt/custom",
            exclude=["raw/*"],
            min_age=0,
            recursive_threshold=0,
            email_recipients="me@x.org",
        )
    },
]
"""
    settings = load(tmp_path, text)
    plain, custom = settings.jobs
    assert plain == model.Job(
        "plain",
        SRC,
        "/src/plain",
        Path("/src/plain"),
        DST.lower(),
        "/dst/plain",
        ("*.tmp",),
        60.0,
        10,
        ("all@x.org",),
    )
    assert custom.src_local_dir == Path("/mnt/custom")
    assert custom.exclude == ("raw/*",)
    assert custom.min_age == 0.0
    assert custom.recursive_threshold == 0
    assert custom.email_recipients == ("me@x.org",)
    assert settings.job("custom") is custom


def test_transfers_combined_with_seed_names(tmp_path: Path) -> None:
    settings = load(tmp_path, MINIMAL + f"TRANSFERS = [{transfer('more')}]\n")
    assert [job.name for job in settings.jobs] == ["default", "more"]


def test_transfers_problems_name_the_entry_and_key(tmp_path: Path) -> None:
    text = f"""\
CLIENT_ID = '{CLIENT}'
TRANSFERS = [
    {transfer("ok")},
    {{"name": "bad name", "src_id": "x", "src_dir": "rel", "dst_dir": "/d",
      "min_ag": 5, "SRC_LOCAL_DIR": "/m", "src_local_dir": "rel",
      "exclude": 3, "recursive_threshold": -1}},
]
"""
    lines = problems(tmp_path, text)
    text_out = "\n".join(lines)
    for needle in (
        "TRANSFERS[1].name: 'bad name' is invalid",
        "TRANSFERS[1].src_id: 'x' is not a UUID",
        "TRANSFERS[1].src_dir: 'rel' is not an absolute path",
        "TRANSFERS[1].dst_id: required but not set",
        "TRANSFERS[1]: unknown key 'min_ag'; did you mean min_age?",
        "TRANSFERS[1]: unknown key 'SRC_LOCAL_DIR'; did you mean 'src_local_dir'?",
        "TRANSFERS[1].src_local_dir: 'rel' is not an absolute path",
        "TRANSFERS[1].exclude: must be a list of glob patterns",
        "TRANSFERS[1].recursive_threshold: must be zero or more",
    ):
        assert needle in text_out, needle
    assert len(lines) == 9
    assert "TRANSFERS[0]" not in text_out


def test_duplicate_job_names(tmp_path: Path) -> None:
    text = MINIMAL + f"TRANSFERS = [{transfer('default')}]\n"
    assert "'default' is used twice" in one_problem(tmp_path, text)
    text = f"CLIENT_ID = '{CLIENT}'\nTRANSFERS = [{transfer('a')}, {transfer('a')}]\n"
    assert "'a' is used twice" in one_problem(tmp_path, text)


def test_duplicate_job_identity(tmp_path: Path) -> None:
    same = transfer("b").replace("/src/b", "/src/a").replace("/dst/b", "/dst/a")
    text = f"CLIENT_ID = '{CLIENT}'\nTRANSFERS = [{transfer('a')}, {same}]\n"
    assert "same source and destination" in one_problem(tmp_path, text)


@pytest.mark.parametrize("name", ["a", "A.b_c-9", "2024"])
def test_valid_job_names(tmp_path: Path, name: str) -> None:
    text = f"CLIENT_ID = '{CLIENT}'\nTRANSFERS = [{transfer(name)}]\n"
    assert load(tmp_path, text).jobs[0].name == name


@pytest.mark.parametrize("name", ["", "a b", "a/b", "é", "x\n"])
def test_invalid_job_names(tmp_path: Path, name: str) -> None:
    text = f"CLIENT_ID = '{CLIENT}'\nTRANSFERS = [{transfer('x')}]\n"
    text = text.replace("'name': 'x'", f"'name': {name!r}")
    assert "TRANSFERS[0].name" in one_problem(tmp_path, text)


# --- the file -----------------------------------------------------------------------


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "config.py"
    with pytest.raises(ConfigError) as info:
        source.load_settings(path, {})
    message = str(info.value)
    assert f"globus-auto --config {path} init" in message
    assert "--config" in message


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        source.load_settings(tmp_path, {})


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path, MINIMAL)
    path.chmod(mode)
    with pytest.raises(ConfigError) as info:
        source.load_settings(path, {})
    assert f"chmod go-w {path}" in str(info.value)


def test_readable_by_others_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    path.chmod(0o644)
    assert source.load_settings(path, {}).jobs


def test_owned_by_someone_else_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, MINIMAL)
    if os.geteuid() == 0:
        os.chown(path, 12345, -1)
    else:
        monkeypatch.setattr(os, "geteuid", lambda: os.stat(path).st_uid + 12345)
    with pytest.raises(ConfigError, match=f"chown .* {path}"):
        source.load_settings(path, {})


def test_owned_by_root_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, MINIMAL)
    if os.stat(path).st_uid != 0:
        pytest.skip("needs a root-owned file")
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    assert source.load_settings(path, {}).jobs


def test_config_is_not_executed_when_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = write(tmp_path, f"open({str(marker)!r}, 'w').close()\n" + MINIMAL)
    path.chmod(0o666)
    with pytest.raises(ConfigError):
        source.load_settings(path, {})
    assert not marker.exists()


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, MINIMAL + "EXCLUDE = [\n")
    assert str(info.value).startswith(f"{tmp_path / 'config.py'}, line 6")
    assert "syntax error" in str(info.value)


def test_exception_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, MINIMAL + "\nMIN_AGE = 1 / 0\n")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'config.py'}, line 7")
    assert "ZeroDivisionError" in message


def test_sys_exit_in_config_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SystemExit"):
        load(tmp_path, "import sys\nsys.exit(3)\n")


def test_config_namespace_is_fresh_and_has_file(tmp_path: Path) -> None:
    text = MINIMAL + "assert __file__.endswith('config.py')\n_SEEN = 1\n"
    load(tmp_path, text)
    # A second load must not see names left by the first.
    load(tmp_path, MINIMAL + "assert '_SEEN' not in globals()\n")


# --- where the config is ------------------------------------------------------------


def test_resolve_config_path(tmp_path: Path) -> None:
    env = {"GLOBUS_AUTO_CONFIG": str(tmp_path / "env.py")}
    assert (
        source.resolve_config_path(str(tmp_path / "cli.py"), env) == tmp_path / "cli.py"
    )
    assert source.resolve_config_path(None, env) == tmp_path / "env.py"
    assert source.resolve_config_path(None, {}) == model.default_config_path()
    assert source.resolve_config_path(None, {"GLOBUS_AUTO_CONFIG": ""}) == (
        model.default_config_path()
    )
    assert source.resolve_config_path("~/c.py", {}) == Path.home() / "c.py"
    assert source.resolve_config_path("rel.py", {}).is_absolute()


def test_default_locations() -> None:
    assert model.default_config_path().name == "config.py"
    assert model.default_config_path().parent.name == "globus_auto"
    assert model.default_state_dir().name == "globus_auto"


# --- time settings: numbers in their own unit, or 90s / 15m / 6h / 2d -------------


@pytest.mark.parametrize(
    ("line", "attribute", "expected"),
    [
        ("MIN_AGE = 300", "min_age", 300.0),
        ("MIN_AGE = '5m'", "min_age", 300.0),
        ("MIN_AGE = '90s'", "min_age", 90.0),
        ("MIN_AGE = ' 2 H '", "min_age", 7200.0),
        ("MIN_AGE = '45'", "min_age", 45.0),  # a bare number keeps the unit
        ("ALERT_REPEAT_HOURS = '90m'", "alert_repeat_hours", 1.5),
        ("ALERT_REPEAT_HOURS = '2d'", "alert_repeat_hours", 48.0),
        ("TASK_STUCK_HOURS = '6h'", "task_stuck_hours", 6.0),
        ("TASK_STUCK_HOURS = 0.5", "task_stuck_hours", 0.5),
        ("AUTH_KEEPALIVE_DAYS = '2d'", "auth_keepalive_days", 2.0),
        ("AUTH_KEEPALIVE_DAYS = '36h'", "auth_keepalive_days", 1.5),
        ("NOTIFY_TIMEOUT = '30s'", "notify_timeout", 30.0),
        ("NOTIFY_TIMEOUT = '1m'", "notify_timeout", 60.0),
    ],
)
def test_time_settings_accept_units(
    tmp_path: Path, line: str, attribute: str, expected: float
) -> None:
    settings = load(tmp_path, MINIMAL + line + "\n")
    owner = settings.jobs[0] if attribute == "min_age" else settings
    assert getattr(owner, attribute) == expected


def test_a_job_s_min_age_accepts_units_too(tmp_path: Path) -> None:
    text = MINIMAL + (
        "TRANSFERS = [dict(name='j', src_id=SRC_ID, src_dir='/s', dst_id=DST_ID,"
        " dst_dir='/d', min_age='15m')]\n"
    )
    assert load(tmp_path, text).job("j").min_age == 900.0


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("MIN_AGE = 1e12", "MIN_AGE: 1e+12 seconds is more than 30d, the most"),
        ("MIN_AGE = '31d'", "MIN_AGE: '31d' is more than 30d"),
        ("ALERT_REPEAT_HOURS = 1e300", "ALERT_REPEAT_HOURS: 1e+300 hours is more"),
        ("TASK_STUCK_HOURS = 10**6", "TASK_STUCK_HOURS: 1e+06 hours is more than"),
        (
            "AUTH_KEEPALIVE_DAYS = 200",
            "AUTH_KEEPALIVE_DAYS: 200 days is more than 150d",
        ),
        ("NOTIFY_TIMEOUT = '2h'", "NOTIFY_TIMEOUT: '2h' is more than 1h"),
        ("MIN_AGE = '5 min'", "MIN_AGE: '5 min' is not a time; write a whole number"),
        ("MIN_AGE = '-5m'", "MIN_AGE: '-5m' is not a time"),
        ("MIN_AGE = '1.5h'", "MIN_AGE: '1.5h' is not a time"),
        (
            "TRANSFERS = [dict(name='j', src_id=SRC_ID, src_dir='/s', dst_id=DST_ID,"
            " dst_dir='/d', min_age=1e12)]",
            "TRANSFERS[0].min_age: 1e+12 seconds is more than 30d",
        ),
    ],
)
def test_time_settings_are_bounded_with_a_clear_message(
    tmp_path: Path, line: str, needle: str
) -> None:
    assert needle in one_problem(tmp_path, MINIMAL + line + "\n")


def test_cron_every_and_the_settings_read_durations_alike() -> None:
    from globus_auto.cli.cron import schedule_for
    from globus_auto.clock import parse_duration

    assert parse_duration("15m", "s") == 900 and schedule_for("15m") == "*/15 * * * *"
    assert parse_duration("15", "m") == 900 and schedule_for("15") == "*/15 * * * *"
    assert parse_duration("2d", "h") == 172_800
    with pytest.raises(ValueError, match="not an interval"):
        schedule_for("90s")  # cron runs at whole minutes


# --- collection and client ids ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "placeholder"),
    [
        ("SRC_ID", "00000000-0000-0000-0000-000000000001"),
        ("DST_ID", "00000000-0000-0000-0000-000000000002"),
        ("CLIENT_ID", "00000000-0000-0000-0000-000000000003"),
    ],
)
def test_placeholder_uuids_are_refused_naming_the_variable(
    tmp_path: Path, name: str, placeholder: str
) -> None:
    text = re.sub(rf"^{name} = .*$", f"{name} = {placeholder!r}", MINIMAL, flags=re.M)
    line = one_problem(tmp_path, text)
    assert f": {name}: {placeholder} is the template's placeholder" in line


# --- HEARTBEAT_URL's token never in a message -----------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("hc-ping.com/0f1e-secret-token", "(malformed)"),
        ("ftp://hc-ping.com/0f1e-secret-token", "ftp://hc-ping.com/…"),
        ("https://hc-ping.com/0f1e-secret-token now", "https://hc-ping.com/…"),
        ("https://user:0f1e-secret-token@example.org/x y", "https://example.org/…"),
    ],
)
def test_a_malformed_heartbeat_url_is_not_echoed(
    tmp_path: Path, url: str, shown: str
) -> None:
    line = one_problem(tmp_path, MINIMAL + f"HEARTBEAT_URL = {url!r}\n")
    assert f"HEARTBEAT_URL: {shown} is not an http:// or https:// URL" in line
    assert "secret-token" not in line


def test_a_heartbeat_url_of_another_type_is_named_by_type(tmp_path: Path) -> None:
    line = one_problem(tmp_path, MINIMAL + "HEARTBEAT_URL = ['https://x/t0k3n']\n")
    assert "HEARTBEAT_URL: a list is not" in line and "t0k3n" not in line


# --- EXCLUDE -----------------------------------------------------------------------


def test_exclude_patterns_are_gitignore_rules(tmp_path: Path) -> None:
    patterns = ["cache", "/top-only", "build/", "**/*.tmp", "!keep.tmp", "\\#x"]
    job = load(tmp_path, MINIMAL + f"EXCLUDE = {patterns!r}\n").jobs[0]
    assert job.exclude == tuple(patterns)
    catch_all = ["*", "!*/", "!*.h5"]  # re-includes: allowed
    assert load(tmp_path, MINIMAL + f"EXCLUDE = {catch_all!r}\n").jobs[0].exclude


# --- files others could change or read ---------------------------------------------


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_config_in_a_folder_others_may_write_is_refused(
    tmp_path: Path, mode: int
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    path = write(folder, MINIMAL)
    folder.chmod(mode)
    with pytest.raises(ConfigError) as info:
        source.load_settings(path, {})
    assert str(info.value) == (
        f"{path}: the folder {folder} is writable by group or others, so they could "
        "replace the config, which is executed as code; fix with "
        f"`chmod go-w {folder}` or keep the config in a private folder"
    )


def test_a_folder_above_it_counts_too_unless_sticky(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    (outer / "inner").mkdir(parents=True)
    path = write(outer / "inner", MINIMAL)
    outer.chmod(0o777)
    with pytest.raises(ConfigError, match=f"the folder {outer} is writable"):
        source.load_settings(path, {})
    outer.chmod(0o1777)  # sticky, as /tmp: nobody may rename another's file
    assert source.load_settings(path, {}).jobs


def test_a_config_link_in_a_folder_others_may_write_is_refused(tmp_path: Path) -> None:
    private, shared = tmp_path / "private", tmp_path / "shared"
    private.mkdir()
    shared.mkdir()
    target = write(private, MINIMAL)
    link = shared / "config.py"
    link.symlink_to(target)
    shared.chmod(0o777)
    with pytest.raises(ConfigError, match=f"the folder {shared} is writable"):
        source.load_settings(link, {})


def test_a_readable_config_holding_a_secret_gets_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "CLIENT_SECRET = 'very-secret'\n")
    assert source.load_settings(path, {}).warnings == ()
    path.chmod(0o640)
    (warning,) = source.load_settings(path, {}).warnings
    assert warning == (
        f"{path}: holds CLIENT_SECRET and is readable by group or others; fix with "
        f"`chmod go-r {path}` (and take the secret out: $GLOBUS_AUTO_CLIENT_SECRET "
        "can hold CLIENT_SECRET)"
    )
    plain = write(tmp_path, MINIMAL, name="plain.py")
    plain.chmod(0o644)  # nothing secret in it: fine
    assert source.load_settings(plain, {}).warnings == ()


def test_a_readable_password_file_gets_a_warning(tmp_path: Path) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    text = MINIMAL + f"EMAIL_PASSWORD_FILE = {str(secret)!r}\n"
    assert load(tmp_path, text).warnings == ()
    secret.chmod(0o604)
    (warning,) = load(tmp_path, text).warnings
    assert warning.startswith(f"{secret}: the SMTP password file")
    assert warning.endswith(f"fix with `chmod go-r {secret}`")
