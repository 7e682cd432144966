"""Coming from the original LBNL script: ``main.py`` run by path, and ``upgrade``.

Every test runs the real command as a subprocess, as cron or a person would,
against the emulator. The old installation is made as the original script
left it: its folder with ``config.py`` (the original names only, plus
``EMAIL_PORT`` for the loopback SMTP server), ``main.py``, ``utils.py``, a
``log``, a ``shelve`` ``datastore`` of MD5 digests, and ``refresh_token`` in
the original's format (the native app's client id, a newline, the Transfer
refresh token), obtained through the emulator's login as the original's
``globus_generate_refresh_token`` did. Its source collection is rooted at
``/``, like the Globus Connect Personal endpoint the original expected: there
``SRC_DIR`` is both the local folder and the path on the collection.

``HOME`` is a temporary folder, so the default config location and state
folder are in it, and ``crontab`` on ``PATH`` is a stand-in script.
"""

from __future__ import annotations

import hashlib
import os
import re
import shelve
import shutil
import stat
import subprocess
import sys
import sysconfig
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import globus_sdk
import pytest
import requests
from helpers_e2e import cli_env, dst_data, missing_or_different, src_data
from helpers_e2e import write_config as write_e2e_config
from login_site import on_terminal
from smtp_fixtures import SmtpTestServer

from globus_auto import __version__ as package_version
from globus_auto.emulator import Emulator

REPO = Path(__file__).resolve().parents[2]
MAIN_PY = REPO / "globus_auto" / "main.py"
TRANSFER_SCOPE = "urn:globus:auth:scope:transfer.api.globus.org:all"
# What the original's NativeAppAuthClient.oauth2_start_flow asked for (the
# globus-sdk default of its time); it kept only the Transfer refresh token.
ORIGINAL_SCOPES = f"openid profile email {TRANSFER_SCOPE}"
CODE_RE = re.compile(r'id="auth-code">([^<]+)<')
OLD_CRON = "*/10 * * * * cd {folder} && /usr/bin/python3 main.py >> {folder}/log 2>&1"
OTHER_CRON = "0 3 * * * /usr/local/bin/backup-home"


@dataclass
class OldSite:
    """The original script's installation, and the machine around it."""

    emulator: Emulator
    smtp: SmtpTestServer
    base: Path
    folder: Path  # the original script's folder
    src: Path  # SRC_DIR: here and on the source collection
    dst: Path  # the local folder behind DST_DIR
    src_id: str
    dst_id: str
    client_id: str
    refresh_token: str

    @property
    def home(self) -> Path:
        return self.base / "home"

    @property
    def bin(self) -> Path:
        return self.base / "bin"

    @property
    def config(self) -> Path:
        """The default config location under this HOME."""
        return self.home / ".config" / "globus_auto" / "config.py"

    @property
    def state(self) -> Path:
        """The default state folder under this HOME."""
        return self.home / ".local" / "state" / "globus_auto"

    def env(self) -> dict[str, str]:
        env = cli_env(self.emulator)  # type: ignore[arg-type]
        for name in list(env):
            if name.startswith(("XDG_", "GLOBUS_AUTO_")):
                del env[name]
        env["HOME"] = str(self.home)
        env["PATH"] = f"{self.bin}:/usr/bin:/bin"
        return env

    def crontab(self, text: str | None, status: int = 0) -> None:
        """Put a stand-in ``crontab`` on PATH: ``-l`` prints ``text`` and exits
        with ``status``; None: no crontab command at all."""
        script = self.bin / "crontab"
        script.unlink(missing_ok=True)
        if text is None:
            return
        body = text.replace("'", "'\\''")
        script.write_text(
            f'#!/bin/sh\n[ "$1" = -l ] || exit 2\n'
            f"printf '%s' '{body}' >&{2 if status else 1}\nexit {status}\n"
        )
        script.chmod(0o755)


