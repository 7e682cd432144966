"""One advisory lock per job, on a file in the state folder.

``flock`` locks belong to the open file: the kernel drops them when the process
dies, however it dies, so a lock left by a dead run never blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

LOCK_DIR = "locks"


class Locked(Exception):
    """Another run holds the lock: since when (the file's mtime) and its PID."""

    def __init__(self, path: Path, pid: int | None, since: datetime) -> None:
        super().__init__(f"{path} is held by process {pid} since {since}")
        self.path = path
        self.pid = pid
        self.since = since


def lock_path(state_dir: Path, job_name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", job_name)
    return state_dir / LOCK_DIR / f"{safe}.lock"


@contextlib.contextmanager
def job_lock(state_dir: Path, job_name: str) -> Iterator[None]:
    """Hold the job's lock for the body; :class:`Locked` if another run has it."""
    path = lock_path(state_dir, job_name)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _held(path, fd) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def holder(state_dir: Path, job_name: str) -> Locked | None:
    """Who holds the job's lock now, found without taking it; None if nobody
    does, or the system does not say.

    Why not try the lock: holding it even for a moment would make a run that
    starts then skip. Linux lists every flock in /proc/locks with the process
    and the file (device and inode); the file's mtime is when that process
    wrote its PID into it, i.e. when its run began.
    """
    path = lock_path(state_dir, job_name)
    try:
        st = path.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 12345 00:2f:1234567 0 EOF" (a waiter's
        # line reads "1: -> FLOCK ..." and is not the holder)
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == wanted:
            pid = int(fields[4]) if fields[4].isdigit() else None
            return Locked(path, pid, datetime.fromtimestamp(st.st_mtime, timezone.utc))
    return None


def _held(path: Path, fd: int) -> Locked:
    """Who holds the lock: the PID it wrote, and when it wrote it.

    Why the pause: a run that has just taken the lock writes its PID a moment
    later; until then the file still shows the previous run's PID and time.
    """
    time.sleep(0.05)
    written = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    since = datetime.fromtimestamp(os.fstat(fd).st_mtime, timezone.utc)
    return Locked(path, int(written) if written.isdigit() else None, since)
