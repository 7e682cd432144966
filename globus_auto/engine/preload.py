"""Modules a run will soon need, loaded in a thread while it waits on others.

Why: sending needs globus-sdk and requests, about 0.1 s of imports, which a
run with nothing to send never pays (it must not: most cron runs are such).
When scouts (:mod:`.scouts`) scan a big tree the run's own process mostly
waits for their pipes, so from the first change they report, the imports are
done meanwhile instead of after the scan. Imports only the standard library.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence

# What submitting a task imports (see engine/session.connect_gateway and
# engine/job: the tasks module), heaviest first.
SENDING_MODULES = (
    "requests",
    "globus_sdk",
    "globus_sdk.globus_app",
    "globus_sdk.transport",
    "globus_auto.globus.watchdog",
    "globus_auto.globus.errors",
    "globus_auto.globus.app",
    "globus_auto.globus.gateway",
    "globus_auto.globus.login",
    "globus_auto.engine.tasks",
)


class ModuleLoader:
    """Imports ``names`` in a thread once :meth:`start` is called.

    The caller must :meth:`join` before it imports any of them itself, so that
    no two threads ever import the same modules at once.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._load, name="globus-auto preload", daemon=True
            )
            self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def _load(self) -> None:
        for name in self.names:
            try:
                importlib.import_module(name)
            except Exception:  # the run imports it again and reports it there
                return
