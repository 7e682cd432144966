"""Crash points: where the crash-safety tests kill a run.

The tests kill a real run at each named point (during the scan, around the
submit call, while settling) and check that the next run delivers everything
and that Globus never saw a second task. Nothing but the tests sets them.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


CRASH_VARIABLE = "GLOBUS_AUTO_TEST_CRASH_AT"

# Test-only: called with each crash point's name. The in-process property test
# sets it to raise there, standing in for the SIGKILL a real process gets.
CRASH_HOOK: Callable[[str], None] | None = None


def crashpoint(name: str) -> None:
    """Test-only switch: die here, as a killed process would, when asked to.

    The crash-safety tests set ``GLOBUS_AUTO_TEST_CRASH_AT`` to a point's name;
    nothing else ever sets it.
    """
    if CRASH_HOOK is not None:
        CRASH_HOOK(name)
    if os.environ.get(CRASH_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
