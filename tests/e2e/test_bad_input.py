"""Bad input: special files, odd names, files changing under the scan, a corrupt
datastore, an unmounted source, and the privacy of the state folder.

End-to-end tests run ``python -m globus_auto`` against the emulator (and a
loopback SMTP server where mail is the thing checked); the hashing races call
``scan.hash_file`` directly, because they cannot be timed from outside.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from emulator_fixtures import TestEmulator
from helpers_e2e import (
    NOBODY,
    alert_kinds,
    cli_env,
    cli_unusable_by,
    dst_data,
    dump_table,
    missing_or_different,
    run_cli,
    src_data,
    started_emulator,
    state_dir_of,
    tree,
    write_config,
    write_files,
)
from smtp_fixtures import SmtpTestServer

from globus_auto.datastore.opening import DATASTORE_NAME
from globus_auto.engine import scan, walk
from globus_auto.lock import lock_path
from globus_auto.logs import LOG_NAME
from globus_auto.problems import Kind

GOOD = {
    "good.txt": b"good\n",
    "sub/also-good.bin": bytes(range(256)) * 16,
}


def run(
    config: Path, emulator: TestEmulator, *args: str
) -> subprocess.CompletedProcess[str]:
    return run_cli(["--config", str(config), "-v", "run", *args], cli_env(emulator))


def status_json(config: Path, emulator: TestEmulator) -> dict[str, object]:
    done = run_cli(["--config", str(config), "status", "--json"], cli_env(emulator))
    assert done.returncode in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10), done.stderr
    result = json.loads(done.stdout)
    assert isinstance(result, dict)
    return result


def problem_files(status: dict[str, object]) -> dict[str, str]:
    (job,) = status["jobs"]  # type: ignore[misc]
    files = job["problem_files"]["files"]
    return {f["path"]: f["reason"] for f in files}


def log_lines(state: Path) -> list[str]:
    return (state / LOG_NAME).read_text(encoding="utf-8").splitlines()


# -- special files and names ---------------------------------------------------


def make_bad_entries(root: Path, outside: Path) -> dict[bytes, str]:
    """Create every kind of entry a scan must not send; path -> expected reason."""
    base = os.fsencode(root)
    expected: dict[bytes, str] = {}
    os.mkfifo(root / "fifo")
    expected[b"fifo"] = "named pipe"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock"))
    expected[b"sock"] = "socket"
    (root / "link-inside").symlink_to("good.txt")
    expected[b"link-inside"] = "symbolic link"
    (root / "loop-a").symlink_to("loop-b")
    (root / "loop-b").symlink_to("loop-a")
    expected[b"loop-a"] = expected[b"loop-b"] = "symbolic link"
    (root / "dir-loop").symlink_to(".")
    expected[b"dir-loop"] = "symbolic link"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"outside the tree\n")
    (root / "out-of-tree").symlink_to(outside)
    expected[b"out-of-tree"] = "symbolic link"
    (root / "out-file").symlink_to(outside / "secret.txt")
    expected[b"out-file"] = "symbolic link"
    with open(os.path.join(base, b"new\nline.txt"), "wb") as handle:
        handle.write(b"newline in the name\n")
    expected[b"new\nline.txt"] = "line break"
    with open(os.path.join(base, b"latin1-\xe9t\xe9.txt"), "wb") as handle:
        handle.write(b"not utf-8\n")
    expected[b"latin1-\xe9t\xe9.txt"] = "not valid UTF-8"
    os.mkdir(os.path.join(base, b"dir-\xff"))
    with open(os.path.join(base, b"dir-\xff", b"inside.txt"), "wb") as handle:
        handle.write(b"in a badly named folder\n")
    expected[b"dir-\xff"] = "not valid UTF-8"
    if os.geteuid() == 0:
        os.mknod(root / "null-device", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        expected[b"null-device"] = "device file"
    return expected


def test_special_files_and_bad_names_are_reported_and_the_rest_sent(
    emulator: TestEmulator, tmp_path: Path
) -> None:
    root = src_data(emulator)
    write_files(root, GOOD)
    expected = make_bad_entries(root, tmp_path / "outside")
    config = write_config(tmp_path / "config.py", emulator)
    state = tmp_path / "state"

    done = run(config, emulator, "--wait")
    # Non-zero (1): some files cannot be sent; the run went on with the rest.
    assert done.returncode == 1, done.stderr
    assert "cannot be sent" in done.stderr and "Traceback" not in done.stderr
    # Everything sendable arrived; nothing bad was sent or followed.
    assert tree(dst_data(emulator)) == {os.fsencode(k): v for k, v in GOOD.items()}
    assert not (dst_data(emulator) / "out-of-tree").exists()

    # One log line per bad entry, naming it (escaped) and saying why.
    warnings = [line for line in log_lines(state) if " WARNING " in line]
    for path, reason in expected.items():
        shown = os.fsdecode(path).encode("unicode_escape").decode()
        hits = [line for line in warnings if f": {shown}: " in line]
        assert len(hits) == 1, (path, warnings)
        assert reason in hits[0]
    assert len(warnings) == len(expected)

    # Visible in `status`, and in the datastore.
    shown = problem_files(status_json(config, emulator))
    assert len(shown) == len(expected)
    for path, reason in expected.items():
        assert reason in shown[path.decode("utf-8", "backslashreplace")]

    # The next run sends nothing again and logs each problem no more than once.
    emulator.wait_idle()
    submitted = emulator.stats()["tasks_submitted"]
    before = len(log_lines(state))
    assert run(config, emulator, "--wait").returncode == 1
    assert emulator.stats()["tasks_submitted"] == submitted
    new_warnings = [line for line in log_lines(state)[before:] if " WARNING " in line]
    assert len(new_warnings) <= len(expected)


def test_a_fixed_problem_file_is_sent(emulator: TestEmulator, tmp_path: Path) -> None:
    root = src_data(emulator)
    write_files(root, GOOD)
    (root / "later.txt").symlink_to("good.txt")
    config = write_config(tmp_path / "config.py", emulator)
    assert run(config, emulator, "--wait").returncode == 0
    assert not (dst_data(emulator) / "later.txt").exists()
    (root / "later.txt").unlink()
    (root / "later.txt").write_bytes(b"now a real file\n")
    assert run(config, emulator, "--wait").returncode == 0
    assert missing_or_different(root, dst_data(emulator)) == []
    assert problem_files(status_json(config, emulator)) == {}


def test_unreadable_file_is_reported_and_the_rest_sent(tmp_path: Path) -> None:
    """Issues 3 and 6. Root reads every file, so as root the CLI runs as nobody,
    on a tree under a fresh folder in /tmp that nobody can reach."""
    if os.geteuid() != 0:
        check_unreadable_file_run(tmp_path, None)
        return
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        base.chmod(0o755)
        check_unreadable_file_run(base, NOBODY)
    finally:
        shutil.rmtree(base)


def check_unreadable_file_run(base: Path, user: int | None) -> None:
    """Run the CLI (as ``user`` if given) on a source with one 000 file."""
    with started_emulator(base / "emulator") as emulator:
        env = cli_env(emulator)
        if user is not None:
            env["HOME"] = str(base)
            reason = cli_unusable_by(user, env)
            if reason:
                pytest.skip(reason)
        root = src_data(emulator)
        write_files(root, {**GOOD, "locked.txt": b"private\n"})
        make_readable_by_others(base / "emulator" / "src-collection")
        (root / "locked.txt").chmod(0)
        config = write_config(base / "config" / "config.py", emulator)
        if user is not None:
            os.chown(config.parent, user, user)
            os.chown(config, user, user)

        done = run_cli(["--config", str(config), "-v", "run", "--wait"], env, user=user)
        assert done.returncode == 1, done.stderr  # the rest went; one could not
        assert tree(dst_data(emulator)) == {os.fsencode(k): v for k, v in GOOD.items()}
        named = [line for line in log_lines(state_dir_of(config)) if "locked" in line]
        assert len(named) == 1, named
        assert "cannot be read" in named[0]

        status = run_cli(["--config", str(config), "status", "--json"], env, user=user)
        assert status.stdout, status.stderr
        reasons = problem_files(json.loads(status.stdout))
        assert "cannot be read" in reasons["locked.txt"]


def make_readable_by_others(top: Path) -> None:
    """Folders 0755 and files 0644 from ``top`` down."""
    top.chmod(0o755)
    for folder, dirs, files in os.walk(top):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)


# -- files changing while they are hashed --------------------------------------


@pytest.fixture
def during_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Callable[[], None]]]:
    """Actions run between a file's first fstat and its reading."""
    actions: list[Callable[[], None]] = []
    original = scan._digest_fd

    def digest(fd: int, size: int) -> bytes:
        for action in actions:
            action()
        return original(fd, size)

    monkeypatch.setattr(scan, "_digest_fd", digest)
    yield actions


