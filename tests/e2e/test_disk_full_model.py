"""A Hypothesis state machine: the state folder's disk fills and empties.

Beside the state model of tests/e2e/test_state_model.py (whose machine is the
"tasks" tier's), this one has its state folder on a real tmpfs of a few MiB
and a "disk full" move: a filler file takes all the space, or leaves a little
(so a run can open the datastore but not finish its writes); another move
gives the space back. Files are written and deleted, and the real session runs
against the emulator, waiting for its task or not.

After every step: nothing is ever moved aside as corrupt; every task Globus
created belongs to a submission the datastore recorded; a run on the full disk
reports it as such (never as corruption or an unexpected error) and never
raises. At the end, with the space back, a clean run leaves the destination a
superset of the source with identical content: every regular file that stays
in the source is eventually delivered.

Needs root (``mount -t tmpfs``); skipped cleanly otherwise.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest
from disk_fixtures import fill, mount_tmpfs, unmount
from emulator_fixtures import TestEmulator
from helpers_e2e import (
    dst_data,
    missing_or_different,
    point_sdk_at,
    restore_environment,
    src_data,
    write_config,
)
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from globus_auto.datastore.opening import DATASTORE_NAME
from globus_auto.engine.report import JobReport, RunOptions
from globus_auto.engine.session import run_session
from globus_auto.problems import Kind
from globus_auto.settings.source import load_settings

NAMES = ["a", "d/b", "d/e/c"]
CONTENTS = [b"one", b"two" * 2000]
LEFT_FREE = [0, 48 * 1024, 160 * 1024]  # bytes the filler leaves on the disk


class DiskFullModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="globus-auto-disk-model-"))
        self.disk = self.tmp / "disk"
        mount_tmpfs(self.disk, "4m")
        self.emulator = TestEmulator(self.tmp / "emulator")
        self.emulator.start()
        self.saved_env = point_sdk_at(self.emulator)
        config = write_config(
            self.tmp / "config.py", self.emulator, STATE_DIR=str(self.disk / "state")
        )
        self.settings = load_settings(config)
        self.root = src_data(self.emulator)
        (self.root / "keep").write_bytes(b"always here")  # never an empty source
        self.filler = self.disk / "filler"

    # -- the world changes ----------------------------------------------------

    @rule(name=st.sampled_from(NAMES), content=st.sampled_from(CONTENTS))
    def write(self, name: str, content: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)

    @rule(name=st.sampled_from(NAMES))
    def delete(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)

    @rule(leave=st.sampled_from(LEFT_FREE))
    def fill_disk(self, leave: int) -> None:
        """The disk fills up: all of it, or all but ``leave`` bytes."""
        fill(self.disk, leave)

    @rule()
    def free_disk(self) -> None:
        self.filler.unlink(missing_ok=True)

    # -- the tool runs ----------------------------------------------------------

    @rule(wait=st.booleans())
    def run(self, wait: bool) -> None:
        (report,) = self.run_session(wait)
        kinds = {p.kind for p in report.problems}
        assert Kind.UNEXPECTED not in kinds, report.problems
        if not self.filler.exists():
            assert Kind.STATE_DISK not in kinds, report.problems
        for problem in report.problems:
            assert "corrupt" not in problem.summary, problem
        self.emulator.wait_idle()

    def run_session(self, wait: bool) -> list[JobReport]:
        opts = RunOptions(wait=wait, timeout=30)
        return run_session(self.settings, self.settings.jobs, opts)

    # -- what must always hold ----------------------------------------------------

    @invariant()
    def nothing_is_moved_aside(self) -> None:
        state = self.settings.state_dir
        if state.exists():
            assert [p.name for p in state.iterdir() if ".corrupt-" in p.name] == []

    @invariant()
    def every_task_is_known(self) -> None:
        if self.filler.exists():
            return  # a full disk cannot even be read (no room for -shm)
        path = self.settings.state_dir / DATASTORE_NAME
        if not path.exists():
            return
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            # Made on the full disk, the datastore may still be an empty file.
            rows = conn.execute("SELECT submission_id FROM tasks") if tables else []
            known = {row[0] for row in rows}
        finally:
            conn.close()
        with self.emulator.state.lock:
            created = {t.submission_id for t in self.emulator.transfer.tasks.values()}
        assert created <= known

    def teardown(self) -> None:
        try:
            self.free_disk()
            for _ in range(2):  # the first may only settle what was in flight
                (report,) = self.run_session(wait=True)
                self.emulator.wait_idle()
            assert report.exit_code == 0, report.problems
            assert missing_or_different(self.root, dst_data(self.emulator)) == []
        finally:
            self.emulator.stop()
            restore_environment(self.saved_env)
            unmount(self.disk)
            shutil.rmtree(self.tmp, ignore_errors=True)


DiskFullModel.TestCase.settings = settings(
    max_examples=6,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
class TestDiskFullModel(DiskFullModel.TestCase):  # type: ignore[misc,valid-type]
    pass
