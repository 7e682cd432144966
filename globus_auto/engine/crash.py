"""How a run dies: stop signals, and the crash points the tests kill it at.

A ``SIGTERM`` (systemd stopping the unit, ``kill``) or a ``SIGHUP`` (the
terminal closed) becomes :class:`Terminated` in the main thread, so a run
unwinds as it does for Ctrl-C: the open transaction rolls back, a dry run's
copy of the datastore is deleted, the log says what stopped it.

The crash-safety tests kill a real run at each named point (during the scan,
around the submit call, while settling) and check that the next run delivers
everything and that Globus never saw a second task. Nothing but the tests sets
them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

log = logging.getLogger(__name__)


CRASH_VARIABLE = "GLOBUS_AUTO_TEST_CRASH_AT"
# Test-only: the signal a crash point sends (a name: TERM, HUP; KILL if unset),
# to the run alone, or with "-GROUP" (TERM-GROUP) to its whole process group,
# as systemd's stop does (the test starts the run in a session of its own).
CRASH_SIGNAL_VARIABLE = "GLOBUS_AUTO_TEST_CRASH_SIGNAL"

# Test-only: called with each crash point's name. The in-process property test
# sets it to raise there, standing in for the SIGKILL a real process gets.
CRASH_HOOK: Callable[[str], None] | None = None

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """A stop signal arrived; a run unwinds as it would for Ctrl-C.

    Why a KeyboardInterrupt: no ``except Exception`` (one job's bug must not
    stop the others) may swallow it, and whatever already handles Ctrl-C
    handles it. ``exit_code`` is 128 + the signal's number, as shells report.
    """

    def __init__(self, signum: int) -> None:
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {self.signal_name}")


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """For the body, SIGTERM and SIGHUP raise :class:`Terminated`; a second
    one ends the process at once, as it would have without this.

    Does nothing outside the main thread (only it may set handlers), nor for
    a signal that is ignored (``nohup`` ignores SIGHUP: the run must go on).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        s: signal.getsignal(s)
        for s in STOP_SIGNALS
        if signal.getsignal(s) is not signal.SIG_IGN
    }

    def stop(signum: int, frame: FrameType | None) -> None:
        for s in previous:  # the next one is not asked twice
            signal.signal(s, signal.SIG_DFL)
        raise Terminated(signum)

    for s in previous:
        signal.signal(s, stop)
    try:
        yield
    finally:
        for s, handler in previous.items():  # None: set outside Python
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


def crashpoint(name: str) -> None:
    """Test-only switch: die here, as a killed process would, when asked to.

    The crash-safety tests set ``GLOBUS_AUTO_TEST_CRASH_AT`` to a point's name
    (and ``GLOBUS_AUTO_TEST_CRASH_SIGNAL`` for another signal than SIGKILL);
    nothing else ever sets them.
    """
    if CRASH_HOOK is not None:
        CRASH_HOOK(name)
    if os.environ.get(CRASH_VARIABLE) == name:
        chosen = os.environ.get(CRASH_SIGNAL_VARIABLE, "KILL")
        signum = signal.Signals[f"SIG{chosen.removesuffix('-GROUP')}"]
        if chosen.endswith("-GROUP"):
            os.killpg(os.getpgrp(), signum)
        else:
            os.kill(os.getpid(), signum)