def entry_for(root: Path, name: str) -> walk.Entry:
    st = os.lstat(root / name)
    return walk.Entry(
        name.encode(), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino
    )


@pytest.mark.parametrize("size", [1000, scan.MMAP_THRESHOLD + 1])
def test_file_changed_while_hashed_gets_no_digest(
    tmp_path: Path, during_read: list[Callable[[], None]], size: int
) -> None:
    (tmp_path / "f").write_bytes(b"x" * size)
    entry = entry_for(tmp_path, "f")

    def append() -> None:
        with open(tmp_path / "f", "ab") as handle:
            handle.write(b"more")

    during_read.append(append)
    observed = scan.hash_file(os.fsencode(tmp_path), entry)
    assert observed.digest is None and observed.problem is None
    during_read.clear()
    again = scan.hash_file(os.fsencode(tmp_path), entry_for(tmp_path, "f"))
    assert again.digest is not None and again.size == size + 4


def test_file_rewritten_in_place_while_hashed_gets_no_digest(
    tmp_path: Path, during_read: list[Callable[[], None]]
) -> None:
    """Same size, new content: the mtime/ctime change gives it away."""
    (tmp_path / "f").write_bytes(b"a" * 5000)
    entry = entry_for(tmp_path, "f")

    def rewrite() -> None:
        with open(tmp_path / "f", "r+b") as handle:
            handle.write(b"b" * 5000)

    during_read.append(rewrite)
    assert scan.hash_file(os.fsencode(tmp_path), entry).digest is None


