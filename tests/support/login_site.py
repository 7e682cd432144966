"""A user's site for end-to-end tests: the emulator, a config.py, a state folder, mail.

``site`` (a fixture) is one user login setup on the standard emulator; the
helpers drive ``globus-auto`` as cron does (``run_cli``: no terminal) and as a
person does (``on_terminal``: a pseudo-terminal, the login URL opened like a
browser would and the code pasted back), and read what happened.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from emulator_fixtures import TestEmulator
from smtp_fixtures import SmtpTestServer

from globus_auto.emulator import Emulator

URL_RE = re.compile(rb"(http://\S+/v2/oauth2/authorize\?\S+)")
CODE_RE = re.compile(r'id="auth-code">([^<]+)<')
CODE_PROMPT = b"authorization code here:"
CONFIRM_PROMPT = b"[Y/n]:"


@dataclass
class Site:
    """One user's setup: an emulator, a config.py, its state folder and mail."""

    emulator: Emulator
    smtp: SmtpTestServer
    config: Path
    src_id: str
    dst_id: str
    src: Path  # the local source folder (SRC_DIR on the source collection)
    dst: Path  # the local destination folder (DST_DIR on the destination)
    native_client_id: str
    values: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)

    @property
    def state(self) -> Path:
        return self.config.parent / "state"

    @property
    def tokens(self) -> Path:
        return self.state / "tokens.json"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["GLOBUS_SDK_SERVICE_URL_TRANSFER"] = self.emulator.url
        env["GLOBUS_SDK_SERVICE_URL_AUTH"] = self.emulator.url
        for name in ("DISPLAY", "WAYLAND_DISPLAY", "GLOBUS_AUTO_TEST_CRASH_AT"):
            env.pop(name, None)
        return env

    def write_config(self, **changes: Any) -> None:
        self.values.update(changes)
        text = "".join(f"{k} = {v!r}\n" for k, v in self.values.items())
        self.config.write_text(text)
        self.config.chmod(0o600)


def make_site(
    emulator: Emulator,
    smtp: SmtpTestServer,
    base: Path,
    src_id: str,
    dst_id: str,
    native_client_id: str,
) -> Site:
    roots = emulator.state.collections
    src = roots[src_id].root / "data"
    src.mkdir(parents=True, exist_ok=True)
    (src / "a.txt").write_text("first file\n")
    (src / "sub").mkdir(exist_ok=True)
    (src / "sub" / "b.bin").write_bytes(os.urandom(2048))
    site = Site(
        emulator=emulator,
        smtp=smtp,
        config=base / "config.py",
        src_id=src_id,
        dst_id=dst_id,
        src=src,
        dst=roots[dst_id].root / "backup",
        native_client_id=native_client_id,
    )
    site.write_config(
        CLIENT_ID=native_client_id,
        SRC_ID=src_id,
        SRC_DIR="/data",
        SRC_LOCAL_DIR=str(src),
        DST_ID=dst_id,
        DST_DIR="/backup",
        STATE_DIR=str(site.state),
        EMAIL_SENDER="globus-auto@test.example.org",
        EMAIL_RECIPIENTS=["me@test.example.org"],
        EMAIL_HOST=smtp.host,
        EMAIL_PORT=smtp.port,
        EMAIL_SECURITY="none",
    )
    return site


@pytest.fixture
def site(emulator: TestEmulator, smtp_server: SmtpTestServer, tmp_path: Path) -> Site:
    """A user login setup on the standard emulator (both collections GCSv5
    mapped, so both need a data_access consent)."""
    return make_site(
        emulator,
        smtp_server,
        tmp_path,
        emulator.src_id,
        emulator.dst_id,
        emulator.native_client_id,
    )


