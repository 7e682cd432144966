"""Progress of a long scan on a terminal: files, bytes and read rate.

Only used when stderr is a terminal; under cron nothing is printed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from globus_auto.engine.scan import ScanSummary
from globus_auto.text import human_bytes

# Only scans that last longer than this show progress at all.
QUIET_SECONDS = 2.0


def progress_printer() -> Callable[[ScanSummary], None]:
    """A callback that rewrites one status line on stderr."""
    started = time.monotonic()
    shown = False

    def show(summary: ScanSummary) -> None:
        nonlocal shown
        elapsed = time.monotonic() - started
        if elapsed < QUIET_SECONDS and not shown:
            return
        rate = summary.hashed_bytes / elapsed if elapsed > 0 else 0.0
        sys.stderr.write(
            f"\rscanned {summary.files:,} files ({human_bytes(summary.total_bytes)}), "
            f"read {summary.hashed_files:,} ({human_bytes(summary.hashed_bytes)}, "
            f"{human_bytes(int(rate))}/s)   "
        )
        sys.stderr.flush()
        shown = True

    return show
