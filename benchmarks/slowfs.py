#!/usr/bin/env python3
"""A FUSE filesystem that shows a folder as it is, each call delayed: a slow NFS.

Usage::

    python benchmarks/slowfs.py --delay-ms 0.5 SOURCE MOUNTPOINT

Mounts SOURCE read-only at MOUNTPOINT (in the foreground; unmount with
``fusermount3 -u MOUNTPOINT`` or by stopping the process). Every call the kernel
makes (lookup and getattr, opendir and readdir, open and read) sleeps
``--delay-ms`` before it is answered, as a round trip to a metadata server
would, and the kernel may cache nothing: ``attr_timeout``, ``entry_timeout``
and ``negative_timeout`` are 0, as after the NFS attribute cache has expired
between two cron runs. The calls are answered on many threads at once
(``max_threads``), as a metadata server answers many clients. ``use_ino``
passes the real inode numbers through, so a file keeps its stat between runs.

Needs the OS's fuse3 (``apt-get install fuse3``) and mfusepy from PyPI;
``benchmarks/run.py --only 6`` installs both when they are missing.
"""

from __future__ import annotations

import argparse
import errno
import os
import stat
import sys
import time
from typing import Any

import mfusepy as fuse  # type: ignore[import-untyped, import-not-found, unused-ignore]

STAT_FIELDS = (
    "st_mode",
    "st_ino",
    "st_dev",
    "st_nlink",
    "st_uid",
    "st_gid",
    "st_size",
    "st_atime_ns",
    "st_mtime_ns",
    "st_ctime_ns",
    "st_blocks",
)
STATVFS_FIELDS = (
    "f_bsize",
    "f_frsize",
    "f_blocks",
    "f_bfree",
    "f_bavail",
    "f_files",
    "f_ffree",
    "f_favail",
    "f_namemax",
)


class SlowFS(fuse.Operations):  # type: ignore[misc]
    """A read-only view of ``root``, every answer ``delay`` seconds late."""

    use_ns = True

    def __init__(self, root: str, delay: float) -> None:
        self.root = root
        self.delay = delay

    def _path(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def _wait(self) -> None:
        if self.delay:
            time.sleep(self.delay)

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        self._wait()
        try:
            st = os.lstat(self._path(path))
        except OSError as exc:
            raise fuse.FuseOSError(exc.errno or errno.EIO) from None
        attrs = {}
        for name in STAT_FIELDS:
            key = name.removesuffix("_ns")  # mfusepy takes ns with use_ns
            attrs[key] = getattr(st, name)
        return attrs

    def opendir(self, path: str) -> int:
        self._wait()
        if not os.path.isdir(self._path(path)):
            raise fuse.FuseOSError(errno.ENOTDIR)
        return 0

    def readdir(self, path: str, fh: int) -> list[tuple[str, dict[str, int], int]]:
        """Names with their type and inode (what a directory entry carries:
        libfuse passes the inode through with ``use_ino``, and an entry of
        inode 0 would be taken for a deleted one)."""
        self._wait()
        try:
            with os.scandir(self._path(path)) as entries:
                return [(e.name, _dirent(e), 0) for e in entries]
        except OSError as exc:
            raise fuse.FuseOSError(exc.errno or errno.EIO) from None

    def readlink(self, path: str) -> str:
        self._wait()
        return os.readlink(self._path(path))

    def open(self, path: str, flags: int) -> int:
        self._wait()
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise fuse.FuseOSError(errno.EROFS)
        try:
            return os.open(self._path(path), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise fuse.FuseOSError(exc.errno or errno.EIO) from None

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        self._wait()
        return os.pread(fh, size, offset)

    def release(self, path: str, fh: int) -> int:
        os.close(fh)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self.root)
        return {key: getattr(st, key) for key in STATVFS_FIELDS}


def _dirent(entry: os.DirEntry[str]) -> dict[str, int]:
    if entry.is_dir(follow_symlinks=False):
        kind = stat.S_IFDIR
    elif entry.is_symlink():
        kind = stat.S_IFLNK
    elif entry.is_file(follow_symlinks=False):
        kind = stat.S_IFREG
    else:
        kind = stat.S_IFMT(entry.stat(follow_symlinks=False).st_mode)
    return {"st_mode": kind, "st_ino": entry.inode()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay-ms", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=64, help="FUSE's threads")
    parser.add_argument("source")
    parser.add_argument("mountpoint")
    args = parser.parse_args(argv)
    fuse.FUSE(
        SlowFS(os.path.abspath(args.source), args.delay_ms / 1000),
        args.mountpoint,
        foreground=True,
        ro=True,
        use_ino=True,
        attr_timeout=0,
        entry_timeout=0,
        negative_timeout=0,
        max_threads=args.threads,
        max_idle_threads=args.threads,
        fsname="slowfs",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
