"""The pieces of a Globus call's deadline (globus_auto/globus/watchdog.py),
on a clock the test moves: the time left cuts requests' timeouts, stops
retries once it is gone and shortens the sleep before one; a call inside
another ends by the outer's deadline; GLOBUS_TIMEOUT sets it. (The sockets
being shut at the deadline: tests/e2e/test_globus_deadline.py, against
dripping servers.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from globus_sdk.transport import (
    RequestCallerInfo,
    RetryCheckResult,
    RetryConfig,
    RetryContext,
)

from globus_auto.errors import ConfigError
from globus_auto.globus import watchdog
from globus_auto.globus.watchdog import Call, CallCutOff
from globus_auto.settings.model import Settings
from globus_auto.settings.source import load_settings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def context() -> RetryContext:
    return RetryContext(0, caller_info=RequestCallerInfo(retry_config=RetryConfig()))


def test_each_timeout_is_cut_to_the_time_left() -> None:
    clock = Clock()
    call = Call(10.0, clock)
    assert watchdog._within(call, 60.0) == (10.0, 10.0)
    assert watchdog._within(call, (3.0, 60.0)) == (3.0, 10.0)
    assert watchdog._within(call, None) == (10.0, 10.0)  # none: the time left
    clock.now += 9.5
    assert watchdog._within(call, 60.0) == (0.5, 0.5)
    clock.now += 1
    with pytest.raises(CallCutOff, match="did not finish within 10 s"):
        watchdog._within(call, 60.0)


def test_no_retry_once_the_deadline_has_passed_and_no_sleep_beyond_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    call = Call(10.0, clock)
    sleep = watchdog.sleep_within_deadline(lambda ctx: 4.0)
    check = watchdog.stop_retrying_after_deadline
    assert check(context()) is RetryCheckResult.no_decision  # outside any call
    assert sleep(context()) == 4.0
    monkeypatch.setattr(watchdog, "current", lambda: call)
    assert check(context()) is RetryCheckResult.no_decision
    clock.now += 8
    assert sleep(context()) == 2.0
    clock.now += 2
    assert check(context()) is RetryCheckResult.do_not_retry
    call.cut_off()
    assert call.cut


def test_a_call_inside_another_ends_by_the_outer_deadline() -> None:
    with watchdog.deadline(5.0) as outer:
        assert watchdog.current() is outer
        with watchdog.deadline(300.0) as inner:
            assert watchdog.current() is inner
            assert inner.seconds <= 5.0
        assert watchdog.current() is outer
    assert watchdog.current() is None


def test_a_call_that_ended_never_cuts_what_it_used() -> None:
    """Its connections went back to the pool; another call may have them."""
    with Call(60.0) as call:
        pass
    call.cut_off()
    assert not call.cut


MINIMAL = """\
SRC_ID = '5c2f6ff1-7b0e-4a43-9f4c-1f0c4d6e8a01'
SRC_DIR = '/src'
DST_ID = '5c2f6ff1-7b0e-4a43-9f4c-1f0c4d6e8a02'
DST_DIR = '/dst'
CLIENT_ID = '5c2f6ff1-7b0e-4a43-9f4c-1f0c4d6e8a03'
"""


@pytest.mark.parametrize(
    ("line", "seconds"),
    [("", 300.0), ("GLOBUS_TIMEOUT = 20", 20.0), ("GLOBUS_TIMEOUT = '10m'", 600.0)],
)
def test_globus_timeout_is_seconds_by_default(
    tmp_path: Path, line: str, seconds: float
) -> None:
    assert load(tmp_path, MINIMAL + line).globus_timeout == seconds


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("GLOBUS_TIMEOUT = 0", "GLOBUS_TIMEOUT: must be more than 0 seconds"),
        ("GLOBUS_TIMEOUT = '2d'", "GLOBUS_TIMEOUT: '2d' is more than 1d"),
    ],
)
def test_globus_timeout_must_be_a_sane_deadline(
    tmp_path: Path, line: str, said: str
) -> None:
    with pytest.raises(ConfigError, match=said):
        load(tmp_path, MINIMAL + line)


def load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "config.py"
    path.write_text(text + "\n")
    path.chmod(0o600)
    return load_settings(path, {})
