#!/usr/bin/env python3
"""The floor for a parallel scan: list every folder and lstat every entry on
``--threads`` threads, in no order, keeping nothing; print the count.

Usage::

    python benchmarks/parallel_stat.py [--threads 16] ROOT

What ``benchmarks/run.py --only 6`` measures the scan against on the slow FUSE
filesystem: the same metadata calls as a no-change run (each folder opened and
listed, each entry lstat'ed relative to the folder), on as many threads, with
nothing else (no datastore, no order, no Python objects kept), so the ratio
shows what the scan's own work costs beyond the calls themselves.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class ParallelStat:
    """One walk; ``files`` counts what was stat'ed."""

    def __init__(self, threads: int) -> None:
        self.pool = ThreadPoolExecutor(threads)
        self.lock = threading.Lock()
        self.pending = 0
        self.done = threading.Event()
        self.files = 0
        self.errors: list[BaseException] = []

    def run(self, root: bytes) -> int:
        self._submit(root)
        self.done.wait()
        self.pool.shutdown()
        if self.errors:
            raise self.errors[0]
        return self.files

    def _submit(self, folder: bytes) -> None:
        with self.lock:
            self.pending += 1
        self.pool.submit(self._folder, folder).add_done_callback(self._finished)

    def _finished(self, future: Future[None]) -> None:
        if future.exception() is not None:
            self.errors.append(future.exception())  # type: ignore[arg-type]
        with self.lock:
            self.pending -= 1
            if self.pending == 0:
                self.done.set()

    def _folder(self, folder: bytes) -> None:
        fd = os.open(folder, _DIR_FLAGS)
        try:
            names = os.listdir(folder)
            count = 0
            for name in names:
                st = os.lstat(name, dir_fd=fd)
                if stat.S_ISDIR(st.st_mode):
                    self._submit(os.path.join(folder, name))
                else:
                    count += 1
        finally:
            os.close(fd)
        with self.lock:
            self.files += count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("root")
    args = parser.parse_args(argv)
    print(ParallelStat(args.threads).run(os.fsencode(args.root)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
