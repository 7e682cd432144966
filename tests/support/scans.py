"""A scan in one process, as the scan tests make it: a tree into a datastore."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from globus_auto.datastore.store import Datastore
from globus_auto.engine import scan, walk_parallel

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def scan_once(store: Datastore, root: Path | bytes, threads: int) -> scan.ScanSummary:
    """Scan ``root`` for the job ``job`` with ``threads`` (SCAN_THREADS),
    writing what changed to ``store``."""
    job = store.job_id("job", "job", NOW)
    src = root if isinstance(root, bytes) else os.fsencode(root)
    reader = store.reader()
    try:
        scanner = scan.Scanner(
            src,
            lambda observed, gone: store.apply_scan_batch(job, observed, gone),
            workers=threads,
        )
        tree = walk_parallel.walk_tree(src, None, threads)
        return scanner.run(tree, store.iter_stored(job, reader))
    finally:
        reader.close()