def test_file_deleted_while_hashed_gets_no_digest(
    tmp_path: Path, during_read: list[Callable[[], None]]
) -> None:
    (tmp_path / "f").write_bytes(b"y" * 5000)
    entry = entry_for(tmp_path, "f")
    during_read.append(lambda: (tmp_path / "f").unlink())
    assert scan.hash_file(os.fsencode(tmp_path), entry).digest is None


def test_file_vanished_before_hashing(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"z")
    entry = entry_for(tmp_path, "f")
    (tmp_path / "f").unlink()
    assert scan.hash_file(os.fsencode(tmp_path), entry).problem == "vanished"


def test_file_replaced_by_fifo_before_hashing(tmp_path: Path) -> None:
    """Opened non-blocking and checked after open: a FIFO never hangs the scan."""
    (tmp_path / "f").write_bytes(b"z")
    entry = entry_for(tmp_path, "f")
    (tmp_path / "f").unlink()
    os.mkfifo(tmp_path / "f")
    observed = scan.hash_file(os.fsencode(tmp_path), entry)
    assert observed.digest is None
    assert "named pipe" in (observed.problem or "")


def test_file_replaced_by_symlink_before_hashing(tmp_path: Path) -> None:
    (tmp_path / "target").write_bytes(b"target")
    (tmp_path / "f").write_bytes(b"z")
    entry = entry_for(tmp_path, "f")
    (tmp_path / "f").unlink()
    (tmp_path / "f").symlink_to(tmp_path / "target")
    observed = scan.hash_file(os.fsencode(tmp_path), entry)
    assert observed.digest is None and observed.problem is not None


# -- a corrupt datastore -------------------------------------------------------


def smtp_config(tmp_path: Path, emulator: TestEmulator, smtp: SmtpTestServer) -> Path:
    return write_config(
        tmp_path / "config.py",
        emulator,
        EMAIL_SENDER="globus-auto@test.example.org",
        EMAIL_RECIPIENTS=["me@test.example.org"],
        EMAIL_HOST=smtp.host,
        EMAIL_PORT=smtp.port,
        EMAIL_SECURITY="none",
    )


