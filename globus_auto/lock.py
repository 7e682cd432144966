"""One advisory lock per job, on a file in the state folder.

``flock`` locks belong to the open file: the kernel drops them when the process
dies, however it dies, so a lock left by a dead run never blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path

LOCK_DIR = "locks"


class Locked(Exception):
    """Another run holds the lock."""


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
            raise Locked(job_name) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)