def _login_like_the_original(emulator: Emulator, client_id: str) -> str:
    """A Transfer refresh token, got as the original script got its own."""
    client = globus_sdk.NativeAppAuthClient(client_id)
    client.oauth2_start_flow(refresh_tokens=True, requested_scopes=ORIGINAL_SCOPES)
    page = requests.get(client.oauth2_get_authorize_url(), timeout=10)
    page.raise_for_status()
    found = CODE_RE.search(page.text)
    assert found, page.text
    tokens = client.oauth2_exchange_code_for_tokens(found.group(1))
    return str(tokens.by_resource_server["transfer.api.globus.org"]["refresh_token"])


def _md5(path: Path) -> str:
    """The original's ``utils.md5_hash``: the path, then the content."""
    digest = hashlib.md5()
    digest.update(str(path).encode())
    digest.update(path.read_bytes())
    return digest.hexdigest()


def _old_folder(site: OldSite) -> None:
    folder = site.folder
    folder.mkdir(parents=True)
    values = {
        "SRC_DIR": str(site.src),
        "DST_DIR": "/backup",
        "EMAIL_SENDER": "globus_auto@lab.example.org",
        "EMAIL_RECIPIENTS": ["me@lab.example.org"],
        "SRC_ID": site.src_id,
        "DST_ID": site.dst_id,
        "CLIENT_ID": site.client_id,
        "CODE_PATH": f"{folder}/",
        "PYTHON_PATH": "python",
        "EMAIL_HOST": site.smtp.host,
        "EMAIL_PORT": site.smtp.port,
    }
    text = "#!/usr/bin/env python\n\n" + "".join(
        f"{name} = {value!r}\n" for name, value in values.items()
    )
    (folder / "config.py").write_text(text)
    (folder / "config.py").chmod(0o600)
    for name in ("main.py", "utils.py", "__init__.py"):
        (folder / name).write_text(f"# the original script's {name}\n")
    (folder / "log").write_text("2024-01-01 AUTO_2024-01-01_0000 submitted\n")
    (folder / "refresh_token").write_text(f"{site.client_id}\n{site.refresh_token}")
    with shelve.open(str(folder / "datastore")) as shelf:
        for path in sorted(p for p in site.src.rglob("*") if p.is_file()):
            shelf[str(path)] = _md5(path)


def _make_site(
    base: Path,
    smtp: SmtpTestServer,
    monkeypatch: pytest.MonkeyPatch,
    entity_type: str,
) -> Iterator[OldSite]:
    src_id, dst_id, client_id = (str(uuid.uuid4()) for _ in range(3))
    dst_root = base / "dst-collection"
    dst_root.mkdir()
    emulator = Emulator(
        collections={src_id: Path("/"), dst_id: dst_root},
        clients={client_id: None},
        collection_options={
            src_id: {"entity_type": entity_type, "display_name": "Beamline"},
            dst_id: {"entity_type": entity_type, "display_name": "Archive"},
        },
    )
    emulator.start()
    try:
        monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_AUTH", emulator.url)
        monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_TRANSFER", emulator.url)
        src = base / "beamline" / "raw"
        (src / "run-001").mkdir(parents=True)
        (src / "notes.txt").write_text("first notes\n")
        (src / "run-001" / "detector.dat").write_bytes(os.urandom(64 * 1024))
        (src / "run-001" / "empty.txt").write_bytes(b"")
        site = OldSite(
            emulator=emulator,
            smtp=smtp,
            base=base,
            folder=base / "home" / "globus_auto",
            src=src,
            dst=dst_root / "backup",
            src_id=src_id,
            dst_id=dst_id,
            client_id=client_id,
            refresh_token=_login_like_the_original(emulator, client_id),
        )
        site.bin.mkdir()
        _old_folder(site)
        site.crontab(OLD_CRON.format(folder=site.folder) + "\n" + OTHER_CRON + "\n")
        yield site
    finally:
        emulator.stop()


@pytest.fixture
def old_site(
    tmp_path: Path, smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OldSite]:
    """The original script's installation; both collections are GCSv5 guest
    collections, which need no data_access consent (the original script's
    login never asked for one)."""
    yield from _make_site(tmp_path, smtp_server, monkeypatch, "GCSv5_guest_collection")


