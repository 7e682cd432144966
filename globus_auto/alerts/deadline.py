"""Deadlines for whole notification calls, and the run's budget for them.

Why a worker thread: socket timeouts bound each read, not the call, so a
server that drips one line every few seconds (a tarpit), or a name lookup that
hangs, would hold a cron run forever. The call runs in a daemon thread and is
given up at its deadline; the thread ends with its socket, or with the process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from globus_auto.errors import NotifyError

T = TypeVar("T")


def within(seconds: float, what: str, call: Callable[[], T]) -> T:
    """``call()``'s result, or ``NotifyError`` once ``seconds`` have passed.

    ``what`` names the call in that error ("the SMTP server mail.example:587").
    An exception raised by ``call`` is raised here as it is.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=work, name="globus-auto notify", daemon=True)
    worker.start()
    worker.join(max(seconds, 0.0))
    if worker.is_alive():
        raise NotifyError(f"{what} did not finish within {seconds:g} s; gave up")
    if failure:
        raise failure[0]
    return outcome[0]


class Budget:
    """The time left for one run's notifications, all channels together.

    ``clock`` is a monotonic clock (tests pass their own).
    """

    def __init__(
        self, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.clock = clock
        self.ends = clock() + seconds

    def left(self) -> float:
        return max(0.0, self.ends - self.clock())

    def slice(self, seconds: float) -> float:
        """The deadline for one call: ``seconds``, or less if less is left."""
        return min(seconds, self.left())

    @property
    def spent(self) -> bool:
        return self.left() <= 0