def corrupt_with_garbage(datastore: Path) -> bytes:
    garbage = b"this is not an SQLite file\x00\xff" * 500
    datastore.write_bytes(garbage)
    for suffix in ("-wal", "-shm"):
        Path(str(datastore) + suffix).unlink(missing_ok=True)
    return garbage


def set_schema_version(datastore: Path, version: str) -> bytes:
    conn = sqlite3.connect(datastore)
    with conn:
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,)
        )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return datastore.read_bytes()


def set_unknown_schema(datastore: Path) -> bytes:
    return set_schema_version(datastore, "not a version")


@pytest.mark.parametrize("damage", [corrupt_with_garbage, set_unknown_schema])
def test_unusable_datastore_is_moved_aside_alerted_and_restarted(
    emulator: TestEmulator,
    tmp_path: Path,
    smtp_server: SmtpTestServer,
    damage: Callable[[Path], bytes],
) -> None:
    root = src_data(emulator)
    write_files(root, GOOD)
    config = smtp_config(tmp_path, emulator, smtp_server)
    state = tmp_path / "state"
    assert run(config, emulator, "--wait").returncode == 0
    emulator.wait_idle()
    # New files arrive while the datastore is broken; they must be sent too.
    write_files(root, {"after.txt": b"written after the damage\n"})
    content = damage(state / DATASTORE_NAME)

    done = run(config, emulator, "--wait")
    assert done.returncode == 0, done.stderr
    aside = sorted(state.glob(f"{DATASTORE_NAME}.corrupt-*"))
    aside = [p for p in aside if not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1
    assert aside[0].read_bytes() == content  # kept, byte for byte
    assert stat.S_IMODE(aside[0].stat().st_mode) == 0o600
    assert missing_or_different(root, dst_data(emulator)) == []
    # One clear mail says what happened and where the old file went.
    mails = [m for m in smtp_server.messages if "datastore" in str(m["Subject"])]
    assert mails, [str(m["Subject"]) for m in smtp_server.messages]
    body = mails[0].get_body(preferencelist=("plain",))
    assert body is not None
    assert aside[0].name in body.get_content()
    assert any(
        "datastore" in line and aside[0].name in line for line in log_lines(state)
    )
    # The fresh datastore works: a further run sends nothing.
    submitted = emulator.stats()["tasks_submitted"]
    assert run(config, emulator, "--wait").returncode == 0
    assert emulator.stats()["tasks_submitted"] == submitted


def test_corrupt_datastore_without_mail_leaves_an_alert_record(
    emulator: TestEmulator, tmp_path: Path
) -> None:
    write_files(src_data(emulator), GOOD)
    config = write_config(tmp_path / "config.py", emulator)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    corrupt_with_garbage(state / DATASTORE_NAME)
    done = run(config, emulator, "--wait")
    assert done.returncode == 0, done.stderr
    assert len(list(state.glob(f"{DATASTORE_NAME}.corrupt-*"))) == 1
    assert missing_or_different(src_data(emulator), dst_data(emulator)) == []
    assert ("default", Kind.DATASTORE.value) in alert_kinds(state / DATASTORE_NAME)


# -- a missing or unmounted source ----------------------------------------------


def test_missing_source_is_an_alert_and_changes_nothing(
    emulator: TestEmulator, tmp_path: Path
) -> None:
    root = src_data(emulator)
    write_files(root, GOOD)
    config = write_config(tmp_path / "config.py", emulator)
    state = tmp_path / "state"
    assert run(config, emulator, "--wait").returncode == 0
    emulator.wait_idle()
    files = dump_table(state / DATASTORE_NAME, "files")
    submitted = emulator.stats()["tasks_submitted"]

    root.rename(root.with_name("data-moved"))
    failed = run(config, emulator, "--wait")
    assert failed.returncode != 0
    assert "does not exist" in failed.stderr
    assert dump_table(state / DATASTORE_NAME, "files") == files
    assert ("default", Kind.SOURCE_PROBLEM.value) in alert_kinds(state / DATASTORE_NAME)
    assert emulator.stats()["tasks_submitted"] == submitted

    root.with_name("data-moved").rename(root)
    assert run(config, emulator, "--wait").returncode == 0
    assert ("default", Kind.SOURCE_PROBLEM.value) not in alert_kinds(
        state / DATASTORE_NAME
    )
    assert emulator.stats()["tasks_submitted"] == submitted


def test_missing_source_on_the_first_run(
    emulator: TestEmulator, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "config.py", emulator, SRC_LOCAL_DIR=str(tmp_path / "nowhere")
    )
    failed = run(config, emulator, "--wait")
    assert failed.returncode != 0
    assert "nowhere" in failed.stderr
    assert emulator.stats()["tasks_submitted"] == 0


def test_emptied_source_is_an_alert_and_changes_nothing(
    emulator: TestEmulator, tmp_path: Path
) -> None:
    root = src_data(emulator)
    write_files(root, GOOD)
    config = write_config(tmp_path / "config.py", emulator)
    state = tmp_path / "state"
    assert run(config, emulator, "--wait").returncode == 0
    emulator.wait_idle()
    files = dump_table(state / DATASTORE_NAME, "files")
    submitted = emulator.stats()["tasks_submitted"]

    # What an unmount looks like: the mount point is there, and empty.
    away = tmp_path / "unmounted"
    away.mkdir()
    for child in list(root.iterdir()):
        child.rename(away / child.name)
    failed = run(config, emulator, "--wait")
    assert failed.returncode != 0
    assert "empty" in failed.stderr
    assert dump_table(state / DATASTORE_NAME, "files") == files
    assert ("default", Kind.SOURCE_PROBLEM.value) in alert_kinds(state / DATASTORE_NAME)

    for child in list(away.iterdir()):  # remounted
        child.rename(root / child.name)
    assert run(config, emulator, "--wait").returncode == 0
    assert ("default", Kind.SOURCE_PROBLEM.value) not in alert_kinds(
        state / DATASTORE_NAME
    )
    assert emulator.stats()["tasks_submitted"] == submitted
    assert missing_or_different(root, dst_data(emulator)) == []


# -- the state folder is private -------------------------------------------------


def test_state_dir_is_private(emulator: TestEmulator, tmp_path: Path) -> None:
    write_files(src_data(emulator), GOOD)
    config = write_config(tmp_path / "config.py", emulator)
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)  # as a user might have made it
    done = subprocess.run(
        [sys.executable, "-m", "globus_auto", "--config", str(config), "run", "--wait"],
        env=cli_env(emulator),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=lambda: os.umask(0o022),  # a usual umask, not a careful one
    )
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    expected = [
        state / DATASTORE_NAME,
        state / LOG_NAME,
        lock_path(state, "default"),
        state / "tokens.json",
    ]
    for path in expected:
        assert path.exists(), path
    for path in state.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        want = 0o700 if path.is_dir() else 0o600
        assert mode == want, f"{path} is {mode:o}, not {want:o}"


