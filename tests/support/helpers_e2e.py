"""Shared helpers for end-to-end tests: a config.py for the emulator, the CLI.

``write_config`` writes a 0600 ``config.py`` describing one job (``default``)
from the emulator's source collection ``/data`` to its destination collection
``/backup``, with the emulator's confidential client. ``run_cli`` and
``start_cli`` run ``python -m globus_auto`` as a real subprocess with globus-sdk
pointed at the emulator; ``write_jobs_config`` writes a config of several jobs,
``mail_to`` the settings that mail a loopback SMTP server, and
``imported_by_run`` lists what a run imports. The remaining helpers read
trees and datastores.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emulator_fixtures import TestEmulator
from smtp_fixtures import SmtpTestServer

SRC_DIR = "/data"
DST_DIR = "/backup"
NOBODY = 65534  # uid and gid of nobody/nogroup, for tests that root would pass
# Set (e.g. to 1) to run the end-to-end tests with that SCAN_THREADS; with
# GLOBUS_AUTO_TEST_SCAN_PARALLEL=1 the parallel walk uses its threads at once.
SCAN_THREADS_VARIABLE = "GLOBUS_AUTO_TEST_SCAN_THREADS"
MAIL_SENDER, MAIL_RECIPIENT = "globus-auto@example.org", "ops@example.org"
URL_VARIABLES = ("GLOBUS_SDK_SERVICE_URL_TRANSFER", "GLOBUS_SDK_SERVICE_URL_AUTH")


def src_data(emulator: TestEmulator) -> Path:
    """The local folder behind the job's SRC_DIR (created if needed)."""
    path = emulator.src_root / SRC_DIR.strip("/")
    path.mkdir(parents=True, exist_ok=True)
    return path


def dst_data(emulator: TestEmulator) -> Path:
    """The local folder behind the job's DST_DIR (may not exist yet)."""
    return emulator.dst_root / DST_DIR.strip("/")


def write_config(path: Path, emulator: TestEmulator, **extra: Any) -> Path:
    """Write a 0600 config.py at ``path`` for one job against ``emulator``.

    ``extra`` adds or overrides names (e.g. ``STATE_DIR``, ``EXCLUDE``); values
    are written with ``repr``. ``STATE_DIR`` defaults to ``path``'s folder/state.
    Returns ``path``.
    """
    values: dict[str, Any] = {
        "CLIENT_ID": emulator.confidential_client_id,
        "CLIENT_SECRET": emulator.confidential_client_secret,
        "SRC_ID": emulator.src_id,
        "SRC_DIR": SRC_DIR,
        "SRC_LOCAL_DIR": str(src_data(emulator)),
        "DST_ID": emulator.dst_id,
        "DST_DIR": DST_DIR,
        "STATE_DIR": str(path.parent / "state"),
    }
    if os.environ.get(SCAN_THREADS_VARIABLE):
        values["SCAN_THREADS"] = int(os.environ[SCAN_THREADS_VARIABLE])
    values.update(extra)
    text = "".join(f"{name} = {value!r}\n" for name, value in values.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)
    return path


def named_jobs(emulator: TestEmulator, names: Sequence[str]) -> list[dict[str, str]]:
    """TRANSFERS entries, one for each name: ``/data/NAME`` of the emulator's
    source collection (here ``src_data/NAME``) to ``/backup/NAME``."""
    source = src_data(emulator)
    return [
        {
            "name": name,
            "src_id": emulator.src_id,
            "src_dir": f"/data/{name}",
            "src_local_dir": str(source / name),
            "dst_id": emulator.dst_id,
            "dst_dir": f"/backup/{name}",
        }
        for name in names
    ]


def write_jobs_config(
    path: Path, emulator: TestEmulator, names: Sequence[str], **extra: Any
) -> Path:
    """:func:`write_config` with the jobs of :func:`named_jobs` in TRANSFERS
    and without the job ``default`` (its SRC_ and DST_ names left out)."""
    config = write_config(
        path, emulator, TRANSFERS=named_jobs(emulator, names), **extra
    )
    text = config.read_text()
    for name in ("SRC_ID", "SRC_DIR", "SRC_LOCAL_DIR", "DST_ID", "DST_DIR"):
        text = "\n".join(
            line for line in text.splitlines() if not line.startswith(name + " ")
        )
    config.write_text(text + "\n")
    return config


def mail_to(smtp: SmtpTestServer) -> dict[str, Any]:
    """The settings that mail alerts from MAIL_SENDER to MAIL_RECIPIENT through
    the loopback server ``smtp``."""
    return {
        "EMAIL_SENDER": MAIL_SENDER,
        "EMAIL_RECIPIENTS": [MAIL_RECIPIENT],
        "EMAIL_HOST": smtp.host,
        "EMAIL_PORT": smtp.port,
    }