@pytest.fixture
def three_collections(tmp_path: Path) -> Iterator[tuple[Emulator, list[str], str]]:
    """An emulator with a mapped, a guest and another mapped collection."""
    ids = [str(uuid.uuid4()) for _ in range(3)]
    roots = {cid: tmp_path / f"collection-{n}" for n, cid in enumerate(ids)}
    for root in roots.values():
        root.mkdir()
    client = str(uuid.uuid4())
    emu = Emulator(
        collections=dict(roots),
        clients={client: None},
        collection_options={ids[1]: {"entity_type": "GCSv5_guest_collection"}},
    )
    emu.start()
    try:
        yield emu, ids, client
    finally:
        emu.stop()


# --- driving the command ----------------------------------------------------------


def run_cli(site: Site, *args: str, closed_stdin: bool = False) -> Any:
    """``globus-auto --config CONFIG ARGS`` as cron runs it: no terminal."""
    result = subprocess.run(
        [sys.executable, "-m", "globus_auto", "--config", str(site.config), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=site.env(),
        timeout=120,
        # fd 0 closed altogether, as some schedulers start jobs
        preexec_fn=(lambda: os.close(0)) if closed_stdin else None,
    )
    site.outputs += [result.stdout, result.stderr]
    return result


def browse(url: str) -> str:
    """Open the authorize URL like a browser; return the code the page shows."""
    page = requests.get(url, timeout=10)
    page.raise_for_status()
    match = CODE_RE.search(page.text)
    assert match, page.text
    return match.group(1)


def on_terminal(
    site: Site,
    *args: str,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    confirm: bytes = b"y\n",
) -> tuple[int, str, int]:
    """Run the command on a pseudo-terminal, answering as a person would.

    ``env`` adds to the site's environment; ``confirm`` is typed at each
    "[Y/n]" prompt (b"\x04" is end of input). Returns the exit status,
    everything the terminal showed and how many times a code was pasted.
    """
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "globus_auto", "--config", str(site.config), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**site.env(), **(env or {})},
        start_new_session=True,
    )
    os.close(slave)
    shown = b""
    answered = 0
    confirmed = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            tail = shown.rstrip()
            urls = URL_RE.findall(shown)
            if tail.endswith(CODE_PROMPT) and len(urls) > answered:
                code = browse(urls[answered].decode())
                os.write(master, code.encode() + b"\n")
                answered += 1
            elif tail.endswith(CONFIRM_PROMPT) and shown.count(CONFIRM_PROMPT) > (
                confirmed
            ):
                os.write(master, confirm)
                confirmed += 1
        status = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    text = shown.decode(errors="replace")
    site.outputs.append(text)
    return status, text, answered


def login(site: Site) -> int:
    """Log in on a terminal; returns how many codes were pasted."""
    status, shown, rounds = on_terminal(site, "login")
    assert status == 0, shown
    assert "Logged in." in shown
    return rounds


# --- looking at the results -----------------------------------------------------------


def table(site: Site, name: str) -> list[tuple[Any, ...]]:
    path = site.state / "datastore"
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return sorted(conn.execute(f"SELECT * FROM {name}").fetchall(), key=repr)


def records(site: Site) -> dict[str, list[tuple[Any, ...]]]:
    """The files and tasks tables: what must not change when a login is needed."""
    return {name: table(site, name) for name in ("files", "tasks")}


def delivered(site: Site) -> list[tuple[Any, ...]]:
    return [(row[1], row[7]) for row in table(site, "files")]


def login_alerts(site: Site) -> list[Any]:
    return [
        m
        for m in site.smtp.messages
        if "login" in str(m["Subject"]).lower() or "consent" in str(m["Subject"])
    ]


def stored_tokens(site: Site) -> dict[str, Any]:
    data = json.loads(site.tokens.read_text())
    return dict(data["data"]["DEFAULT"])


def assert_no_secrets(site: Site, *secrets: str) -> None:
    """No token the emulator ever issued, nor ``secrets``, in any output, log
    or mail."""
    words = [*site.emulator.auth.tokens, *secrets]
    texts = list(site.outputs)
    log_file = site.state / "globus-auto.log"
    if log_file.exists():
        texts.append(log_file.read_text(errors="replace"))
    texts += [raw.decode(errors="replace") for raw in site.smtp.raw]
    for text in texts:
        for word in words:
            assert word not in text


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
