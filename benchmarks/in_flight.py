#!/usr/bin/env python3
"""Benchmark of issue 14: how long a new small file waits behind a large transfer.

A large file is being sent (by default 24 MiB at 1 MiB/s, the emulator's
throughput throttle); two seconds after its task started a small file is
created. The real command ``python -m globus_auto --config CONFIG run`` runs
every ``--interval`` seconds from the start of the large file's task, as cron
would, against the emulator (in this process, on loopback). The figure is
the small file's delay: seconds from its creation to its arrival at the
destination, measured with one task in flight, before (``MAX_TASKS_IN_FLIGHT
= 1``: one task per job, as before issue 14) and after (the default, 2).
Prints one line::

    in-flight: small file delayed 26.1 s before (MAX_TASKS_IN_FLIGHT=1),
    2.4 s after (2); created 2 s into a 24 MiB transfer at 1 MiB/s, ...

Usage (from the repository root; about a minute with the defaults)::

    python benchmarks/in_flight.py
    python benchmarks/in_flight.py --big-mib 8 --interval 2   # quicker

``benchmarks/run.py`` may call :func:`figure` for its own report; it returns
the two delays and the line.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from globus_auto.emulator import Emulator  # noqa: E402

MiB = 1 << 20


@dataclass(frozen=True)
class Scenario:
    big_bytes: int
    rate: int  # bytes per second, the emulator's throttle
    interval: float  # seconds between runs, as cron would space them
    head_start: float = 2.0  # seconds into the large transfer the small file appears


class World:
    """An emulator with two collections and one job's config, in ``work``."""

    def __init__(self, work: Path, limit: int) -> None:
        self.src = work / "src-collection"
        self.dst = work / "dst-collection"
        self.data = self.src / "data"
        self.data.mkdir(parents=True)
        self.dst.mkdir()
        self.src_id, self.dst_id = str(uuid.uuid4()), str(uuid.uuid4())
        client, secret = str(uuid.uuid4()), uuid.uuid4().hex
        self.emu = Emulator(
            collections={self.src_id: self.src, self.dst_id: self.dst},
            clients={client: secret},
        )
        self.config = work / "config.py"
        self.config.write_text(
            f"CLIENT_ID = {client!r}\nCLIENT_SECRET = {secret!r}\n"
            f"SRC_ID = {self.src_id!r}\nSRC_DIR = '/data'\n"
            f"SRC_LOCAL_DIR = {str(self.data)!r}\n"
            f"DST_ID = {self.dst_id!r}\nDST_DIR = '/backup'\n"
            f"STATE_DIR = {str(work / 'state')!r}\n"
            f"MAX_TASKS_IN_FLIGHT = {limit}\n"
        )
        self.config.chmod(0o600)

    def run(self) -> None:
        env = dict(os.environ)
        env["GLOBUS_SDK_SERVICE_URL_TRANSFER"] = self.emu.url
        env["GLOBUS_SDK_SERVICE_URL_AUTH"] = self.emu.url
        done = subprocess.run(
            [sys.executable, "-m", "globus_auto", "--config", str(self.config), "run"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=REPO,
        )
        if done.returncode != 0:
            sys.exit(f"benchmark: a run failed ({done.returncode}): {done.stderr}")

    def arrived(self, name: str, content: bytes) -> bool:
        path = self.dst / "backup" / name
        try:
            return path.read_bytes() == content
        except OSError:
            return False


def small_file_delay(work: Path, limit: int, scenario: Scenario) -> float:
    """Seconds from the small file's creation to its arrival at the destination."""
    world = World(work, limit)
    world.emu.start()
    try:
        world.emu.add_faults(bytes_per_second=scenario.rate)
        (world.data / "big.bin").write_bytes(os.urandom(scenario.big_bytes))
        started = time.monotonic()
        world.run()  # submits the large file's task; the next runs keep the beat
        next_run = started + scenario.interval
        time.sleep(max(0.0, started + scenario.head_start - time.monotonic()))
        content = b"new data\n"
        (world.data / "small.txt").write_bytes(content)
        created = time.monotonic()
        while not world.arrived("small.txt", content):
            if time.monotonic() >= next_run:
                world.run()
                next_run += scenario.interval
            time.sleep(0.02)
        delay = time.monotonic() - created
        world.emu.add_faults(bytes_per_second=0)  # let the large one end now
        world.emu.wait_idle(60)
        return delay
    finally:
        world.emu.stop()


def figure(scenario: Scenario, workdir: Path | None = None) -> tuple[float, float, str]:
    """(delay before, delay after, the benchmark line)."""
    with tempfile.TemporaryDirectory(prefix="in-flight-", dir=workdir) as tmp:
        before = small_file_delay(Path(tmp) / "before", 1, scenario)
        after = small_file_delay(Path(tmp) / "after", 2, scenario)
    line = (
        f"in-flight: small file delayed {before:.1f} s before "
        f"(MAX_TASKS_IN_FLIGHT=1), {after:.1f} s after (2); created "
        f"{scenario.head_start:g} s into a {scenario.big_bytes / MiB:g} MiB transfer "
        f"at {scenario.rate / MiB:g} MiB/s, a run every {scenario.interval:g} s"
    )
    return before, after, line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mib", type=float, default=24.0)
    parser.add_argument("--rate-mib", type=float, default=1.0)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    scenario = Scenario(
        big_bytes=int(args.big_mib * MiB),
        rate=int(args.rate_mib * MiB),
        interval=args.interval,
    )
    print(figure(scenario, args.workdir)[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