@pytest.fixture
def mapped_site(
    tmp_path: Path, smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OldSite]:
    """The same on GCSv5 mapped collections, which need data_access consent."""
    yield from _make_site(tmp_path, smtp_server, monkeypatch, "GCSv5_mapped_collection")


# --- driving the command ----------------------------------------------------------


def globus_auto(site: OldSite, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m globus_auto ARGS`` on no terminal, stdin /dev/null."""
    return subprocess.run(
        [sys.executable, "-m", "globus_auto", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=site.env(),
        timeout=120,
        check=False,
    )


def upgrade(site: OldSite, *args: str) -> subprocess.CompletedProcess[str]:
    return globus_auto(site, "upgrade", "--from", str(site.folder), *args)


def new_cron_line(output: str) -> str:
    lines = [line for line in output.splitlines() if "-m globus_auto" in line]
    assert len(lines) == 1, output
    return lines[0]


def run_as_cron(site: OldSite, line: str) -> subprocess.CompletedProcess[str]:
    """The command of crontab ``line`` as cron runs it: ``/bin/sh -c`` in a
    bare environment, no terminal, stdin /dev/null, from HOME."""
    fields = line.split(None, 5)
    command = fields[5].replace("\\%", "%")
    bare = {
        "HOME": str(site.home),
        "LOGNAME": "root",
        "SHELL": "/bin/sh",
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        ["/bin/sh", "-c", command],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=bare,
        cwd=site.home,
        timeout=120,
        check=False,
    )


def snapshot(*roots: Path) -> dict[str, Any]:
    """Every file, folder and link under ``roots``: mode, size, mtime, content."""
    found: dict[str, Any] = {}
    for root in roots:
        if not root.exists():
            found[str(root)] = None
            continue
        for path in sorted([root, *root.rglob("*")]):
            st = path.lstat()
            content = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
            found[str(path)] = (st.st_mode, st.st_size, st.st_mtime_ns, content)
    return found


def delivered(site: OldSite) -> list[bytes]:
    assert site.emulator.wait_idle(30)
    return missing_or_different(site.src, site.dst)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


# --- main.py run by path ----------------------------------------------------------


def test_main_py_by_path_prints_the_same_help_as_globus_auto(tmp_path: Path) -> None:
    console_script = Path(sys.executable).with_name("globus-auto")
    expected = subprocess.run(
        [str(console_script), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for argv in (
        [sys.executable, str(MAIN_PY), "--help"],
        [sys.executable, "-m", "globus_auto", "--help"],
    ):
        done = subprocess.run(
            argv, capture_output=True, text=True, cwd=tmp_path, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == expected
    assert expected.startswith("Usage: globus-auto ")
    assert "upgrade" in expected


def test_main_py_of_a_checkout_never_installed_uses_that_checkout(
    tmp_path: Path,
) -> None:
    """``python globus_auto/main.py`` in a checkout that was never installed:
    the base interpreter, with the dependencies on PYTHONPATH (where the
    editable install's finder is not activated)."""
    base = getattr(sys, "_base_executable", None)
    if not base or sys.prefix == sys.base_prefix:
        pytest.skip("needs a virtualenv, to run its base interpreter without it")
    checkout = tmp_path / "checkout"
    shutil.copytree(
        REPO / "globus_auto",
        checkout / "globus_auto",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    init = checkout / "globus_auto" / "__init__.py"
    version = package_version
    text = init.read_text()
    assert f'"{version}"' in text
    init.write_text(text.replace(f'"{version}"', f'"{version}+checkout"'))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": sysconfig.get_paths()["purelib"],
    }
    done = subprocess.run(
        [base, "-s", "globus_auto/main.py", "--version"],
        capture_output=True,
        text=True,
        cwd=checkout,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"globus-auto, version {version}+checkout"


def test_main_py_run_by_path_runs_a_job(emulator: Any, tmp_path: Path) -> None:
    (src_data(emulator) / "a.txt").write_text("sent by main.py\n")
    config = write_e2e_config(tmp_path / "config.py", emulator)
    done = subprocess.run(
        [sys.executable, str(MAIN_PY), "--config", str(config), "run"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=cli_env(emulator),
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert emulator.wait_idle(30)
    assert missing_or_different(src_data(emulator), dst_data(emulator)) == []


# --- upgrade ----------------------------------------------------------------------


def test_upgrade_takes_over_and_a_cron_run_delivers_everything(
    old_site: OldSite,
) -> None:
    site = old_site
    before = snapshot(site.folder)
    done = upgrade(site)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    # the config: copied, private, the same text
    assert site.config.read_bytes() == (site.folder / "config.py").read_bytes()
    assert mode(site.config) == 0o600
    assert f"copied {site.folder / 'config.py'} to {site.config}" in out
    # the login: imported, and the collections known to runs
    assert mode(site.state / "tokens.json") == 0o600
    assert (site.state / "data_access.json").exists()
    assert "works (one refresh at Globus Auth); imported into" in out
    # the datastore: named, and not reused
    assert f"{site.folder / 'datastore'}" in out
    assert "is not reused" in out and "checksum sync" in out
    # the cron lines: the original's to remove, the new one on its schedule
    assert f"  {OLD_CRON.format(folder=site.folder)}" in out.splitlines()
    assert OTHER_CRON not in out
    line = new_cron_line(out)
    assert line.startswith(f"*/10 * * * * cd {site.state} && umask 077; ")
    assert f"--config {site.config} run" in line
    assert done.stderr == ""
    assert snapshot(site.folder) == before  # every old file untouched
    assert site.refresh_token not in out

    ran = run_as_cron(site, line)
    assert ran.returncode == 0, (site.state / "cron.log").read_text()
    assert ran.stdout == ran.stderr == ""
    assert (site.state / "cron.log").read_text() == ""  # a good run is silent
    assert delivered(site) == []
    assert site.smtp.messages == []
    assert snapshot(site.folder) == before


def test_upgrade_dry_run_changes_no_file_and_leaves_the_token_unused(
    old_site: OldSite,
) -> None:
    site = old_site
    site.crontab(None)  # no crontab command on this machine: fine
    before = snapshot(site.folder, site.home, site.base / "dst-collection")
    done = upgrade(site, "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"would copy {site.folder / 'config.py'} to {site.config}" in out
    assert "would import the refresh token" in out
    assert "not tested in a dry run" in out
    assert "is not reused" in out
    assert "replace the original script's cron line with this one" in out
    assert new_cron_line(out).startswith("*/15 * * * * ")
    assert "nothing was written and the refresh token was not used" in out
    assert snapshot(site.folder, site.home, site.base / "dst-collection") == before
    assert not site.config.exists() and not site.state.exists()

    # The token was not spent: the real upgrade refreshes it (Globus rotates
    # it, so a refresh by the dry run would have made this one fail).
    done = upgrade(site)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Globus replaced the refresh token" in done.stdout


def test_a_revoked_old_token_ends_upgrade_with_exit_3_and_the_login(
    old_site: OldSite,
) -> None:
    site = old_site
    site.crontab("no crontab for root\n", status=1)  # `crontab -l` without one
    site.emulator.revoke_all_tokens()
    before = snapshot(site.folder)
    done = upgrade(site)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Globus Auth refused the refresh token" in done.stderr
    assert f"globus-auto --config {site.config} login" in done.stderr
    assert "nothing was imported" in done.stderr
    assert not (site.state / "tokens.json").exists()
    assert "could not be read: crontab -l: no crontab for root" in done.stdout
    assert new_cron_line(done.stdout)  # the line is still shown, for afterwards
    assert snapshot(site.folder) == before


def test_upgrade_refuses_a_group_writable_old_config(old_site: OldSite) -> None:
    site = old_site
    old_config = site.folder / "config.py"
    old_config.chmod(0o664)
    before = snapshot(site.folder, site.home)
    done = upgrade(site)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"fix with `chmod go-w {old_config}`" in done.stderr
    assert snapshot(site.folder, site.home) == before
    assert not site.config.exists() and not site.state.exists()


def test_upgrade_never_overwrites_a_config_and_says_how_to_go_on(
    old_site: OldSite,
) -> None:
    site = old_site
    old_config = site.folder / "config.py"
    site.config.parent.mkdir(parents=True)
    site.config.write_text("# another globus-auto config\n")
    old_files = snapshot(site.folder)
    before = snapshot(site.folder, site.home)
    done = upgrade(site)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{site.config} exists already and differs" in done.stderr
    assert "nothing was changed" in done.stderr
    advice = f"globus-auto --config {old_config} upgrade --from {site.folder}"
    assert advice in done.stderr
    assert snapshot(site.folder, site.home) == before
    assert not site.state.exists()

    # Taking the advice: the old config is used where it is.
    done = globus_auto(
        site, "--config", str(old_config), "upgrade", "--from", str(site.folder)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"config: {old_config} is used where it is" in done.stdout
    assert f"--config {old_config} run" in new_cron_line(done.stdout)
    assert site.config.read_text() == "# another globus-auto config\n"
    ran = globus_auto(site, "--config", str(old_config), "run")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "globus-auto upgrade" not in ran.stderr  # the login is in place now
    assert delivered(site) == []
    assert snapshot(site.folder) == old_files


def test_a_second_upgrade_keeps_the_copy_and_the_login(old_site: OldSite) -> None:
    site = old_site
    assert upgrade(site).returncode == 0
    tokens = (site.state / "tokens.json").read_bytes()
    done = upgrade(site)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is already a copy" in done.stdout
    assert "a globus-auto login is stored already" in done.stdout
    assert (site.state / "tokens.json").read_bytes() == tokens


def test_the_old_folder_config_gets_a_one_line_hint_to_upgrade(
    old_site: OldSite,
) -> None:
    site = old_site
    old_config = site.folder / "config.py"
    done = globus_auto(site, "--config", str(old_config), "run")
    assert done.returncode == 3, done.stdout + done.stderr
    hints = [line for line in done.stderr.splitlines() if "upgrade --from" in line]
    assert hints == [
        f"globus-auto: note: {site.folder} looks like the original LBNL script's "
        "folder (its refresh_token is there) and globus-auto has no login yet; "
        f"take it over, login included, with: globus-auto upgrade --from "
        f"{site.folder}"
    ]


def test_on_mapped_collections_the_consent_login_is_asked_for(
    mapped_site: OldSite,
) -> None:
    """GCSv5 mapped collections need a data_access consent, which the old
    login cannot carry: upgrade says so (exit 3), and so does the first run."""
    site = mapped_site
    done = upgrade(site)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "data_access consent" in done.stderr
    assert f"globus-auto --config {site.config} login" in done.stderr
    assert (site.state / "tokens.json").exists()  # imported all the same
    ran = run_as_cron(site, new_cron_line(done.stdout))
    assert ran.returncode == 3
    said = (site.state / "cron.log").read_text()
    assert "data_access consent" in said
    assert f"globus-auto --config {site.config} login" in said
    assert delivered(site) != []


def test_after_the_consent_login_a_cron_run_delivers(mapped_site: OldSite) -> None:
    """The login upgrade asks for on mapped collections replaces the imported
    tokens, and from then on cron delivers."""
    site = mapped_site
    done = upgrade(site)
    assert done.returncode == 3, done.stdout + done.stderr
    person = SimpleNamespace(config=site.config, env=site.env, outputs=[])
    status, shown, codes = on_terminal(person, "login")  # type: ignore[arg-type]
    assert status == 0, shown
    assert "Logged in." in shown and codes >= 1
    ran = run_as_cron(site, new_cron_line(done.stdout))
    assert ran.returncode == 0, (site.state / "cron.log").read_text()
    assert delivered(site) == []


def test_the_imported_login_refreshes_once_the_access_token_expires(
    old_site: OldSite,
) -> None:
    site = old_site
    done = upgrade(site)
    assert done.returncode == 0, done.stdout + done.stderr
    line = new_cron_line(done.stdout)
    assert run_as_cron(site, line).returncode == 0
    assert delivered(site) == []
    site.emulator.expire_access_tokens()
    (site.src / "notes.txt").write_text("second notes\n")
    ran = run_as_cron(site, line)
    assert ran.returncode == 0, (site.state / "cron.log").read_text()
    assert delivered(site) == []
