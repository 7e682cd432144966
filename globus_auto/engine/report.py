"""What one run of one job tells its caller: the options it ran with, its report.

Plain values. The command line prints a :class:`JobReport`; the alerts read its
problems and the kinds it verified to be fine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from globus_auto.datastore.store import Datastore
from globus_auto.engine.scan import Progress, ScanSummary
from globus_auto.errors import (
    EXIT_OK,
)
from globus_auto.problems import Kind, Problem
from globus_auto.settings.model import Settings

if TYPE_CHECKING:
    from globus_auto.globus.gateway import Gateway

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    dry_run: bool = False
    wait: bool = False
    timeout: float = 3600.0


@dataclass
class RunEnv:
    """What a run needs from the outside world, passed in (not global)."""

    settings: Settings
    store: Datastore
    gateway_factory: Callable[[], Gateway]
    now: Callable[[], datetime]
    progress: Progress | None = None
    _gateway: Gateway | None = None

    def gateway(self) -> Gateway:
        if self._gateway is None:
            self._gateway = self.gateway_factory()
        return self._gateway


@dataclass(frozen=True)
class DryRunFile:
    path: bytes
    size: int
    reason: str  # "new" or "changed"


@dataclass
class JobReport:
    """The outcome of one job's run: what the command line prints and alerts use."""

    job: str
    outcome: str = "nothing to do"
    exit_code: int = EXIT_OK
    detail: str = ""
    files_sent: int = 0
    bytes_sent: int = 0
    delivered_files: int = 0
    task_id: str | None = None
    scan: ScanSummary | None = None
    problems: list[Problem] = field(default_factory=list)
    cleared: set[Kind] = field(default_factory=set)
    skipped: bool = False  # another run holds the lock: it reports the outcome
    would_send: list[DryRunFile] = field(default_factory=list)

    def fail(self, problem: Problem, exit_code: int) -> None:
        self.problems.append(problem)
        self.exit_code = max(self.exit_code, exit_code)
