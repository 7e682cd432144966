#!/usr/bin/env python3
"""The floor one Python process allows for figure 1: what a no-change run in
one process cannot avoid (a big job's run scans in several, engine/scouts.py;
``run`` below is that run, ``run, SCAN_THREADS 1`` the same in one process
and one thread).

Given a tree and the datastore of a job over it (a work folder kept by
``run.py --only 1 --keep``), times side by side, as whole processes, the
median of several rounds:

- ``find SRC -printf '%p %s %T@\\n'``, the reference of figure 1;
- ``walk``: a bare Python process (``python -S``) that lists every folder,
  sorts its names and ``lstat``s every file relative to it, keeping nothing:
  the system calls of the scan and the least Python around them;
- ``walk+rows``: the same, then every row of the datastore read as the scan
  reads them (``iter_stored``'s query), still keeping nothing;
- ``imports``: ``python -c`` importing the modules a no-change run imports;
- ``run``: the real no-change run (``python -m globus_auto --config C run``).

Usage: ``python benchmarks/floor.py WORK/tree [--repeat N]``, where ``WORK``
is the kept work folder (it holds ``config.py``, ``src/tree`` and ``state``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

WALK = """
import os, sys
root = os.fsencode(sys.argv[1])
def walk(folder):
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in sorted(os.listdir(folder)):
            st = os.lstat(name, dir_fd=fd)
            if (st.st_mode & 0o170000) == 0o040000:
                walk(os.path.join(folder, name))
    finally:
        os.close(fd)
walk(root)
if len(sys.argv) > 2:
    import sqlite3
    from itertools import islice
    db = sqlite3.connect(sys.argv[2], isolation_level=None)
    rows = db.execute(
        "SELECT path, size, mtime_ns, ctime_ns, inode, digest IS NOT NULL, problem"
        " FROM files WHERE job = 1 ORDER BY path"
    )
    while list(islice(rows, 1024)):
        pass
"""

IMPORTS = (
    "import globus_auto.main, globus_auto.cli.run, globus_auto.engine.session,"
    " globus_auto.settings.source"
)


def seconds(cmd: list[str]) -> float:
    """Wall time of ``cmd`` run to its end, its output discarded."""
    started = time.perf_counter()
    subprocess.run(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "tree", type=Path, help="WORK/tree of a kept run.py work folder"
    )
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    tree: Path = args.tree.resolve()
    src, db = str(tree / "src/tree"), str(tree / "state/datastore")
    py = sys.executable
    commands = {
        "find -printf": ["find", src, "-printf", "%p %s %T@\\n"],
        "walk": [py, "-S", "-c", WALK, src],
        "walk+rows": [py, "-S", "-c", WALK, src, db],
        "imports": [py, "-c", IMPORTS],
        "run": [py, "-m", "globus_auto", "--config", str(tree / "config.py"), "run"],
        "run, SCAN_THREADS 1": [
            py,
            "-m",
            "globus_auto",
            "--config",
            str(tree / "config-serial.py"),
            "run",
        ],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for cmd in commands.values():
        seconds(cmd)  # warm the caches
    for _ in range(args.repeat):
        for name, cmd in commands.items():
            times[name].append(seconds(cmd))
    find = statistics.median(times["find -printf"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:>20}: {median:.3f} s = {median / find:.2f}x find")
    return 0


if __name__ == "__main__":
    sys.exit(main())
