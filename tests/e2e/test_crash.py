"""Crash safety, overlapping runs and Globus trouble, with real processes.

Each test runs ``python -m globus_auto run`` as a subprocess against the
emulator. A crash is a real SIGKILL: the process kills itself at a named point
(``GLOBUS_AUTO_TEST_CRASH_AT``), or the test kills it after a random delay.
After the next clean run the destination must hold every source file with the
same content, and Globus must never have run two tasks for one submission.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from emulator_fixtures import TestEmulator
from helpers_e2e import (
    dst_data,
    dump_table,
    missing_or_different,
    run_cli,
    src_data,
    start_cli,
    write_config,
    write_files,
)

from globus_auto.datastore.opening import DATASTORE_NAME
from globus_auto.lock import job_lock, lock_path
from globus_auto.logs import LOG_NAME

SAMPLE = {
    "a.txt": b"alpha\n",
    "b/one.bin": bytes(range(256)) * 64,
    "b/two.bin": b"two" * 1000,
    "c/d/e.dat": b"deep\n" * 100,
}

# Crash point -> how many times the next run resubmits a submission Globus has.
CRASH_POINTS = {
    "during-scan": 0,
    "after-scan": 0,
    "after-submission-id": 0,
    "before-submit": 0,
    "after-submit": 1,
    "before-settle": 0,
}


def env_for(emulator: TestEmulator, crash: str | None = None) -> dict[str, str]:
    from helpers_e2e import cli_env

    return cli_env(emulator, {"GLOBUS_AUTO_TEST_CRASH_AT": crash} if crash else None)


def run(
    config: Path, emulator: TestEmulator, *args: str, crash: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        ["--config", str(config), "-v", "run", *args], env_for(emulator, crash)
    )


def datastore_tasks(state: Path) -> dict[str, str | None]:
    """submission id -> task id of every task the datastore knows."""
    return {row[0]: row[2] for row in dump_table(state / DATASTORE_NAME, "tasks")}


def emulator_tasks(emulator: TestEmulator) -> dict[str, str]:
    """submission id -> task id of every task the emulator created."""
    with emulator.state.lock:
        return {t.submission_id: t.task_id for t in emulator.transfer.tasks.values()}


def assert_nothing_lost_nothing_doubled(
    emulator: TestEmulator, state: Path, duplicates: int | None = None
) -> None:
    """The destination holds the source; every Globus task is one the tool knows."""
    assert missing_or_different(src_data(emulator), dst_data(emulator)) == []
    stats = emulator.stats()
    known = datastore_tasks(state)
    created = emulator_tasks(emulator)
    # Each task Globus created belongs to one submission the datastore recorded,
    # under the same task id: no task was ever created twice for one submission.
    assert stats["tasks_submitted"] == len(created)
    for submission_id, task_id in created.items():
        assert known.get(submission_id) == task_id
    if duplicates is not None:
        assert stats["duplicate_submissions"] == duplicates
    rows = dump_table(state / DATASTORE_NAME, "files")
    pending = [r for r in rows if r[6] is not None and r[7] != r[6]]
    assert pending == []


@pytest.mark.parametrize("point", sorted(CRASH_POINTS))
def test_killed_at_each_point_then_next_run_delivers(
    emulator: TestEmulator, tmp_path: Path, point: str
) -> None:
    files = dict(SAMPLE)
    if point == "during-scan":
        # More than one scan batch (2000 files), so the kill lands between two.
        files.update({f"many/{i:05d}": b"%d\n" % i for i in range(2100)})
    write_files(src_data(emulator), files)
    config = write_config(tmp_path / "config.py", emulator)
    state = tmp_path / "state"

    killed = run(config, emulator, "--wait", "--timeout", "60", crash=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    again = run(config, emulator, "--wait", "--timeout", "60")
    assert again.returncode == 0, again.stderr
    emulator.wait_idle()
    submitted = emulator.stats()["tasks_submitted"]
    assert submitted == 1
    assert_nothing_lost_nothing_doubled(emulator, state, CRASH_POINTS[point])

    quiet = run(config, emulator, "--wait")
    assert quiet.returncode == 0, quiet.stderr
    assert emulator.stats()["tasks_submitted"] == submitted


def test_killed_after_submit_while_files_change(
    emulator: TestEmulator, tmp_path: Path
) -> None:
    """A file changed between the crash and the next run is sent in its new form."""
    write_files(src_data(emulator), SAMPLE)
    config = write_config(tmp_path / "config.py", emulator)
    killed = run(config, emulator, "--wait", crash="after-submit")
    assert killed.returncode == -signal.SIGKILL
    emulator.wait_idle()
    (src_data(emulator) / "a.txt").write_bytes(b"alpha, edited\n")
    write_files(src_data(emulator), {"new.txt": b"new\n"})
    for _ in range(2):
        done = run(config, emulator, "--wait")
        assert done.returncode == 0, done.stderr
    emulator.wait_idle()
    assert_nothing_lost_nothing_doubled(emulator, tmp_path / "state", 1)
    assert emulator.stats()["tasks_submitted"] == 2


def mutate(rng: random.Random, root: Path, step: int) -> None:
    """Add, change or delete a few files, with a seeded generator."""
    existing = sorted(p for p in root.rglob("*") if p.is_file())
    for _ in range(rng.randint(1, 4)):
        action = rng.choice(["add", "add", "change", "delete"])
        if action == "add" or not existing:
            name = f"d{rng.randint(0, 3)}/f{step}-{rng.randint(0, 10**6)}.bin"
            write_files(root, {name: rng.randbytes(rng.randint(1, 60_000))})
        elif action == "change":
            rng.choice(existing).write_bytes(rng.randbytes(rng.randint(1, 60_000)))
        else:
            victim = rng.choice(existing)
            existing.remove(victim)
            victim.unlink()


def test_many_kills_at_random_moments(emulator: TestEmulator, tmp_path: Path) -> None:
    rng = random.Random(20240611)
    root = src_data(emulator)
    write_files(root, SAMPLE)
    config = write_config(tmp_path / "config.py", emulator, RECURSIVE_THRESHOLD=8)
    state = tmp_path / "state"
    emulator.add_faults(bytes_per_second=150_000)  # tasks stay ACTIVE a while
    env = env_for(emulator)
    kills = 0
    for step in range(15):
        mutate(rng, root, step)
        proc = start_cli(["--config", str(config), "run", "--wait"], env)
        try:
            proc.wait(timeout=rng.uniform(0.2, 2.5))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode in (0, -signal.SIGKILL), err
    assert kills >= 5  # the test must really have killed runs
    emulator.add_faults(bytes_per_second=0)
    for _ in range(2):  # the first may only finish what was in flight
        done = run(config, emulator, "--wait", "--timeout", "60")
        assert done.returncode == 0, done.stderr
    emulator.wait_idle()
    assert_nothing_lost_nothing_doubled(emulator, state)
    submitted = emulator.stats()["tasks_submitted"]
    assert run(config, emulator, "--wait").returncode == 0
    assert emulator.stats()["tasks_submitted"] == submitted


# -- overlapping runs ---------------------------------------------------------


def test_overlapping_run_exits_quietly(emulator: TestEmulator, tmp_path: Path) -> None:
    write_files(src_data(emulator), SAMPLE)
    config = write_config(tmp_path / "config.py", emulator)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    with job_lock(state, "default"):
        blocked = run(config, emulator)
    assert blocked.returncode == 0, blocked.stderr
    assert "another run holds the lock" in (state / LOG_NAME).read_text()
    assert emulator.stats()["tasks_submitted"] == 0
    assert not dst_data(emulator).exists()
    done = run(config, emulator, "--wait")
    assert done.returncode == 0, done.stderr
    assert_nothing_lost_nothing_doubled(emulator, state, 0)


def test_lock_of_dead_process_does_not_block(
    emulator: TestEmulator, tmp_path: Path
) -> None:
    write_files(src_data(emulator), SAMPLE)
    config = write_config(tmp_path / "config.py", emulator)
    state = tmp_path / "state"
    holder = subprocess.Popen(
        [
            "python",
            "-c",
            "import sys, time; from pathlib import Path;"
            "from globus_auto.lock import job_lock\n"
            "with job_lock(Path(sys.argv[1]), 'default'):\n"
            "    print('locked', flush=True); time.sleep(60)",
            str(state),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        blocked = run(config, emulator)
        assert blocked.returncode == 0
        assert emulator.stats()["tasks_submitted"] == 0
    finally:
        holder.kill()
        holder.wait()
    assert lock_path(state, "default").exists()  # left behind by a dead process
    done = run(config, emulator, "--wait")
    assert done.returncode == 0, done.stderr
    assert_nothing_lost_nothing_doubled(emulator, state, 0)


# -- Globus trouble -----------------------------------------------------------


def test_transient_503_is_retried_by_the_sdk(
    emulator: TestEmulator, tmp_path: Path
) -> None:
    write_files(src_data(emulator), SAMPLE)
    config = write_config(tmp_path / "config.py", emulator)
    emulator.add_faults(http_status=503, path_prefix="/v0.10/transfer", count=2)
    done = run(config, emulator, "--wait")
    assert done.returncode == 0, done.stderr
    assert_nothing_lost_nothing_doubled(emulator, tmp_path / "state", 0)


def test_lasting_503_ends_the_run_and_the_next_delivers(
    emulator: TestEmulator, tmp_path: Path
) -> None:
    write_files(src_data(emulator), SAMPLE)
    config = write_config(tmp_path / "config.py", emulator)
    state = tmp_path / "state"
    emulator.add_faults(http_status=503, path_prefix="/v0.10/transfer", count=100)
    started = time.monotonic()
    failed = run(config, emulator, "--wait")
    assert time.monotonic() - started < 60
    assert failed.returncode != 0
    assert "503" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert emulator.stats()["tasks_submitted"] == 0
    rows = dump_table(state / DATASTORE_NAME, "files")
    assert rows and all(r[7] is None for r in rows)  # nothing marked delivered
    emulator.add_faults(http_status=503, path_prefix="/v0.10/transfer", count=0)
    done = run(config, emulator, "--wait")
    assert done.returncode == 0, done.stderr
    assert_nothing_lost_nothing_doubled(emulator, state, 0)


def test_failed_task_is_sent_again(emulator: TestEmulator, tmp_path: Path) -> None:
    write_files(src_data(emulator), SAMPLE)
    config = write_config(tmp_path / "config.py", emulator)
    emulator.add_faults(fail_tasks=1)
    failed = run(config, emulator, "--wait")
    assert failed.returncode != 0
    rows = dump_table(tmp_path / "state" / DATASTORE_NAME, "files")
    assert all(r[7] is None for r in rows)
    done = run(config, emulator, "--wait")
    assert done.returncode == 0, done.stderr
    assert_nothing_lost_nothing_doubled(emulator, tmp_path / "state", 0)