def test_log_file_stays_private_after_rollover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    from globus_auto import logs

    monkeypatch.setattr(logs, "LOG_BYTES", 200)
    old = os.umask(0o022)
    root = logging.getLogger("globus_auto")
    try:
        logs.setup_file(tmp_path)
        for _ in range(5):
            root.warning("%s", "x" * 100)
    finally:
        os.umask(old)
        for handler in list(root.handlers):
            if getattr(handler, "_globus_auto_file", False):
                root.removeHandler(handler)
                handler.close()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert len(modes) > 1
    assert set(modes.values()) == {0o600}, modes


def test_a_datastore_of_a_newer_globus_auto_is_kept_and_the_run_says_upgrade(
    emulator: TestEmulator, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    """A downgrade (or a second, older installation on the same state folder)
    must not take a newer datastore for a damaged one: moving it aside would
    forget the tasks in flight and send everything again beside them."""
    root = src_data(emulator)
    write_files(root, GOOD)
    config = smtp_config(tmp_path, emulator, smtp_server)
    state = tmp_path / "state"
    assert run(config, emulator, "--wait").returncode == 0
    content = set_schema_version(state / DATASTORE_NAME, "999")

    done = run(config, emulator)
    assert done.returncode == 1, done.stderr
    assert "written by a newer globus-auto" in done.stderr
    assert "upgrade globus-auto" in done.stderr
    assert not list(state.glob(f"{DATASTORE_NAME}.corrupt-*"))
    assert (state / DATASTORE_NAME).read_bytes() == content