def state_dir_of(config: Path) -> Path:
    """The STATE_DIR a config written by :func:`write_config` uses by default."""
    return config.parent / "state"


def point_sdk_at(emulator: TestEmulator) -> dict[str, str | None]:
    """Point globus-sdk in this process at ``emulator`` (its service URL
    variables); returns their values before, for :func:`restore_environment`."""
    saved = {name: os.environ.get(name) for name in URL_VARIABLES}
    os.environ.update(dict.fromkeys(URL_VARIABLES, emulator.url))
    return saved


def restore_environment(saved: Mapping[str, str | None]) -> None:
    """Put back the variables ``saved`` names; None: the variable was unset."""
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def cli_env(
    emulator: TestEmulator, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for a CLI subprocess talking to ``emulator``."""
    env = dict(os.environ)
    env["GLOBUS_SDK_SERVICE_URL_TRANSFER"] = emulator.url
    env["GLOBUS_SDK_SERVICE_URL_AUTH"] = emulator.url
    env.pop("GLOBUS_AUTO_TEST_CRASH_AT", None)
    env.update(extra or {})
    return env


def cli_command(config: Path, args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "globus_auto", "--config", str(config), *args]


def imported_by_run(config: Path, env: Mapping[str, str] | None = None) -> set[str]:
    """The modules ``python -X importtime -m globus_auto --config CONFIG run``
    imports, run in ``env`` (else this process's environment); it must exit 0."""
    python, *args = cli_command(config, ["run"])
    done = subprocess.run(
        [python, "-X", "importtime", *args],
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "import time:" in line]
    assert lines, done.stderr  # importtime did list the imports
    return {line.rsplit("|", 1)[-1].strip() for line in lines}


def run_cli(
    args: Sequence[str],
    env: Mapping[str, str],
    timeout: float = 60,
    user: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m globus_auto ARGS`` to its end; output captured as text.

    ``user`` runs it as that uid, with the same gid and no supplementary groups
    (root's groups would otherwise be kept).
    """
    as_user: dict[str, Any] = {}
    if user is not None:
        as_user = {"user": user, "group": user, "extra_groups": []}
    return subprocess.run(
        [sys.executable, "-m", "globus_auto", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **as_user,
    )


def cli_unusable_by(user: int, env: Mapping[str, str]) -> str | None:
    """Why ``user`` cannot run the CLI from this interpreter, or None if it can.

    Tests run as root use it to decide whether to skip: the interpreter, its
    packages and the repository must be readable by others.
    """
    probe = [sys.executable, "-c", "import globus_auto.main, globus_sdk, blake3"]
    try:
        done = subprocess.run(
            probe,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            user=user,
            group=user,
            extra_groups=[],
        )
    except OSError as exc:
        detail = str(exc)
    else:
        if done.returncode == 0:
            return None
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return (
        f"uid {user} cannot run {sys.executable} with globus_auto ({detail}); "
        "put the interpreter, venv and repository where others can read them"
    )


@contextmanager
def started_emulator(base: Path) -> Iterator[TestEmulator]:
    """A started emulator with its collections under ``base``; stopped after."""
    emulator = TestEmulator(base)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


def start_cli(args: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
    """Start ``python -m globus_auto ARGS`` without waiting for it."""
    return subprocess.Popen(
        [sys.executable, "-m", "globus_auto", *args],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def tree(root: Path) -> dict[bytes, bytes]:
    """Every regular file under ``root``: relative path (bytes) -> content."""
    found: dict[bytes, bytes] = {}
    base = os.fsencode(root)
    for folder, _dirs, files in os.walk(base):
        for name in files:
            full = os.path.join(folder, name)
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as handle:
                    found[os.path.relpath(full, base)] = handle.read()
    return found


def missing_or_different(src: Path, dst: Path) -> list[bytes]:
    """Source files the destination lacks or holds with other content."""
    have = tree(dst)
    return sorted(p for p, data in tree(src).items() if have.get(p) != data)


def dump_table(datastore: Path, table: str) -> list[tuple[Any, ...]]:
    """Every row of ``table`` in a stable order (read-only)."""
    conn = sqlite3.connect(f"file:{datastore}?mode=ro", uri=True)
    try:
        return sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
    finally:
        conn.close()


def alert_kinds(datastore: Path) -> set[tuple[str, str]]:
    """(job, kind) of every open alert row."""
    return {(row[0], row[1]) for row in dump_table(datastore, "alerts")}


def write_files(root: Path, files: Mapping[str, bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
