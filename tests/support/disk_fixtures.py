"""A small real disk to fill: a tmpfs of a few MiB, mounted for one test.

``small_disk`` mounts a fresh tmpfs (skipped cleanly without root, or where
mounting is not allowed) and unmounts it afterwards; ``fill`` takes all its
space with one filler file, or all but ``leave`` bytes. A real full disk, not
a mocked ``ENOSPC``: SQLite, the log and the atomic writes meet it as users do.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

DISK_SIZE = "8m"


def mount_tmpfs(where: Path, size: str = DISK_SIZE) -> None:
    """Mount a tmpfs of ``size`` at ``where`` (made if missing), or skip."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", where],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


def unmount(where: Path) -> None:
    subprocess.run(["umount", "-l", where], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A freshly mounted tmpfs of DISK_SIZE; unmounted after the test."""
    disk = tmp_path / "disk"
    mount_tmpfs(disk)
    try:
        yield disk
    finally:
        unmount(disk)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill ``disk`` with one file (appended to if there), then give ``leave``
    bytes back; returns the filler."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    with open(filler, "ab") as handle:
        try:
            while True:
                handle.write(chunk)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler
